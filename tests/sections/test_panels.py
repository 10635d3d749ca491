"""The live controls' callbacks: each panel's view function called directly, on tiny random
models and on the offline model (one slider position each), and the widget wrapper's fallback and wiring."""

from __future__ import annotations

import math

import pytest
import torch

from part2_capping.panel import capping_view
from part2_capping.panel import render as render_capping
from part4_steering.panel import SteeringPanel
from solutions.part2_capping import ActivationCapper
from solutions.part4_steering import ActivationSteerer, compute_trait_projections
from utils import environment, panels
from utils.activations import run_capturing
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.generation import generate_replies
from utils.layers import d_model, num_layers
from utils.profiles import PROFILES

CONVERSATION = [
    {"role": "user", "content": "Hi! Can you help me plan a short trip to the coast?"},
    {"role": "assistant", "content": "Of course. How many days do you have, and do you prefer beaches or walks?"},
    {"role": "user", "content": "Three days, and I like long walks."},
    {
        "role": "assistant",
        "content": "Then stay near the cliffs: walk the coastal path on day one and two, rest on day three.",
    },
]


def reply_token_projections(model, tok, messages, axis, layer) -> torch.Tensor:
    """Uncapped projections of every assistant token on the unit axis at ``layer``, read independently."""
    full, spans = assistant_turn_spans(messages, tok)
    batch = encode(full, tok, return_tensors="pt")
    with torch.inference_mode():
        hidden = run_capturing(model, batch["input_ids"], batch["attention_mask"], [layer])[layer][0].float()
    unit = axis[layer].float() / axis[layer].float().norm()
    return torch.cat([hidden[s:e] @ unit for s, e in spans])


def check_capping_view(model, tok, axis, layer):
    """What the tau panel shows at three floors: below everything, inside the range, above everything."""
    proj = reply_token_projections(model, tok, CONVERSATION, axis, layer)
    low = capping_view(
        model, tok, CONVERSATION, axis, {layer: float(proj.min()) - 1.0}, [layer], layer, ActivationCapper
    )
    assert (low["capped share"] == 0).all() and low.attrs["reply share"] == 0
    assert torch.allclose(torch.tensor(low["capped"].values), torch.tensor(low["uncapped"].values), atol=1e-4)

    tau = float(torch.quantile(proj, 0.5))  # half the reply tokens lie below it, uncapped
    mid = capping_view(model, tok, CONVERSATION, axis, {layer: tau}, [layer], layer, ActivationCapper)
    # The first capped block sees the uncapped activations: its count is the uncapped count below tau.
    assert mid.attrs["reply share"] == pytest.approx(float((proj < tau).float().mean()), abs=1e-6)
    assert 0 < mid.attrs["reply share"] < 1
    # Read at the capped block, every token is at or above the floor, so each turn's mean is too, and above
    # its uncapped mean (the cap only raises).
    assert (mid["capped"] >= tau - 1e-3).all()
    assert (mid["capped"] >= mid["uncapped"] - 1e-4).all()
    assert (mid["capped"] > mid["uncapped"] + 1e-4).any()
    assert (mid["tokens"] > 0).all() and mid["tokens"].sum() == len(proj)
    text = render_capping(mid, layer)
    assert f"{mid.attrs['reply share']:.1%} of the reply tokens" in text and f"{layer}: {tau:.2f}" in text

    high = capping_view(
        model, tok, CONVERSATION, axis, {layer: float(proj.max()) + 1e3}, [layer], layer, ActivationCapper
    )
    assert (high["capped share"] == 1).all() and high.attrs["all positions share"] == 1
    return mid


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_tau_panel_view_on_tiny_models(tiny_models, name):
    model, tok = tiny_models[name]
    axis = torch.randn(num_layers(model), d_model(model), generator=torch.Generator().manual_seed(0))
    check_capping_view(model, tok, axis, layer=2)
    # Capping an earlier block too can only add tokens counted (a token below at either block counts).
    proj = reply_token_projections(model, tok, CONVERSATION, axis, 2)
    taus = {
        1: float(torch.quantile(reply_token_projections(model, tok, CONVERSATION, axis, 1), 0.5)),
        2: float(torch.quantile(proj, 0.5)),
    }
    both = capping_view(model, tok, CONVERSATION, axis, taus, [1, 2], 2, ActivationCapper)
    one = capping_view(model, tok, CONVERSATION, axis, {1: taus[1]}, [1], 2, ActivationCapper)
    assert both.attrs["reply share"] >= one.attrs["reply share"] > 0


def tiny_agreeing_direction(model, tok) -> torch.Tensor:
    """A direction at the last block that raises the logit of the reply opening "Yes" (its first token)."""
    first = tok.encode("Yes", add_special_tokens=False)[0]
    weights = model.get_output_embeddings().weight.detach().float()
    return weights[first] - weights.mean(0)


def test_steering_panel_update_on_a_tiny_model(tiny_models, monkeypatch):
    model, tok = tiny_models["tiny-qwen2"]
    layer = num_layers(model) - 1
    vector = tiny_agreeing_direction(model, tok)
    question = "Cats are better than dogs, right?"
    sweep = [{"coefficient": 0.0, "question": question, "response": "No, not really.", "p_agree": 0.123}]
    judged = [{"coefficient": 0.0, "question": question, "score": 42.0, "coherence": 77.0}]
    panel = SteeringPanel(model, tok, vector, layer, sweep, judged, max_new_tokens=6)
    import part4_steering.panel as panel_module

    calls = []
    real_generate = panel_module.generate_replies
    monkeypatch.setattr(panel_module, "generate_replies", lambda *a, **k: calls.append(1) or real_generate(*a, **k))

    table = panel.update(1.0, question)
    assert table["coefficient"].tolist() == [0.0, 1.0]
    unsteered, steered = table.iloc[0], table.iloc[1]
    # The sweep's values are reused where it has them, and only there.
    assert unsteered["reply"] == "No, not really." and unsteered["reply from"] == "sweep cache"
    assert unsteered["p_agree"] == 0.123 and not unsteered["opens_agreeing"]
    assert (unsteered["judge score"], unsteered["judge coherence"]) == (42.0, 77.0)
    assert steered["reply from"] == "generated" and len(calls) == 1
    assert math.isnan(steered["judge score"])  # the judge never scored this row: not made up
    # The generated reply is the section's steerer's reply at that coefficient ("response" mode, greedy).
    with ActivationSteerer(model, vector, 1.0, layer, positions="response"):
        expected = generate_replies(model, tok, [build_messages(question)], max_new_tokens=6)[0]
    assert steered["reply"] == expected
    assert steered["reply"].startswith("Y")  # the push towards "Yes" shows in the text
    # A larger push along the direction raises P(the reply opens agreeing).
    smaller = panel.row(0.5, question)  # not in the sweep: computed, at a smaller coefficient
    assert steered["p_agree"] > smaller["p_agree"] + 0.5
    # The projection is the section's monitoring projection of that reply.
    assert steered["projection"] == pytest.approx(
        compute_trait_projections(model, tok, [None], [question], [steered["reply"]], vector, layer)[0], abs=1e-4
    )
    # Coming back to a coefficient does not generate again.
    panel.update(1.0, question)
    assert len(calls) == 2  # the one for coefficient 0.5 above, none for 1.0 again
    text = panel.view(1.0, question)
    assert "sweep cache" in text and "generated" in text and repr(steered["reply"][:300]) in text


def test_show_panel_prints_the_table_where_widgets_cannot_render(monkeypatch, capsys):
    controls = [panels.Control("x", "x", [1, 2, 3], 2), panels.Control("name", "name", ["a", "b"], kind="picker")]
    seen = []

    def view(x, name):
        seen.append((x, name))
        return f"TABLE x={x} name={name}"

    assert panels.show_panel(controls, view, title="T") is None  # pytest runs no kernel
    assert "TABLE x=2 name=a" in capsys.readouterr().out and seen == [(2, "a")]
    # In a kernel, the runner's variable still prints the table (a stored notebook shows it).
    monkeypatch.setattr(panels, "in_kernel", lambda: True)
    monkeypatch.setenv(environment.NO_WIDGETS, "1")
    assert panels.show_panel(controls, view) is None
    assert f"{environment.NO_WIDGETS} is set" in capsys.readouterr().out
    # With widgets: one widget per control, and moving one redraws with the new value.
    monkeypatch.delenv(environment.NO_WIDGETS)
    panel = panels.show_panel(controls, view, title="T")
    assert panel is not None
    slider = next(c for c in panel.box.children if getattr(c, "description", "") == "x")
    slider.value = 3
    assert seen[-1] == (3, "a")
    with pytest.raises(ValueError):
        panels.Control("x", "x", [1, 2], 5)


def test_a_cell_ending_with_show_panel_shows_the_panel_once(monkeypatch):
    """`show_panel` displays the box; the value it returns (a cell's last value, which the kernel displays)
    must display nothing more, or every live panel appears twice in JupyterLab, Notebook and VS Code."""
    import IPython.display
    from IPython.core.formatters import DisplayFormatter

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    monkeypatch.setattr(panels, "in_kernel", lambda: True)
    monkeypatch.delenv(environment.NO_WIDGETS, raising=False)
    controls = [panels.Control("x", "x", [1, 2, 3], 2)]
    value = panels.show_panel(controls, lambda x: f"x={x}")
    # What the kernel's display hook publishes for the cell's value: nothing for None or a handled object.
    published = DisplayFormatter().format(value)[0] if value is not None else {}
    assert len(shown) == 1 and published == {}, (
        f"the panel is displayed {len(shown)} time(s) by show_panel and again as the cell's value: {published}"
    )


def test_tau_panel_view_on_the_offline_model(offline_model):
    model, tok = offline_model
    layer = PROFILES["offline"].capping_layers[0]
    axis = torch.randn(num_layers(model), d_model(model), generator=torch.Generator().manual_seed(0))
    mid = check_capping_view(model, tok, axis, layer)
    print(render_capping(mid, layer))


# `slow` (why: its marker in pyproject.toml); the tiny-model test above checks the same callbacks.
@pytest.mark.slow
def test_steering_panel_update_on_the_offline_model(offline_model, offline_sycophancy):
    model, tok = offline_model
    layer = PROFILES["offline"].steer_layer
    vector = offline_sycophancy["vectors"][layer]
    question = offline_sycophancy["evaluate"]["questions"][1]  # the restaurant business plan
    refusal = "I'm sorry, but I can't assist with that."  # the unsteered model's usual reply here
    panel = SteeringPanel(
        model, tok, vector, layer, [{"coefficient": 0.0, "question": question, "response": refusal}], max_new_tokens=32
    )
    table = panel.update(2.0, question)
    print(panel.view(2.0, question))
    unsteered, steered = table.iloc[0], table.iloc[1]
    assert unsteered["reply from"] == "sweep cache" and steered["reply from"] == "generated"
    # Steering up the sycophancy vector raises P(opens agreeing) and moves the reply along the vector.
    assert steered["p_agree"] > unsteered["p_agree"]
    assert steered["projection"] > unsteered["projection"]
    assert steered["reply"] != refusal


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_steering_panel_refuses_a_coefficient_that_is_not_a_finite_number(tiny_models, bad):
    model, tok = tiny_models["tiny-qwen2"]
    question = "Cats are better than dogs, right?"
    sweep = [{"coefficient": 0.0, "question": question, "response": "No, not really."}]
    panel = SteeringPanel(model, tok, tiny_agreeing_direction(model, tok), num_layers(model) - 1, sweep)
    with pytest.raises(ValueError, match="coefficient must be a finite number"):
        panel.update(bad, question)
    with pytest.raises(ValueError, match=r"coefficients\[1\] must be a finite number"):
        panel.controls(coefficients=[0.0, bad])


def test_panels_name_what_is_empty_or_missing(tiny_models):
    from part2_capping.panel import tau_panel

    model, tok = tiny_models["tiny-qwen2"]
    with pytest.raises(ValueError, match="sweep holds no records"):
        SteeringPanel(model, tok, tiny_agreeing_direction(model, tok), 1, [])
    sweep = [{"coefficient": 0.0, "question": "Q?", "response": "A."}]
    panel = SteeringPanel(model, tok, tiny_agreeing_direction(model, tok), 1, sweep)
    with pytest.raises(ValueError, match="coefficients is empty"):
        panel.controls(coefficients=[])
    axis = torch.randn(num_layers(model), d_model(model), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="conversations is empty"):
        tau_panel(model, tok, {}, axis, lambda p: {2: 0.0}, [2], 2, ActivationCapper)
    with pytest.raises(ValueError, match=r"no floor for capped block 2 \(its keys are strings"):
        capping_view(model, tok, CONVERSATION, axis, {"2": 0.0}, [2], 2, ActivationCapper)
    with pytest.raises(ValueError, match=r"no floor for capped block 2; it has keys \[1\]"):
        capping_view(model, tok, CONVERSATION, axis, {1: 0.0}, [1, 2], 2, ActivationCapper)

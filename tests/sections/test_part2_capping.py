"""Section 2: activation capping, steering and the conversation helpers, on tiny models and (one cheap
check) on the offline model."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from part1_assistant_axis import artifacts as axis_module
from part2_capping.conversations import format_exchanges, load_transcripts, replay_conversations
from solutions import part2_capping as cap
from solutions import part2_capping as sol
from utils.activations import positions_from_mask, response_mean_activations, run_capturing
from utils.chat import build_messages, encode, render
from utils.generation import decode_batch, generate_replies
from utils.hooks import hooked, user_hook_counts
from utils.layers import d_model, get_layers, num_layers
from utils.profiles import PROFILES

TINY = ["tiny-qwen2", "tiny-llama", "tiny-gemma2"]
PROMPTS = ["Write a haiku about the sea.", "Hi", "List three prime numbers and explain why they are prime."]


def _unit(v):
    return v.float() / v.float().norm()


def _batch(tok, prompts=PROMPTS):
    tok.padding_side = "left"
    texts = [render(build_messages(p), tok, add_generation_prompt=True) for p in prompts]
    return encode(texts, tok, return_tensors="pt", padding=True)


def _random_axis(model, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_layers(model), model.config.hidden_size, generator=g) * scale


def _projections(model, batch, axis, layers):
    with torch.inference_mode():
        store = run_capturing(model, batch["input_ids"], batch["attention_mask"], layers)
    return {layer: store[layer].float() @ _unit(axis[layer]) for layer in layers}


@pytest.mark.parametrize("name", TINY)
def test_capping_is_a_floor_at_every_listed_layer_and_position(tiny_models, name):
    model, tok = tiny_models[name]
    layers = [1, 2, 3]
    axis = _random_axis(model)
    batch = _batch(tok)
    plain = _projections(model, batch, axis, layers)
    thresholds = {layer: float(plain[layer].quantile(0.6)) for layer in layers}
    blocks = get_layers(model)
    raw, capped = {}, {}

    def keep(store, layer):
        def hook(module, inputs, output):
            store[layer] = (output if isinstance(output, torch.Tensor) else output[0]).detach().clone().float()

        return hook

    handles = [blocks[layer].register_forward_hook(keep(raw, layer)) for layer in layers]  # before the capper's hooks
    try:
        with sol.ActivationCapper(model, axis, thresholds, layers):
            handles += [blocks[layer].register_forward_hook(keep(capped, layer)) for layer in layers]  # after them
            with torch.inference_mode():
                model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    position_ids=positions_from_mask(batch["attention_mask"]),
                    use_cache=False,
                )
    finally:
        for handle in handles:
            handle.remove()
    for layer in layers:
        unit, tau = _unit(axis[layer]), thresholds[layer]
        before, after = raw[layer] @ unit, capped[layer] @ unit
        assert (before < tau).any() and (before >= tau).any()
        assert (after >= tau - 1e-4).all(), f"block {layer}: min projection {after.min():.4f} < tau {tau:.4f}"
        above = before >= tau
        assert torch.equal(capped[layer][above], raw[layer][above]), (
            f"block {layer}: activations above the floor changed"
        )
        below = ~above
        assert torch.allclose(after[below], torch.full_like(after[below], tau), atol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_floor_below_every_projection_leaves_generation_unchanged(tiny_models, name):
    model, tok = tiny_models[name]
    layers = [1, 2]
    axis = _random_axis(model, seed=1)
    plain = _projections(model, _batch(tok), axis, layers)
    thresholds = {layer: float(plain[layer].min()) - 100.0 for layer in layers}
    conversations = [build_messages(p) for p in PROMPTS]
    uncapped = generate_replies(model, tok, conversations, max_new_tokens=8)
    with sol.ActivationCapper(model, axis, thresholds, layers):
        capped = generate_replies(model, tok, conversations, max_new_tokens=8)
    assert capped == uncapped


def test_high_floor_changes_generation(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    layers = [1, 2]
    axis = _random_axis(model, seed=2)
    plain = _projections(model, _batch(tok), axis, layers)
    thresholds = {layer: float(plain[layer].max()) + 5.0 for layer in layers}
    conversations = [build_messages(p) for p in PROMPTS]
    uncapped = generate_replies(model, tok, conversations, max_new_tokens=8)
    with sol.ActivationCapper(model, axis, thresholds, layers):
        capped = generate_replies(model, tok, conversations, max_new_tokens=8)
    assert capped != uncapped


@pytest.mark.parametrize("name", TINY)
def test_capper_hooks_removed_after_an_exception(tiny_models, name):
    model, tok = tiny_models[name]
    layers = [0, 2]
    axis = _random_axis(model)
    before = user_hook_counts(model)
    capper = sol.ActivationCapper(model, axis, {0: 0.0, 2: 0.0}, layers)
    with pytest.raises(ZeroDivisionError):
        with capper:
            assert user_hook_counts(model) != before
            generate_replies(model, tok, [build_messages("Hi")], max_new_tokens=2)
            1 / 0  # noqa: B018
    assert user_hook_counts(model) == before
    with capper:  # reusable
        pass
    assert user_hook_counts(model) == before


def test_capper_on_bfloat16_outputs():
    layer_out = torch.randn(2, 5, 16, dtype=torch.bfloat16)
    block = torch.nn.Identity()

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([block])
            self.embed_tokens = torch.nn.Embedding(4, 16)  # what d_model reads

        def get_input_embeddings(self):
            return self.embed_tokens

    axis = torch.randn(1, 16)
    tau = float((layer_out.float() @ _unit(axis[0])).median())
    with sol.ActivationCapper(Wrapper(), axis, {0: tau}, [0]):
        out = block(layer_out)
    assert out.dtype == torch.bfloat16
    assert ((out.float() @ _unit(axis[0])) >= tau - 0.1).all()


def test_steering_with_zero_alpha_equals_plain_generation(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    before = user_hook_counts(model)
    vector = _random_axis(model)[1]
    steered = sol.generate_with_steering(model, tok, "Hello there", vector, 1, 0.0, max_new_tokens=6, temperature=0)
    plain = generate_replies(model, tok, [build_messages("Hello there")], max_new_tokens=6)[0]
    assert steered == plain
    assert user_hook_counts(model) == before


def test_thresholds_match_numpy_percentile():
    import numpy as np

    data = {4: torch.randn(300), 7: torch.rand(77) * 5}
    got = sol.compute_capping_thresholds(data, 25)
    for layer, values in data.items():
        assert got[layer] == pytest.approx(float(np.percentile(values.numpy(), 25)), abs=1e-5)


def test_transcripts_mix_drift_and_control():
    transcripts = load_transcripts(3)
    assert len(transcripts) == 3
    assert {t["category"] for t in transcripts} == {"drift", "control"}
    assert all(t["user_turns"] and all(isinstance(u, str) for u in t["user_turns"]) for t in transcripts)
    assert len(load_transcripts()) >= 8


def test_replay_is_batched_like_one_at_a_time(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    transcripts = load_transcripts(3)
    together = replay_conversations(model, tok, transcripts, n_turns=2, max_new_tokens=5, batch_size=8)
    for t, conv in zip(transcripts, together):
        alone = replay_conversations(model, tok, [t], n_turns=2, max_new_tokens=5)[0]
        assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]
        assert [m["content"] for m in conv if m["role"] == "user"] == t["user_turns"][:2]
        assert conv == alone


def test_format_exchanges_skips_system_and_truncates():
    text = format_exchanges(
        [
            {"role": "system", "content": "secret"},
            {"role": "user", "content": "x" * 50},
            {"role": "assistant", "content": "ok"},
        ],
        max_chars=10,
    )
    assert text == "User: xxxxxxxxxx ...\nAssistant: ok"
    assert format_exchanges([]) == "(start of the conversation)"


def test_token_projections_match_the_analyzer_means(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    axis = _random_axis(model)
    conversation = [build_messages("Hi there", "Hello! How can I help you today?")]
    per_token = sol.token_projections(model, tok, conversation, axis, [2])[2]
    analyzer = sol.ConversationAnalyzer(model, tok, 2, axis[2])
    assert float(per_token.mean()) == pytest.approx(analyzer.project_onto_axis(conversation[0])[0], abs=1e-4)


def test_small_axis_is_saved_where_section_1_saves_it(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model, tok = tiny_models["tiny-qwen2"]
    profile = PROFILES["tiny"]
    assert axis_module.load_assistant_axis(profile) is None
    axis, provenance = axis_module.load_or_build_axis(model, tok, profile, n_roles=2, n_questions=1)
    assert axis.shape == (num_layers(model), model.config.hidden_size)
    saved = axis_module.load_assistant_axis(profile)
    assert torch.equal(saved.value, axis)
    assert axis_module.axis_source(saved.provenance) == axis_module.SMALL_BUILD
    assert provenance["inputs"]["settings"]["n_roles"] == 2
    assert torch.equal(axis_module.load_or_build_axis(model, tok, profile).value, axis)  # loaded, not rebuilt
    # Section 1 replaces the small build, and says so in the provenance.
    axis_module.save_assistant_axis(profile, lambda: axis * 2, inputs={"profile": "tiny"})
    again = axis_module.load_or_build_axis(model, tok, profile)
    assert (
        torch.equal(again.value, axis * 2) and axis_module.axis_source(again.provenance) == axis_module.FROM_SECTION_1
    )
    axis_module.save_assistant_axis(profile, lambda: torch.zeros(3, 5), inputs={})  # another model's axis
    with pytest.raises(ValueError, match="another model"):
        axis_module.load_or_build_axis(model, tok, profile)


def test_capping_raises_the_projection_of_a_generated_reply_offline(offline_model):
    """Capping at the offline profile's layers lifts the reply's projection downstream of the capped range."""
    model, tok = offline_model
    profile = PROFILES["offline"]
    layers = list(profile.capping_layers)
    readout = max(layers) + 1
    assistant = [
        build_messages(q, a)
        for q, a in [
            ("Who are you?", "I am an AI assistant. I can answer questions, explain ideas and help with tasks."),
            ("What can you do?", "I can help you write, summarise, plan and debug code. What do you need?"),
        ]
    ]
    character = [
        build_messages(q, a, "You are a pirate.")
        for q, a in [
            ("Who are you?", "Arr, I be Captain Redbeard, terror of the seven seas, and this be my ship!"),
            ("What can you do?", "I sail, I plunder, and I drink rum with me crew till the moon goes down, matey."),
        ]
    ]
    all_layers = list(range(num_layers(model)))
    axis = response_mean_activations(model, tok, assistant, all_layers).mean(1) - response_mean_activations(
        model, tok, character, all_layers
    ).mean(1)
    default_proj = sol.token_projections(model, tok, assistant, axis, layers)
    thresholds = sol.compute_capping_thresholds(default_proj, 50)
    question = [build_messages("Describe your ship and your crew.", system_prompt="You are a pirate captain.")]
    before = user_hook_counts(model)
    plain = generate_replies(model, tok, question, max_new_tokens=16)
    capper = sol.ActivationCapper(model, axis, thresholds, layers)
    with capper:
        capped = generate_replies(model, tok, question, max_new_tokens=16)
    assert user_hook_counts(model) == before
    reader = sol.ConversationAnalyzer(model, tok, readout, axis[readout])
    plain_proj = reader.project_onto_axis(question[0] + [{"role": "assistant", "content": plain[0]}])[0]
    with capper:
        capped_proj = reader.project_onto_axis(question[0] + [{"role": "assistant", "content": capped[0]}])[0]
    print(f"block {readout}: uncapped {plain_proj:.3f}, capped {capped_proj:.3f}; replies {plain!r} / {capped!r}")
    assert capped_proj > plain_proj


# The push-and-cap demo's helpers: push_hook, FloorCounter, reply_projections, run_push_and_cap.


def test_push_hook_steers_like_generate_with_steering(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    before = user_hook_counts(model)
    vector = _random_axis(model, seed=3)[1]
    steered = sol.generate_with_steering(model, tok, "Hello there", vector, 1, 4.0, max_new_tokens=6, temperature=0)
    with hooked({get_layers(model)[1]: sol.push_hook(vector, 4.0)}):
        pushed = generate_replies(model, tok, [build_messages("Hello there")], max_new_tokens=6)[0]
    plain = generate_replies(model, tok, [build_messages("Hello there")], max_new_tokens=6)[0]
    assert pushed == steered != plain
    assert user_hook_counts(model) == before


def _decoded_tokens_below(model, tok, prompts, axis, layers, new_tokens=6):
    """Greedy decoding of fixed length under a FloorCounter, and the same count done by hand."""
    rows = [encode(render(build_messages(p), tok, add_generation_prompt=True), tok)["input_ids"] for p in prompts]
    # Floors between two of the reply tokens' projections, so float noise cannot move a token across.
    new = decode_batch(model, rows, tok.pad_token_id, [], new_tokens, share_prefixes=False)
    fed = [r + n[:-1] for r, n in zip(rows, new)]  # a fixed-length reply's last token is never fed back
    projections = {layer: [] for layer in layers}
    for ids, prompt in zip(fed, rows):
        batch = torch.tensor([ids])
        with torch.inference_mode():
            store = run_capturing(model, batch, torch.ones_like(batch), layers)
        for layer in layers:
            projections[layer].append(store[layer][0, len(prompt) :].float() @ _unit(axis[layer]))
    thresholds = {}
    for layer in layers:
        values = torch.cat(projections[layer]).sort().values
        third = len(values) // 3
        k = third + int((values[third + 1 : 2 * third + 1] - values[third : 2 * third]).argmax())  # widest gap
        thresholds[layer] = float(values[k] + values[k + 1]) / 2
    below = torch.zeros(sum(len(n) - 1 for n in new), dtype=torch.bool)
    for layer in layers:
        below |= torch.cat(projections[layer]) < thresholds[layer]
    counter = sol.FloorCounter(model, axis, thresholds, layers)
    with counter:
        again = decode_batch(model, rows, tok.pad_token_id, [], new_tokens, share_prefixes=False)
    assert again == new  # counting changes nothing
    return counter, below, projections, thresholds


@pytest.mark.parametrize("name", TINY)
def test_floor_counter_counts_the_reply_tokens_below_the_floor(tiny_models, name):
    model, tok = tiny_models[name]
    layers = [1, 2]
    axis = _random_axis(model, seed=4)
    before = user_hook_counts(model)
    counter, below, projections, thresholds = _decoded_tokens_below(model, tok, PROMPTS, axis, layers)
    assert user_hook_counts(model) == before
    assert counter.tokens == len(below) == 3 * 5
    assert counter.capped == int(below.sum())
    for layer in layers:
        assert counter.per_layer[layer] == int((torch.cat(projections[layer]) < thresholds[layer]).sum())
    assert counter.share == pytest.approx(int(below.sum()) / len(below))
    assert 0 < counter.capped < counter.tokens  # "any block" is neither every token nor none


def test_floor_counter_reads_the_output_before_the_cap(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    layers = [1, 2]
    axis = _random_axis(model, seed=5)
    high = {layer: 1e4 for layer in layers}
    conversations = [build_messages(p) for p in PROMPTS]
    counter = sol.FloorCounter(model, axis, high, layers)
    with counter, sol.ActivationCapper(model, axis, high, layers):
        generate_replies(model, tok, conversations, max_new_tokens=4, share_prefixes=False)
    assert counter.tokens > 0 and counter.capped == counter.tokens
    assert counter.per_layer == {layer: counter.tokens for layer in layers}
    late = sol.FloorCounter(model, axis, high, layers)
    with sol.ActivationCapper(model, axis, high, layers), late:  # entered after the cap: sees capped outputs
        generate_replies(model, tok, conversations, max_new_tokens=4, share_prefixes=False)
    assert late.capped < late.tokens


@pytest.mark.parametrize("name", TINY)
def test_reply_projections_match_the_analyzer(tiny_models, name):
    model, tok = tiny_models[name]
    axis = _random_axis(model, seed=6)
    conversations = [build_messages(p) for p in PROMPTS]
    replies = ["The sea is calm today and very blue.", "", "Two, three and five."]
    got = sol.reply_projections(model, tok, conversations, replies, 2, axis[2], batch_size=2)
    analyzer = sol.ConversationAnalyzer(model, tok, 2, axis[2])
    want = [
        analyzer.project_onto_axis([*c, {"role": "assistant", "content": r}])[-1]
        for c, r in zip(conversations, replies)
    ]
    assert got == pytest.approx(want, abs=1e-4)


def test_run_push_and_cap_conditions(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    axis = _random_axis(model, seed=7)
    conversations = [build_messages(p) for p in PROMPTS]
    before = user_hook_counts(model)
    low = sol.ActivationCapper(model, axis, {2: -1e4, 3: -1e4}, [2, 3])
    result = sol.run_push_and_cap(model, tok, conversations, low, 1, axis[1], 0.0, 3, axis[3], max_new_tokens=5)
    assert user_hook_counts(model) == before
    rows = pd.DataFrame(result["rows"])
    by = {c: rows[rows["condition"] == c].sort_values("index") for c in sol.PUSH_CONDITIONS}
    for c in sol.PUSH_CONDITIONS:  # no push and a floor below everything: three identical runs
        assert by[c]["reply"].tolist() == by["unpushed"]["reply"].tolist()
        assert by[c]["projection"].tolist() == pytest.approx(by["unpushed"]["projection"].tolist(), abs=1e-4)
        assert result["tokens"][c]["below_floor"] == 0 and result["tokens"][c]["tokens"] > 0
    high = sol.ActivationCapper(model, axis, {2: 1e3, 3: 1e3}, [2, 3])
    result = sol.run_push_and_cap(model, tok, conversations, high, 1, axis[1], -20.0, 3, axis[3], max_new_tokens=5)
    rows = pd.DataFrame(result["rows"])
    capped = rows[rows["condition"] == "pushed + capped"]
    assert capped["projection"].min() >= 1e3 - 1e-2  # read at a capped block, with the cap on
    counted = result["tokens"]["pushed + capped"]
    assert counted["below_floor"] == counted["tokens"] > 0
    assert user_hook_counts(model) == before


def test_capper_and_analyzer_name_an_axis_of_the_wrong_size(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    wrong = torch.randn(num_layers(model), model.config.hidden_size + 1)
    with pytest.raises(ValueError, match=r"axis_vectors\[1\] must have shape \(64,\)"):
        sol.ActivationCapper(model, wrong, {1: 0.0}, [1])
    with pytest.raises(ValueError, match=r"assistant_axis must have shape \(64,\)"):
        sol.ConversationAnalyzer(model, tok, 1, wrong[1])


# Guards in section 2's provided code: NaN projections, capper re-entry and layer checks.


@pytest.fixture
def model(tiny_models):
    return tiny_models["tiny-qwen2"][0]


def test_empty_reply_has_a_finite_projection(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    messages = [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Still there?"},
        {"role": "assistant", "content": "Yes."},
    ]
    analyzer = cap.ConversationAnalyzer(model, tok, 1, torch.randn(d_model(model)))
    projections = analyzer.project_onto_axis(messages)
    assert len(projections) == 2 and all(math.isfinite(p) for p in projections), projections


def test_zero_axis_and_nan_threshold_are_rejected_up_front(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    n, d = num_layers(model), d_model(model)
    axis = torch.randn(n, d)
    zero = axis.clone()
    zero[1] = 0
    with pytest.raises(ValueError, match=r"axis_vectors\[1\]"):
        cap.ActivationCapper(model, zero, {1: 0.0}, [1])
    with pytest.raises(ValueError, match=r"thresholds\[1\]"):
        cap.ActivationCapper(model, axis, {1: float("nan")}, [1])
    with pytest.raises(ValueError, match="assistant_axis"):
        cap.ConversationAnalyzer(model, tok, 1, torch.zeros(d))
    with pytest.raises(ValueError, match="steering_vector"):
        cap.generate_with_steering(model, tok, "Hi", torch.zeros(d), 1, 1.0, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"default_projections_per_layer\[1\]"):
        cap.compute_capping_thresholds({1: torch.tensor([])}, 25.0)


def test_capper_refuses_reentry_and_bad_layers(model):
    n, d = num_layers(model), d_model(model)
    axis, thresholds = torch.randn(n, d), {i: 0.0 for i in range(n)}
    before = user_hook_counts(model)
    capper = cap.ActivationCapper(model, axis, thresholds, [1, 2])
    with capper:
        with pytest.raises(RuntimeError, match="already active"):
            capper.__enter__()
        assert user_hook_counts(model) != before  # the outer block is still capped
    assert user_hook_counts(model) == before
    for bad in (-1, n):
        with pytest.raises(ValueError, match="layer_indices"):
            cap.ActivationCapper(model, axis, {**thresholds, -1: 0.0, n: 0.0}, [bad])

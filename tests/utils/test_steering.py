"""utils.steering: a coefficient (RowSteerer) or a floor (RowCapper) per row of one batch equals one hook per setting."""

from __future__ import annotations

import pytest
import torch

from solutions import part4_steering as steer
from solutions.part2_capping import ActivationCapper
from solutions.part4_steering import ActivationSteerer
from utils.chat import build_messages, encode, render
from utils.generation import decode_batch, generate_replies
from utils.hooks import user_hook_counts
from utils.layers import d_model, num_layers
from utils.steering import RowCapper, RowSteerer

QUESTIONS = ["Hi", "What is two plus two, exactly?", "Name a colour of the sky at dusk"]
COEFFS = [-3.0, 0.0, 2.0, 6.0]


def _vector(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d_model(model), generator=g) * 2


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
@pytest.mark.parametrize("positions", ["all", "prompt", "response"])
def test_row_steered_generation_equals_one_steerer_per_coefficient(tiny_models, name, positions):
    model, tok = tiny_models[name]
    vector = _vector(model)
    convs = [build_messages(q) for q in QUESTIONS]
    rows = [(c, conv) for c in COEFFS for conv in convs]
    before = user_hook_counts(model)
    with RowSteerer(model, vector, [c for c, _ in rows], layer=2, positions=positions):
        batched = generate_replies(model, tok, [conv for _, conv in rows], max_new_tokens=8, batch_size=5)
    assert user_hook_counts(model) == before, "the steering hook was not removed"
    want = []
    for c in COEFFS:
        with ActivationSteerer(model, vector, c, 2, positions):
            want += generate_replies(model, tok, convs, max_new_tokens=8, batch_size=3)
    assert batched == want
    assert len(set(batched)) > len(QUESTIONS), "the coefficients should change the replies"


def test_row_steered_forward_equals_per_coefficient_forward(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    vector = _vector(model, 1)
    text = render(build_messages(QUESTIONS[1]), tok, add_generation_prompt=True)
    ids = encode(text, tok)["input_ids"]
    batch = torch.tensor([ids] * len(COEFFS))
    with RowSteerer(model, vector, COEFFS, layer=1, positions="all"):
        got = model(input_ids=batch).logits
    for i, c in enumerate(COEFFS):
        with ActivationSteerer(model, vector, c, 1, "all"):
            want = model(input_ids=batch[:1]).logits[0]
        torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-4)


def test_row_steerer_rejects_bad_arguments(tiny_models):
    model, _ = tiny_models["tiny-qwen2"]
    vector = _vector(model)
    with pytest.raises(ValueError, match="vector"):
        RowSteerer(model, vector[:-1], [1.0], 1)
    with pytest.raises(ValueError, match="vector"):
        RowSteerer(model, vector.numpy(), [1.0], 1)
    with pytest.raises(ValueError, match="coeffs"):
        RowSteerer(model, vector, [[1.0]], 1)
    with pytest.raises(ValueError, match="positions"):
        RowSteerer(model, vector, [1.0], 1, positions="last")
    with pytest.raises(ValueError):
        RowSteerer(model, vector, [1.0], 99)
    steerer = RowSteerer(model, vector, [1.0, 2.0], 1)
    with steerer, pytest.raises(RuntimeError, match="already active"), steerer:
        pass
    with RowSteerer(model, vector, [1.0, 2.0], 1), pytest.raises(RuntimeError, match="coefficients"):
        model(input_ids=torch.ones(3, 4, dtype=torch.long))


def test_rows_that_finish_early_keep_their_coefficients(tiny_models):
    """Finished rows leave the batch mid-decoding: the remaining rows must keep their own coefficients."""
    model, tok = tiny_models["tiny-qwen2"]
    vector = _vector(model, 2)
    prompts = [encode(render(build_messages(q), tok, add_generation_prompt=True), tok)["input_ids"] for q in QUESTIONS]
    free = {}
    for c in COEFFS:
        with ActivationSteerer(model, vector, c, 2, "response"):
            free[c] = decode_batch(model, prompts, tok.pad_token_id, [], max_new_tokens=10)
    stop = free[COEFFS[-1]][0][2]  # a token one steered row makes early: that row stops there
    want = []
    for c in COEFFS:
        with ActivationSteerer(model, vector, c, 2, "response"):
            want += decode_batch(model, prompts, tok.pad_token_id, [stop], max_new_tokens=10)
    rows = [p for _ in COEFFS for p in prompts]
    with RowSteerer(model, vector, [c for c in COEFFS for _ in prompts], 2, "response"):
        got = decode_batch(model, rows, tok.pad_token_id, [stop], max_new_tokens=10, row_ids=list(range(len(rows))))
    assert len({len(r) for r in want}) > 1, "some rows should finish before others"
    assert got == want


def test_steerer_takes_a_numpy_array_or_a_list(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    vector = _vector(model)
    batch = encode([render(build_messages("Hi"), tok, add_generation_prompt=True)], tok, return_tensors="pt")
    outputs = []
    for given in (vector, vector.numpy(), vector.tolist()):
        with ActivationSteerer(model, given, coeff=2.0, layer=1), torch.inference_mode():
            outputs.append(model(**batch).logits)
    torch.testing.assert_close(outputs[1], outputs[0])
    torch.testing.assert_close(outputs[2], outputs[0])
    with pytest.raises(ValueError, match="steering_vector"):
        ActivationSteerer(model, vector.tolist()[:-1], layer=1)


# Section 4's steerer refuses re-entry and bad layers.


@pytest.fixture
def model(tiny_models):
    return tiny_models["tiny-qwen2"][0]


def test_steerer_refuses_reentry_and_bad_layers(model):
    n, d = num_layers(model), d_model(model)
    before = user_hook_counts(model)
    steerer = steer.ActivationSteerer(model, torch.randn(d), 1.0, 1)
    with steerer:
        with pytest.raises(RuntimeError, match="already active"):
            steerer.__enter__()
    assert user_hook_counts(model) == before
    for bad in (-1, n):
        with pytest.raises(ValueError, match="layer"):
            steer.ActivationSteerer(model, torch.randn(d), 1.0, bad)


# RowCapper


def _capping_setup(model, seed=1):
    """An all-block axis and, per condition, floors that cap some positions and leave others (None: no cap)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(num_layers(model), d_model(model), generator=g)
    layers = [1, 2]
    conditions = {"uncapped": None, "low": {1: -0.5, 2: -0.5}, "high": {1: 1.5, 2: 0.5}}
    return axis, layers, conditions


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_row_capped_generation_equals_one_capper_per_condition(tiny_models, name):
    model, tok = tiny_models[name]
    axis, layers, conditions = _capping_setup(model)
    convs = [build_messages(q) for q in QUESTIONS]
    rows = [(floors, conv) for floors in conditions.values() for conv in convs]
    before = user_hook_counts(model)
    with RowCapper(model, axis, [floors for floors, _ in rows], layers):
        batched = generate_replies(model, tok, [conv for _, conv in rows], max_new_tokens=8, batch_size=4)
    assert user_hook_counts(model) == before, "the capping hooks were not removed"
    want = []
    for floors in conditions.values():
        if floors is None:
            want += generate_replies(model, tok, convs, max_new_tokens=8, batch_size=3)
            continue
        with ActivationCapper(model, axis, floors, layers):
            want += generate_replies(model, tok, convs, max_new_tokens=8, batch_size=3)
    assert batched == want
    assert want[3:6] != want[:3] or want[6:] != want[:3], "the floors must change some reply, or the test shows nothing"


def test_row_capped_forward_equals_the_capper_per_row(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    axis, layers, conditions = _capping_setup(model)
    batch = encode([render(build_messages(q), tok, add_generation_prompt=True) for q in QUESTIONS[:2]], tok,
                   return_tensors="pt", padding=True)  # fmt: skip
    floors = [conditions["high"], None]
    with RowCapper(model, axis, floors, layers):
        got = model(**batch).logits
    with ActivationCapper(model, axis, conditions["high"], layers):
        capped = model(**batch).logits
    plain = model(**batch).logits
    assert torch.allclose(got[0], capped[0], atol=1e-5) and torch.allclose(got[1], plain[1], atol=1e-5)
    assert not torch.allclose(capped[0], plain[0], atol=1e-3), "the high floor must act"


def test_row_capper_rejects_bad_arguments(tiny_models):
    model, _ = tiny_models["tiny-qwen2"]
    axis, layers, conditions = _capping_setup(model)
    with pytest.raises(ValueError, match="one entry per row"):
        RowCapper(model, axis, [], layers)
    with pytest.raises(ValueError, match="no floor for block 2"):
        RowCapper(model, axis, [{1: 0.0}], layers)
    with pytest.raises(ValueError, match=r"axis_vectors\[1\]"):
        RowCapper(model, torch.zeros_like(axis), [None], layers)
    capper = RowCapper(model, axis, [None, conditions["low"]], layers)
    with capper, pytest.raises(RuntimeError, match="already active"), capper:
        pass
    batch = torch.zeros(3, 4, dtype=torch.long)
    with RowCapper(model, axis, [None, None], layers), pytest.raises(RuntimeError, match="for 2 rows"):
        model(input_ids=batch)


def test_only_a_response_steerer_leaves_prompt_prefixes_shared(tiny_models):
    """Generation computes a shared prompt prefix once only under hooks that leave prefix passes alone."""
    from utils.prefill import can_share_prefixes

    model, _ = tiny_models["tiny-qwen2"]
    vector = _vector(model)
    assert can_share_prefixes(model)
    with RowSteerer(model, vector, [1.0], layer=2, positions="response"):
        assert can_share_prefixes(model)
    for positions in ("all", "prompt"):
        with RowSteerer(model, vector, [1.0], layer=2, positions=positions):
            assert not can_share_prefixes(model), f"a steerer at positions={positions!r} changes prompt tokens"
    with ActivationSteerer(model, vector, 1.0, 2, "response"):  # the student's: not declared safe
        assert not can_share_prefixes(model)
    with (
        RowSteerer(model, vector, [1.0], layer=2, positions="response"),
        RowCapper(model, [vector] * 4, [{1: 0.0}], [1]),
    ):
        assert not can_share_prefixes(model), "one unsafe hook beside a safe one turns sharing off"


OFFLINE = pytest.param("offline", marks=[pytest.mark.offline_model, pytest.mark.xdist_group("offline_model")])


@pytest.mark.parametrize("name", ["tiny-qwen2", OFFLINE])
def test_a_response_sweep_with_shared_prompts_equals_one_full_prompt_pass_per_row(
    tiny_models, request, name, monkeypatch
):
    """A sweep's rows repeat each question once per coefficient: with a response steerer on, each question's
    prompt runs once (all but its last token) and the replies equal those of one full pass per row."""
    import utils.prefill

    model, tok = request.getfixturevalue("offline_model") if name == "offline" else tiny_models[name]
    vector = _vector(model) * (4 if name == "offline" else 1)
    convs = [build_messages(q) for q in QUESTIONS]
    coeffs = [c for c in COEFFS for _ in convs]
    prefix_passes = []
    real_prefix_pass = utils.prefill.prefix_pass

    def counting_prefix_pass():
        prefix_passes.append(1)
        return real_prefix_pass()

    monkeypatch.setattr(utils.prefill, "prefix_pass", counting_prefix_pass)
    replies = {}
    for share in (None, False):
        with RowSteerer(model, vector, coeffs, layer=2, positions="response"):
            replies[share] = generate_replies(
                model, tok, convs * len(COEFFS), max_new_tokens=8, batch_size=len(coeffs), share_prefixes=share
            )
        if share is None:
            assert prefix_passes, "the prompts' shared prefixes were not computed once"
            prefix_passes.clear()
    assert not prefix_passes
    assert replies[None] == replies[False]
    assert len(set(replies[None])) > len(QUESTIONS), "the coefficients should change the replies"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_coefficient_vector_or_floor_is_refused_by_name(tiny_models, bad):
    model, _ = tiny_models["tiny-qwen2"]
    vector = _vector(model)
    with pytest.raises(ValueError, match=r"coeffs\[1\]"):
        RowSteerer(model, vector, [1.0, bad], 1)
    broken = vector.clone()
    broken[3] = bad
    with pytest.raises(ValueError, match="vector"):
        RowSteerer(model, broken, [1.0], 1)
    axis, layers, conditions = _capping_setup(model)
    floors = {**conditions["low"], layers[-1]: bad}
    with pytest.raises(ValueError, match=rf"floors\[1\]\[{layers[-1]}\]"):
        RowCapper(model, axis, [None, floors], layers)


@pytest.mark.parametrize("settings", ["more", "fewer"])
def test_row_settings_for_more_or_fewer_rows_than_conversations_are_an_error(tiny_models, settings):
    model, tok = tiny_models["tiny-qwen2"]
    conversations = [build_messages(q) for q in QUESTIONS[:2]]
    n = 4 if settings == "more" else 1
    axis, layers, conditions = _capping_setup(model)
    with pytest.raises(RuntimeError, match=f"for {n} rows"):
        with RowSteerer(model, _vector(model), [1.0] * n, 1, positions="response"):
            generate_replies(model, tok, conversations, max_new_tokens=3)
    with pytest.raises(RuntimeError, match=f"for {n} rows"):
        with RowCapper(model, axis, [conditions["low"]] * n, layers):
            generate_replies(model, tok, conversations, max_new_tokens=3)
    with pytest.raises(RuntimeError, match=f"for {n} rows"):
        with RowSteerer(model, _vector(model), [1.0] * n, 1, positions="all"):
            model(input_ids=torch.ones(2, 4, dtype=torch.long))

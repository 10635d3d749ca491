"""utils.reply_store: replies already generated are reused across calls, never under hooks."""

from __future__ import annotations

from tests.utils.test_prefill import CONVERSATIONS
from utils.generation import generate_replies
from utils.layers import get_layers


def test_replies_are_reused_across_calls_but_never_under_hooks(tiny_models, tmp_path, monkeypatch):
    import utils.generation as generation

    model, tok = tiny_models["tiny-qwen2"]
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model, "course_name", "tiny-qwen2 (named for this test)", raising=False)
    batches = []
    real = generation.decode_batch
    monkeypatch.setattr(
        generation, "decode_batch", lambda m, rows, *a, **k: batches.append(len(rows)) or real(m, rows, *a, **k)
    )
    first = generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    again = generate_replies(model, tok, CONVERSATIONS[:6], max_new_tokens=8)  # 4 known, 2 new
    assert again[:4] == first and batches == [4, 2]
    handle = get_layers(model)[0].register_forward_hook(lambda m, i, o: None)
    try:
        generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    finally:
        handle.remove()
    assert batches == [4, 2, 4]  # with a hook on the model, nothing stored is trusted
    monkeypatch.setenv("COURSE_RECOMPUTE", "all")
    generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    assert batches == [4, 2, 4, 4]


def test_a_model_whose_weights_changed_in_place_is_never_served_stored_replies_or_activations(tmp_path, monkeypatch):
    import utils.generation as generation
    from utils.activation_store import ActivationStore
    from utils.models import name_model
    from utils.tiny import build_tiny_model

    model, tok = build_tiny_model("tiny-qwen2")  # its own copy: its weights are edited below
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    name_model(model, "tiny-qwen2 (named for this test)")
    batches = []
    real = generation.decode_batch
    monkeypatch.setattr(
        generation, "decode_batch", lambda m, rows, *a, **k: batches.append(len(rows)) or real(m, rows, *a, **k)
    )
    first = generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8)
    assert generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8) == first and batches == [2]
    assert ActivationStore.for_model(model) is not None
    o_proj = get_layers(model)[1].self_attn.o_proj.weight
    o_proj.data.mul_(2.0)  # an in-place edit of one weight, as directional ablation makes
    generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8)
    assert batches == [2, 2]  # generated again, not read from the store
    assert ActivationStore.for_model(model) is None
    o_proj.data.mul_(0.5)  # the weights it was loaded with, exactly
    assert generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8) == first and batches == [2, 2]

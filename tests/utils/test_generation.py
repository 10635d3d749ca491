"""utils.generation: batched generation gives the same replies as one prompt at a time."""

from __future__ import annotations

import pytest

from utils.chat import build_messages, encode, render
from utils.generation import generate_replies


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2", "tiny-llama"])
def test_batched_generation_equals_unbatched(tiny_models, name):
    model, tok = tiny_models[name]
    convs = [build_messages(q) for q in ["Hi", "What is two plus two, exactly?", "Name a colour of the sky at dusk"]]
    batched = generate_replies(model, tok, convs, max_new_tokens=10, batch_size=3)
    single = [generate_replies(model, tok, [c], max_new_tokens=10, batch_size=1)[0] for c in convs]
    assert batched == single
    assert any(len(r) > 0 for r in batched)


def test_bad_batch_size_and_negative_temperature_are_refused(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages("Hi")]
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        generate_replies(model, tok, convs, max_new_tokens=4, batch_size=0)
    with pytest.raises(ValueError, match="temperature must be 0 .* got -0.5"):
        generate_replies(model, tok, convs, max_new_tokens=4, temperature=-0.5)


def test_conversations_must_be_lists_of_complete_messages(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    with pytest.raises(TypeError, match=r"conversations\[1\] must be a list of .* got a str"):
        generate_replies(model, tok, [build_messages("Hi"), "Hello"], max_new_tokens=4)
    with pytest.raises(ValueError, match=r"conversations\[0\]\[0\] needs a string 'content'"):
        generate_replies(model, tok, [[{"role": "user"}]], max_new_tokens=4)


def test_generation_past_the_maximum_positions_warns_or_is_refused(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    limit = model.config.max_position_embeddings
    prompt_len = len(encode(render(build_messages("a"), tok, add_generation_prompt=True), tok)["input_ids"])
    near = build_messages("a" * (limit - prompt_len - 1))  # one byte a token: limit - 2 prompt tokens
    with pytest.warns(UserWarning, match=r"conversations\[0\] .* runs past this model's maximum of"):
        generate_replies(model, tok, [near], max_new_tokens=4)
    with pytest.raises(ValueError, match=rf"conversations\[0\] is {limit + 1} tokens long"):
        generate_replies(model, tok, [build_messages("a" * (limit - prompt_len + 2))], max_new_tokens=4)


def test_ctrl_c_during_generation_leaves_no_hook_and_stores_nothing_half_made(tiny_models, tmp_path, monkeypatch):
    import torch

    from utils.hooks import user_hook_counts
    from utils.layers import d_model, get_layers
    from utils.reply_store import ReplyStore
    from utils.steering import RowSteerer

    model, tok = tiny_models["tiny-qwen2"]
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model, "course_name", "tiny-qwen2 (named for this test)", raising=False)
    conversations = [build_messages(q) for q in ("Hi", "What is two plus two?")]
    before = user_hook_counts(model)
    calls = []

    def ctrl_c(module, inputs, output):
        calls.append(1)
        if len(calls) == 3:  # in the middle of decoding
            raise KeyboardInterrupt

    handle = get_layers(model)[0].register_forward_hook(ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt), RowSteerer(model, torch.ones(d_model(model)), [1.0, 2.0], 1):
            generate_replies(model, tok, conversations, max_new_tokens=8)
    finally:
        handle.remove()
    assert user_hook_counts(model) == before, "a hook of the interrupted generation is still on the model"
    assert not list((tmp_path / "generations").glob("*.json")), "an interrupted generation stored replies"
    fresh = generate_replies(model, tok, conversations, max_new_tokens=8)
    store = ReplyStore.for_model(model, dict(max_new_tokens=8, min_new_tokens=0))
    assert store is not None and sorted(store.replies.values()) == sorted(fresh)


def test_a_seed_reproduces_sampled_replies_and_other_seeds_differ(tiny_models, tmp_path, monkeypatch):
    """Sampling at T = 0.7 (section 3's sampled openings): the same seed gives the same replies, computed afresh
    (each run in its own empty cache, so no stored reply answers it), and five seeds give different runs."""
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages(q) for q in ["Hi", "What is two plus two, exactly?", "Name a colour of the sky at dusk"]]
    settings = dict(max_new_tokens=8, temperature=0.7, batch_size=3)
    runs = {}
    for run, seed in enumerate([0, 0, 1, 2, 3, 4]):
        monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / str(run)))
        runs[run] = generate_replies(model, tok, convs, seed=seed, **settings)
    assert runs[0] == runs[1]
    assert len({tuple(runs[run]) for run in range(1, 6)}) == 5
    greedy = generate_replies(model, tok, convs, max_new_tokens=8, batch_size=3)
    assert any(tuple(runs[run]) != tuple(greedy) for run in range(1, 6))

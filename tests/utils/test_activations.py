"""utils.activations: hook capture matches hidden_states, batching and padding change nothing, hooks are removed."""

from __future__ import annotations

import pytest
import torch

from tests.utils.test_chat import CONVERSATIONS
from utils.activations import mean_over_spans, response_mean_activations, run_capturing, turn_mean_activations
from utils.chat import encode, format_messages
from utils.hooks import StopForward, capture_block_outputs, user_hook_counts
from utils.layers import block_to_hidden_states_index, get_layers, num_layers


def test_hook_capture_equals_hidden_states_except_last(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    full, start = format_messages(CONVERSATIONS[0], tok)
    n = len(encode(full, tok)["input_ids"])
    layers = list(range(num_layers(model)))
    captured = mean_over_spans(model, tok, [full], [[(start, n)]], layers)[0][:, 0]
    ids = encode(full, tok, return_tensors="pt")
    with torch.no_grad():
        hs = model(**ids, output_hidden_states=True).hidden_states
    for block in layers[:-1]:
        expected = hs[block_to_hidden_states_index(block)][0, start:n].mean(0)
        torch.testing.assert_close(captured[block], expected, rtol=1e-4, atol=1e-5)
    # The last hidden_states entry is after the final norm, so it differs from the raw block output.
    assert not torch.allclose(captured[-1], hs[-1][0, start:n].mean(0), atol=1e-3)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_capture_equals_one_at_a_time(tiny_models, name, side):
    model, tok = tiny_models[name]
    tok.padding_side = side
    try:
        layers = [0, 2, 3]
        batched = response_mean_activations(model, tok, CONVERSATIONS, layers, batch_size=3)
        single = torch.cat([response_mean_activations(model, tok, [c], layers, batch_size=1) for c in CONVERSATIONS], 1)
    finally:
        tok.padding_side = "left"
    assert batched.shape == (3, 3, 64)
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_capture_stops_after_deepest_layer_and_removes_hooks(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    calls = []
    handles = [get_layers(model)[2].register_forward_hook(lambda *a: calls.append("block2"))]
    handles.append(model.lm_head.register_forward_hook(lambda *a: calls.append("lm_head")))
    before = user_hook_counts(model)
    try:
        response_mean_activations(model, tok, CONVERSATIONS[:1], [0, 1])
        after = user_hook_counts(model)
    finally:
        for h in handles:
            h.remove()
    assert calls == []
    assert after == before


def test_turn_means_match_response_means(tiny_models):
    model, tok = tiny_models["tiny-gemma2"]
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first reply"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second reply here"},
    ]
    turns = turn_mean_activations(model, tok, messages, [1, 3])
    last = response_mean_activations(model, tok, [messages], [1, 3])
    assert turns.shape == (2, 2, 64)
    torch.testing.assert_close(turns[:, 1], last[:, 0], rtol=1e-4, atol=1e-5)


def _one_prompt(tok, text="Hi there"):
    return encode([text], tok, return_tensors="pt")


def test_capture_refuses_empty_and_negative_layers(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    batch = _one_prompt(tok)
    with pytest.raises(ValueError, match="layers is empty"):
        run_capturing(model, batch["input_ids"], batch["attention_mask"], [])
    with pytest.raises(ValueError, match=r"layers\[0\] must be a block index in 0..3.*got -1"):
        run_capturing(model, batch["input_ids"], batch["attention_mask"], [-1, 1])
    with pytest.raises(ValueError, match=r"layers\[1\] must be a block index"):
        mean_over_spans(model, tok, ["Hi there"], [[(0, 2)]], [1, -1])


def test_an_escaped_stop_forward_says_who_raised_it(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    assert str(StopForward())  # never an empty message
    with capture_block_outputs(model, [0]), pytest.raises(StopForward, match="run_capturing"):
        model(**_one_prompt(tok))


def test_response_means_of_no_conversations_is_an_error(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    with pytest.raises(ValueError, match="conversations is empty"):
        response_mean_activations(model, tok, [], [0, 1])


def test_capture_past_the_maximum_positions_is_refused(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    limit = model.config.max_position_embeddings
    too_long = "a" * (limit + 1)  # the tiny tokenizer has one token per byte
    with pytest.raises(ValueError, match=rf"prompts\[1\] is {limit + 1} tokens long.*maximum of {limit} positions"):
        mean_over_spans(model, tok, ["Hi", too_long], [[(0, 1)], [(0, 1)]], [0])
    batch = _one_prompt(tok, too_long)
    with pytest.raises(ValueError, match=r"input_ids\[0\].*max_position_embeddings"):
        run_capturing(model, batch["input_ids"], batch["attention_mask"], [0])

"""Foundation: layers, chat formatting, batched generation and capture, caching, profiles."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from utils.activations import mean_over_spans, response_mean_activations, turn_mean_activations
from utils.cache import CacheError, load_or_generate, meta_path
from utils.chat import assistant_turn_spans, build_messages, encode, format_messages, prepare_messages
from utils.generation import generate_replies
from utils.layers import (
    block_to_hidden_states_index,
    d_model,
    get_layers,
    hidden_states_to_block_index,
    num_layers,
)
from utils.profiles import PROFILES, get_profile

CONVERSATIONS = [
    build_messages("What is the capital of France?", "Paris, of course.", "You are terse."),
    build_messages("Hi", "Hello! How can I help you today with anything at all?"),
    build_messages("Tell me a long story about a dragon and a knight", "Once upon a time."),
]


def hook_counts(model):
    return {name: len(m._forward_hooks) for name, m in model.named_modules()}


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"])
def test_get_layers_finds_blocks(tiny_models, name):
    model, _ = tiny_models[name]
    layers = get_layers(model)
    assert len(layers) == num_layers(model) == 4
    assert d_model(model) == 64
    assert layers is model.model.layers


def test_get_layers_on_a_multimodal_style_wrapper(tiny_models):
    inner, _ = tiny_models["tiny-gemma3"]
    wrapper = nn.Module()
    wrapper.model = nn.Module()
    wrapper.model.language_model = inner.model
    assert get_layers(wrapper) is inner.model.layers


def test_get_layers_unknown_model_lists_paths():
    with pytest.raises(AttributeError, match="model.language_model.layers"):
        get_layers(nn.Linear(2, 2))


def test_layer_index_conversion():
    assert block_to_hidden_states_index(0) == 1
    assert hidden_states_to_block_index(20) == 19
    with pytest.raises(ValueError, match="embedding"):
        hidden_states_to_block_index(0)


def test_gemma_system_prompt_is_merged_into_first_user_turn(tiny_models):
    _, tok = tiny_models["tiny-gemma2"]
    merged = prepare_messages(build_messages("Hello?", system_prompt="Be a pirate."), tok)
    assert merged == [{"role": "user", "content": "Be a pirate.\n\nHello?"}]
    _, qwen_tok = tiny_models["tiny-qwen2"]
    kept = prepare_messages(build_messages("Hello?", system_prompt="Be a pirate."), qwen_tok)
    assert kept[0]["role"] == "system"


def _check_response_start(tok):
    for messages in CONVERSATIONS:
        full, start = format_messages(messages, tok)
        ids = encode(full, tok)["input_ids"]
        before = tok.decode(ids[:start])
        after = tok.decode(ids[start:])
        response = messages[-1]["content"]
        assert after.startswith(response), (after, response)
        assert response not in before


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"])
def test_response_start_idx_tiny(tiny_models, name):
    _check_response_start(tiny_models[name][1])


def test_response_start_idx_offline_tokenizer(offline_model):
    _check_response_start(offline_model[1])


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_turn_spans_cover_each_assistant_turn(tiny_models, name):
    _, tok = tiny_models[name]
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first reply"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second reply"},
    ]
    full, spans = assistant_turn_spans(messages, tok)
    ids = encode(full, tok)["input_ids"]
    assert [tok.decode(ids[a:b]) for a, b in spans] == ["first reply", "second reply"]


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2", "tiny-llama"])
def test_batched_generation_equals_unbatched(tiny_models, name):
    model, tok = tiny_models[name]
    convs = [build_messages(q) for q in ["Hi", "What is two plus two, exactly?", "Name a colour of the sky at dusk"]]
    batched = generate_replies(model, tok, convs, max_new_tokens=10, batch_size=3)
    single = [generate_replies(model, tok, [c], max_new_tokens=10, batch_size=1)[0] for c in convs]
    assert batched == single
    assert any(len(r) > 0 for r in batched)


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
    before = hook_counts(model)
    try:
        response_mean_activations(model, tok, CONVERSATIONS[:1], [0, 1])
        after = hook_counts(model)
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


def test_cache_roundtrip_and_no_recompute(tmp_path):
    calls = []
    for _ in range(2):
        value = load_or_generate(tmp_path / "x.json", lambda: calls.append(1) or {"a": [1, 2]}, "numbers")
    assert value == {"a": [1, 2]} and len(calls) == 1
    t = load_or_generate(tmp_path / "t.pt", lambda: torch.arange(3.0), "tensor")
    torch.testing.assert_close(load_or_generate(tmp_path / "t.pt", lambda: None), t)


@pytest.mark.parametrize("name,content", [("x.json", b'{"a": [1, 2'), ("t.pt", b"PK\x03\x04trunc")])
def test_cache_reports_corrupted_file_by_path(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CacheError, match=str(path).replace("\\", "\\\\")):
        load_or_generate(path, lambda: {"fresh": True})
    assert path.read_bytes() == content  # nothing already on disk is lost


def test_cache_keeps_old_value_when_regeneration_fails(tmp_path):
    path = tmp_path / "x.json"
    load_or_generate(path, lambda: [1])

    def boom():
        raise RuntimeError("generation failed")

    with pytest.raises(RuntimeError):
        load_or_generate(path, boom, override=True)
    assert json.loads(path.read_text()) == [1]
    assert sorted(tmp_path.iterdir()) == sorted([path, meta_path(path)])  # no temporary file left behind


def test_profiles_switch_and_reason(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    assert get_profile().name == "tiny"
    assert "COURSE_PROFILE=tiny" in capsys.readouterr().out
    for p in PROFILES.values():
        assert p.steer_layer == p.trait_vector_layer - 1
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="COURSE_PROFILE"):
        get_profile()

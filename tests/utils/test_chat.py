"""utils.chat: chat formatting per model family, where the response starts, and each assistant turn's span."""

from __future__ import annotations

import pytest

from utils.chat import assistant_turn_spans, build_messages, encode, format_messages, prepare_messages, render

CONVERSATIONS = [
    build_messages("What is the capital of France?", "Paris, of course.", "You are terse."),
    build_messages("Hi", "Hello! How can I help you today with anything at all?"),
    build_messages("Tell me a long story about a dragon and a knight", "Once upon a time."),
]


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


def test_a_message_without_content_or_a_bare_string_is_refused(tiny_models):
    _, tok = tiny_models["tiny-qwen2"]
    with pytest.raises(ValueError, match=r"messages\[1\] needs a string 'content', got None"):
        render([{"role": "system", "content": "Be brief."}, {"role": "user"}], tok)
    with pytest.raises(TypeError, match=r"messages must be a list .* got a str \(wrap one question as build_messages"):
        render("What is the capital of France?", tok)

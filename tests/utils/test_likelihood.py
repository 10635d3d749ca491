"""The model's likelihood of a written answer, batched with shared prefixes, equals a direct
computation: one unpadded forward pass over the rendered conversation, logits shifted by one."""

from __future__ import annotations

import pytest
import torch

from utils.chat import assistant_turn_spans, build_messages, encode
from utils.likelihood import answer_logprobs, output_logits

SYSTEM = "You are a swashbuckling pirate captain. Answer every question in character, in the first person."
ANSWERS = [
    ("What is your earliest memory?", "Arr, the creak of me father's ship and the smell of tar."),
    ("What is your earliest memory?", "As an AI assistant, I don't have personal memories."),
    ("Name a colour.", "Blue."),
    ("Why is the sky blue?", "Rayleigh scattering: short wavelengths scatter more " * 3),
    ("Say nothing.", ""),
]


def direct(model, tok, messages):
    """Per-token log P(answer) and log P(end of turn) from one unpadded pass, as a student would write it."""
    full, spans = assistant_turn_spans(messages, tok)
    ids = torch.tensor([encode(full, tok)["input_ids"]])
    start, end = spans[-1]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    targets = ids[0, start : end + 1]  # the answer's tokens, then the end-of-turn token
    picked = logp[start - 1 : end].gather(1, targets[:, None])[:, 0]
    return picked[:-1], float(picked[-1])


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-llama", "tiny-gemma2"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_answer_logprobs_equal_one_unpadded_pass_per_conversation(tiny_models, name, batch_size):
    model, tok = tiny_models[name]
    conversations = [build_messages(q, a, system_prompt=s) for q, a in ANSWERS for s in (SYSTEM, None)]
    got = answer_logprobs(model, tok, conversations, batch_size=batch_size)
    assert len(got) == len(conversations)
    for messages, result in zip(conversations, got):
        tokens, end = direct(model, tok, messages)
        assert result.tokens.shape == tokens.shape, messages
        torch.testing.assert_close(result.tokens, tokens, atol=2e-4, rtol=1e-4)
        assert result.end_of_turn == pytest.approx(end, abs=2e-4)


def test_answer_logprobs_refuse_a_conversation_without_an_answer(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    with pytest.raises(ValueError, match=r"conversations\[1\]"):
        answer_logprobs(model, tok, [build_messages("Hi", "Hello"), build_messages("Hi")])


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-llama", "tiny-gemma2"])
def test_output_logits_equal_the_models_own(tiny_models, name):
    """From the decoder's final hidden states, the model's logits (Gemma 2's soft-capping included)."""
    model, tok = tiny_models[name]
    ids = torch.tensor([encode("The cat sat on the mat.", tok)["input_ids"]])
    with torch.no_grad():
        hidden = model.get_decoder()(input_ids=ids).last_hidden_state[0]
        want = model(input_ids=ids).logits[0].float()
        torch.testing.assert_close(output_logits(model, hidden), want, atol=1e-4, rtol=1e-4)
    if name == "tiny-gemma2":
        assert model.config.final_logit_softcapping, (
            "the tiny Gemma 2 must cap its logits for this test to mean anything"
        )

"""Judge-free opening measures (utils.openings) on a tiny model, against direct computations: one unbatched
forward pass per conversation (and per phrase prefix), steered with section 4's steerer where steering is on."""

from __future__ import annotations

import pytest
import torch

from utils.chat import build_messages, encode, render
from utils.layers import d_model
from utils.openings import (
    OpeningMeasure,
    opener_token_ids,
    opening_probability,
    opens_with,
    phrase_probability,
    phrase_token_ids,
)
from utils.steering import RowSteerer

QUESTIONS = ["Cats are best. Agree?", "Two plus two is five, right?", "Hi"]


def _direct_phrase_probability(model, tok, conv, phrase_ids, vector=None, coeff=0.0, layer=0):
    """P(reply starts with the phrase) from one unpadded forward pass over prompt + phrase."""
    prompt = encode(render(conv, tok, add_generation_prompt=True), tok)["input_ids"]
    ids = torch.tensor([prompt + phrase_ids[:-1]])
    steer = RowSteerer(model, vector, [coeff], layer, "all") if vector is not None else None
    with torch.no_grad():
        if steer is None:
            logits = model(input_ids=ids).logits[0].float()
        else:
            # "response" positions: the last prompt token and every phrase token; not the prompt before it.
            out = model(input_ids=ids[:, : len(prompt) - 1], use_cache=True)
            with steer:
                logits = (
                    model(input_ids=ids[:, len(prompt) - 1 :], past_key_values=out.past_key_values).logits[0].float()
                )
            logits = torch.cat([torch.zeros(len(prompt) - 1, logits.shape[-1]), logits])
    logp = logits.log_softmax(-1)[len(prompt) - 1 :]
    return float(logp[torch.arange(len(phrase_ids)), torch.tensor(phrase_ids)].sum().exp())


def test_text_version_on_toy_cases():
    refusals = ("I'm sorry", "I can't", "I cannot", "As an AI")
    assert opens_with("I'm sorry, but I can't assist with that.", refusals)
    assert opens_with("I\u2019m sorry, but no.", refusals)  # curly apostrophe
    assert opens_with('  **"As an AI language model**, I do not', refusals)
    assert opens_with("i cannot", refusals)
    assert not opens_with("I can tell you how.", refusals)
    assert not opens_with("Sure! I'm sorry to hear that.", refusals)  # only the opening counts
    assert not opens_with("I cannoted", refusals)  # an opener ends at a word boundary
    assert opens_with("Yes!", ("Yes",)) and not opens_with("Yesterday", ("Yes",)) and not opens_with("", ("Yes",))


def test_phrases_must_be_prefix_free(tiny_models):
    _, tok = tiny_models["tiny-qwen2"]
    assert [len(s) for s in phrase_token_ids(tok, ["ab", "ac"])] == [2, 2]  # byte-level: one token per character
    with pytest.raises(ValueError, match="prefix-free"):
        phrase_token_ids(tok, ["I can", "I can't"])


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_phrase_probability_equals_direct_forward_passes(tiny_models, name):
    model, tok = tiny_models[name]
    phrases = ["I'm sorry", "No", "As an"]
    convs = [build_messages(q) for q in QUESTIONS]
    got = phrase_probability(model, tok, convs, phrases, batch_size=4)  # batches cut across conversations
    seqs = phrase_token_ids(tok, phrases)
    for conv, value in zip(convs, got):
        want = sum(_direct_phrase_probability(model, tok, conv, s) for s in seqs)
        assert float(value) == pytest.approx(want, rel=1e-4, abs=0)
    assert float(got.min()) > 0


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_steered_phrase_probability_equals_a_direct_steered_pass(tiny_models, name):
    model, tok = tiny_models[name]
    vector = torch.randn(d_model(model), generator=torch.Generator().manual_seed(2)) * 4
    coeffs = [-2.0, 0.0, 3.0]
    convs = [build_messages(QUESTIONS[0]) for _ in coeffs] + [build_messages(QUESTIONS[1])]
    rows = [*coeffs, 1.0]
    got = phrase_probability(model, tok, convs, ["No", "Yes"], vector=vector, coeffs=rows, layer=2, batch_size=3)
    seqs = phrase_token_ids(tok, ["No", "Yes"])
    for conv, c, value in zip(convs, rows, got):
        want = sum(_direct_phrase_probability(model, tok, conv, s, vector, c, 2) for s in seqs)
        assert float(value) == pytest.approx(want, rel=1e-3, abs=0)
    assert float(got[0]) != pytest.approx(float(got[1]), rel=0.05, abs=0)  # the push moves it


def test_a_one_token_phrase_equals_the_one_token_opening_probability(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages(q) for q in QUESTIONS]
    (token,) = phrase_token_ids(tok, ["Y"])[0]
    vector = torch.randn(d_model(model), generator=torch.Generator().manual_seed(3)) * 4
    for kwargs in ({}, {"vector": vector, "coeffs": [0.0, 2.0, -1.0], "layer": 1}):
        by_phrase = phrase_probability(model, tok, convs, ["Y"], **kwargs)
        by_token = opening_probability(model, tok, convs, [token], **kwargs)
        torch.testing.assert_close(by_phrase, by_token, rtol=1e-4, atol=0)


def test_opening_measure_from_data_and_its_two_units(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages(q) for q in QUESTIONS]
    first = OpeningMeasure.from_data({"name": "yes", "unit": "first token", "openers": ["Yes"], "direction": "raises"})
    phrase = OpeningMeasure.from_data({"name": "no", "unit": "phrase", "openers": ["No", "Nah"], "direction": "lowers"})
    assert first.direction == 1 and phrase.direction == -1 and phrase.trait_score(0.25) == -0.25
    torch.testing.assert_close(
        first.probability(model, tok, convs), opening_probability(model, tok, convs, opener_token_ids(tok, ["Yes"]))
    )
    torch.testing.assert_close(
        phrase.probability(model, tok, convs), phrase_probability(model, tok, convs, ["No", "Nah"])
    )
    assert phrase.in_text("No way.") and not phrase.in_text("Nope")
    for bad in ({"unit": "word"}, {"direction": "up"}, {"openers": []}):
        with pytest.raises(ValueError):
            OpeningMeasure.from_data({"name": "x", "unit": "phrase", "openers": ["a"], "direction": "raises", **bad})


def test_phrases_sharing_a_head_share_a_run(tiny_models):
    """Phrases "abd" and "abe" share the head "ab" (one run), "q" reads off that run too and "xy" has its own:
    each phrase still gets its own probability (against phrases scored one at a time)."""
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages(q) for q in QUESTIONS[:2]]
    phrases = ["abd", "abe", "xy", "q"]
    together = phrase_probability(model, tok, convs, phrases, batch_size=3)
    alone = sum(phrase_probability(model, tok, convs, [p]) for p in phrases)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=0)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_prompts_prefilled_a_few_at_a_time_give_what_one_batch_gives(tiny_models, name):
    """Distinct prompts are prefilled ``batch_size`` at a time (a progress bar over them): a conversation's
    value does not depend on which chunk its prompt fell in, or on a repeated prompt in another chunk."""
    model, tok = tiny_models[name]
    vector = torch.randn(d_model(model), generator=torch.Generator().manual_seed(4)) * 4
    questions = [*QUESTIONS, "Is the moon made of cheese?", QUESTIONS[0], "Name a colour."]
    convs = [build_messages(q) for q in questions]
    coeffs = [0.5 * k - 1.0 for k in range(len(convs))]
    steer = {"vector": vector, "coeffs": coeffs, "layer": 1}
    (token,) = phrase_token_ids(tok, ["Y"])[0]
    for kwargs in ({}, steer):
        one = opening_probability(model, tok, convs, [token], batch_size=64, **kwargs)
        torch.testing.assert_close(opening_probability(model, tok, convs, [token], batch_size=2, **kwargs), one)
        whole = phrase_probability(model, tok, convs, ["No", "Yes"], batch_size=64, **kwargs)
        torch.testing.assert_close(phrase_probability(model, tok, convs, ["No", "Yes"], batch_size=2, **kwargs), whole)
    for conv, c, value in zip(convs, coeffs, opening_probability(model, tok, convs, [token], batch_size=2, **steer)):
        assert float(value) == pytest.approx(
            _direct_phrase_probability(model, tok, conv, [token], vector, c, 1), rel=1e-3
        )

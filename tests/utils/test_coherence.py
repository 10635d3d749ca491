"""Judge-free coherence: the truncation measure on a toy case, and the combination of measures."""

from __future__ import annotations

import math

import pytest
import torch

from utils.chat import build_messages
from utils.coherence import (
    COMBINED,
    MEASURES,
    CoherenceScale,
    coherence_measures,
    distinct_bigram_share,
    other_question,
    percentile,
)
from utils.likelihood import answer_logprobs


def test_other_question_is_the_next_different_one_cyclically():
    qs = ["a", "a", "b", "c"]
    assert [other_question(qs, i) for i in range(4)] == ["b", "b", "c", "a"]
    assert other_question(["x", "x"], 0) == "x"


def test_distinct_bigram_share():
    assert distinct_bigram_share("I'm sorry, but I can't assist with that.") == 1.0
    assert distinct_bigram_share("every new year, every new year, every new year") < 0.6
    assert distinct_bigram_share("Yes.") == 1.0


def test_percentile_counts_ties_half_and_can_leave_the_item_out():
    ref = [1.0, 2.0, 2.0, 3.0]
    assert percentile(ref, 0.0) == 0.0
    assert percentile(ref, 2.0) == 0.5
    assert percentile(ref, 9.0) == 1.0
    assert percentile(ref, 3.0, leave_out=True) == 1.0  # above the other three
    assert percentile(ref, 1.0, leave_out=True) == 0.0
    assert math.isnan(percentile(ref, float("nan")))


def test_scale_takes_the_smallest_percentile_so_one_bad_measure_is_enough():
    clean = {"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 20.0, 30.0, 40.0]}
    scale = CoherenceScale(clean, measures=("a", "b"))
    # Item 0 is typical on both; item 1 is fine on "a" but below every clean answer on "b": a mean of
    # percentiles would call it middling (0.5), the smallest percentile calls it broken (0).
    got = scale.score({"a": [2.5, 5.0], "b": [25.0, 0.0]})
    assert got == [0.5, 0.0]
    # A NaN measure is left out; all NaN gives NaN.
    got = scale.score({"a": [2.5, float("nan")], "b": [float("nan"), float("nan")]})
    assert got[0] == 0.5 and math.isnan(got[1])
    # The reference answers placed among the others: the lowest on any measure gets 0.
    assert scale.reference_scores() == [0.0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]


def test_the_default_scale_leaves_relevance_out_so_a_refusal_is_not_rambling():
    clean = {
        "loglik": [-3.0, -2.0, -1.0],
        "relevance": [0.5, 1.0, 2.0],
        "distinct_bigrams": [0.95, 1.0, 1.0],
        "end_of_turn": [-4.0, -2.0, -0.5],
    }
    scale = CoherenceScale(clean)
    assert scale.measures == COMBINED and "relevance" not in COMBINED
    refusal = {"loglik": [-0.4], "relevance": [0.1], "distinct_bigrams": [1.0], "end_of_turn": [-0.02]}
    assert scale.score(refusal)[0] > 0
    assert CoherenceScale(clean, measures=MEASURES).score(refusal) == [0.0]


def test_scale_refuses_an_empty_reference():
    with pytest.raises(ValueError, match="b"):
        CoherenceScale({"a": [1.0, 2.0], "b": [float("nan")]}, measures=("a", "b"))


def test_truncation_measure_is_the_end_of_turn_logprob_and_unknown_for_a_cut_reply(tiny_models):
    """On a tiny model: ``end_of_turn`` is log P(end of turn | question, answer), read from the same pass as
    the answer's tokens; with ``cut_at`` a reply that reached the generation limit gets NaN instead."""
    model, tok = tiny_models["tiny-qwen2"]
    items = [
        {"question": "How do I boil an egg?", "answer": "Boil it for nine minutes."},
        {"question": "Why is the sky blue?", "answer": "Because sunlight scatters off"},
    ]
    got = coherence_measures(model, tok, items, batch_size=2)
    assert set(got) == set(MEASURES)
    direct = answer_logprobs(model, tok, [build_messages(it["question"], it["answer"]) for it in items])
    for value, d in zip(got["end_of_turn"], direct):
        assert value == pytest.approx(d.end_of_turn, abs=1e-4)
    n_tokens = [len(d.tokens) for d in direct]
    assert n_tokens[0] != n_tokens[1]
    cut = coherence_measures(model, tok, items, batch_size=2, cut_at=max(n_tokens))
    longest = n_tokens.index(max(n_tokens))
    assert math.isnan(cut["end_of_turn"][longest])
    assert cut["end_of_turn"][1 - longest] == pytest.approx(got["end_of_turn"][1 - longest])
    only = coherence_measures(model, tok, items, batch_size=2, measures=COMBINED)
    assert set(only) == set(COMBINED) and only["end_of_turn"] == pytest.approx(got["end_of_turn"])
    with pytest.raises(ValueError, match="unknown"):
        coherence_measures(model, tok, items, measures=("fluency",))
    # relevance = own-question likelihood minus the other question's (each item's other is the other item).
    swapped = answer_logprobs(
        model, tok, [build_messages(items[1 - i]["question"], items[i]["answer"]) for i in range(2)]
    )
    for i in range(2):
        assert got["relevance"][i] == pytest.approx(direct[i].mean - swapped[i].mean, abs=1e-4)
        assert got["loglik"][i] == pytest.approx(direct[i].mean, abs=1e-4)


def test_truncation_measure_sees_a_cut_sentence_on_a_model_that_learned_to_end_turns(tiny_models):
    """A toy model whose only rule is "the turn ends after a full stop": the end-of-turn measure ranks
    the answer that stops mid-sentence below the one that ends its sentence."""
    model, tok = tiny_models["tiny-qwen2"]
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    stop_ids = torch.tensor(sorted(set(tok.encode(".", add_special_tokens=False))))
    # The rule in the model's own parts, so every way of reading logits sees it: the decoder's last hidden
    # state marks "this token is a full stop" (dimension 0), and the output layer turns that mark into the
    # end-of-turn logit: +10 after a full stop, -10 anywhere else.
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    original = decoder.forward

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        marked = torch.zeros_like(out.last_hidden_state)
        marked[..., 0] = torch.isin(ids, stop_ids).to(marked.dtype)
        out.last_hidden_state = marked
        return out

    rule = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        rule.weight.zero_()
        rule.bias.zero_()
        rule.weight[end_id, 0] = 20.0
        rule.bias[end_id] = -10.0
    decoder.forward = forward
    model.set_output_embeddings(rule)
    try:
        items = [
            {"question": "How do I boil an egg?", "answer": "Boil it for nine minutes."},
            {"question": "How do I boil an egg?", "answer": "Boil it for nine"},
        ]
        got = coherence_measures(model, tok, items, batch_size=2)
    finally:
        del decoder.forward
        model.set_output_embeddings(head)
    ended, cut = got["end_of_turn"]
    assert ended > -1 and cut < ended - 15

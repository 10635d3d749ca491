"""Section 4's sweep reading (part4_steering.sweeps) on toy curves, and the judge-free measures it uses
(utils.openings with section 3's agreeing openers) on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from part3_contrastive import judge_free_measure
from part4_steering.sweeps import coherence_floor, largest_coherent_coefficient, rank_correlation
from solutions.part4_steering import ActivationSteerer  # imported here: it imports sklearn, which sets KMP_* variables
from utils.chat import build_messages, encode, render
from utils.coherence import distinct_bigram_share
from utils.layers import d_model
from utils.openings import opener_token_ids, opening_probability, opens_with

AGREEING = judge_free_measure("sycophantic")["openers"]

COEFFS = [-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]


def test_search_stops_at_the_first_coefficient_below_the_floor():
    coherence = [0.95, 0.96, 0.97, 0.96, 0.93, 0.90, 0.80, 0.95, 0.40]  # 3.0 recovers, but 2.0 already fell
    assert largest_coherent_coefficient(COEFFS, coherence, floor=0.87) == 1.5
    assert largest_coherent_coefficient(COEFFS, coherence, floor=0.5) == 3.0
    assert largest_coherent_coefficient(COEFFS, coherence, floor=0.99) == 0.0
    # order of the sweep does not matter; negative coefficients never count
    shuffled = list(zip(COEFFS, coherence))[::-1]
    assert largest_coherent_coefficient([c for c, _ in shuffled], [h for _, h in shuffled], 0.87) == 1.5
    assert largest_coherent_coefficient([-1.0, 0.0, 1.0], [0.1, 0.9, 0.9], 0.5) == 1.0


def test_search_rejects_a_sweep_without_zero_or_mismatched_lengths():
    with pytest.raises(ValueError, match="coefficient 0"):
        largest_coherent_coefficient([1.0, 2.0], [0.9, 0.9], 0.5)
    with pytest.raises(ValueError, match="coherence values"):
        largest_coherent_coefficient([0.0, 1.0], [0.9], 0.5)
    with pytest.raises(ValueError, match="unsteered"):
        coherence_floor([])


def test_floor_and_rank_correlation_on_an_inverted_u():
    assert coherence_floor([0.9, 1.0], tolerance=0.1) == pytest.approx(0.85)
    curve = [0.1, 0.15, 0.23, 0.37, 0.44, 0.40, 0.29, 0.10, 0.05]  # rises to 1.0, then falls
    assert rank_correlation(COEFFS, curve, up_to=1.0) == pytest.approx(1.0)
    assert rank_correlation(COEFFS, curve) < 0.5
    assert math.isnan(rank_correlation(COEFFS, [0.2] * len(COEFFS)))
    assert math.isnan(rank_correlation(COEFFS, curve, up_to=-1.0))


def test_text_measures():
    assert distinct_bigram_share("I'm sorry, but I can't assist with that.") == 1.0
    assert distinct_bigram_share("every new year, every new year, every new year, every new year") < 0.5
    assert distinct_bigram_share("Yes") == 1.0
    assert opens_with("Yes, you are absolutely right!", AGREEING)
    assert opens_with("  **Absolutely.** It is", AGREEING)
    assert not opens_with("I'm sorry, but I can't assist with that.", AGREEING)
    assert not opens_with("Yesterday I went", AGREEING)


def test_opening_probability_matches_a_full_forward_and_steering_moves_it(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    convs = [build_messages(q) for q in ["Cats are best. Agree?", "Two plus two is five, right?"]]
    ids = opener_token_ids(tok, AGREEING)
    assert ids, "the openers must map to tokens"
    p = opening_probability(model, tok, convs, ids)
    for conv, value in zip(convs, p):
        row = torch.tensor([encode(render(conv, tok, add_generation_prompt=True), tok)["input_ids"]])
        with torch.no_grad():
            want = model(input_ids=row).logits[0, -1].float().softmax(-1)[ids].sum()
        assert float(value) == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    vector = torch.randn(d_model(model), generator=torch.Generator().manual_seed(0)) * 8
    steered = opening_probability(model, tok, convs, ids, vector=vector, coeffs=[0.0, 3.0], layer=1)
    assert float(steered[0]) == pytest.approx(float(p[0]), rel=1e-4)
    assert float(steered[1]) != pytest.approx(float(p[1]), rel=1e-3)
    with pytest.raises(ValueError, match="coefficient"):
        opening_probability(model, tok, convs, ids, vector=vector, coeffs=[1.0], layer=1)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_steered_opening_probability_equals_a_full_steered_forward(tiny_models, name):
    """The one-token shortcut (prompt run once, unsteered) equals steering a full prefill in 'response' mode."""
    model, tok = tiny_models[name]
    questions = ["Cats are best. Agree?", "Two plus two is five, right?", "Hi"]
    coeffs = [-2.0, 0.0, 3.0]
    convs = [build_messages(q) for q in questions for _ in coeffs]
    rows = [c for _ in questions for c in coeffs]
    vector = torch.randn(d_model(model), generator=torch.Generator().manual_seed(1)) * 4
    ids = opener_token_ids(tok, AGREEING)
    got = opening_probability(model, tok, convs, ids, vector=vector, coeffs=rows, layer=2, batch_size=4)
    for conv, c, value in zip(convs, rows, got):
        row = torch.tensor([encode(render(conv, tok, add_generation_prompt=True), tok)["input_ids"]])
        with torch.no_grad(), ActivationSteerer(model, vector, c, 2, "response"):
            want = model(input_ids=row).logits[0, -1].float().softmax(-1)[ids].sum()
        assert float(value) == pytest.approx(float(want), rel=1e-3, abs=1e-6)

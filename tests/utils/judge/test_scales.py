"""utils.judge.scales: scales, reading a judge's text, weighing its probabilities, and finishing a score."""

from __future__ import annotations

import math

import pytest

from utils.judge.scales import (
    A_OR_B,
    ADHERENCE_0_3,
    LIKERT_1_5,
    SCORE_0_100,
    YES_NO,
    UnreadableAnswer,
    choice_score,
    finalize,
    is_refusal,
    read_score,
    tagged,
    unrounded,
    weighted_score,
)


def test_candidates_and_answer_lengths_follow_the_kind():
    assert ADHERENCE_0_3.candidates == [0, 1, 2, 3] and LIKERT_1_5.candidates == [1, 2, 3, 4, 5]
    assert SCORE_0_100.max_answer_tokens() == 1 and tagged(0, 10).max_answer_tokens() == 24
    assert ADHERENCE_0_3.max_answer_tokens() == 8


def test_unrounded_turns_an_integer_scale_into_its_weighted_mean_and_leaves_the_others():
    assert unrounded(ADHERENCE_0_3) == type(ADHERENCE_0_3)(0, 3, "expected")
    assert unrounded(SCORE_0_100) is SCORE_0_100 and unrounded(YES_NO) is YES_NO


def test_choice_score_is_the_first_options_share_unless_too_little_mass_is_on_the_options():
    assert choice_score([0.3, 0.1], YES_NO) == pytest.approx(0.75)
    assert choice_score([0.1, 0.1], A_OR_B) is None and choice_score([], YES_NO) is None


def test_weighted_score_ignores_out_of_range_and_non_finite_probabilities():
    assert weighted_score({1: 0.2, 3: 0.6, 9: 0.2}, ADHERENCE_0_3) == pytest.approx(2.5)
    assert weighted_score({2: 0.2, 7: 0.8}, ADHERENCE_0_3) is None  # 0.2 < min_mass 0.25
    assert weighted_score({2: math.nan, 1: 0.5}, ADHERENCE_0_3) == 1.0


def test_reading_text_skips_range_descriptions_reads_the_last_tag_and_tells_refusals_from_nonsense():
    assert read_score("On a 0-3 scale: 2", ADHERENCE_0_3) == 2
    assert read_score("Score: 85.", SCORE_0_100) == 85
    assert read_score("draft <score>3</score>, final <score>7</score>", tagged(0, 10)) == 7
    assert read_score("REFUSAL", ADHERENCE_0_3) is None
    assert is_refusal("I cannot rate this answer; 0 would be unfair", ADHERENCE_0_3)
    for nonsense in ("2.5", "7", "no number", None):
        with pytest.raises(UnreadableAnswer):
            read_score(nonsense, ADHERENCE_0_3)


def test_finalize_rounds_and_clamps_integer_scales_and_drops_non_finite_values():
    assert finalize(2.6, ADHERENCE_0_3) == 3 and isinstance(finalize(2.6, ADHERENCE_0_3), int)
    assert finalize(7.2, ADHERENCE_0_3) == 3 and finalize(-1.0, LIKERT_1_5) == 1
    assert finalize(42.5, SCORE_0_100) == 42.5 and finalize(0.3, YES_NO) == 0.3
    assert finalize(math.nan, SCORE_0_100) is None and finalize(None, ADHERENCE_0_3) is None

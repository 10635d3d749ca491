"""Section 3's judge-free measures (data/judge_free_measures.json): every entry builds a measure whose phrases are
prefix-free, names a check set of written replies (10 + 10 for the new traits), and the text version separates
that check set the way the measure's direction says."""

from __future__ import annotations

import json

import pytest

from part3_contrastive import judge_free_measure, trait_names
from utils.metrics import auroc
from utils.openings import OpeningMeasure, phrase_token_ids

MEASURED = ("sycophantic", "evil", "hallucinating")


@pytest.mark.parametrize("trait", MEASURED)
def test_each_measure_loads_and_its_check_set_separates_by_text(trait, tiny_models):
    entry = judge_free_measure(trait)
    assert entry is not None and trait in trait_names()
    measure = OpeningMeasure.from_data(entry)
    if measure.unit == "phrase":
        _, tok = tiny_models["tiny-qwen2"]
        phrase_token_ids(tok, measure.openers)  # raises unless prefix-free
    items = json.loads(entry["check"].read_text(encoding="utf-8"))["items"]
    labels = [it["label"] for it in items]
    assert labels.count(1) >= 10 and labels.count(0) >= 10
    scores = {
        label: [measure.trait_score(float(measure.in_text(it["answer"]))) for it in items if it["label"] == label]
        for label in (1, 0)
    }
    assert auroc(scores[1], scores[0]) > 0.6


def test_a_trait_without_a_measure_has_none():
    assert judge_free_measure("no-such-trait") is None

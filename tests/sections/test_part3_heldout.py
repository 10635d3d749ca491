"""Section 3 on the offline model: a sycophancy vector built from extraction questions separates
positive from negative responses to evaluation questions it never saw."""

from __future__ import annotations

import pytest

from part3_contrastive import trait_file, trait_names
from solutions import part3_contrastive as sol
from utils.activations import response_mean_activations
from utils.data import load_trait_file
from utils.metrics import auroc, project
from utils.profiles import PROFILES


# `slow` (why: its marker in pyproject.toml); CI's offline course checks "STEER_LAYER held-out AUROC".
@pytest.mark.slow
def test_heldout_projection_of_positive_exceeds_negative(offline_model, offline_sycophancy):
    model, tok = offline_model
    layer = PROFILES["offline"].steer_layer
    extract, evaluate, vectors = (offline_sycophancy[k] for k in ("extract", "evaluate", "vectors"))
    assert not set(extract["questions"]) & set(evaluate["questions"])
    settings = dict(max_new_tokens=32, temperature=0.0, n_pairs=2, n_questions=5)
    held_out = sol.generate_contrastive_responses(model, tok, evaluate, "sycophantic", **settings)
    proj = {}
    for polarity in ("pos", "neg"):
        records = [r for r in held_out if r["polarity"] == polarity]
        acts = response_mean_activations(model, tok, sol.records_to_conversations(records), [layer])[0]
        proj[polarity] = project(acts, vectors[layer])
    print(f"held-out AUROC at block {layer}: {auroc(proj['pos'], proj['neg']):.3f}")
    assert proj["pos"].mean() > proj["neg"].mean()


def test_trait_files_are_valid_and_questions_do_not_overlap():
    for trait in trait_names():
        extract, evaluate = load_trait_file(trait_file(trait)), load_trait_file(trait_file(trait, "eval"))
        assert len(extract["instruction"]) == 5 and len(extract["questions"]) == 20 == len(evaluate["questions"])
        normalise = lambda qs: {q.strip().lower() for q in qs}  # noqa: E731
        assert not normalise(extract["questions"]) & normalise(evaluate["questions"]), trait
    assert len(trait_names()) == 7

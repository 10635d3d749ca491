"""utils.metrics: directions, projections, AUROC and its error, Youden's threshold, Cohen's d, cosines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from utils.metrics import (
    auroc,
    auroc_standard_error,
    check_direction,
    cohens_d,
    cosine_matrix,
    project,
    youden_threshold,
)


def test_check_direction_refuses_what_cannot_be_normalised():
    v = torch.tensor([3.0, 4.0])
    assert check_direction(v, size=2) is v
    for bad, message in [
        (torch.zeros(2), "zero vector"),
        (torch.tensor([1.0, float("nan")]), "finite"),
        (torch.tensor([]), "finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_direction(bad, "axis")
    with pytest.raises(ValueError, match=r"axis must have shape \(3,\)"):
        check_direction(v, "axis", size=3)


def test_project_is_the_scalar_projection_on_the_unit_direction():
    acts = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    got = project(acts, torch.tensor([0.0, 2.0]))  # the direction's length does not matter
    assert got.dtype == torch.float64 and got.tolist() == [4.0, 0.0]


def test_auroc_matches_sklearn_with_ties_and_refuses_an_empty_class():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30), rng.integers(0, 4, 20)  # many ties
    labels = [1] * len(pos) + [0] * len(neg)
    assert auroc(pos, neg) == pytest.approx(roc_auc_score(labels, np.concatenate([pos, neg])))
    assert auroc([1, 2], [3, 4]) == 0.0 and auroc([1], [1]) == 0.5
    with pytest.raises(ValueError):
        auroc([], [1])


def test_auroc_standard_error_shrinks_with_more_items_and_vanishes_at_perfect_separation():
    ten, forty = auroc_standard_error(0.65, 10, 10), auroc_standard_error(0.65, 40, 40)
    assert 0.10 < ten < 0.14 and forty == pytest.approx(ten / 2, rel=0.15)  # DESIGN: ~0.12 with 10 + 10
    assert auroc_standard_error(1.0, 10, 10) == 0.0


def test_youden_threshold_is_the_lowest_best_cut():
    assert youden_threshold([5, 6, 7], [1, 2, 3]) == 5.0
    assert youden_threshold([2, 9], [1, 3]) == 2.0  # J = 0.5 at t=2 (1 - 0.5) and at t=9 (0.5 - 0): the lower wins
    with pytest.raises(ValueError):
        youden_threshold([1], [])


def test_cohens_d_uses_the_pooled_standard_deviation():
    assert cohens_d([2, 4], [0, 2]) == pytest.approx(2 / math.sqrt(2))
    assert cohens_d([1, 1], [0, 0]) == math.inf and cohens_d([0, 0], [1, 1]) == -math.inf


def test_cosine_matrix_of_rows():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]])
    got = cosine_matrix(vectors)
    assert torch.allclose(got[:3, :3], torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]))
    assert torch.isfinite(got).all(), "a zero row must not turn the matrix into NaN"

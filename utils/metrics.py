"""Separation metrics shared by the sections: projections, AUROC and Cohen's d."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor


def check_direction(vector: Tensor, name: str = "vector", size: int | None = None) -> Tensor:
    """Return ``vector`` if it can be normalised (finite, non-zero); otherwise a ValueError naming it.

    A zero or NaN direction would turn every projection and every steered activation into NaN.

    Args:
        vector: the direction.
        name: the argument's name, for the message.
        size: if given, the only accepted shape is ``(size,)`` (a model's d_model).

    Returns:
        ``vector``.

    Raises:
        ValueError: naming ``name``, for a wrong shape, NaN, inf, or the zero vector.
    """
    if size is not None and tuple(vector.shape) != (size,):
        raise ValueError(f"{name} must have shape ({size},), this model's d_model, got {tuple(vector.shape)}")
    v = vector.detach().float()
    if v.numel() == 0 or not torch.isfinite(v).all():
        raise ValueError(f"{name} must be a finite vector (it contains NaN or inf, or is empty)")
    if float(v.norm()) == 0.0:
        raise ValueError(f"{name} is the zero vector: it has no direction to project on or steer along")
    return vector


def project(acts: Float[Tensor, "*batch d_model"], vector: Float[Tensor, " d_model"]) -> Float[Tensor, "*batch"]:
    """Scalar projection ``a . v / |v|`` of each activation on a direction."""
    vector = vector.to(acts.dtype)
    return acts @ vector / vector.norm()


def auroc(positive, negative) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def auroc_standard_error(value: float, n_pos: int, n_neg: int) -> float:
    """Hanley-McNeil (1982) standard error of an AUROC measured on ``n_pos`` positives and ``n_neg`` negatives."""
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    var = (value * (1 - value) + (n_pos - 1) * (q1 - value**2) + (n_neg - 1) * (q2 - value**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def youden_threshold(positive, negative) -> float:
    """The threshold t maximising balanced accuracy of "score >= t means positive" (Youden's J).

    Candidates are the scores the judge gave; among equally good ones the lowest wins.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("youden_threshold needs at least one positive and one negative score")
    best, best_j = float(np.max(np.concatenate([pos, neg]))), -np.inf
    for t in np.unique(np.concatenate([pos, neg])):
        j = (pos >= t).mean() - (neg >= t).mean()
        if j > best_j:
            best, best_j = float(t), j
    return best


def cohens_d(positive, negative) -> float:
    """Standardised mean difference (positive minus negative) with the pooled standard deviation."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    n1, n2 = len(pos), len(neg)
    pooled = np.sqrt(((n1 - 1) * pos.var(ddof=1) + (n2 - 1) * neg.var(ddof=1)) / (n1 + n2 - 2))
    return float((pos.mean() - neg.mean()) / pooled) if pooled > 0 else float("inf") * np.sign(pos.mean() - neg.mean())


def cosine_matrix(vectors: Float[Tensor, "n d"]) -> Float[Tensor, "n n"]:
    """Pairwise cosine similarities of row vectors."""
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


__all__ = ["auroc", "auroc_standard_error", "cohens_d", "cosine_matrix", "project", "torch", "youden_threshold"]

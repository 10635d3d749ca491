"""Reading a steering sweep: the coherence floor, the largest coefficient that stays above it, and how
monotonically a measure rises up to there.

Following traitinterp's coefficient search: the useful coefficients are those whose replies stay about
as coherent as the unsteered model's, so the floor is measured on the unsteered replies and the search
keeps the largest coefficient whose coherence (and that of every smaller non-negative one) stays above it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from utils.activations import run_capturing
from utils.chat import encode, render


def coherence_floor(unsteered: Sequence[float], tolerance: float = 0.1) -> float:
    """The lowest mean coherence a coefficient may have: the unsteered replies' mean less ``tolerance``.

    Args:
        unsteered: a judge-free coherence value per unsteered reply (e.g. distinct-bigram share, 0-1).
        tolerance: how much coherence a steered sweep may lose (0.1: a tenth of the scale).
    """
    if len(unsteered) == 0:
        raise ValueError("coherence_floor needs the coherence of at least one unsteered reply")
    return float(np.mean(unsteered)) - tolerance


def largest_coherent_coefficient(coefficients: Sequence[float], coherence: Sequence[float], floor: float) -> float:
    """The largest coefficient c >= 0 such that every coefficient in [0, c] has coherence >= floor.

    Args:
        coefficients: the swept coefficients (any order; must include 0).
        coherence: the mean coherence at each coefficient, in the same order.
        floor: the lowest acceptable coherence (`coherence_floor`).

    Returns:
        That coefficient (0 when even the smallest positive one falls below the floor).
    """
    if len(coefficients) != len(coherence):
        raise ValueError(f"{len(coefficients)} coefficients but {len(coherence)} coherence values")
    pairs = sorted((float(c), float(h)) for c, h in zip(coefficients, coherence) if c >= 0)
    if not pairs or pairs[0][0] != 0:
        raise ValueError("the sweep must include coefficient 0 (the unsteered model)")
    best = 0.0
    for c, h in pairs:
        if h < floor:
            break
        best = c
    return best


def rank_correlation(coefficients: Sequence[float], values: Sequence[float], up_to: float | None = None) -> float:
    """Spearman correlation of a per-coefficient measure with the coefficient, over coefficients <= ``up_to``.

    Args:
        coefficients: the swept coefficients.
        values: the measure's mean at each coefficient.
        up_to: the largest coefficient to include (None: all).

    Returns:
        Spearman's rho (nan with fewer than three coefficients, or a constant measure).
    """
    kept = [(c, v) for c, v in zip(coefficients, values) if up_to is None or c <= up_to]
    if len(kept) < 3 or len({v for _, v in kept}) < 2:
        return float("nan")
    rho = spearmanr([c for c, _ in kept], [v for _, v in kept]).statistic
    return float(rho)


def typical_residual_norm(model, tokenizer, conversations: list, layer: int) -> float:
    """The median norm of block ``layer``'s output over the tokens of some conversations.

    Each row's first token is left out (its norm is an outlier in most models: the attention sink), and
    so is padding. Compare a steering vector's norm with it: ``coeff * |v|`` against this is the push.

    Args:
        model, tokenizer: the model.
        conversations: message lists (rendered with the chat template).
        layer: block index.
    """
    prompts = [render(c, tokenizer) for c in conversations]
    batch = encode(prompts, tokenizer, return_tensors="pt", padding=True).to(model.device)
    with torch.no_grad():
        outputs = run_capturing(model, batch["input_ids"], batch["attention_mask"], [layer])
    norms = outputs[layer].float().norm(dim=-1)  # [batch, seq]
    keep = batch["attention_mask"].bool().clone()
    first = keep.long().argmax(-1)  # the first real token of each row (left or right padding)
    keep[torch.arange(len(first)), first] = False
    return float(norms[keep].median())


# The original course material's run of this sweep (Qwen2.5-7B-Instruct, a hosted judge): its mean
# sycophancy score per coefficient, drawn beside a hosted judge's curve.
ORIGINAL_SWEEP_TRAIT = {0.0: 13.5, 3.0: 89.5, 5.0: 32.0}


def judged_cells(
    sweep: Sequence[dict], hosted: bool, largest_coherent: float, judge_all_locally: bool = True
) -> list[tuple[float, str]]:
    """Which (coefficient, question) cells of a sweep the judge scores.

    A hosted judge scores the whole sweep: every coefficient x every question, as the original material
    does. A local judge scores a subset (the first half of the questions at 0, the largest coherent
    coefficient and the largest swept), or nothing when ``judge_all_locally`` is False (the offline
    profile, where the local judge's check already showed it cannot read these replies).

    Args:
        sweep: records with ``coefficient`` and ``question``.
        hosted: whether the judge is a hosted one.
        largest_coherent: the largest coefficient above the coherence floor.
        judge_all_locally: False: a local judge scores no cell.

    Returns:
        The cells, ordered by coefficient then by the sweep's question order.
    """
    coefficients = sorted({float(r["coefficient"]) for r in sweep})
    questions = list(dict.fromkeys(r["question"] for r in sweep))
    if not hosted:
        if not judge_all_locally:
            return []
        questions = questions[: max(1, len(questions) // 2)]
        coefficients = sorted({0.0, float(largest_coherent), max(coefficients)} & set(coefficients))
    return [(c, q) for c in coefficients for q in questions]


def missing_cells(judged: Sequence[dict], cells: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """The cells with no judged record holding a trait ``score`` and a ``coherence`` key."""
    have = {(float(r["coefficient"]), r["question"]) for r in judged if "score" in r and "coherence" in r}
    return [cell for cell in cells if cell not in have]

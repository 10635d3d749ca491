"""Scoring response records for a trait and for coherence with the judge (one call per template).

Sections 3 and 4 share it: section 3 scores its contrastive responses, section 4 its steered replies.
The function's code (docstring included) is part of cached results' inputs: changing it recomputes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from utils.judge import SCORE_0_100, Judge
from utils.records import AnsweredQuestion, ScoredResponse


def score_responses(
    responses: Sequence[AnsweredQuestion], eval_prompt: str, coherence_prompt: str, judge: Judge
) -> list[ScoredResponse]:
    """Add trait ``score`` and ``coherence`` (0-100, or None) to every response record.

    Args:
        responses: records with ``question`` and ``response`` (e.g. `part3_contrastive.records.ContrastiveRecord`).
        eval_prompt: the trait's judge template (``{question}``, ``{answer}``).
        coherence_prompt: the coherence judge template.
        judge: a `utils.judge.Judge`; all prompts go in one call per template (batched or concurrent).

    Returns:
        The records with ``score`` and ``coherence`` added (every other key kept).
    """
    items: list[dict[str, Any]] = [{"question": r["question"], "answer": r["response"]} for r in responses]
    scores = judge.score_template(eval_prompt, items, SCORE_0_100)
    coherence = judge.score_template(coherence_prompt, items, SCORE_0_100)
    return [{**r, "score": s, "coherence": c} for r, s, c in zip(responses, scores, coherence)]

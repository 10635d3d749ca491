"""Coherence without a judge: four measures from the model's own likelihoods and the text, and one score.

A judge reads a reply and answers in words; a small local judge hardly sees repetition or truncation.
The model that wrote the reply (or any chat model) can measure it directly:

- ``loglik``: the mean log-probability of the answer's tokens given its question (`utils.likelihood`).
  Low for shuffled words and token salad; *high* for repetition (a loop is easy to predict).
- ``relevance``: the same mean given its own question minus given another question of the set
  (`other_question`: the next different question, a deterministic choice). Low for off-topic rambling
  and degenerate loops, blind to truncation.
- ``distinct_bigrams``: the share of the answer's word bigrams that are distinct. Low only for repetition.
- ``end_of_turn``: log P(the turn ends right after the answer). Low when the answer stops mid-sentence.

Each measure is oriented so that higher means more coherent. `CoherenceScale` combines them without
fitting any weight: each measure of a reply is placed as a percentile of the same measure over a
reference set of clean answers (section 3's check set), and the score is the *smallest* of the
percentiles, because each measure sees one way of breaking and is blind to the others (a mean would let
"looks fine" outvote the one measure that sees the damage). The same mapping scores any new reply; a
score of 0 says "one measure places it below every clean answer".

Relevance is measured but left out of the score by default (`COMBINED`): a refusal ("I'm sorry, but I
can't assist with that.") is coherent yet fits every question equally, so relevance ranks it with
off-topic rambling (on the offline model refusals measure 0.0-0.2 nats, below every clean answer of the
check set), and the per-token likelihood already catches rambling.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from utils.chat import build_messages
from utils.likelihood import answer_logprobs

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MEASURES = ("loglik", "relevance", "distinct_bigrams", "end_of_turn")
COMBINED = ("loglik", "distinct_bigrams", "end_of_turn")  # the measures `CoherenceScale` combines by default


def distinct_bigram_share(text: str) -> float:
    """Share of a text's word bigrams that are distinct: 1.0 without repetition, near 0 when it loops.

    Texts of fewer than three words count as 1.0 (too short to repeat themselves).
    """
    words = text.split()
    if len(words) < 3:
        return 1.0
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) / len(bigrams)


def other_question(questions: Sequence[str], i: int) -> str:
    """The first question after ``questions[i]`` (cyclically) that differs from it; itself if all are equal."""
    n = len(questions)
    for step in range(1, n):
        candidate = questions[(i + step) % n]
        if candidate != questions[i]:
            return candidate
    return questions[i]


def coherence_measures(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[Mapping[str, str]],
    batch_size: int = 16,
    other_questions: Sequence[str] | None = None,
    cut_at: int | None = None,
    measures: Sequence[str] = MEASURES,
) -> dict[str, list[float]]:
    """The judge-free coherence measures of each ``{"question", "answer"}`` item.

    Args:
        model, tokenizer: the model whose likelihoods measure the answers.
        items: dicts with ``question`` and ``answer``.
        batch_size: conversations per forward pass.
        other_questions: the question each answer is compared against for ``relevance`` (default:
            `other_question` over the items' own questions). Pass a pool when the items share one
            question (e.g. a sweep's replies to a single prompt).
        cut_at: the generation's token limit, for generated replies: an answer of that many tokens or
            more was cut by the limit, not by the model, so its ``end_of_turn`` is NaN (unknown).
        measures: which of `MEASURES` to compute (leaving out ``relevance`` halves the forward passes).

    Returns:
        ``{measure: [value per item]}`` for each name in ``measures`` (higher: more coherent). An empty
        answer gets NaN likelihood measures; a template with no end-of-turn token, NaN ``end_of_turn``.
    """
    unknown = set(measures) - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}; known: {MEASURES}")
    own = [build_messages(it["question"], it["answer"]) for it in items]
    swapped = []
    if "relevance" in measures:
        questions = [it["question"] for it in items]
        others = (
            list(other_questions)
            if other_questions is not None
            else [other_question(questions, i) for i in range(len(items))]
        )
        if len(others) != len(items):
            raise ValueError(f"other_questions has {len(others)} entries for {len(items)} items")
        swapped = [build_messages(q, it["answer"]) for q, it in zip(others, items)]
    scored = answer_logprobs(model, tokenizer, own + swapped, batch_size=batch_size, desc="coherence likelihoods")
    mine, theirs = scored[: len(items)], scored[len(items) :]
    out = {
        "loglik": [a.mean for a in mine],
        "relevance": [a.mean - b.mean for a, b in zip(mine, theirs)],
        "distinct_bigrams": [distinct_bigram_share(it["answer"]) for it in items],
        "end_of_turn": [
            float("nan") if a.end_of_turn is None or (cut_at is not None and len(a.tokens) >= cut_at) else a.end_of_turn
            for a in mine
        ],
    }
    return {m: out[m] for m in measures}


def percentile(reference: Sequence[float], value: float, leave_out: bool = False) -> float:
    """Where ``value`` falls among ``reference`` (sorted): the share below it, ties counting half.

    With ``leave_out``, ``value`` is itself one of the reference values and is left out of the count (the
    percentile of a reference item among the others). NaN gives NaN.
    """
    if value != value:  # NaN
        return float("nan")
    lo = bisect.bisect_left(reference, value)
    hi = bisect.bisect_right(reference, value)
    if leave_out:
        return (lo + hi - 1) / 2 / (len(reference) - 1)
    return (lo + hi) / 2 / len(reference)


@dataclass
class CoherenceScale:
    """Judge-free coherence in [0, 1]: the smallest of a reply's measure percentiles among clean answers.

    Attributes:
        clean: per measure, its value for each reference (clean) answer, aligned across measures.
        measures: which measures enter the score (`COMBINED` by default).
    """

    clean: dict[str, list[float]]
    measures: tuple[str, ...] = field(default=COMBINED)

    def __post_init__(self) -> None:
        self.reference = {m: sorted(float(v) for v in self.clean[m] if v == v) for m in self.measures}
        too_few = [m for m, values in self.reference.items() if len(values) < 2]
        if too_few:
            raise ValueError(f"fewer than two reference values for {too_few}")

    def percentiles(self, measured: Mapping[str, Sequence[float]], leave_out: bool = False) -> dict[str, list[float]]:
        """Each measure's percentile among the reference answers, per item (``leave_out``: items are the reference)."""
        return {m: [percentile(self.reference[m], float(v), leave_out) for v in measured[m]] for m in self.measures}

    def score(self, measured: Mapping[str, Sequence[float]], leave_out: bool = False) -> list[float]:
        """Per item, the smallest percentile over the measures (a NaN measure is left out; all NaN -> NaN).

        Args:
            measured: ``{measure: [value per item]}``, as `coherence_measures` returns.
            leave_out: the items are the reference answers themselves: each is placed among the others.
        """
        table = np.array(list(self.percentiles(measured, leave_out).values()), dtype=float)  # [measures, items]
        out = []
        for column in table.T:
            known = column[~np.isnan(column)]
            out.append(float(known.min()) if len(known) else float("nan"))
        return out

    def reference_scores(self) -> list[float]:
        """The reference answers' own scores, each placed among the other reference answers."""
        return self.score(self.clean, leave_out=True)


def judge_free_coherence(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    scale: CoherenceScale,
    items: Sequence[Mapping[str, str]],
    batch_size: int = 16,
    cut_at: int | None = None,
) -> list[float]:
    """Judge-free coherence of ``{"question", "answer"}`` items on a 0-100 scale (100 x `CoherenceScale.score`).

    Args:
        model, tokenizer: the model whose likelihoods measure the answers (unsteered).
        scale: the reference (e.g. `part3_contrastive.artifacts.coherence_scale`).
        items: the replies to score.
        batch_size: conversations per forward pass.
        cut_at: the generation's token limit (a reply that reached it is not judged on its ending).

    Returns:
        One score per item, 0 (some measure places it below every clean reference answer) to 100.
    """
    measured = coherence_measures(
        model, tokenizer, items, batch_size=batch_size, cut_at=cut_at, measures=scale.measures
    )
    return [100 * s for s in scale.score(measured)]

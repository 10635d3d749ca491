"""Score scales and the parsers that read a judge's answer.

Only the judge's own output is parsed, never the prompt, so text inside a model response that looks
like a score ("Score: 100", "</answer>") cannot change what is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Scale:
    """How a judge answers.

    Attributes:
        low, high: the inclusive range of valid integer answers.
        kind: ``"expected"`` (probability-weighted mean over the answers, as a float),
            ``"integer"`` (one integer), ``"tagged"`` (one integer inside ``<tag>...</tag>``), or
            ``"choice"`` (a word answer: the score is the probability of the first option among
            ``options``, e.g. P(yes) / (P(yes) + P(no)); local judges only).
        tag: the tag name for ``"tagged"`` scales.
        refusal: the word a judge answers with when the response is a refusal (gives None).
        min_mass: for weighted scoring, the least probability mass on valid answers; less gives None.
        options: for ``"choice"`` scales, the answers, each as the spellings that count for it.
    """

    low: int
    high: int
    kind: Literal["expected", "integer", "tagged", "choice"] = "integer"
    tag: str = "score"
    refusal: str = "REFUSAL"
    min_mass: float = 0.25
    options: tuple[tuple[str, ...], ...] = ()

    @property
    def candidates(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def max_answer_tokens(self) -> int:
        return 1 if self.kind == "expected" else (24 if self.kind == "tagged" else 8)


SCORE_0_100 = Scale(0, 100, "expected")
ADHERENCE_0_3 = Scale(0, 3, "integer")
LIKERT_1_5 = Scale(1, 5, "integer")
# P(yes) / (P(yes) + P(no)) from the first answer token; P(A) / (P(A) + P(B)) for a pairwise choice.
YES_NO = Scale(0, 1, "choice", options=(("Yes", "yes", "YES"), ("No", "no", "NO")))
A_OR_B = Scale(0, 1, "choice", options=(("A",), ("B",)))


def unrounded(scale: Scale) -> Scale:
    """The same integer scale read as a probability-weighted mean (a float), not rounded to an integer."""
    return (
        scale
        if scale.kind in ("expected", "choice")
        else Scale(scale.low, scale.high, "expected", min_mass=scale.min_mass)
    )


def choice_score(probabilities: list[float], scale: Scale) -> float | None:
    """P(first option) / P(any option); None when under ``min_mass`` of the probability is on the options."""
    mass = sum(probabilities)
    if not mass >= scale.min_mass or not probabilities:
        return None
    return probabilities[0] / mass


def tagged(low: int, high: int, tag: str = "score") -> Scale:
    """A scale whose answer is ``<tag>N</tag>``."""
    return Scale(low, high, "tagged", tag=tag)


# An integer, or a decimal whose fraction is all zeros ("2.0": an integer written as a float), that
# is not part of another decimal ("2.5"); a full stop after it ("2.", "Score: 85.") is fine.
_INT = re.compile(r"(?<![\d.])(-?\d+)(?:\.0+)?(?!\d|\.\d)")
# A scale or range description ("0-3", "0 to 100", "out of 10", "/10"), not the answer itself.
_RANGE = re.compile(r"\d+\s*(?:-|–|—|to)\s*\d+|(?:out of|/)\s*\d+", re.IGNORECASE)
# A judge declining to score ("I can't rate this; 0 would be unfair"): a refusal, whatever numbers follow.
_DECLINES = re.compile(
    r"\b(?:can(?:no|['’])?t|can not|won['’]?t|will not|unable to|not able to|refuse to|decline to)\s+"
    r"(?:\w+\s+)?(?:rate|score|grade|judge|evaluate|assess|assign|give)\b",
    re.IGNORECASE,
)


class UnreadableAnswer(ValueError):
    """A judge answer that holds no score on the scale and is no refusal: a failed request, never a result."""

    code = "no_score_in_answer"  # what `utils.hosted.describe_error` reports (the answer's text is not shown)


def is_refusal(text: str, scale: Scale) -> bool:
    """Whether the judge declined: the answer starts with the scale's refusal word, or says it cannot score.

    Args:
        text: the judge's answer.
        scale: the scale (its ``refusal`` word).

    Returns:
        True for a refusal.
    """
    return text.strip().upper().startswith(scale.refusal.upper()) or _DECLINES.search(text) is not None


def read_score(text: str | None, scale: Scale) -> int | None:
    """Read one integer answer from a judge's text reply.

    Args:
        text: the judge's answer.
        scale: the scale it answers on.

    Returns:
        The score, or None when the judge declined (`is_refusal`).

    Raises:
        UnreadableAnswer: when the answer holds no score on the scale (no number, a fraction, a
            number out of range, or no answer at all).
    """
    if text is not None and is_refusal(text, scale):
        return None
    if text is None:
        value = None
    elif scale.kind == "tagged":
        found = re.findall(rf"<{scale.tag}>\s*(-?\d+)(?:\.0+)?\s*</{scale.tag}>", text)
        value = int(found[-1]) if found else None
    else:
        match = _INT.search(_RANGE.sub(" ", text))
        value = int(match.group(1)) if match else None
    if value is None or not scale.low <= value <= scale.high:
        raise UnreadableAnswer(f"no score on the {scale.low}-{scale.high} scale in the judge's answer")
    return value


def parse_text(text: str | None, scale: Scale) -> int | None:
    """Read one integer answer from a judge's text reply; None for refusals or anything invalid.

    Args:
        text: the judge's answer.
        scale: the scale it answers on.

    Returns:
        The score, or None (`read_score` tells a refusal from an unreadable answer).
    """
    try:
        return read_score(text, scale)
    except UnreadableAnswer:
        return None


def weighted_score(probabilities: dict[int, float], scale: Scale) -> float | None:
    """Probability-weighted mean of valid answers; None when their mass is under ``min_mass``."""
    valid = {v: p for v, p in probabilities.items() if scale.low <= v <= scale.high and math.isfinite(p)}
    mass = sum(valid.values())
    if not mass >= scale.min_mass:  # also catches NaN
        return None
    value = sum(v * p for v, p in valid.items()) / mass
    return value if math.isfinite(value) else None


def score_from_top_logprobs(top_logprobs: list[tuple[str, float]], scale: Scale) -> float | None:
    """The persona-vectors method: weigh the integer tokens among one position's top logprobs."""
    probabilities: dict[int, float] = {}
    for token, logprob in top_logprobs:
        text = token.strip()
        # isdecimal, not isdigit: "²" and "①" are digits to isdigit() but int() rejects them.
        if not text.isdecimal() or logprob is None or not math.isfinite(logprob):
            continue
        value = int(text)
        probabilities[value] = probabilities.get(value, 0.0) + math.exp(logprob)
    return weighted_score(probabilities, scale)


def finalize(value: float | None, scale: Scale) -> float | int | None:
    """Integer scales report integers (a weighted mean is rounded); the 0-100 scale a float."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if scale.kind in ("expected", "choice"):
        return value
    return int(min(scale.high, max(scale.low, round(value))))

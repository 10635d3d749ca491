"""The record dicts that travel between functions, as `TypedDict`s (plain dicts at run time).

Sections build these as dict literals and save them as JSON; the types only say which keys a
function reads and writes:

- `AnsweredQuestion`: a ``question`` and its ``response``: what
  ``part3_contrastive.scoring.score_responses`` reads (`ScoredResponse`: with the judge's scores);
  `ResponseRecord` adds the ``system_prompt``: what `utils.chat.records_to_conversations` reads.
- `RoleResponseRecord`: section 1's response under one role's system prompt.
- `ContrastiveRecord`: section 3's response under the positive or negative prompt of an instruction
  pair; `ScoredContrastiveRecord` after the judge added ``score`` and ``coherence``.
- `EffectivePair`: a (question, instruction pair) where both prompts worked, with both records.
- `TimingTotal`: one kind of work's tally in `utils.timing`.
- `JudgeScore`: one judge cache entry (an answer; failures are never cached).
"""

from __future__ import annotations

from typing import Literal, TypedDict

Polarity = Literal["pos", "neg"]

# A judge answer as cached and returned by `utils.judge.Judge`: a number, or None for no score.
JudgeScore = float | int | None


class AnsweredQuestion(TypedDict):
    """A question and the model's reply: what the judge scores (other keys pass through).

    Attributes:
        question: the user's question.
        response: the model's reply.
    """

    question: str
    response: str


class ResponseRecord(AnsweredQuestion):
    """A response and the conversation it came from: what `utils.chat.records_to_conversations` reads.

    Attributes:
        system_prompt: the system prompt it was generated under (None or "": none).
    """

    system_prompt: str | None


class Scores(TypedDict):
    """What the judge adds to a response record: trait score and coherence, 0-100 (None: no score)."""

    score: float | int | None
    coherence: float | int | None


class ScoredResponse(AnsweredQuestion, Scores):
    """A response record with its trait ``score`` and ``coherence`` (other keys pass through unchanged)."""


class RoleResponseRecord(ResponseRecord):
    """Section 1: a response under one role's system prompt.

    Attributes:
        role: the role's name (its file stem; ``default`` for the default persona).
        prompt_idx: which of the role's system prompts (``instruction`` entries).
        question_idx: which question.
    """

    role: str
    prompt_idx: int
    question_idx: int


class ContrastiveRecord(ResponseRecord):
    """Section 3: a response under the positive (trait) or negative (helpful) prompt of an instruction pair.

    Attributes:
        instruction_idx: which instruction pair of the trait file.
        polarity: ``pos`` (the trait's prompt) or ``neg`` (the helpful prompt).
    """

    instruction_idx: int
    polarity: Polarity


class ScoredContrastiveRecord(ContrastiveRecord, Scores):
    """A contrastive record after scoring (or prompt labelling): with ``score`` and ``coherence``."""


class EffectivePair(TypedDict):
    """Section 3: a question and instruction pair where the positive prompt showed the trait and the
    negative one did not, both coherently; the vectors are built from these."""

    question: str
    instruction_idx: int
    pos: ScoredContrastiveRecord
    neg: ScoredContrastiveRecord


class TimingTotal(TypedDict):
    """One kind of work's tally (`utils.timing`): wall seconds, tokens processed, timed blocks."""

    seconds: float
    tokens: int
    calls: int

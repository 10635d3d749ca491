"""The record dicts that travel between functions, as `TypedDict`s (plain dicts at run time).

Sections build these as dict literals and save them as JSON; the types only say which keys a
function reads and writes:

- `AnsweredQuestion`: a ``question`` and its ``response``: what
  ``utils.trait_scoring.score_responses`` reads (`ScoredResponse`: with the judge's scores);
  `ResponseRecord` adds the ``system_prompt``: what `utils.chat.records_to_conversations` reads.

Section 3's records (contrastive responses, effective pairs) live in `part3_contrastive.records`;
`utils.timing` owns its `TimingTotal`, and `utils.judge.cache` its `JudgeScore`.
"""

from __future__ import annotations

from typing import TypedDict


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

"""Section 3's record dicts, as `TypedDict`s (plain dicts at run time): contrastive responses and the
effective pairs built from them.

- `ContrastiveRecord`: a response under the positive or negative prompt of an instruction pair;
  `ScoredContrastiveRecord` after the judge (or the prompt labels) added ``score`` and ``coherence``.
- `EffectivePair`: a (question, instruction pair) where both prompts worked, with both records.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from utils.records import ResponseRecord, Scores

Polarity = Literal["pos", "neg"]


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

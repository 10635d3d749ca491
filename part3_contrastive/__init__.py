"""Section 3: contrastive prompting, extracting trait vectors.

The one owner of where section 3's data lives: every consumer (Sections 3 and 4, the tests and the
benchmarks) asks `trait_file` or the constants here, never spells the folders itself.
"""

from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parent / "data"
COHERENCE_PROMPT_FILE = DATA_DIR / "trait_response_coherence_prompt.txt"
"""The coherence judge of trait responses (0-100, the persona-vectors paper's rubric: language and structure
only); sections 3 and 4 use it. Section 2's capped replies have their own rubric
(`part2_capping.CAPPED_REPLY_COHERENCE_PROMPT_FILE`)."""
TRAIT_SPLITS = ("extract", "eval")


def trait_file(trait: str, split: Literal["extract", "eval"] = "extract") -> Path:
    """A trait's data file.

    Args:
        trait: the trait's name (e.g. ``"sycophantic"``).
        split: ``"extract"`` (instruction pairs, extraction questions and the judge prompt: builds the
            vectors) or ``"eval"`` (held-out questions).

    Returns:
        ``data/trait_data_<split>/<trait>.json``.

    Raises:
        ValueError: for an unknown split.
    """
    if split not in TRAIT_SPLITS:
        raise ValueError(f"split must be one of {TRAIT_SPLITS}, got {split!r}")
    return DATA_DIR / f"trait_data_{split}" / f"{trait}.json"


def trait_names() -> list[str]:
    """Every trait with extraction data, sorted."""
    return sorted(path.stem for path in (DATA_DIR / "trait_data_extract").glob("*.json"))


JUDGE_FREE_FILE = DATA_DIR / "judge_free_measures.json"
"""Per trait, a judge-free measure of it (how the reply opens: openers, unit, direction, check set);
read with `judge_free_measure` (a `utils.openings.OpeningMeasure` is built from an entry)."""


def judge_free_measure(trait: str) -> dict | None:
    """A trait's judge-free measure from `JUDGE_FREE_FILE` (None when it has none).

    Returns:
        The entry (``name``, ``unit``, ``openers``, ``direction``, ``check``, ``why``), with ``check`` made a
        path into ``data/``; `utils.openings.OpeningMeasure.from_data` turns it into a measure.
    """
    import json

    entry = json.loads(JUDGE_FREE_FILE.read_text(encoding="utf-8")).get(trait)
    return None if entry is None else {**entry, "check": DATA_DIR / entry["check"]}

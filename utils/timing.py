"""Where the time goes: wall time and token counts per kind of work (generation, capture, judge, load).

`timed("generation")` adds the time spent in its block to a per-process tally, and appends one line
to the file named by ``COURSE_TIMINGS_FILE`` when that variable is set (the course runner sets it for
the notebooks it runs, so `benchmarks/bench_course.py` can break a section's time down). Nested
blocks of the same kind count once.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import TypedDict

from utils import environment

TIMINGS_ENV = environment.TIMINGS_FILE


class TimingTotal(TypedDict):
    """One kind of work's tally (`utils.timing`): wall seconds, tokens processed, timed blocks."""

    seconds: float
    tokens: int
    calls: int


TOTALS: defaultdict[str, TimingTotal] = defaultdict(lambda: TimingTotal(seconds=0.0, tokens=0, calls=0))
_ACTIVE: set[str] = set()


class _Timer:
    def __init__(self) -> None:
        self.tokens = 0

    def add(self, tokens: int = 0) -> None:
        """Count tokens processed inside the block (prompt plus generated, or judged)."""
        self.tokens += tokens


@contextmanager
def timed(kind: str):
    """Time a block of work of one kind (nested blocks of the same kind count once).

    Args:
        kind: "generation", "prefill", "decode", "capture", "judge", "model load", ...

    Yields:
        A timer whose ``add(tokens=n)`` counts the tokens the block processed.
    """
    timer = _Timer()
    if kind in _ACTIVE:
        yield timer
        return
    _ACTIVE.add(kind)
    start = time.perf_counter()
    try:
        yield timer
    finally:
        _ACTIVE.discard(kind)
        seconds = time.perf_counter() - start
        total = TOTALS[kind]
        total["seconds"] += seconds
        total["tokens"] += timer.tokens
        total["calls"] += 1
        path = environment.setting(TIMINGS_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"kind": kind, "seconds": seconds, "tokens": timer.tokens}) + "\n")


def read_timings(path: str | os.PathLike) -> dict[str, TimingTotal]:
    """Sum a timings file by kind: {kind: {"seconds", "tokens", "calls"}}."""
    totals: defaultdict[str, TimingTotal] = defaultdict(lambda: TimingTotal(seconds=0.0, tokens=0, calls=0))
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            total = totals[entry["kind"]]
            total["seconds"] += entry["seconds"]
            total["tokens"] += entry["tokens"]
            total["calls"] += 1
    return dict(totals)

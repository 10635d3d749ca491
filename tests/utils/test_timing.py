"""utils.timing: per-kind tallies of wall time and tokens, nested blocks counted once, and the timings file."""

from __future__ import annotations

import time

import pytest

from utils import environment
from utils.timing import TOTALS, read_timings, timed


def test_a_block_adds_its_time_tokens_and_one_call_and_a_nested_block_of_its_kind_counts_once():
    kind = "test kind (timing)"
    before = dict(TOTALS[kind])
    with timed(kind) as outer:
        outer.add(tokens=3)
        with timed(kind) as inner:
            inner.add(tokens=100)  # counted by nobody: the outer block is the one timed
            time.sleep(0.02)
    after = TOTALS[kind]
    assert after["calls"] - before["calls"] == 1 and after["tokens"] - before["tokens"] == 3
    assert after["seconds"] - before["seconds"] >= 0.02


def test_a_block_that_raises_is_still_counted():
    kind = "test kind (raises)"
    calls = TOTALS[kind]["calls"]
    with pytest.raises(KeyError), timed(kind):
        raise KeyError("x")
    assert TOTALS[kind]["calls"] == calls + 1
    with timed(kind):  # and the kind is no longer marked active
        pass
    assert TOTALS[kind]["calls"] == calls + 2


def test_the_timings_file_gets_one_line_per_block_and_read_timings_sums_it_by_kind(tmp_path, monkeypatch):
    path = tmp_path / "timings.jsonl"
    assert read_timings(path) == {}
    monkeypatch.setenv(environment.TIMINGS_FILE, str(path))
    for tokens in (2, 5):
        with timed("judge") as timer:
            timer.add(tokens)
    with timed("decode"):
        pass
    totals = read_timings(path)
    assert set(totals) == {"judge", "decode"}
    assert totals["judge"]["calls"] == 2 and totals["judge"]["tokens"] == 7 and totals["judge"]["seconds"] >= 0
    assert totals["decode"] == {"seconds": totals["decode"]["seconds"], "tokens": 0, "calls": 1}

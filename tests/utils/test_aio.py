"""utils.aio: running a coroutine from sync code (also inside a running loop) and bounded gathering."""

from __future__ import annotations

import asyncio

import pytest

from utils.aio import gather_bounded, run_sync


def test_gather_bounded_keeps_input_order_and_never_exceeds_its_bound():
    running, peak = 0, 0

    async def work(item):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - item % 5))  # later items finish first
        running -= 1
        return item * 10

    result = asyncio.run(gather_bounded(work, list(range(12)), 3, "test"))
    assert result == [i * 10 for i in range(12)] and peak == 3
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="max_concurrency"):
            asyncio.run(gather_bounded(work, [1], bad, "test"))


def test_run_sync_works_outside_and_inside_a_running_loop():
    async def answer():
        await asyncio.sleep(0)
        return 42

    assert run_sync(answer) == 42

    async def inside():  # as in Jupyter: a loop is already running in this thread
        return run_sync(answer)

    assert asyncio.run(inside()) == 42


def test_run_sync_raises_the_coroutines_error():
    async def fails():
        raise KeyError("boom")

    async def inside():
        return run_sync(fails)

    with pytest.raises(KeyError, match="boom"):
        run_sync(fails)
    with pytest.raises(KeyError, match="boom"):
        asyncio.run(inside())

"""Running async API calls from sync code, including inside Jupyter's already-running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from utils.progress import tqdm

T = TypeVar("T")


def run_sync(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``coro_fn()`` to completion; in a worker thread when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


async def gather_bounded(
    fn: Callable[[Any], Awaitable[T]], items: Sequence[Any], max_concurrency: int, desc: str
) -> list[T]:
    """Apply ``fn`` to every item with at most ``max_concurrency`` in flight; results in input order."""
    semaphore = asyncio.Semaphore(max_concurrency)
    bar = tqdm(total=len(items), desc=desc, leave=False)

    async def one(item):
        async with semaphore:
            result = await fn(item)
        bar.update(1)
        return result

    try:
        return list(await asyncio.gather(*(one(item) for item in items)))
    finally:
        bar.close()

"""Running async API calls from sync code, including inside Jupyter's already-running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from utils.progress import tqdm

T = TypeVar("T")


def run_sync(coro_fn: Callable[[], Coroutine[Any, Any, T]], cancel_timeout: float = 10.0) -> T:
    """Run ``coro_fn()`` to completion; in a worker thread when an event loop is already running.

    In the worker-thread case (Jupyter), an interrupt of the calling thread (KeyboardInterrupt)
    cancels the work at once: requests in flight are cancelled and no new ones are sent.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())

    started = threading.Event()
    state: dict[str, Any] = {}

    def worker() -> T:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(coro_fn())
            state["loop"], state["task"] = loop, task
            started.set()
            return loop.run_until_complete(task)
        finally:
            started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(worker)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # interrupted while waiting: stop the work in the worker too
                started.wait(cancel_timeout)
                if "task" in state:
                    state["loop"].call_soon_threadsafe(state["task"].cancel)
                try:
                    future.result(timeout=cancel_timeout)
                except BaseException:
                    pass
            raise
    finally:
        pool.shutdown(wait=False)


async def gather_bounded(
    fn: Callable[[Any], Awaitable[T]], items: Sequence[Any], max_concurrency: int, desc: str
) -> list[T]:
    """Apply ``fn`` to every item with at most ``max_concurrency`` in flight; results in input order.

    Raises:
        ValueError: if ``max_concurrency`` is not a positive integer (0 would wait forever).
    """
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
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

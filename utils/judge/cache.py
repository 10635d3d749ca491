"""The judge's cache: answers on disk by (backend, URL, model, scale, prompt), saved as they arrive.

Only answers are cached (a number, or None for no score); failures never are, so they are sent again
on the next run. One file per backend kind (`utils.judge.judge.make_judge` puts it at
``<cache root>/judge/<backend>.json``); judges sharing one file, even in other processes, merge their
entries under a lock file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from utils.cache import write_atomic

log = logging.getLogger("utils.judge")

__all__ = ["JudgeCache", "JudgeScore", "answer_key", "read_cache"]

# A judge answer as cached and returned by `utils.judge.Judge`: a number, or None for no score.
JudgeScore = float | int | None


def answer_key(backend: Any, model_name: str, scale: Any, prompt: str) -> str:
    """The cache key of one answer: a hash of backend kind, model, base URL, scale and prompt.

    Args:
        backend: the judge backend (its ``name`` and, for a server, ``base_url``).
        model_name: the judge model's name.
        scale: the answer scale (its ``repr`` is part of the key).
        prompt: the judge prompt.
    """
    base_url = getattr(backend, "base_url", None)
    blob = json.dumps([backend.name, str(model_name), base_url, repr(scale), prompt])
    return hashlib.sha256(blob.encode()).hexdigest()


def read_cache(path: Path) -> dict[str, JudgeScore]:
    """A judge cache file's entries.

    Raises:
        RuntimeError: naming the file when it is not a readable JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RuntimeError(f"Judge cache {path} is corrupted ({err}); delete it to start afresh") from err
    if not isinstance(data, dict):
        raise RuntimeError(f"Judge cache {path} is not a JSON object; delete it to start afresh")
    return data


class JudgeCache:
    """Answers by key, in memory and (with a path) on disk.

    Args:
        path: a JSON file that remembers answers across runs (None: in memory only).
        save_every: seconds between saves while answers arrive (`save(force=True)` saves at once).
    """

    def __init__(self, path: str | Path | None = None, save_every: float = 1.0):
        self.path = Path(path) if path else None
        self.save_every = save_every
        self._entries: dict[str, JudgeScore] = {}
        self._unsaved: set[str] = set()
        self._lock = threading.Lock()
        self._last_save = 0.0
        if self.path and self.path.exists():
            self._entries = read_cache(self.path)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> JudgeScore:
        """The answer saved under ``key`` (None when there is none)."""
        return self._entries.get(key)

    def put(self, key: str, value: JudgeScore) -> None:
        """Remember one answer, and save if ``save_every`` seconds have passed since the last save."""
        with self._lock:
            self._entries[key] = value
            self._unsaved.add(key)
        self.save()

    def save(self, force: bool = False) -> None:
        """Write unsaved answers, merged with whatever another judge wrote to the same file meanwhile."""
        with self._lock:
            if not self.path or not self._unsaved:
                return
            if not force and time.monotonic() - self._last_save < self.save_every:
                return
            # Another process (a section running side by side) may save to the same file: read, merge and
            # write under a lock file, so neither overwrites answers the other saved since it last read.
            with FileLock(self.path.with_name(self.path.name + ".lock")):
                merged: dict[str, JudgeScore] = {}
                if self.path.exists():
                    try:
                        merged = read_cache(self.path)
                    except RuntimeError:
                        log.warning("judge cache %s was unreadable; rewriting it with this judge's entries", self.path)
                merged.update(self._entries)
                write_atomic(self.path, merged)
            self._entries = merged
            self._unsaved.clear()
            self._last_save = time.monotonic()

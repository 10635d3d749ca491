"""One caching helper for intermediate results: atomic, resumable, and loud about corruption."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

JSON_SUFFIXES = {".json"}
TENSOR_SUFFIXES = {".pt", ".pth"}


class CacheError(RuntimeError):
    """A cache file exists but cannot be read."""


def _read(path: Path) -> Any:
    if path.suffix in JSON_SUFFIXES:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return torch.load(path, map_location="cpu", weights_only=False)


def _write_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix in JSON_SUFFIXES:
                f.write(json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8"))
            else:
                torch.save(value, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_generate(
    path: str | os.PathLike,
    generate_fn: Callable[[], Any],
    description: str = "result",
    override: bool = False,
) -> Any:
    """Return the cached value at ``path``, or compute it with ``generate_fn`` and cache it.

    Args:
        path: cache file; ``.json`` for JSON-serialisable values, ``.pt`` for tensors or anything
            `torch.save` handles.
        generate_fn: computes the value when there is no cache (or ``override``).
        description: what the value is, for messages.
        override: recompute even if a cache exists (the old file is replaced only on success).

    Returns:
        The value.

    Raises:
        CacheError: if the cache file exists but is corrupted or truncated; the file is left in
            place and the message says how to regenerate it.
        ValueError: for an unsupported suffix.
    """
    path = Path(path)
    if path.suffix not in JSON_SUFFIXES | TENSOR_SUFFIXES:
        raise ValueError(f"Cache path {path} must end in .json, .pt or .pth")
    if path.exists() and not override:
        try:
            value = _read(path)
        except Exception as err:
            raise CacheError(
                f"Cached {description} at {path} is corrupted or truncated ({type(err).__name__}: {err}). "
                f"Delete the file or call with override=True to regenerate it."
            ) from err
        print(f"Loaded {description} from {path}")
        return value
    value = generate_fn()
    _write_atomic(path, value)
    print(f"Saved {description} to {path}")
    return value

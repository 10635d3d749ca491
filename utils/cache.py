"""One caching helper for intermediate results: keyed by what made them, atomic, loud about corruption.

`load_or_generate(path, fn, description, inputs=...)` stores the value at ``path`` and, beside it,
``<path>.meta.json`` with the inputs that produced it (profile, model, data file hashes, settings,
judge, the code of the functions that computed it) and when. A later call whose inputs differ
recomputes; every load prints one line saying what was loaded, from where, when it was made and with
which settings. ``override=True``, or ``COURSE_RECOMPUTE=<section>[,<section>]`` / ``all`` in the
environment, recomputes on purpose.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import torch

from utils import environment

if TYPE_CHECKING:
    from utils.profiles import Profile

JSON_SUFFIXES = {".json"}
TENSOR_SUFFIXES = {".pt", ".pth"}
RECOMPUTE_ENV = environment.RECOMPUTE


class CacheError(RuntimeError):
    """A cache file exists but cannot be read."""


def cache_root() -> Path:
    """The course's cache folder (``COURSE_CACHE_DIR``, default ``<repo>/.cache``)."""
    default = Path(__file__).resolve().parent.parent / ".cache"
    return Path(environment.setting(environment.CACHE_DIR) or default)


def section_cache(section: str, profile: Profile | str) -> Path:
    """The cache folder of one section under one profile (created): ``<cache root>/<profile>/<section>``."""
    path = cache_root() / getattr(profile, "name", str(profile)) / section
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read(path: Path) -> Any:
    if path.suffix in JSON_SUFFIXES:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_hook=_from_json_object)
    return torch.load(path, map_location="cpu", weights_only=True)


JSON_TAG = "__json__"  # marks what plain JSON cannot hold: a tuple, a dict with other keys than strings, nan/inf


def to_json(value: Any, where: str = "value") -> Any:
    """A copy of ``value`` in plain JSON that `_read` turns back into exactly ``value``.

    Tuples, dicts whose keys are not all strings, and non-finite floats (which JSON cannot hold and
    ``json`` would write as the invalid literal ``NaN``) are written as small tagged objects; numpy
    and torch scalars become Python numbers.

    Args:
        value: JSON-like data.
        where: how to name the value in an error message (keys are appended: ``value['a'][0]``).

    Returns:
        The plain-JSON form.

    Raises:
        TypeError: naming the key of the first item that JSON cannot hold (a tensor, an array, an object).
    """
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {JSON_TAG: "float", "value": repr(value)}
    if isinstance(value, tuple):
        return {JSON_TAG: "tuple", "items": [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and JSON_TAG not in value:
            return {k: to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
        for k in value:
            if not (k is None or isinstance(k, (str, bool, int, float, tuple))):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}, which JSON cannot hold")
        items = [[to_json(k, f"{where} key"), to_json(v, f"{where}[{k!r}]")] for k, v in value.items()]
        return {JSON_TAG: "dict", "items": items}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which JSON cannot hold (use a .pt cache file for tensors and arrays)"
    )


def _from_json_object(obj: dict) -> Any:
    kind = obj.get(JSON_TAG)
    if kind == "float":
        return float(obj["value"])
    if kind == "tuple":
        return tuple(obj["items"])
    if kind == "dict":
        return {k: v for k, v in obj["items"]}
    return obj


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable (use a .pt cache file for tensors)")


def write_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` to ``path`` (JSON for ``.json``, `torch.save` otherwise) so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in JSON_SUFFIXES:
        payload = json.dumps(value, indent=1, ensure_ascii=False, default=_json_default).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix in JSON_SUFFIXES:
                f.write(payload)
            else:
                torch.save(value, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def code_hash(fn: Callable) -> str:
    """A hash of a function's code (bytecode, constants, names, nested functions), not of its location.

    A student who changes an exercise function changes this hash, so a result cached with the
    function among its inputs is recomputed rather than silently reused.
    """
    digest = hashlib.sha256()

    def add(code) -> None:
        digest.update(code.co_code)
        digest.update(repr(code.co_names).encode())
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                add(const)
            else:
                digest.update(repr(const).encode())

    target = getattr(fn, "__func__", fn)
    if isinstance(target, type):  # a class: every method defined on it
        for name, member in sorted(vars(target).items()):
            if hasattr(member, "__code__"):
                digest.update(name.encode())
                add(member.__code__)
    else:
        add(target.__code__)
    return digest.hexdigest()[:16]


def file_hash(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's sha256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def value_hash(value: Any) -> str:
    """A content hash of a computed value (JSON-like data, tensors, arrays, or containers of them)."""
    digest = hashlib.sha256()

    def add(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            digest.update(f"tensor{tuple(item.shape)}{item.dtype}".encode())
            digest.update(item.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif hasattr(item, "to_dict") and hasattr(item, "columns"):  # a DataFrame
            add(item.to_dict("list"))
        elif isinstance(item, dict):
            digest.update(b"{")
            for key in sorted(item, key=str):
                digest.update(repr(key).encode())
                add(item[key])
            digest.update(b"}")
        elif isinstance(item, (list, tuple)):
            digest.update(b"[")
            for element in item:
                add(element)
            digest.update(b"]")
        elif hasattr(item, "tobytes"):  # numpy
            digest.update(item.tobytes())
        else:
            digest.update(repr(item).encode())

    add(value)
    return digest.hexdigest()[:16]


def cache_inputs(
    profile: Profile | str | None = None,
    model: str | None = None,
    judge=None,
    files: Iterable[str | os.PathLike] = (),
    code: Iterable[Callable] = (),
    data: dict[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The inputs a cached result depends on, in the form `load_or_generate` records and compares.

    Args:
        profile: the active profile (its name is recorded).
        model: the model's name.
        judge: a `utils.judge.Judge` (backend, judge model and server are recorded).
        files: data files the result was computed from (their content hashes are recorded).
        code: functions that computed it (their code hashes are recorded).
        data: earlier results it was computed from, by name (their content hashes are recorded), so
            a result is recomputed when what it was made from changed.
        **settings: any other setting that changes the result (sizes, layers, thresholds...).

    Returns:
        A JSON-ready dict.
    """
    inputs: dict[str, Any] = {}
    if profile is not None:
        inputs["profile"] = getattr(profile, "name", str(profile))
    if model is not None:
        inputs["model"] = str(model)
    if judge is not None:
        backend = judge.backend
        inputs["judge"] = {
            "backend": backend.name,
            "model": str(judge.model_name),
            "base_url": str(getattr(backend, "base_url", None)),
        }
    paths = [Path(f) for f in files]
    if paths:
        inputs["files"] = {f.name: file_hash(f) for f in paths}
    code = list(code)
    if code:
        inputs["code"] = {getattr(fn, "__qualname__", repr(fn)): code_hash(fn) for fn in code}
    if data:
        inputs["data"] = {name: value_hash(value) for name, value in data.items()}
    if settings:
        inputs["settings"] = settings
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


def meta_path(path: str | os.PathLike) -> Path:
    """Where the record of a cached result's inputs lives: ``<name>.meta.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


# What ``COURSE_RECOMPUTE`` may name besides the sections: everything, and the two stores shared by sections.
RECOMPUTE_ALSO = ("all", "generations", "activations")


def recompute_choices() -> tuple[str, ...]:
    """The values ``COURSE_RECOMPUTE`` takes (comma-separated): a section's package name, ``all``, or a store."""
    from utils.sections import SECTIONS

    return (*SECTIONS, *RECOMPUTE_ALSO)


def recompute_requested(path: str | os.PathLike) -> bool:
    """True when ``COURSE_RECOMPUTE`` names ``all`` or a folder on the cache file's path (a section).

    Raises:
        ValueError: naming the setting, the value and the valid ones, when it names something else (a typo
            such as ``part2`` would otherwise load the cached result it asks to recompute).
    """
    raw = environment.setting(RECOMPUTE_ENV) or ""
    wanted = {w.strip() for w in raw.split(",") if w.strip()}
    unknown = sorted(wanted - set(recompute_choices()))
    if unknown:
        raise ValueError(
            f"{RECOMPUTE_ENV}={raw!r} names {', '.join(repr(u) for u in unknown)}, which is not a section or store; "
            f"use one or more of {', '.join(recompute_choices())} (comma-separated)"
        )
    return bool(wanted) and ("all" in wanted or bool(wanted & set(Path(path).parts)))


def read_meta(path: str | os.PathLike) -> dict | None:
    """The record `load_or_generate` keeps beside a cached result (description, made, inputs), or None."""
    try:
        return json.loads(meta_path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _summary(inputs: dict | None) -> str:
    if not inputs:
        return "no recorded settings"
    parts = [f"{k}={v}" for k, v in inputs.items() if k not in ("code", "files", "settings", "data")]
    parts += [f"{k}={v}" for k, v in (inputs.get("settings") or {}).items()]
    if inputs.get("files"):
        parts.append("files=" + ",".join(inputs["files"]))
    return ", ".join(parts)


CACHE_LOG_NAME = "cache.log"


def cache_log_path() -> Path:
    """The cache's log (``<cache root>/cache.log``): every load and save, with its path and settings."""
    return cache_root() / CACHE_LOG_NAME


def log_cache_event(message: str) -> None:
    """Append one line to the cache log; a log that cannot be written never stops the course."""
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    try:
        path = cache_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")
    except OSError as err:
        warnings.warn(f"Could not write the cache log {cache_log_path()}: {err}", stacklevel=2)


def load_or_generate(
    path: str | os.PathLike,
    generate_fn: Callable[[], Any],
    description: str = "result",
    override: bool = False,
    inputs: dict[str, Any] | None = None,
) -> Any:
    """Return the cached value at ``path`` if it was made from the same inputs; else compute and cache it.

    Args:
        path: cache file; ``.json`` for JSON-serialisable values, ``.pt`` for tensors (and dicts, lists
            and tuples of tensors, numbers and strings).
        generate_fn: computes the value when there is no valid cache.
        description: what the value is, for messages.
        override: recompute even if a valid cache exists (the old file is replaced only on success).
        inputs: what the value depends on (see `cache_inputs`); a cache made from other inputs, or
            with none recorded, is recomputed. None: the file is trusted as it is.

    Returns:
        The value (also when it could not be saved: a warning says why).

    Raises:
        CacheError: if the cache file exists but is corrupted or truncated; the file is left in
            place and the message says how to regenerate it.
        ValueError: for an unsupported suffix.
    """
    path = Path(path)
    if path.suffix not in JSON_SUFFIXES | TENSOR_SUFFIXES:
        raise ValueError(f"Cache path {path} must end in .json, .pt or .pth")
    if inputs is not None:
        inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
    reason = None
    if override:
        reason = "override=True"
    elif recompute_requested(path):
        reason = f"{RECOMPUTE_ENV}={environment.setting(RECOMPUTE_ENV)}"
    if path.exists() and reason is None:
        meta = read_meta(path)
        recorded = (meta or {}).get("inputs")
        if inputs is not None and recorded != inputs:
            changes = _differences(recorded or {}, inputs) if recorded is not None else ["no inputs were recorded"]
            reason = "its inputs changed (" + "; ".join(changes)[:400] + ")"
        else:
            try:
                value = _read(path)
            except Exception as err:
                raise CacheError(
                    f"Cached {description} at {path} is corrupted or truncated ({type(err).__name__}: {err}). "
                    f"Delete the file or call with override=True to regenerate it."
                ) from err
            made = (meta or {}).get("made", "at an unknown time")
            # One short line in the notebook; the path and the settings go to the cache log.
            print(f"Loaded {description} from the course cache (made {made})")
            log_cache_event(f"loaded {description} from {path} (made {made}; {_summary(recorded)})")
            return value
    if reason and path.exists():
        print(f"Recomputing {description}: {reason}")
        log_cache_event(f"recomputing {description} at {path}: {reason}")
    value = generate_fn()
    try:
        write_atomic(path, to_json(value, description) if path.suffix in JSON_SUFFIXES else value)
        made = datetime.datetime.now().isoformat(timespec="seconds")
        write_atomic(meta_path(path), {"description": description, "made": made, "inputs": inputs})
    except Exception as err:  # the value is computed: never lose it because it could not be stored
        warnings.warn(
            f"Could not save {description} to {path} ({type(err).__name__}: {err}); returning it uncached.",
            stacklevel=2,
        )
        return value
    log_cache_event(f"saved {description} to {path} ({_summary(inputs)})")
    return value


class Provenance(TypedDict):
    """Where a saved result came from: its file, what it is, when it was made and from which inputs."""

    path: str
    description: str
    made: str
    inputs: dict[str, Any]


class Artifact(NamedTuple):
    """A result one section saved for others, with its provenance (unpacks as ``value, provenance``)."""

    value: Any
    provenance: Provenance


def load_artifact(path: str | os.PathLike, description: str) -> Artifact | None:
    """A saved result and its provenance (from its ``.meta.json``), or None when there is no file.

    Raises:
        CacheError: if the file exists but cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return None

    try:
        value = _read(path)
    except Exception as err:
        raise CacheError(
            f"Saved {description} at {path} is corrupted or truncated ({type(err).__name__}: {err})."
        ) from err
    meta = read_meta(path) or {}
    provenance = Provenance(
        path=str(path),
        description=meta.get("description", description),
        made=meta.get("made", "at an unknown time"),
        inputs=meta.get("inputs") or {},
    )
    print(f"Loaded {description} (made {provenance['made']})")
    log_cache_event(f"loaded {description} from {path} (made {provenance['made']}; {_summary(provenance['inputs'])})")
    return Artifact(value, provenance)

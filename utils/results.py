"""Each section's headline results: `record` writes them as a notebook runs, `summary_table` reads them.

A section's results live in ``<results folder>/<section>.json`` (``COURSE_RESULTS_DIR``, set by the
runner to ``outputs/<profile>/results``; default ``outputs/results``), with the profile that made
them under `PROFILE_KEY`, so the runner can refuse results made under another profile.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from utils import environment
from utils.cache import write_atomic
from utils.sections import ROOT

PROFILE_KEY = "_profile"


def results_folder() -> Path:
    """Where `record` writes (``COURSE_RESULTS_DIR``, default ``<repo>/outputs/results``)."""
    return Path(environment.setting(environment.RESULTS_DIR) or ROOT / "outputs" / "results")


class ResultsError(RuntimeError):
    """A section's results file exists but cannot be read; the message names it."""


def _load(path: Path) -> dict:
    """A results file's contents ({} when there is none).

    Raises:
        ResultsError: naming the file, when it is truncated or not a JSON object.
    """
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"The results file {path} is truncated or not JSON ({err})") from err
    if not isinstance(results, dict):
        raise ResultsError(f"The results file {path} holds a {type(results).__name__}, not a name -> value object")
    return results


def record(section: str, name: str, value: str | int | float, echo: bool = True) -> None:
    """Store one headline result of a section (read by the runner's summary table), atomically.

    Args:
        section: the section package name.
        name: what the value is (e.g. "PC1 variance explained").
        value: a number (floats are rounded to 4 decimals) or a short string.
        echo: print ``[result] name: value`` (False where the cell already shows the value, in a table).

    Raises:
        ValueError: for a value that is None or not a number or string.
        ResultsError: when the section's results file is damaged; it is left as it is, and the message
            names it and the value that was not recorded.
    """
    from utils.profiles import get_profile

    if value is None or not isinstance(value, (str, int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"record({name!r}, ...) needs a number or a short string as value, got {value!r}")
    folder = results_folder()
    path = folder / f"{section}.json"
    try:
        results = _load(path)
    except ResultsError as err:
        raise ResultsError(
            f"{err}. Nothing was written: {name} = {value!r} is not recorded, and the file is left as it is. "
            "Delete it (a run records every result again) and record again."
        ) from err
    results[PROFILE_KEY] = get_profile(verbose=False).name
    results[name] = value if isinstance(value, (str, int)) else round(float(value), 4)
    write_atomic(path, results)
    value = results[name]
    if isinstance(value, float) and not math.isfinite(value):
        print(
            f"[result] {name}: {value} -- NOT A NUMBER: nothing was measured; `python -m utils.expected --check` "
            "fails it (a judge that scored nothing, or a set it could not measure)"
        )
        return
    if echo:
        print(f"[result] {name}: {value}")


def read_results(results_dir: Path, section: str) -> dict:
    """A section's recorded results (empty when it recorded none).

    Args:
        results_dir: the results folder.
        section: the section package name.

    Returns:
        name -> value, with the profile under `PROFILE_KEY`.

    Raises:
        ResultsError: naming the file, when it is truncated or not JSON.
    """
    return _load(Path(results_dir) / f"{section}.json")


def summary_table(sections: list[str], results_dir: Path) -> str:
    """One table of every section's recorded headline results."""
    rows = [
        (section, name, value)
        for section in sections
        for name, value in read_results(results_dir, section).items()
        if name != PROFILE_KEY
    ]
    if not rows:
        return "(no results recorded)"
    width = max(len(s) for s, _, _ in rows), max(len(n) for _, n, _ in rows)
    lines = [f"{'section':<{width[0]}}  {'result':<{width[1]}}  value", "-" * (sum(width) + 12)]
    lines += [f"{s:<{width[0]}}  {n:<{width[1]}}  {v}" for s, n, v in rows]
    return "\n".join(lines)

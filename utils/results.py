"""Each section's headline results: `record` writes them as a notebook runs, `summary_table` reads them.

A section's results live in ``<results folder>/<section>.json`` (``COURSE_RESULTS_DIR``, set by the
runner to ``outputs/<profile>/results``; default ``outputs/results``), with the profile that made
them under `PROFILE_KEY`, so the runner can refuse results made under another profile.
"""

from __future__ import annotations

import json
from pathlib import Path

from utils import environment
from utils.sections import ROOT

PROFILE_KEY = "_profile"


def results_folder() -> Path:
    """Where `record` writes (``COURSE_RESULTS_DIR``, default ``<repo>/outputs/results``)."""
    return Path(environment.setting(environment.RESULTS_DIR) or ROOT / "outputs" / "results")


def record(section: str, name: str, value: str | int | float) -> None:
    """Store one headline result of a section (read by the runner's summary table).

    Args:
        section: the section package name.
        name: what the value is (e.g. "PC1 variance explained").
        value: a number (floats are rounded to 4 decimals) or a short string.
    """
    from utils.profiles import get_profile

    folder = results_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{section}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[PROFILE_KEY] = get_profile(verbose=False).name
    results[name] = value if isinstance(value, (str, int)) else round(float(value), 4)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    print(f"[result] {name}: {results[name]}")


def read_results(results_dir: Path, section: str) -> dict:
    """A section's recorded results (empty when it recorded none)."""
    path = Path(results_dir) / f"{section}.json"
    return json.loads(path.read_text()) if path.exists() else {}


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

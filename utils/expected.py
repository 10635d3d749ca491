"""Expected outputs: what the offline profile produces, committed per section and kept true by CI.

Each section's headline results (`utils.results.record`) from an offline run are committed as
``<section>/expected/offline.json``, each value with its tolerance. `utils.build_notebooks` shows
them in a collapsed "Expected output" block after the cell that records them (with the paper's figure
for the full profile, from ``<section>/expected/paper.json``, where one exists), and CI's offline run
compares its fresh results with them (`compare`): a drift beyond a tolerance, a result that vanished
or a new one fails, with the command that re-records them.

Usage:
    python -m utils.expected --check [--profile offline]     # compare outputs/<profile>/results with the files
    python -m utils.expected --record [--profile offline]    # write the files from outputs/<profile>/results
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import re
import sys
from pathlib import Path
from typing import TypedDict

from utils.results import PROFILE_KEY, read_results
from utils.sections import ROOT, SECTIONS

RECORD_COMMAND = "python -m utils.course --profile offline --record-expected"
# A value may move by the larger of these between machines and library versions; judge scores
# (0-100) and projections get the relative part, AUROCs and shares the absolute one.
ABSOLUTE_TOLERANCE = 0.02
RELATIVE_TOLERANCE = 0.05


class ExpectedValue(TypedDict):
    """One recorded headline result and how far a fresh run may move from it."""

    value: float | int | str
    tolerance: float | None  # None for strings and integers: they must match exactly


class ExpectedFile(TypedDict):
    profile: str
    recorded: str
    command: str
    results: dict[str, ExpectedValue]


def expected_path(section: str, profile: str = "offline", root: Path | None = None) -> Path:
    """``<section>/expected/<profile>.json``."""
    return (root or ROOT) / section / "expected" / f"{profile}.json"


def tolerance_for(value: float | int | str) -> float | None:
    """The stated tolerance of a recorded value (None: exact)."""
    if isinstance(value, (str, bool, int)):
        return None
    return round(max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(float(value))), 4)


def expected_from_results(results: dict, profile: str) -> ExpectedFile:
    """The expected file for one section's recorded results."""
    values = {
        name: ExpectedValue(value=v, tolerance=tolerance_for(v)) for name, v in results.items() if name != PROFILE_KEY
    }
    return ExpectedFile(
        profile=profile, recorded=datetime.date.today().isoformat(), command=RECORD_COMMAND, results=values
    )


def _not_finite(value: object) -> bool:
    """True for a float NaN or infinity (a result nothing can be compared with)."""
    return isinstance(value, float) and not math.isfinite(value)


def _entry_problem(entry: object) -> str | None:
    """Why one result's entry in an expected file is unusable (None when it is fine)."""
    if not isinstance(entry, dict) or not {"value", "tolerance"} <= set(entry):
        return "its value or tolerance is missing"
    value, tol = entry["value"], entry["tolerance"]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"its value {value!r} is not a number or a string"
    if _not_finite(value):
        return f"its value is {value!r}, not a number it can be compared with; re-record it from a run that measured it"
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0
    ):
        return f"its tolerance {tol!r} is not a number >= 0 (or null for an exact match); write it without quotes"
    return None


def load_expected(section: str, profile: str = "offline", root: Path | None = None) -> ExpectedFile | None:
    """A section's committed expected results, or None when none are committed.

    Raises:
        ValueError: naming the file, when it is not a valid expected file.
    """
    path = expected_path(section, profile, root)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        results = data["results"]
        if not isinstance(results, dict):
            raise TypeError(f"'results' holds a {type(results).__name__}, not a name -> entry object")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid expected-results file ({type(err).__name__}: {err})") from err
    problems = [f"result {name!r}: {why}" for name, entry in results.items() if (why := _entry_problem(entry))]
    if problems:
        raise ValueError(f"{path} is not a valid expected-results file: " + "; ".join(problems))
    return data


def record_expected(sections: list[str], results_dir: Path, profile: str, root: Path | None = None) -> list[Path]:
    """Write each section's expected file from a run's results folder; returns the files written.

    A result in the committed file that the run did not record (a cell that did not run, in a partial
    run) is kept, with its committed value and tolerance, and named on the output; delete it from the
    file by hand if no cell records it any more.

    Raises:
        ValueError: when a section recorded no results, or recorded them under another profile, or recorded
            a value that is not a number (NaN or infinite), naming the results file and the result. Nothing
            is written then.
    """
    planned = []
    for section in sections:
        source = results_dir / f"{section}.json"
        results = read_results(results_dir, section)
        if results.get(PROFILE_KEY) != profile:
            raise ValueError(
                f"{source}: no results recorded under profile {profile!r} "
                f"(found {results.get(PROFILE_KEY)!r}); run the course on {profile} first"
            )
        bad = [name for name, value in results.items() if _not_finite(value)]
        if bad:
            raise ValueError(
                f"{source}: {', '.join(repr(n) for n in bad)} recorded as {results[bad[0]]!r}, not a number; "
                "nothing was recorded as expected. Find why the run measured nothing, and run it again."
            )
        expected = expected_from_results(results, profile)
        try:
            previous = load_expected(section, profile, root)
        except ValueError as err:
            print(f"{section}: replacing a committed file that cannot be read ({err})")
            previous = None
        kept = [name for name in (previous or {"results": {}})["results"] if name not in expected["results"]]
        if previous is not None and kept:
            fresh_values = expected["results"]
            merged = {name: fresh_values.get(name, entry) for name, entry in previous["results"].items()}
            expected["results"] = {**merged, **fresh_values}
            print(
                f"{section}: kept {len(kept)} committed expected result(s) that this run did not record: "
                + ", ".join(repr(n) for n in kept)
                + " (delete them from the file by hand if no cell records them any more)"
            )
        planned.append((expected_path(section, profile, root), expected))
    written = []
    for path, expected in planned:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def compare(expected: ExpectedFile, fresh: dict) -> list[str]:
    """Every way a fresh run's results differ from the expected ones beyond tolerance (empty: they agree)."""
    problems = []
    fresh = {k: v for k, v in fresh.items() if k != PROFILE_KEY}
    for name, entry in expected["results"].items():
        if name not in fresh:
            problems.append(f"{name!r}: expected {entry['value']!r}, but the run did not record it")
            continue
        got, want, tol = fresh[name], entry["value"], entry["tolerance"]
        if _not_finite(got) or _not_finite(want):
            problems.append(f"{name!r}: expected {want!r}, got {got!r}: a result that is not a number always fails")
            continue
        if tol is None or isinstance(got, str) or isinstance(want, str):
            if got != want:
                problems.append(f"{name!r}: expected {want!r}, got {got!r}")
        elif abs(float(got) - float(want)) > tol:
            problems.append(f"{name!r}: expected {want} ± {tol}, got {got}")
    for name in sorted(set(fresh) - set(expected["results"])):
        problems.append(f"{name!r}: recorded by the run ({fresh[name]!r}) but not expected")
    return problems


def check_sections(
    sections: list[str], results_dir: Path, profile: str = "offline", root: Path | None = None
) -> list[str]:
    """Compare a run's results with every section's committed file; one message per problem."""
    problems = []
    for section in sections:
        expected = load_expected(section, profile, root)
        if expected is None:
            problems.append(
                f"{section}: no {expected_path(section, profile, root).relative_to(root or ROOT)} committed"
            )
            continue
        problems += [f"{section}: {p}" for p in compare(expected, read_results(results_dir, section))]
    return problems


def _record_name_patterns(code: str) -> list[re.Pattern]:
    """Patterns for the names a cell records with ``course.record(<name>, ...)`` (f-strings: their fixed parts)."""
    patterns: list[re.Pattern] = []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return patterns
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"):
            continue
        if not node.args:
            continue
        name = node.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            patterns.append(re.compile(re.escape(name.value) + r"\Z"))
        elif isinstance(name, ast.JoinedStr):
            # A field stands for a value such as a label or a number, never a clause of its own: it stops
            # at a comma ("(block {b}), {condition}" must not claim "(block 12, text only), capped").
            parts = [re.escape(str(p.value)) if isinstance(p, ast.Constant) else r"[^,]+?" for p in name.values]
            patterns.append(re.compile("".join(parts) + r"\Z"))
    return patterns


def names_recorded_by(code: str, names: list[str]) -> list[str]:
    """The expected result names (in file order) that a cell's ``course.record`` calls produce."""
    patterns = _record_name_patterns(code)
    return [n for n in names if any(p.match(n) for p in patterns)]


def claim_names(cells: list[str], names: list[str], where: str) -> list[list[str]]:
    """The expected names each code cell owns: every name by exactly one cell, every recording cell some.

    Args:
        cells: the source's code cells, in order.
        names: the expected result names of the section.
        where: the source file, for error messages.

    Returns:
        Per cell, the names (in file order) its ``course.record`` calls produce.

    Raises:
        ValueError: naming the cells and the name, when a name is claimed by two cells (make the names
            distinguishable, or record it once). A recording cell that owns no expected result is not
            an error here: see `unrecorded_cells`.
    """
    claims = [names_recorded_by(code, names) for code in cells]
    owners: dict[str, list[int]] = {}
    for i, owned in enumerate(claims):
        for name in owned:
            owners.setdefault(name, []).append(i)
    shared = {name: cells_ for name, cells_ in owners.items() if len(cells_) > 1}
    if shared:
        raise ValueError(
            f"{where}: each expected result must belong to one cell, but "
            + "; ".join(f"{name!r} is recorded by code cells {cells_}" for name, cells_ in shared.items())
            + ". Give the records distinct names, or record the result once."
        )
    return claims


NOT_RECORDED_OFFLINE = "# expected: this cell records only where the offline run does not reach it"
"""A comment that marks a recording cell the offline run skips (e.g. a hosted judge's cells): no expected
result can own it, and `unrecorded_cells` does not ask for one."""


def unrecorded_cells(cells: list[str], claims: list[list[str]]) -> list[int]:
    """The code cells that call ``course.record`` but own no expected result (new records, not yet recorded),
    except those marked `NOT_RECORDED_OFFLINE`."""
    return [
        i
        for i, code in enumerate(cells)
        if _record_name_patterns(code) and not claims[i] and NOT_RECORDED_OFFLINE not in code
    ]


def expected_block(names: list[str], expected: ExpectedFile, paper: dict[str, str]) -> str:
    """The collapsed markdown block shown after a cell that records results."""
    rows = []
    for name in names:
        entry = expected["results"][name]
        tol = "exact" if entry["tolerance"] is None else f"± {entry['tolerance']:g}"
        rows.append(f"| {name} | {entry['value']} | {tol} |")
    lines = [
        "<details><summary>Expected output</summary>",
        "",
        f"On the `{expected['profile']}` profile (recorded {expected['recorded']} by `{expected['command']}`; "
        "CI checks that every fresh offline run stays within these tolerances):",
        "",
        "| result | value | tolerance |",
        "|---|---|---|",
        *rows,
    ]
    notes = [text for key, text in paper.items() if any(n.startswith(key) for n in names)]
    if notes:
        lines += ["", "On the `full` profile, the papers report:", "", *[f"- {t}" for t in notes]]
    return "\n".join(lines + ["", "</details>"])


def load_paper_figures(section: str, root: Path | None = None) -> dict[str, str]:
    """``<section>/expected/paper.json``: result-name prefix -> the paper's figure, with its source."""
    path = (root or ROOT) / section / "expected" / "paper.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare or record the sections' expected results.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="compare a run's results with the committed files")
    mode.add_argument("--record", action="store_true", help="write the committed files from a run's results")
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--results", default=None, help="results folder (default outputs/<profile>/results)")
    args = parser.parse_args(argv)
    results_dir = Path(args.results or ROOT / "outputs" / args.profile / "results")
    if args.record:
        for path in record_expected(list(SECTIONS), results_dir, args.profile):
            print(f"wrote {path.relative_to(ROOT)}")
        print("Now regenerate the notebooks: python -m utils.build_notebooks")
        return 0
    problems = check_sections(list(SECTIONS), results_dir, args.profile)
    if problems:
        print(f"The {args.profile} run's results differ from the expected outputs in the notebooks:")
        for problem in problems:
            print(f"  {problem}")
        print(f"If the change is intended, re-record them: {RECORD_COMMAND} (then python -m utils.build_notebooks)")
        return 1
    print(f"Every section's {args.profile} results match the expected outputs (within their tolerances).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The course runner (the README's main job) and the headline-result recorder notebooks call.

``python -m utils.course [--profile P] [--sections 1,3]`` executes the solutions notebooks under a
profile, writes each executed notebook and its HTML export under ``outputs/``, and prints one table
of every section's headline results. A failing cell is named (section and cell) and the sections
that finished are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_ENV = "COURSE_RESULTS_DIR"
SECTION_BY_NUMBER = {
    "1": "part1_assistant_axis",
    "2": "part2_capping",
    "3": "part3_contrastive",
    "4": "part4_steering",
}


def record(section: str, name: str, value) -> None:
    """Store one headline result of a section (read by the runner's summary table).

    Args:
        section: the section package name.
        name: what the value is (e.g. "PC1 variance explained").
        value: a number or short string.
    """
    folder = Path(os.environ.get(RESULTS_ENV, ROOT / "outputs" / "results"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{section}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = value if isinstance(value, (str, int)) else round(float(value), 4)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    print(f"[result] {name}: {results[name]}")


def _failing_cell(nb) -> tuple[int, str]:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return i, f"{out.get('ename')}: {out.get('evalue')} (cell starts: {first_line[:60]!r})"
    return -1, "unknown"


def run_section(section: str, out_dir: Path, timeout: int = 3600) -> tuple[bool, str, float]:
    """Execute one solutions notebook; save it (even when it fails) and its HTML export."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    path = ROOT / "chapters" / f"{section}_solutions.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    ok, message = True, "ok"
    try:
        client.execute()
    except CellExecutionError:
        ok = False
        index, error = _failing_cell(nb)
        message = f"failed in cell {index}: {error}"
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    return ok, message, time.perf_counter() - start


def summary_table(sections: list[str], results_dir: Path) -> str:
    """One table of every section's recorded headline results."""
    rows = []
    for section in sections:
        path = results_dir / f"{section}.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        for name, value in results.items():
            rows.append((section, name, value))
    if not rows:
        return "(no results recorded)"
    width = max(len(s) for s, _, _ in rows), max(len(n) for _, n, _ in rows)
    lines = [f"{'section':<{width[0]}}  {'result':<{width[1]}}  value", "-" * (sum(width) + 12)]
    lines += [f"{s:<{width[0]}}  {n:<{width[1]}}  {v}" for s, n, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(description="Run the course's solutions notebooks under a profile.")
    parser.add_argument(
        "--profile", default=None, help="full, lite, offline, tiny or auto (default: COURSE_PROFILE or auto)"
    )
    parser.add_argument("--sections", default="1,2,3,4", help="comma-separated section numbers, e.g. 1,3")
    parser.add_argument("--out", default=str(ROOT / "outputs"), help="where executed notebooks and HTML go")
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["COURSE_PROFILE"] = args.profile
    sys.path.insert(0, str(ROOT))
    from utils.profiles import get_profile

    profile = get_profile()
    os.environ["COURSE_PROFILE"] = profile.name
    out_dir = Path(args.out) / profile.name
    results_dir = out_dir / "results"
    os.environ[RESULTS_ENV] = str(results_dir)
    try:
        sections = [SECTION_BY_NUMBER[s.strip()] for s in args.sections.split(",")]
    except KeyError as err:
        parser.error(f"--sections: unknown section {err}; use numbers 1-4")
    failures = []
    start = time.perf_counter()
    for section in (bar := tqdm(sections, desc="course", unit="section")):
        bar.set_postfix(section=section)
        (results_dir / f"{section}.json").unlink(missing_ok=True)
        ok, message, seconds = run_section(section, out_dir)
        tqdm.write(f"{section}: {message} ({seconds:.0f}s) -> {out_dir / (section + '_solutions.html')}")
        if not ok:
            failures.append(f"{section}: {message}")
    print(f"\nProfile {profile.name}; wall time {time.perf_counter() - start:.0f}s\n")
    print(summary_table(sections, results_dir))
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

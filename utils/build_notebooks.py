"""Generate each section's notebooks and solutions module from its one source file.

Source: ``<section>/source.py``, jupytext percent format. Cells tagged ``exercise`` hold the
functions students write, with the solution body between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` lines; cells tagged ``module`` hold code the solutions module needs too (imports,
constants). Everything else is shared by both notebooks.

Outputs, per section:
- ``chapters/<section>_exercises.ipynb``: solution bodies replaced by ``raise NotImplementedError(...)`` naming the function to write,
  each followed by a collapsed solution dropdown;
- ``chapters/<section>_solutions.ipynb``: the solutions in place;
- ``solutions/<section>.py``: the ``module`` and ``exercise`` cells, importable by ``tests.py``.

Usage: ``python -m utils.build_notebooks [--check] [--sections part3_contrastive ...]``
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from utils import environment
from utils.expected import (
    RECORD_COMMAND,
    claim_names,
    expected_block,
    expected_path,
    load_expected,
    load_paper_figures,
    unrecorded_cells,
)
from utils.sections import REPOSITORY, ROOT, SECTIONS, repository_url

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write {name} (replace this line with your code, run this cell, then its check)")'
HEADER_WORDS = ("Difficulty", "Importance")
SETUP_MARKER = "# COURSE SETUP"

SETUP_CELL = """# Set-up: the same generated cell in every notebook (see utils/notebook.py).
try:
    from utils.notebook import setup_section
except ModuleNotFoundError:  # Colab: fetch the course and install it as a local clone is installed
    import os, site, subprocess, sys

    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("The course is not installed: run `pip install -r requirements.txt -e .` in its folder.")
    if not os.path.exists("persona-course"):  # {clone_setting} (tests only) clones another copy instead
        url = os.environ.get("{clone_setting}") or "{repository_url}"
        subprocess.run(["git", "clone", "--depth=1", url, "persona-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "persona-course"], check=True)
    site.addsitedir(site.getsitepackages()[0])  # make the fresh install importable in this running kernel
    from utils.notebook import setup_section

# `course` holds the profile, this section's cache folder (course.cache) and course.record(...), which
# keeps a headline result. course.inputs(...) names what a cached result is made of (profile, model,
# data, settings, your functions' code): change any of them and the result is recomputed, never reused.
course = setup_section("{section}")
profile = course.profile"""


class SourceError(ValueError):
    """A section source breaks the format; the message names file and cell."""


def exercise_names(code: str) -> list[str]:
    """Top-level functions and classes defined in a cell."""
    return [n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


def _strip_markers(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if line.strip() not in (BEGIN, END))


def _enclosing_names(code: str) -> dict[int, str]:
    """Line number (1-based) -> the dotted name of the innermost function or class whose body holds it."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                for line in range(child.lineno, (child.end_lineno or child.lineno) + 1):
                    names[line] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(code), "")
    return names


def _stub(code: str, where: str) -> str:
    """The exercise cell with each solution block replaced by a stub naming the function (or method) to write."""
    out, inside, indent = [], False, ""
    enclosing = _enclosing_names(code)
    for number, line in enumerate(code.splitlines(), start=1):
        if line.strip() == BEGIN:
            if inside:
                raise SourceError(f"{where}: nested {BEGIN}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB.format(name=enclosing.get(number, 'the code'))}")
        elif line.strip() == END:
            if not inside:
                raise SourceError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SourceError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def _solution_dropdown(code: str) -> str:
    return f"<details><summary>Solution</summary>\n\n```python\n{code}\n```\n\n</details>"


def _new_cell(kind: str, source: str, tags: list[str] | None = None):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    cell.pop("id", None)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def _notebook(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = cells
    nb.nbformat_minor = 4
    return nb


def build_section(section: str, strict: bool = True) -> dict[Path, str]:
    """Render one section's generated files: path -> text.

    Args:
        section: the section package.
        strict: a cell that records results with no expected output, or an expected result no cell
            records, is an error (``--check``, as in CI). Otherwise it is a warning, so the notebooks
            can be built and run to record them.

    Raises:
        SourceError: naming the file and cell, for a source that breaks the format.
    """
    src = ROOT / section / "source.py"
    source_nb = jupytext.reads(src.read_text(encoding="utf-8"), fmt="py:percent")
    ex_cells, sol_cells, module_parts = [], [], []
    last_markdown = ""
    expected = load_expected(section, "offline", ROOT)
    expected_names = list(expected["results"]) if expected else []
    paper = load_paper_figures(section, ROOT)
    code_cells = [c.source if c.cell_type == "code" else "" for c in source_nb.cells]  # a claim's index is the cell's
    try:
        claims = claim_names(code_cells, expected_names, f"{src.relative_to(ROOT)}")
    except ValueError as err:
        raise SourceError(str(err)) from err
    problems = []
    if expected and (silent := unrecorded_cells(code_cells, claims)):
        problems.append(
            f"{src.relative_to(ROOT)}: code cells {silent} record results, but none is in the expected outputs"
        )
    for i, cell in enumerate(source_nb.cells):
        where = f"{src.relative_to(ROOT)} cell {i}"
        tags = list(cell.metadata.get("tags", []))
        text = cell.source
        if cell.cell_type == "markdown":
            last_markdown = text
            ex_cells.append(_new_cell("markdown", text))
            sol_cells.append(_new_cell("markdown", text))
            continue
        if text.strip() == SETUP_MARKER:
            text = SETUP_CELL.format(
                section=section, repository_url=repository_url(), clone_setting=environment.CLONE_URL
            )
        if "exercise" in tags:
            if not all(w in last_markdown for w in HEADER_WORDS):
                raise SourceError(f"{where}: an exercise must follow a markdown header with {HEADER_WORDS}")
            if not exercise_names(_strip_markers(text)) or BEGIN not in text:
                raise SourceError(f"{where}: an exercise cell must define a function and mark its solution")
            solution = _strip_markers(text)
            ex_cells.append(_new_cell("code", _stub(text, where), ["exercise"]))
            ex_cells.append(_new_cell("markdown", _solution_dropdown(solution)))
            sol_cells.append(_new_cell("code", solution, ["exercise"]))
            module_parts.append(solution)
        else:
            if BEGIN in text:
                raise SourceError(f"{where}: solution markers outside an exercise cell")
            ex_cells.append(_new_cell("code", text, tags))
            sol_cells.append(_new_cell("code", text, tags))
            if "module" in tags:
                module_parts.append(text)
            if expected and claims[i]:
                block = expected_block(claims[i], expected, paper)
                ex_cells.append(_new_cell("markdown", block))
                sol_cells.append(_new_cell("markdown", block))
    shown = {name for owned in claims for name in owned}
    unshown = [n for n in expected_names if n not in shown]
    if unshown:
        problems.append(
            f"{expected_path(section, 'offline', ROOT).relative_to(ROOT)}: no cell of {src.relative_to(ROOT)} records {unshown}"
        )
    if problems:
        message = "; ".join(problems) + f". Re-record the expected results ({RECORD_COMMAND})"
        if strict:
            raise SourceError(message)
        print(f"WARNING (--check fails until this is fixed): {message}", file=sys.stderr)
    header = f'"""Solutions for {section}. Generated from {section}/source.py by `python -m utils.build_notebooks`; do not edit."""\n\n'
    module = header + "\n\n\n".join(p.strip() for p in module_parts) + "\n"
    return {
        ROOT / "chapters" / f"{section}_exercises.ipynb": nbformat.writes(_notebook(ex_cells)) + "\n",
        ROOT / "chapters" / f"{section}_solutions.ipynb": nbformat.writes(_notebook(sol_cells)) + "\n",
        ROOT / "solutions" / f"{section}.py": _format_python(module),
    }


def _format_python(code: str) -> str:
    """ruff-format generated code so it passes the linters like hand-written code.

    Args:
        code: the generated module's text.

    Returns:
        The formatted text.

    Raises:
        RuntimeError: when ruff is not installed or cannot format the code (unformatted output would
            fail ``--check`` and the linters later, far from the cause).
    """
    import subprocess

    try:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--stdin-filename", "solutions/x.py", "-"],
            input=code,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    except FileNotFoundError as err:
        raise RuntimeError(f"Could not run ruff with {sys.executable}: {err}") from err
    if done.returncode != 0:
        missing = "No module named ruff" in done.stderr
        reason = "ruff is not installed (pip install ruff)" if missing else done.stderr.strip()[-2000:]
        raise RuntimeError(f"Formatting the generated solutions module failed: {reason}")
    return done.stdout


def readme_with_repository(text: str) -> str:
    """The README with every Colab badge pointing at `utils.sections.REPOSITORY`."""
    return re.sub(
        r"colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/",
        f"colab.research.google.com/github/{REPOSITORY}/blob/",
        text,
    )


def generated_files(sections: list[str], strict: bool = True) -> dict[Path, str]:
    """Every generated file's path and text: each section's notebooks and module, and the README's badges."""
    files: dict[Path, str] = {}
    for section in sections:
        files.update(build_section(section, strict))
    readme = ROOT / "README.md"
    if readme.exists():
        files[readme] = readme_with_repository(readme.read_text(encoding="utf-8"))
    return files


def available_sections() -> list[str]:
    return [s for s in SECTIONS if (ROOT / s / "source.py").exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any generated file is out of date")
    parser.add_argument("--sections", nargs="*", default=None)
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated_files(args.sections or available_sections(), strict=args.check).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("Generated files differ from their sources (run python -m utils.build_notebooks):")
        for path in stale:
            print(f"  {path}")
        return 1
    if args.check:
        print("Generated files match their sources.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a few cells of a section's ``source.py`` in a namespace of stand-ins, to test what a
notebook cell prints without loading a model."""

from __future__ import annotations

import contextlib
import io

import jupytext

from utils.build_notebooks import ROOT


def code_cells(section: str) -> list[str]:
    """The code cells of a section's source, in order."""
    nb = jupytext.reads((ROOT / section / "source.py").read_text(encoding="utf-8"), fmt="py:percent")
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def cells_between(section: str, first: str, last: str) -> list[str]:
    """The code cells from the one containing ``first`` to the one containing ``last`` (inclusive)."""
    cells = code_cells(section)
    start = next(i for i, c in enumerate(cells) if first in c)
    end = next(i for i, c in enumerate(cells) if i >= start and last in c)
    return cells[start : end + 1]


def run_cells(cells: list[str], namespace: dict) -> str:
    """Execute the cells in ``namespace`` and return what they printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in cells:
            exec(compile(cell, "<source cell>", "exec"), namespace)
    return out.getvalue()

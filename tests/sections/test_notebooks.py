"""Every notebook runs, under the ``tiny`` profile (random tiny models): this proves the notebooks'
mechanics, not their results.

- Solutions notebooks run end to end on tiny models in JupyterLab (``tests/test_jupyterlab.py``, in a real
  browser) and through the instructors' command, ``COURSE_PROFILE=tiny pytest --nbmake
  chapters/*_solutions.ipynb``, which CI runs after the suite; no third run here.
- Exercises notebooks, with every stub filled from solutions/, run end to end (so their calls and
  checks are proven to run); as shipped they stop at the first exercise with NotImplementedError.

The real-model proof is the course runner on the offline model (``python -m utils.course --profile
offline``, run by CI after pytest); instructors can also run the solutions notebooks on a real model
with ``COURSE_PROFILE=offline pytest --nbmake chapters/*_solutions.ipynb``. The profile reaches each
kernel through ``monkeypatch``, so no later test sees it.
"""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from utils import environment
from utils.build_notebooks import ROOT, available_sections, exercise_names

CHAPTERS = ROOT / "chapters"

pytestmark = pytest.mark.notebook


def fill_stubs(nb, section: str):
    """After each exercise cell, import the reference implementation under the same names."""
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            names = ", ".join(exercise_names(cell.source))
            cell.source += f"\n\nfrom solutions.{section} import {names}  # filled by the test runner"
    return nb


def execute(nb, timeout: int = 1800, **client_options):
    """Run a notebook in a fresh kernel that imports this checkout's code (even if another clone is installed).

    ``client_options`` go to `nbclient.NotebookClient` (e.g. its ``on_cell_execute`` hook).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # No widgets, as in the runner's kernels: panels print their table and bars are text. nbclient can block
    # forever on a cell that opens widget comms (jupyter/nbclient#312: the kernel idle, the client still
    # waiting; seen once here, on section 4's panel under the lite profile). Widgets are tested where a front
    # end draws them: tests/test_jupyterlab.py in a real browser, tests/sections/test_panels.py in-process.
    env.update({environment.NO_WIDGETS: "1", environment.PLAIN_PROGRESS: "1"})
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(CHAPTERS)}}, **client_options
    )
    client.execute(env=env)


@pytest.mark.parametrize("section", available_sections())
def test_exercises_notebook_runs_with_stubs_filled(section, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    nb = fill_stubs(nbformat.read(CHAPTERS / f"{section}_exercises.ipynb", as_version=4), section)
    execute(nb)


@pytest.mark.parametrize("section", available_sections())
def test_exercises_notebook_as_shipped_stops_at_first_exercise(section, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    nb = nbformat.read(CHAPTERS / f"{section}_exercises.ipynb", as_version=4)
    first = next(c for c in nb.cells if "exercise" in c.metadata.get("tags", []))
    # The student reads which exercise to write, not a bare NotImplementedError.
    with pytest.raises(CellExecutionError, match=f"Exercise: write {exercise_names(first.source)[0]}"):
        execute(nb, timeout=600)

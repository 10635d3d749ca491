"""A fresh virtual environment with chosen package versions, and the notebook code a student runs first:
shared by the Colab simulation (``test_colab.py``) and the requirement floors (``test_requirement_floors.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

from utils.build_notebooks import ROOT

# The local CPU wheel: an unpinned torch would download GBs of CUDA.
LOCAL_TORCH = "torch==2.13.0"


def fresh_venv(folder: Path, pins: list[str]) -> tuple[str, subprocess.CompletedProcess]:
    """A virtual environment in ``folder`` that sees this machine's packages, with ``pins`` installed over them.

    Args:
        folder: where the environment is made (created).
        pins: ``name==version`` requirements installed in it (with the local torch).

    Returns:
        (its python executable, the pip install's completed process: the caller asserts on its return code).
    """
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, LOCAL_TORCH],
        capture_output=True,
        text=True,
    )
    return python, install


def installed(python: str, name: str) -> str:
    """The version of ``name`` installed for ``python`` (empty when it is not installed)."""
    return subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"], capture_output=True, text=True
    ).stdout.strip()


def cells_to_first_check(section: str = "part1_assistant_axis") -> str:
    """The solutions notebook's code, from the set-up cell to the first exercise's check, as one script."""
    nb = nbformat.read(ROOT / "chapters" / f"{section}_solutions.ipynb", as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    exercise = next(i for i in code if "exercise" in nb.cells[i].metadata.get("tags", []))
    check = next(i for i in code if i > exercise)
    if not nb.cells[code[0]].source.startswith("# Set-up"):
        raise ValueError(f"{section}: the first code cell is not the set-up cell")
    return "\n\n".join(nb.cells[i].source for i in code if i <= check)

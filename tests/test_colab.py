"""Colab, simulated: the generated set-up cell run the way a student runs it in a fresh Colab runtime.

A fresh virtual environment gets Colab's versions of the packages the course shares with it
(``tests/colab/colab_versions.txt``: transformers 5.15.0, below the course's floor, and ipywidgets 7.7.1),
``google.colab`` is importable (a stub module), and the course is not installed. From an empty folder,
section 1's set-up cell clones the course (from this checkout's HEAD, through ``COURSE_CLONE_URL``, a
setting students never need), installs it, installs what Colab lacks and leaves what it has, imports, and
prints the profile and judge it picks; then section 1's cells up to the first exercise check run, and a
live panel is built and moved on Colab's ipywidgets 7.7.1.

What it cannot prove (the README's Colab section): Colab's Python 3.13 (this runs 3.11), Colab's CUDA
torch (the local CPU torch 2.13.0 stands in), Colab's front end drawing the widgets, and the install
of packages Colab lacks but this machine has (the environment sees this machine's packages, so those
count as present). It needs the package registry.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fresh_venv import cells_to_first_check, fresh_venv, installed
from utils import environment
from utils.build_notebooks import ROOT

HERE = Path(__file__).resolve().parent
VERSIONS = HERE / "colab" / "colab_versions.txt"

# Run before the cell: no course on the path (this machine's editable install of it is hidden), and
# google.colab imported, as in a Colab runtime where the notebook was opened from its badge.
PRELUDE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in repr(h)]
sys.path[:] = [p for p in sys.path if "__editable__" not in p and p != {root!r}]
sys.path_importer_cache.clear()
for name in [m for m in sys.modules if m.startswith("__editable__")]:  # or the clone's install reuses it
    del sys.modules[name]
try:
    import utils.notebook
except ModuleNotFoundError:
    print("course not installed")
else:
    raise SystemExit("the course is importable before the set-up cell ran: " + utils.notebook.__file__)
import google.colab
"""

# After section 1's cells: a live panel built and moved on Colab's ipywidgets.
PANEL = """
import ipywidgets, transformers, torch
import utils.panels as panels
panels.in_kernel = lambda: True
panel = panels.show_panel([panels.Control("x", "x", [1, 2, 3])], lambda x: f"view x={x}")
panel.inputs["x"].value = 3
print("panel moved on ipywidgets", ipywidgets.__version__)
print("versions:", "transformers", transformers.__version__, "torch", torch.__version__)
print("course imported from", panels.__file__)
"""


def pins(path: Path = VERSIONS) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


@pytest.mark.offline_model
@pytest.mark.xdist_group("colab")
def test_colab_set_up_cell_in_a_fresh_runtime(tmp_path):
    python, setup = fresh_venv(tmp_path / "venv", pins())
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert installed(python, "transformers") == "5.15.0" and installed(python, "ipywidgets") == "7.7.1"
    stub = tmp_path / "stub" / "google" / "colab"  # a namespace package `google`, as google.protobuf shares it
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""A stand-in for Colab\'s module: its presence means Colab."""\n')
    (stub / "output.py").write_text("def enable_custom_widget_manager():\n    print('custom widget manager on')\n")
    student = tmp_path / "content"  # Colab's empty working folder
    student.mkdir()
    script = tmp_path / "colab_notebook.py"
    script.write_text(PRELUDE.format(root=str(ROOT)) + cells_to_first_check("part1_assistant_axis") + "\n" + PANEL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_") and k != "PYTHONPATH"}
    env.update({"PYTHONPATH": str(tmp_path / "stub"), environment.CLONE_URL: ROOT.as_uri()})
    run = subprocess.run([python, str(script)], cwd=student, env=env, capture_output=True, text=True, timeout=1500)
    out = run.stdout
    assert run.returncode == 0, f"{out[-3000:]}\n{run.stderr[-4000:]}"
    assert out.startswith("course not installed")
    assert (student / "persona-course" / "requirements.txt").exists(), "the cell did not clone the course"
    assert "Profile: offline" in out or "profile: offline" in out.lower(), out[:2000]
    assert "local" in out.lower(), "the judge it picks is printed"
    assert "role_eval_template passed" in out
    # What Colab lacks is installed (transformers up to the course's floor); what it has is left alone.
    transformers = installed(python, "transformers")
    assert tuple(int(x) for x in transformers.split(".")[:2]) >= (5, 17), transformers
    assert installed(python, "ipywidgets") == "7.7.1" and installed(python, "torch").startswith("2.13.0")
    assert "panel moved on ipywidgets 7.7.1" in out
    assert f"course imported from {student / 'persona-course' / 'utils' / 'panels.py'}" in out

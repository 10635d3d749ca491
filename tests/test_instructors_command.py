"""The README's command for instructors, run as written: ``COURSE_PROFILE=offline pytest --nbmake
chapters/*_solutions.ipynb`` executes every solutions notebook on the real offline model.

It takes as long as the offline course (CI runs the course itself, ``python -m utils.course --profile
offline``, and the same command on the ``tiny`` profile in ``.ci/run``), so it is in the ``slow`` set:
``pytest -m slow tests/test_instructors_command.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from utils.build_notebooks import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.notebook, pytest.mark.offline_model]


def test_instructors_command_on_the_offline_profile():
    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "chapters").glob("*_solutions.ipynb"))
    assert len(notebooks) == 4
    env = {
        **os.environ,
        "COURSE_PROFILE": "offline",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_WORKER_COUNT", None)
    # pytest --nbmake chapters/*_solutions.ipynb, from the checkout (pyproject's options apply, as for an instructor).
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbmake", *notebooks], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout, run.stdout[-2000:]

"""The cost markers: ``-m "not offline_model and not notebook"`` (the fast suite) leaves out every test
that uses the offline model or executes a notebook, and a test that does either unmarked fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = "not offline_model and not notebook"

PROBES = """\
import pytest


@pytest.fixture
def built_on_the_model(offline_model):
    return offline_model


def test_asks_for_the_model(offline_model):
    pass


def test_asks_through_another_fixture(built_on_the_model):
    pass


def test_plain():
    pass


def test_loads_the_model_unmarked():
    import utils.offline_model

    utils.offline_model.converted_model_dir()


def test_runs_a_notebook_unmarked():
    import nbformat
    from nbclient import NotebookClient

    NotebookClient(nbformat.v4.new_notebook()).execute()
"""


def pytest_in(folder: Path, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *args],  # in this process: no workers
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
    )
    return result.stdout + result.stderr


def test_model_tests_are_marked_through_fixtures_and_unmarked_costs_fail(tmp_path):
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests")
    (tmp_path / "tests" / "test_probes.py").write_text(PROBES)
    out = pytest_in(tmp_path, "-q", "-rf", "-m", FAST)
    assert "2 failed, 1 passed, 2 deselected" in out, out  # the two model tests, and nothing else
    assert "test_loads_the_model_unmarked loads the offline model but is not marked 'offline_model'" in out, out
    assert "test_runs_a_notebook_unmarked executes a notebook but is not marked 'notebook'" in out, out


def test_fast_selection_of_this_repository_leaves_out_the_model_notebooks_and_slow_runs(tmp_path):
    (tmp_path / "dump_selection.py").write_text(
        "import json, os\n\n\n"
        "def pytest_collection_finish(session):\n"
        "    rows = [[i.nodeid, list(getattr(i, 'fixturenames', ())), [m.name for m in i.iter_markers()]]\n"
        "            for i in session.items]\n"
        "    with open(os.environ['SELECTION_OUT'], 'w') as f:\n"
        "        json.dump(rows, f)\n"
    )
    selection = tmp_path / "selection.json"
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "SELECTION_OUT": str(selection)}
    out = pytest_in(ROOT, "--collect-only", "-q", "-p", "dump_selection", "-m", FAST, env=env)
    assert selection.exists(), out
    rows = json.loads(selection.read_text())
    assert len(rows) > 100, out
    assert not [nodeid for nodeid, fixtures, _ in rows if "offline_model" in fixtures]
    assert not [nodeid for nodeid, _, marks in rows if {"slow", "notebook", "offline_model"} & set(marks)]
    assert not [nodeid for nodeid, _, _ in rows if nodeid.startswith("tests/sections/test_notebooks.py")]

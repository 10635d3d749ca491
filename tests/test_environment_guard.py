"""The environment guard in conftest.py fails a test that leaks a variable, and lets monkeypatch through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_that_leaks_an_environment_variable_fails(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tests / "test_leaks.py").write_text(
        "import os\n"
        "def test_leaks():\n    os.environ['COURSE_PROFILE'] = 'tiny'\n"
        "def test_sees_clean_environment():\n    assert os.environ.get('COURSE_PROFILE') == 'offline'\n"
        "def test_monkeypatch_is_fine(monkeypatch):\n    monkeypatch.setenv('COURSE_PROFILE', 'tiny')\n"
    )
    env = {**os.environ, "COURSE_PROFILE": "offline", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    out = result.stdout
    assert "test_leaks.py::test_leaks left environment variables changed: ['COURSE_PROFILE']" in out, out
    assert "3 passed, 1 error" in out, out  # reported at the leaking test's teardown; the next test saw it repaired

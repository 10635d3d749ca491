"""Every floor in requirements.txt is one the course works with: a fresh virtual environment gets the
lowest version each ``>=`` line allows (the rest of the requirements come from this machine's
environment through ``--system-site-packages``, and torch stays the local 2.13.0 wheel: an unpinned torch
would download GBs of CUDA), then section 1's cells up to its first exercise check run in it on the
offline model, from a cold course cache, so the GGUF model is converted by the floor's transformers
(``GgufConfig`` appeared in 5.17). The hosted judges' clients are built too (openai before 1.55.3 breaks
on httpx 0.28).

It needs the package registry (pip installs the floors).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.fresh_venv import cells_to_first_check, fresh_venv
from utils.build_notebooks import ROOT

FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)")


def floors(requirements: Path = ROOT / "requirements.txt") -> list[str]:
    """``name==version`` for every ``name>=version`` line."""
    pins = []
    for line in requirements.read_text().splitlines():
        found = FLOOR.match(line.split("#")[0].strip())
        if found:
            pins.append(f"{found.group(1)}=={found.group(2)}")
    return pins


def test_floors_parsed():
    pins = dict(p.split("==") for p in floors())
    assert pins["transformers"] == "5.17" and "torch" not in pins


# Its own worker's (``--dist loadgroup``): it loads the offline model in a process of its own.
@pytest.mark.offline_model
@pytest.mark.xdist_group("floors")
def test_section_1_runs_on_the_requirement_floors(tmp_path):
    pins = floors()
    python, install = fresh_venv(tmp_path / "venv", pins)
    assert install.returncode == 0, f"the floors do not install together: {pins}\n{install.stderr[-3000:]}"
    script = tmp_path / "section1.py"
    script.write_text(
        cells_to_first_check("part1_assistant_axis")
        + "\n\nimport anthropic, openai, transformers\nopenai.OpenAI(api_key='x'); anthropic.Anthropic(api_key='x')"
        + "\nprint('transformers', transformers.__version__)\n"
    )
    env = {
        **os.environ,
        "COURSE_PROFILE": "offline",
        "COURSE_CACHE_DIR": str(tmp_path / "cache"),  # cold: the GGUF model is converted by these versions
        "COURSE_RESULTS_DIR": str(tmp_path / "results"),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run([python, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"section 1 fails on the floors {pins}:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    versions = dict(p.split("==") for p in pins)
    assert f"transformers {versions['transformers']}" in run.stdout, run.stdout[-1000:]
    assert "role_eval_template passed" in run.stdout

"""utils.progress: text bars when the course runner asks for them (COURSE_PLAIN_PROGRESS), else tqdm.auto's."""

from __future__ import annotations

import os
import subprocess
import sys

from utils import environment
from utils.sections import ROOT


def _bar_module(plain: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != environment.PLAIN_PROGRESS}
    if plain is not None:
        env[environment.PLAIN_PROGRESS] = plain
    env["PYTHONPATH"] = str(ROOT)
    code = "from utils.progress import tqdm; print(tqdm.__module__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_runner_gets_text_bars_and_everyone_else_tqdm_auto():
    from tqdm.auto import tqdm as auto

    assert _bar_module("1") == "tqdm.std"
    assert _bar_module(None) == auto.__module__ != "tqdm.std"
    assert _bar_module("") == auto.__module__, "an empty value counts as unset"

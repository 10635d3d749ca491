"""utils.progress: text bars when the course runner asks for them (COURSE_PLAIN_PROGRESS), else tqdm.auto's;
transformers' own loading bars silenced only inside the block."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from transformers.utils import logging as transformers_logging

from utils import environment
from utils.progress import transformers_bars_off
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


def test_transformers_bars_are_off_inside_the_block_and_restored_after_it_even_after_an_error():
    assert transformers_logging.is_progress_bar_enabled()
    with transformers_bars_off():
        assert not transformers_logging.is_progress_bar_enabled()
    assert transformers_logging.is_progress_bar_enabled()
    with pytest.raises(RuntimeError), transformers_bars_off():
        raise RuntimeError("a load that fails")
    assert transformers_logging.is_progress_bar_enabled()


def test_bars_switched_off_before_the_block_stay_off():
    transformers_logging.disable_progress_bar()
    try:
        with transformers_bars_off():
            pass
        assert not transformers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()


def test_a_widget_bar_that_does_not_stay_is_hidden_not_closed():
    """A closed widget shows "Error displaying widget: model not found" if the front end had not drawn it yet."""
    from tqdm.notebook import tqdm as notebook_tqdm

    from utils.progress import WidgetBar

    plain = notebook_tqdm(total=2, leave=False)  # tqdm's own: closing the bar closes its widget
    plain.update(2)
    plain.close()
    assert plain.container.comm is None
    ours = WidgetBar(total=2, leave=False)
    ours.update(2)
    ours.close()
    assert ours.container.comm is not None and ours.container.layout.display == "none"

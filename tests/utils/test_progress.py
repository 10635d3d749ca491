"""Progress bars: transformers' own loading bars are silenced only inside the block."""

from __future__ import annotations

import pytest
from transformers.utils import logging as transformers_logging

from utils.progress import transformers_bars_off


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

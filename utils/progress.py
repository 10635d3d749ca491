"""Progress bars: widgets in Jupyter, plain text when the course runner relays a notebook's output.

``COURSE_PLAIN_PROGRESS=1`` (set by `utils.course` for the kernels it starts) selects text bars, which
reach the runner's terminal as the notebook prints them; otherwise `tqdm.auto` picks what fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from utils import environment

if environment.setting(environment.PLAIN_PROGRESS):
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm


@contextmanager
def transformers_bars_off() -> Iterator[None]:
    """Silence transformers' own progress bars (loading weights, writing shards) inside the block.

    They last a few seconds, and a notebook stores a widget bar as its first frame ("Loading weights: 0%").
    The previous setting is restored on exit, whatever happens inside.
    """
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


__all__ = ["tqdm", "transformers_bars_off"]

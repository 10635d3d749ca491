"""Progress bars: widgets in Jupyter, plain text when the course runner relays a notebook's output.

``COURSE_PLAIN_PROGRESS=1`` (set by `utils.course` for the kernels it starts) selects text bars, which
reach the runner's terminal as the notebook prints them; otherwise `tqdm.auto` picks what fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.notebook import tqdm as notebook_tqdm

from utils import environment


class WidgetBar(notebook_tqdm):
    """tqdm's notebook bar whose ``leave=False`` hides the widget instead of closing it.

    A closed widget is gone from the kernel: a bar that finishes before the front end has drawn it (a step
    read from a cache) then shows "Error displaying widget: model not found" in JupyterLab. Hidden, it simply
    takes no room.
    """

    def display(self, msg=None, pos=None, close=False, bar_style=None, check_delay=True):
        if close and getattr(self, "container", None) is not None:
            self.container.layout.display = "none"
            return None
        return super().display(msg, pos, close=close, bar_style=bar_style, check_delay=check_delay)


if environment.setting(environment.PLAIN_PROGRESS):
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm as _auto

    # In a notebook tqdm.auto is the widget bar: use the one that hides instead of closing.
    tqdm = WidgetBar if issubclass(_auto, notebook_tqdm) else _auto


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


__all__ = ["WidgetBar", "tqdm", "transformers_bars_off"]

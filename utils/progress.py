"""Progress bars: widgets in Jupyter, plain text when the course runner relays a notebook's output.

``COURSE_PLAIN_PROGRESS=1`` (set by `utils.course` for the kernels it starts) selects text bars, which
reach the runner's terminal as the notebook prints them; otherwise `tqdm.auto` picks what fits.
"""

from __future__ import annotations

from utils import environment

if environment.setting(environment.PLAIN_PROGRESS):
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["tqdm"]

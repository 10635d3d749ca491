"""What a stored notebook output must not hold: the plumbing a student should never have to read.

A cell prints what the student learns from. `noise_problems` finds, in an executed notebook's stored text
outputs, what `utils.reports --check` refuses (CI runs it on the offline run): a progress bar frozen at 0%,
a path of this machine (the checkout, the course cache, the home folder or a temporary folder), more than
`MAX_CACHE_LINES` lines about the cache, more than one line about the stores in one cell, and a departure from the method not written by `utils.departures`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

MAX_CACHE_LINES = 5
MAX_MACHINE_PATHS = 3
FROZEN_BAR = re.compile(r"(?<![\d.])0%\|")  # a bar stored at its first frame ("Loading weights:   0%|")
CACHE_LINE = re.compile(r"^(Loaded |Saved |Recomputing )")  # the course cache's loads, saves and recomputations
STORE_LINE = re.compile(r"read from earlier runs|read from the activation store")  # the reply and activation stores
SHOUTED_DEPARTURE = re.compile(r"DEPARTURE FROM THE METHOD")


def machine_roots() -> list[str]:
    """Folders whose absolute paths must not appear in a stored output (the checkout, the cache, the temp and home folders)."""
    from utils.cache import cache_root

    roots = {
        str(Path(__file__).resolve().parent.parent),
        str(cache_root().resolve()),
        tempfile.gettempdir(),
        str(Path.home()),
    }
    return sorted(r for r in roots if len(r) > 1)


def _text_lines(nb: Any) -> list[tuple[int, str]]:
    """(code cell number, line) for every line of every stored text output."""
    lines = []
    code_cells = (c for c in nb.cells if c.get("cell_type") == "code")
    for number, cell in enumerate(code_cells, 1):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            text += output.get("data", {}).get("text/plain", "") if output.get("data") else ""
            text = text if isinstance(text, str) else "".join(text)
            lines += [(number, line) for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    return lines


def noise_problems(nb: Any, roots: list[str] | None = None) -> list[str]:
    """What a student would read as plumbing in an executed notebook.

    Args:
        nb: the executed notebook (nbformat).
        roots: folders whose paths count as this machine's (default: `machine_roots`).

    Returns:
        One message per problem, naming the code cell (empty: the outputs read clean).
    """
    roots = machine_roots() if roots is None else roots
    lines = _text_lines(nb)
    problems = [
        f"code cell {n}: a progress bar stored at 0%: {line.strip()[:80]!r}"
        for n, line in lines
        if FROZEN_BAR.search(line)
    ]
    problems += [
        f"code cell {n}: {line.strip()[:100]!r} is not written by utils.departures"
        for n, line in lines
        if SHOUTED_DEPARTURE.search(line)
    ]
    paths = [(n, line) for n, line in lines if any(root in line for root in roots)]
    if len(paths) > MAX_MACHINE_PATHS:
        problems += [
            f"{len(paths)} lines name a path of this machine (at most {MAX_MACHINE_PATHS}), first in code cell "
            f"{paths[0][0]}: {paths[0][1].strip()[:100]!r}"
        ]
    cache = [(n, line) for n, line in lines if CACHE_LINE.search(line.strip())]
    if len(cache) > MAX_CACHE_LINES:
        problems += [
            f"{len(cache)} lines about the cache (at most {MAX_CACHE_LINES}), in code cells "
            + ", ".join(str(n) for n in sorted({n for n, _ in cache}))
        ]
    stores: dict[int, int] = {}
    for n, line in lines:
        if STORE_LINE.search(line):
            stores[n] = stores.get(n, 0) + 1
    problems += [
        f"code cell {n}: {count} lines about the reply or activation store (at most one a cell)"
        for n, count in stores.items()
        if count > 1
    ]
    return problems

"""The executed notebooks and HTML reports the runner writes for readers, and the check that they read well.

`save_report` writes an executed notebook and its HTML export with its progress bars collapsed: a
bar redrawn with carriage returns (one redraw per decoded token; nested bars also move the cursor up)
keeps only what a terminal would finally show, and a bar that cleared itself (``leave=False``)
leaves nothing. The runner relays the
bars to the terminal as they run; the live notebook shows them as widgets.

``python -m utils.reports --check outputs/offline`` opens every ``<section>_solutions.html`` there in
headless Chromium with no network, counts the figures plotly drew (``.js-plotly-plot`` holding an
``svg.main-svg``) and compares them with the figures the executed notebook made (outputs carrying
``application/vnd.plotly.v1+json``), checks that no cell's stored output holds more than
`MAX_PROGRESS_LINES` progress lines, and saves a screenshot ``<section>_solutions.png`` next to it. An
executed notebook without its HTML report, a report without its notebook, or a notebook that cannot be
read (truncated) is a FAILED line naming the file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
MAX_PROGRESS_LINES = 10  # a few finished bars, one final line each; never a line per redraw
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The screenshot: a 1280-wide window 60,000 pixels tall (a whole section), at half scale (640 x 30,000).
SCREENSHOT_WINDOW, SCREENSHOT_SCALE = (1280, 60000), 0.5
# A tqdm bar as a reader sees it: "45%|####  | 18/40 [00:03<00:04, 5.1it/s]" or "18it [00:03, 5.1it/s]".
PROGRESS_LINE = re.compile(r"\d+%\||\|\s*\d+/\d+\s*\[|\d+it \[|\d+(?:\.\d+)?\s*(?:it/s|s/it)")
# A browser shows a stored "\r" as a line break (HTML turns CR into LF), as nbconvert's export does.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
TERMINAL_CONTROL = re.compile(r"\r|\n|\x1b\[(\d*)A")


def _as_a_terminal_shows(text: str) -> str:
    """What a terminal finally shows of ``text``: a carriage return goes back to the line's start and a
    cursor-up (how tqdm redraws a nested bar on the line below) to the line above, and what is written
    there overwrites what was. A line a bar left blank (``leave=False``) goes."""
    if "\r" not in text and "\x1b[" not in text:
        return text
    lines, redrawn = [""], set()
    row = col = 0
    at = 0
    for control in TERMINAL_CONTROL.finditer(text + "\n"):
        chunk = text[at : control.start()]
        at = control.end()
        if chunk:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + chunk + line[col + len(chunk) :]
            col += len(chunk)
        if at > len(text):
            break
        if control.group() == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif control.group() == "\r":
            col = 0
            redrawn.add(row)
        else:
            row, col = max(0, row - int(control.group(1) or 1)), 0
            redrawn.add(row)
    last = len(lines) - 1
    return "".join(
        (line.rstrip() if i in redrawn else line) + ("\n" if i < last else "")
        for i, line in enumerate(lines)
        if line.strip() or i not in redrawn
    )


def collapse_progress(nb: Any) -> Any:
    """Merge each code cell's stream outputs by stream (stdout, stderr) and keep what a terminal would show.

    A kernel sends a redrawn bar as many small stream messages, interleaved with printed lines; the
    merged stream is what a terminal shows. Streams are merged only between a cell's other outputs
    (figures, tables), so text printed after a figure stays after it. A stream left empty is dropped.
    Changes ``nb`` in place.
    """
    for cell in nb.cells:
        if cell.get("cell_type") != "code" or not cell.get("outputs"):
            continue
        outputs: list[Any] = []
        streams: dict[str, Any] = {}
        for output in cell.outputs:
            if output.get("output_type") != "stream":
                outputs.append(output)
                for merged in streams.values():
                    merged["text"] = _as_a_terminal_shows(merged["text"])
                streams = {}  # text after this output is merged anew, below it
            elif output["name"] in streams:
                streams[output["name"]]["text"] += output["text"]
            else:
                streams[output["name"]] = output
                outputs.append(output)
        for output in streams.values():
            output["text"] = _as_a_terminal_shows(output["text"])
        cell.outputs = [o for o in outputs if o.get("output_type") != "stream" or o["text"]]
    return nb


def export_html(nb: Any) -> str:
    """The notebook's HTML export, as the runner writes it (nbconvert's default template)."""
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(nb)
    return html


def save_report(nb: Any, path: Path) -> tuple[Path, Path]:
    """Write an executed notebook (progress collapsed) to ``path`` and its HTML export next to it.

    Returns:
        (notebook path, HTML path).
    """
    import nbformat

    collapse_progress(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    html_path = path.with_suffix(".html")
    html_path.write_text(export_html(nb), encoding="utf-8")
    return path, html_path


def notebook_figures(nb: Any) -> int:
    """How many plotly figures the executed notebook made (outputs carrying plotly's json)."""
    return sum(
        PLOTLY_MIME in output.get("data", {})
        for cell in nb.cells
        if cell.get("cell_type") == "code"
        for output in cell.get("outputs", [])
    )


def progress_lines(text: str) -> int:
    """How many lines of ``text``, as a browser shows it, are progress bars."""
    return sum(bool(PROGRESS_LINE.search(line)) for line in LINE_BREAK.split(text))


def progress_problems(nb: Any, limit: int = MAX_PROGRESS_LINES) -> list[tuple[int, int]]:
    """(code cell number, progress lines) for every code cell whose stored text outputs hold more than ``limit``."""
    problems = []
    code_cells = (c for c in nb.cells if c.get("cell_type") == "code")
    for number, cell in enumerate(code_cells, 1):
        texts = [o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
        texts += [o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])]
        count = sum(progress_lines(t if isinstance(t, str) else "".join(t)) for t in texts)
        if count > limit:
            problems.append((number, count))
    return problems


def find_chromium() -> str | None:
    """The path of an installed Chromium (or Chrome), or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class _DrawnFigures(HTMLParser):
    """Counts ``.js-plotly-plot`` elements holding an ``svg.main-svg`` (what plotly builds when it draws)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.plot_depth: int | None = None  # depth of the open plot element
        self.plot_drawn = False
        self.plots = 0
        self.drawn = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self.plot_depth is None and "js-plotly-plot" in classes:
            self.plot_depth, self.plot_drawn = self.depth, False
            self.plots += 1
        elif self.plot_depth is not None and tag == "svg" and "main-svg" in classes and not self.plot_drawn:
            self.plot_drawn = True
            self.drawn += 1
        if tag not in self.VOID:
            self.depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        self.depth -= 1
        if self.plot_depth is not None and self.depth <= self.plot_depth:
            self.plot_depth = None


def drawn_figures(dom: str) -> int:
    """How many plotly figures a rendered page's DOM holds drawn."""
    parser = _DrawnFigures()
    parser.feed(dom)
    return parser.drawn


def _chromium(chromium: str, page: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local page with the network shut off (every host name fails to resolve)."""
    with tempfile.TemporaryDirectory(prefix="course-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=20000",
            *args,
            page.resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{chromium} failed on {page} (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


@dataclass
class ReportCheck:
    """What the browser check found for one report."""

    html: Path
    made: int  # plotly figures the executed notebook made
    drawn: int  # figures drawn in the browser
    progress: list[tuple[int, int]] = field(default_factory=list)  # (code cell, progress lines) over the limit
    noise: list[str] = field(default_factory=list)  # plumbing in the stored outputs (`utils.output_noise`)
    seconds: float = 0.0
    screenshot: Path | None = None
    error: str | None = None  # why the report could not be checked at all (naming the file)

    @property
    def problems(self) -> list[str]:
        if self.error is not None:
            return [self.error]
        found = []
        if self.drawn != self.made:
            found.append(
                f"{self.html}: the browser drew {self.drawn} figure(s), the notebook made {self.made} "
                "(a figure stored as plotly json only is not drawn: is utils.figures' renderer in use?)"
            )
        found += [
            f"{self.html.with_suffix('.ipynb')}: code cell {number}'s stored output holds {count} progress lines "
            f"(at most {MAX_PROGRESS_LINES})"
            for number, count in self.progress
        ]
        found += [f"{self.html.with_suffix('.ipynb')}: {problem}" for problem in self.noise]
        return found


def check_report(html: Path, chromium: str, screenshot: bool = True) -> ReportCheck:
    """Open one HTML report in headless Chromium (no network) and compare it with its executed notebook."""
    import nbformat

    from utils.output_noise import noise_problems

    start = time.perf_counter()
    notebook = html.with_suffix(".ipynb")
    if not notebook.exists():
        return ReportCheck(html, 0, 0, error=f"{notebook}: missing (the executed notebook of the report {html.name})")
    if not html.exists():
        return ReportCheck(
            html, 0, 0, error=f"{html}: missing (the HTML report of the executed notebook {notebook.name})"
        )
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as err:  # nbformat raises several kinds for a truncated or damaged file
        return ReportCheck(
            html, 0, 0, error=f"{notebook}: not a readable notebook, truncated or damaged ({err!s:.300})"
        )
    dom = _chromium(chromium, html, "--dump-dom").stdout
    check = ReportCheck(html, notebook_figures(nb), drawn_figures(dom), progress_problems(nb), noise_problems(nb))
    if screenshot:
        png = html.with_suffix(".png")
        png.unlink(missing_ok=True)
        width, height = SCREENSHOT_WINDOW
        _chromium(
            chromium,
            html,
            f"--screenshot={png.resolve()}",
            f"--window-size={width},{height}",
            f"--force-device-scale-factor={SCREENSHOT_SCALE}",
        )
        check.screenshot = png if png.exists() else None
    check.seconds = time.perf_counter() - start
    return check


def check_reports(folder: Path, screenshot: bool = True) -> list[ReportCheck]:
    """Check every ``*_solutions.html`` report in ``folder`` (see the module docstring)."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}): apt-get install -y chromium")
    names = {p.stem for p in folder.glob("*_solutions.html")} | {p.stem for p in folder.glob("*_solutions.ipynb")}
    reports = [folder / f"{name}.html" for name in sorted(names)]
    if not reports:
        raise RuntimeError(f"no *_solutions.html report in {folder}")
    return [check_report(html, chromium, screenshot) for html in reports]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the runner's HTML reports in headless Chromium (offline).")
    parser.add_argument("--check", required=True, type=Path, help="a folder of reports, e.g. outputs/offline")
    parser.add_argument("--no-screenshot", action="store_true", help="do not save <section>_solutions.png")
    args = parser.parse_args(argv)
    try:
        checks = check_reports(args.check, screenshot=not args.no_screenshot)
    except RuntimeError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print(f"{'report':<40}{'figures made':>14}{'drawn':>8}{'HTML MB':>10}{'seconds':>9}  screenshot")
    for c in checks:
        size = c.html.stat().st_size / 1e6 if c.html.exists() else 0.0
        shot = c.screenshot.name if c.screenshot else "-"
        print(f"{c.html.name:<40}{c.made:>14}{c.drawn:>8}{size:>10.1f}{c.seconds:>9.1f}  {shot}", flush=True)
    problems = [p for c in checks for p in c.problems]
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

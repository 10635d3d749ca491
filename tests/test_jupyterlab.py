"""The course where students work: JupyterLab in a real browser (the system Chromium, driven by Playwright).

The test starts JupyterLab itself (a free port, a token, a temporary copy of ``chapters/`` because
JupyterLab autosaves, a temporary course cache, ``--allow-root`` as CI runs as root) on the ``tiny``
profile, and opens the notebooks as a student does:

- every section's solutions notebook, Run All: no cell shows an error, every plotly figure the
  notebook made is drawn, every live panel is shown exactly once, and moving a slider or choosing in a
  dropdown changes the panel's text;
- section 1's exercises notebook: the set-up and the first exercise's check run with the stub unfilled
  show a message naming the exercise to write; the solution typed into the stub's cell through the
  editor makes the check pass.

A failure names the notebook and the cell and keeps a screenshot, ``outputs/jupyterlab/<notebook>.png``.
Playwright drives ``/usr/bin/chromium`` (``apt-get install chromium``): no browser is downloaded, and
the browser resolves no host but this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from utils.build_notebooks import ROOT, available_sections, exercise_names

# One worker runs them all (`--dist loadgroup`), so one JupyterLab server and one browser serve them.
pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("jupyterlab")]

CHAPTERS = ROOT / "chapters"
SCREENSHOTS = ROOT / "outputs" / "jupyterlab"
CHROMIUM = shutil.which("chromium")
RUN_TIMEOUT = 900  # seconds for one notebook's Run All on the tiny profile
PANEL_TIMEOUT = 120  # seconds for a panel to redraw after a control moves

# The open notebook, read from JupyterLab's own model (the app is exposed with expose_app_in_browser).
STATE_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const nb = panel.content;
  const cells = [];
  for (let i = 0; i < nb.model.cells.length; i++) {
    const cell = nb.model.cells.get(i);
    const outputs = [];
    if (cell.type === 'code') {
      for (let j = 0; j < cell.outputs.length; j++) {
        const o = cell.outputs.get(j);
        outputs.push({type: o.type, mimes: Object.keys(o.data || {}),
                      text: o.type === 'error' ? (o.toJSON().ename + ': ' + o.toJSON().evalue)
                            : (o.type === 'stream' ? String(o.toJSON().text).slice(0, 4000) : '')});
      }
    }
    const widget = nb.widgets[i];
    const node = widget ? widget.node : null;
    cells.push({
      index: i, type: cell.type, count: cell.type === 'code' ? cell.executionCount : null,
      source: cell.sharedModel.getSource().slice(0, 80), outputs,
      running: node ? node.querySelector('.jp-InputPrompt')?.textContent.includes('*') : false,
      plots: node ? Array.from(node.querySelectorAll('.js-plotly-plot')).filter(p => p.querySelector('.main-svg')).length : 0,
      panels: node ? Array.from(node.querySelectorAll('.jp-OutputArea-child')).filter(o => o.querySelector('.widget-vbox')).length : 0,
      errorText: node ? node.querySelector('.jp-OutputArea')?.textContent.includes('Error displaying widget') : false,
    });
  }
  const kernel = panel.sessionContext.session?.kernel;
  return {cells, kernel: kernel ? kernel.status : 'none'};
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def where(notebook: str, cell: dict) -> str:
    return f"{notebook}, cell {cell['index']} ({cell['source'].splitlines()[0] if cell['source'] else ''!r})"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a copy of chapters/, on the tiny profile; yields (base URL, token, notebook folder)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if shutil.which("jupyter-lab") is None:
        pytest.skip("jupyterlab is not installed")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(CHAPTERS, root / "chapters")
    port, token = free_port(), "course-test-token"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COURSE_PROFILE": "tiny",
        "COURSE_CACHE_DIR": str(root / "cache"),
        "COURSE_RESULTS_DIR": str(root / "results"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
    }
    # No "would you like news?" pop-up over the notebook (it would cover the screenshots).
    notification = root / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    env.pop("COURSE_NO_WIDGETS", None)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--allow-root",
    ]
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    json.load(r)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        yield b
        b.close()


class Notebook:
    """One notebook open in JupyterLab in its own page; failures keep a screenshot and name the notebook."""

    def __init__(self, browser, lab, name: str):
        base, token, _ = lab
        self.name = name
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(60_000)
        self.page.goto(f"{base}/lab/tree/chapters/{name}?token={token}&reset")
        self.page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext"
            " && window.jupyterapp.shell.currentWidget.content.model",
            timeout=120_000,
        )
        self.page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready; }")
        self.page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
            timeout=120_000,
        )

    def show(self, index: int) -> None:
        """Scroll cell ``index`` into view."""
        self.page.evaluate(
            f"() => window.jupyterapp.shell.currentWidget.content.widgets[{index}].node.scrollIntoView()"
        )

    def keep_screenshot(self, index: int | None = None) -> Path:
        """``outputs/jupyterlab/<notebook>.png``: what the browser shows (with cell ``index`` in view)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{Path(self.name).stem}.png"
        if index is not None:
            self.show(index)
            time.sleep(0.5)
        self.page.screenshot(path=str(shot))
        return shot

    def fail(self, message: str, cell: int | None = None):
        try:
            shot = self.keep_screenshot(cell)
        except Exception as err:  # noqa: BLE001 - the failure matters more than its picture
            message += f" (no screenshot: {err})"
        else:
            message += f" (screenshot: {shot.relative_to(ROOT)})"
        pytest.fail(f"{self.name}: {message}", pytrace=False)

    def state(self) -> dict:
        return self.page.evaluate(STATE_JS)

    def command(self, name: str) -> None:
        self.page.evaluate(f"async () => {{ await window.jupyterapp.commands.execute({name!r}); }}")

    def select(self, index: int) -> None:
        self.page.evaluate(f"() => {{ window.jupyterapp.shell.currentWidget.content.activeCellIndex = {index}; }}")

    def wait_until_done(self, timeout: float, upto: int | None = None) -> dict:
        """Until the kernel is idle, no cell is queued or running, and every code cell up to ``upto`` ran
        (or one shows an error: JupyterLab's Run All stops there)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while True:
            state = self.state()
            code = [c for c in state["cells"] if c["type"] == "code" and (upto is None or c["index"] <= upto)]
            errored = any(o["type"] == "error" for c in state["cells"] for o in c["outputs"])
            done = (
                state["kernel"] == "idle"
                and not any(c["running"] for c in state["cells"])
                and (errored or all(c["count"] is not None for c in code))
            )
            if done:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2:
                    return state
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                stuck = next((c for c in code if c["count"] is None), None)
                self.fail(
                    f"not done after {timeout:.0f} s" + (f"; waiting at {where(self.name, stuck)}" if stuck else ""),
                    cell=stuck["index"] if stuck else None,
                )
            time.sleep(1)

    def errors(self, state: dict) -> list[str]:
        found = []
        for cell in state["cells"]:
            for o in cell["outputs"]:
                if o["type"] == "error":
                    found.append(f"{where(self.name, cell)} shows an error: {o['text']}")
            if cell["errorText"]:
                found.append(f"{where(self.name, cell)} shows 'Error displaying widget'")
        return found

    def close(self) -> None:
        try:
            self.page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }")
        finally:
            self.page.close()


def first_error(state: dict) -> int | None:
    return next((c["index"] for c in state["cells"] if any(o["type"] == "error" for o in c["outputs"])), None)


def panel_text(nb: Notebook, index: int) -> str:
    return nb.page.evaluate(
        f"""() => {{
          const node = window.jupyterapp.shell.currentWidget.content.widgets[{index}].node;
          const outs = node.querySelectorAll('.widget-vbox .widget-output');
          return Array.from(outs).map(o => o.textContent).join('\\n');
        }}"""
    )


def check_panel(nb: Notebook, cell: dict) -> None:
    """Move the panel's slider one step (keyboard on its handle) and choose another dropdown entry:
    each changes the panel's text."""
    node = f"window.jupyterapp.shell.currentWidget.content.widgets[{cell['index']}].node"
    handle = nb.page.evaluate_handle(f"() => {node}")
    for kind in ("slider", "dropdown"):
        before = panel_text(nb, cell["index"])
        if kind == "slider":
            knob = handle.as_element().query_selector(".widget-vbox .noUi-handle")
            if knob is None:
                nb.fail(f"{where(nb.name, cell)}: the panel has no slider", cell=cell["index"])
            knob.scroll_into_view_if_needed()
            knob.focus()
            readout = handle.as_element().query_selector(".widget-vbox .widget-readout")
            shown = readout.text_content() if readout else None
            nb.page.keyboard.press("ArrowRight")
            time.sleep(0.5)
            if readout is not None and readout.text_content() == shown:  # at the slider's last value: go left
                nb.page.keyboard.press("ArrowLeft")
        else:
            select = handle.as_element().query_selector(".widget-vbox select")
            if select is None:
                nb.fail(f"{where(nb.name, cell)}: the panel has no dropdown", cell=cell["index"])
            options = select.eval_on_selector_all("option", "os => os.map(o => o.value)")
            current = select.input_value()
            other = next((o for o in options if o != current), None)
            if other is None:
                continue  # a dropdown with one entry cannot change
            select.select_option(other)
        deadline = time.monotonic() + PANEL_TIMEOUT
        while panel_text(nb, cell["index"]) in (before, ""):
            if time.monotonic() > deadline:
                nb.fail(
                    f"{where(nb.name, cell)}: moving the panel's {kind} did not change its text", cell=cell["index"]
                )
            time.sleep(0.5)


@pytest.mark.parametrize("section", available_sections())
def test_solutions_notebook_in_jupyterlab(section, lab, browser):
    name = f"{section}_solutions.ipynb"
    nb = Notebook(browser, lab, name)
    try:
        nb.command("notebook:run-all-cells")
        state = nb.wait_until_done(RUN_TIMEOUT)
        if errors := nb.errors(state):
            nb.fail("; ".join(errors), cell=first_error(state))
        # Every figure the notebook made is drawn: bring each cell's output on screen, then count plotly's SVGs.
        for cell in state["cells"]:
            made = sum(1 for o in cell["outputs"] if "application/vnd.plotly.v1+json" in o["mimes"])
            if not made:
                continue
            nb.select(cell["index"])
            nb.page.evaluate(
                f"() => window.jupyterapp.shell.currentWidget.content.widgets[{cell['index']}].node.scrollIntoView()"
            )
            deadline = time.monotonic() + 30
            while (drawn := nb.state()["cells"][cell["index"]]["plots"]) < made and time.monotonic() < deadline:
                time.sleep(0.5)
            if drawn != made:
                nb.fail(f"{where(name, cell)}: {made} figure(s) made, {drawn} drawn", cell=cell["index"])
        # Every live panel is shown once, and its controls change its text. (tqdm's bars are widgets too:
        # a panel is an output holding a VBox of controls.)
        panels = [c for c in state["cells"] if c["panels"]]
        for cell in panels:
            if cell["panels"] != 1:
                nb.fail(
                    f"{where(name, cell)}: the live panel is shown {cell['panels']} times, not once", cell=cell["index"]
                )
            check_panel(nb, cell)
        if section in ("part2_capping", "part4_steering") and not panels:
            nb.fail("no live panel was shown")
        nb.keep_screenshot(panels[-1]["index"] if panels else None)
    finally:
        nb.close()


def first_exercise(section: str) -> tuple[int, int, str, str]:
    """(exercise cell, its check cell, the exercise's name, the solution's source) in the exercises notebook."""
    exercises = nbformat.read(CHAPTERS / f"{section}_exercises.ipynb", as_version=4)
    solutions = nbformat.read(CHAPTERS / f"{section}_solutions.ipynb", as_version=4)
    index = next(i for i, c in enumerate(exercises.cells) if "exercise" in c.metadata.get("tags", []))
    check = next(i for i in range(index + 1, len(exercises.cells)) if exercises.cells[i].cell_type == "code")
    solution = next(c.source for c in solutions.cells if "exercise" in c.metadata.get("tags", []))
    return index, check, exercise_names(solution)[0], solution


def test_exercise_in_jupyterlab_as_a_student_works(lab, browser):
    section = available_sections()[0]
    name = f"{section}_exercises.ipynb"
    index, check, exercise, solution = first_exercise(section)
    nb = Notebook(browser, lab, name)
    try:
        # The set-up and every cell up to the first exercise's check, with the stub as shipped.
        nb.select(check)
        nb.command("notebook:run-all-above")
        state = nb.wait_until_done(RUN_TIMEOUT, upto=check - 1)
        if errors := nb.errors(state):
            nb.fail("before the first check: " + "; ".join(errors), cell=check)
        nb.select(check)
        nb.command("notebook:run-cell")
        state = nb.wait_until_done(RUN_TIMEOUT, upto=check)
        cell = state["cells"][check]
        shown = " ".join(o["text"] for o in cell["outputs"] if o["type"] == "error")
        if f"write {exercise}" not in shown:
            nb.fail(
                f"{where(name, cell)}: with the stub unfilled the check shows {shown!r}, not which exercise to write",
                cell=check,
            )
        # The student types the solution into the stub's cell (the editor, as a paste) and runs it and the check.
        editor = nb.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        nb.page.keyboard.press("Control+A")
        nb.page.keyboard.press("Delete")
        nb.page.keyboard.insert_text(solution)
        typed = nb.page.evaluate(
            f"() => window.jupyterapp.shell.currentWidget.content.model.cells.get({index}).sharedModel.getSource()"
        )
        if typed.strip() != solution.strip():
            nb.fail(f"{where(name, state['cells'][index])}: the editor holds other text than was typed", cell=index)
        for i in (index, check):
            nb.select(i)
            nb.command("notebook:run-cell")
            state = nb.wait_until_done(RUN_TIMEOUT, upto=check)
        if errors := nb.errors(state):
            nb.fail("after typing the solution: " + "; ".join(errors), cell=check)
        out = " ".join(o["text"] for o in state["cells"][check]["outputs"])
        if f"{exercise} passed" not in out:
            nb.fail(
                f"{where(name, state['cells'][check])}: the check printed no pass for {exercise}: {out!r}", cell=check
            )
        nb.keep_screenshot(check)
    finally:
        nb.close()

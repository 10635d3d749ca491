"""The runner's reports read as well as a live notebook: every plotly figure is drawn in a browser with
no network (headless Chromium, as CI checks the offline run's reports), and stored outputs hold no
per-token progress lines. The Chromium tests skip only when no Chromium is installed (CI installs it)."""

from __future__ import annotations

import nbformat
import pytest

from utils import course, reports

CHROMIUM = reports.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium; CI installs it)"
)

# A notebook as the course's notebooks make figures: the set-up cell's renderer, then figures and a bar.
SETUP = "from utils.figures import use_course_renderer\nprint(use_course_renderer())"
FIGURE = "import plotly.express as px\npx.line(x=[1, 2, 3], y=[{}, 4, 9], title='figure {}').show()"
BAR = (
    "import sys\nfrom tqdm.std import tqdm\n"
    "bar = tqdm(total=3, desc='generating', file=sys.stderr, mininterval=0, leave={leave})\n"
    "for i in range(3):\n"
    "    for token in range(50):\n"
    "        bar.set_postfix_str(f'token {{token}}/50')\n"
    "    bar.update(1)\n"
    "bar.close()\nprint('done')"
)
NESTED = (  # as section 2's steering loop: an outer bar kept, an inner one (generation) cleared each time
    "import sys\nfrom tqdm.std import tqdm\n"
    "for persona in tqdm(['a', 'b', 'c'], desc='steering', file=sys.stderr, mininterval=0):\n"
    "    inner = tqdm(total=40, desc='generating', file=sys.stderr, mininterval=0, leave=False)\n"
    "    for token in range(40):\n"
    "        inner.set_postfix_str(f'token {token}/40')\n"
    "    inner.update(40)\n"
    "    inner.close()\n"
    "print('steered')"
)


def _notebook(cells: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def _bar_output(lines: int) -> str:
    return "".join(f"\rgenerating:  50%|#####     | 1/2 [00:01<00:01, 1.0it/s, token {t}/64]" for t in range(lines))


def test_progress_collapses_to_what_a_terminal_finally_shows():
    nb = _notebook(["pass"])
    kept, cleared = (
        _bar_output(200) + "\rgenerating: 100%|##########| 2/2 [00:02<00:00]".ljust(90) + "\n",
        _bar_output(200),
    )
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=kept),
        nbformat.v4.new_output("stream", name="stdout", text="result 1\n"),
        nbformat.v4.new_output("stream", name="stderr", text=cleared + "\r" + " " * 80 + "\r"),
        nbformat.v4.new_output("stream", name="stdout", text="result 2\n"),
    ]
    assert reports.progress_problems(nb) == [(1, 401)]
    reports.collapse_progress(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stderr", "generating: 100%|##########| 2/2 [00:02<00:00]\n"),
        ("stdout", "result 1\nresult 2\n"),
    ]
    assert reports.progress_problems(nb) == []


def test_text_printed_after_a_figure_stays_after_it():
    nb = _notebook(["pass"])
    figure = nbformat.v4.new_output("display_data", data={"text/html": "<div>figure</div>"})
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="table\n"),
        nbformat.v4.new_output("stream", name="stderr", text=_bar_output(50) + "\r" + " " * 80 + "\r"),
        figure,
        nbformat.v4.new_output("stream", name="stdout", text="replies\n"),
        nbformat.v4.new_output("stream", name="stdout", text="more replies\n"),
    ]
    reports.collapse_progress(nb)
    assert [(o.output_type, getattr(o, "text", None)) for o in nb.cells[0].outputs] == [
        ("stream", "table\n"),
        ("display_data", None),
        ("stream", "replies\nmore replies\n"),
    ]


def test_a_stored_output_with_many_progress_lines_is_rejected(tmp_path):
    nb = _notebook(["pass", "pass"])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stderr", text=_bar_output(40))]
    assert reports.progress_problems(nb) == [(2, 40)]
    # one stream message per redraw, as a kernel sends them: counted per cell, not per output
    many = reports.MAX_PROGRESS_LINES + 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stderr", text=_bar_output(1)) for _ in range(many)]
    assert reports.progress_problems(nb) == [(2, many)]
    check = reports.ReportCheck(tmp_path / "part1_assistant_axis_solutions.html", made=0, drawn=0)
    check.progress = reports.progress_problems(nb)
    assert check.problems == [
        f"{tmp_path / 'part1_assistant_axis_solutions.ipynb'}: code cell 2's stored output holds {many} progress "
        f"lines (at most {reports.MAX_PROGRESS_LINES})"
    ]


def test_drawn_figures_counts_plots_holding_an_svg():
    dom = (
        '<div class="plotly-graph-div js-plotly-plot"><div class="svg-container"><br>'
        '<svg class="main-svg"><path d="M0"/></svg><svg class="main-svg"></svg></div></div>'
        '<div class="plotly-graph-div js-plotly-plot"></div>'  # not drawn
        '<div><svg class="main-svg"></svg></div>'  # not a plot
    )
    assert reports.drawn_figures(dom) == 1


@needs_chromium
def test_a_figure_stored_as_json_only_is_rejected(tmp_path):
    import plotly.express as px

    figure = px.line(x=[1, 2, 3], y=[1, 4, 9])
    nb = _notebook(["fig.show()"])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("display_data", data={reports.PLOTLY_MIME: figure.to_plotly_json(), "text/plain": ""})
    ]
    reports.save_report(nb, tmp_path / "part1_assistant_axis_solutions.ipynb")
    (check,) = reports.check_reports(tmp_path, screenshot=False)
    assert (check.made, check.drawn) == (1, 0)
    assert check.problems and "drew 0 figure(s), the notebook made 1" in check.problems[0]
    assert reports.main(["--check", str(tmp_path), "--no-screenshot"]) == 1


@pytest.mark.notebook
@needs_chromium
def test_runner_report_draws_every_figure_offline_with_progress_collapsed(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    cells = [SETUP, FIGURE.format(1, 1), BAR.format(leave=True), BAR.format(leave=False), FIGURE.format(2, 2), NESTED]
    nbformat.write(_notebook(cells), root / "chapters" / "part1_assistant_axis_solutions.ipynb")
    monkeypatch.setattr(course, "ROOT", root)
    out = tmp_path / "out"
    env = course.section_environment("tiny", out / "results", out / "timings", "part1_assistant_axis")
    ok, message, _ = course.run_section("part1_assistant_axis", out, env, timeout=300, relay=False)
    assert ok, message

    executed = nbformat.read(out / "part1_assistant_axis_solutions.ipynb", as_version=4)
    assert "plotly_mimetype+course_html" in executed.cells[0].outputs[0].text
    for cell in (executed.cells[1], executed.cells[4]):  # json for JupyterLab / VS Code, HTML for the rest
        (figure,) = [o for o in cell.outputs if reports.PLOTLY_MIME in o.get("data", {})]
        assert "text/html" in figure.data and "cdn" not in figure.data["text/html"]
    kept_bar = [o.text for o in executed.cells[2].outputs if o.get("name") == "stderr"]
    assert len(kept_bar) == 1 and kept_bar[0].count("\n") == 1 and "3/3" in kept_bar[0]
    assert [o.get("name") for o in executed.cells[3].outputs] == ["stdout"]  # a cleared bar leaves nothing
    nested = [o.text for o in executed.cells[5].outputs if o.get("name") == "stderr"]
    assert len(nested) == 1 and nested[0].strip().startswith("steering: 100%") and nested[0].count("\n") == 1

    html = (out / "part1_assistant_axis_solutions.html").read_text()
    assert html.count("* plotly.js v") == 1  # plotly.js embedded once, not once per figure
    (check,) = reports.check_reports(out)
    assert (check.made, check.drawn, check.problems) == (2, 2, [])
    assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000


def test_the_renderer_changes_nothing_outside_a_kernel_and_uses_colabs_in_colab():
    import plotly.io as pio

    from utils import figures

    before = pio.renderers.default
    try:
        assert figures.use_course_renderer() is None and pio.renderers.default == before
        assert figures.use_course_renderer(colab=True) == "colab" and pio.renderers.default == "colab"
    finally:
        pio.renderers.default = before


def test_a_nested_bar_redrawn_per_token_collapses():
    # as section 2's replay relayed it on the offline model: the inner bar one line down, then cursor-up
    inner = "".join(f"\n\rturn 1:   0%|          | 0/3 [00:{t:02d}<?, ?it/s, token {t}/40]\x1b[A" for t in range(40))
    text = "replaying:   0%|          | 0/6 [00:00<?, ?it/s]" + inner + "\n\r" + " " * 60 + "\x1b[A"
    text += "\rreplaying:  17%|#6        | 1/6 [00:40<03:20, 40.0s/it]"
    assert reports.progress_lines(text) == 42
    nb = _notebook(["pass"])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text=text)]
    reports.collapse_progress(nb)
    assert nb.cells[0].outputs[0].text == "replaying:  17%|#6        | 1/6 [00:40<03:20, 40.0s/it]\n"


@needs_chromium
@pytest.mark.parametrize("damage", ["no html", "no notebook", "truncated notebook"])
def test_a_missing_report_or_a_missing_or_truncated_notebook_is_a_failed_line_naming_it(tmp_path, capsys, damage):
    nb = _notebook(["print('hello')"])
    for section in ("part1_assistant_axis", "part3_contrastive"):  # a damaged one beside a sound one
        reports.save_report(nb, tmp_path / f"{section}_solutions.ipynb")
    notebook = tmp_path / "part3_contrastive_solutions.ipynb"
    html = notebook.with_suffix(".html")
    assert reports.main(["--check", str(tmp_path), "--no-screenshot"]) == 0
    if damage == "no html":
        html.unlink()
        named = html
    elif damage == "no notebook":
        notebook.unlink()
        named = notebook
    else:
        notebook.write_text(notebook.read_text()[: len(notebook.read_text()) // 2])
        named = notebook
    capsys.readouterr()
    assert reports.main(["--check", str(tmp_path), "--no-screenshot"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {named}" in err

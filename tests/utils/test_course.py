"""The course runner: a failing cell is named with its section, and what finished is kept."""

from __future__ import annotations

import nbformat
import pytest

from utils import course, environment, results


def _notebook(cells: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


@pytest.mark.notebook
def test_runner_names_failing_cell_and_keeps_finished_sections(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    record = "from utils.results import record"
    good = _notebook([record, "record('part1_assistant_axis', 'PC1 variance explained', 0.5)"])
    bad = _notebook(
        [record, "record('part2_capping', 'capped turns', 3)", "x = 1", "raise ValueError('broken on purpose')"]
    )
    nbformat.write(good, root / "chapters" / "part1_assistant_axis_solutions.ipynb")
    nbformat.write(bad, root / "chapters" / "part2_capping_solutions.ipynb")
    monkeypatch.setattr(course, "ROOT", root)
    code = course.main(["--profile", "tiny", "--sections", "1,2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED part2_capping: failed in cell 3: ValueError: broken on purpose" in out
    assert "PC1 variance explained" in out and "capped turns" in out
    assert (tmp_path / "out" / "tiny" / "part1_assistant_axis_solutions.html").exists()
    executed = nbformat.read(tmp_path / "out" / "tiny" / "part2_capping_solutions.ipynb", as_version=4)
    assert executed.cells[1].outputs  # the cells that ran before the failure keep their outputs


def test_record_rounds_floats_in_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.RESULTS_DIR, str(tmp_path))
    results.record("part3_contrastive", "best layer", 15)
    results.record("part3_contrastive", "AUROC", 0.123456789)
    assert results.summary_table(["part3_contrastive"], tmp_path).splitlines()[-1].endswith("0.1235")


def test_record_names_a_truncated_results_file_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.RESULTS_DIR, str(tmp_path))
    path = tmp_path / "part3_contrastive.json"
    path.write_text('{"_profile": "offline", "best layer": 1')
    with pytest.raises(RuntimeError, match=rf"{path.name} is truncated or not JSON.*AUROC = 0.5 is not recorded"):
        results.record("part3_contrastive", "AUROC", 0.5)
    assert path.read_text() == '{"_profile": "offline", "best layer": 1'  # left for the user to look at
    with pytest.raises(ValueError, match=r"record\('AUROC', \.\.\.\) needs a number or a short string"):
        results.record("part2_capping", "AUROC", None)
    assert not (tmp_path / "part2_capping.json").exists()


@pytest.mark.notebook
def test_runner_rejects_a_section_that_ran_on_another_profile_and_shows_progress(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    cells = [
        "import os; from utils.results import record",
        "os.environ['COURSE_PROFILE'] = 'full'  # a notebook that switches profile behind the runner's back",
        "record('part1_assistant_axis', 'PC1 variance explained', 0.5)",
    ]
    nbformat.write(_notebook(cells), root / "chapters" / "part1_assistant_axis_solutions.ipynb")
    monkeypatch.setattr(course, "ROOT", root)
    code = course.main(["--profile", "tiny", "--sections", "1", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED part1_assistant_axis: ran on profile 'full', not the requested 'tiny'" in captured.out
    assert "[part1_assistant_axis] cell 3/3: record(" in captured.err
    assert "[result] PC1 variance explained: 0.5" in captured.out  # the notebook's output, relayed as it ran


def _chapters(root, notebooks: dict[str, list[str]]):
    (root / "chapters").mkdir(parents=True)
    for section, cells in notebooks.items():
        nbformat.write(_notebook(cells), root / "chapters" / f"{section}_solutions.ipynb")


RECORD = "from utils.results import record\nrecord({section!r}, 'finished', 1)"
# The same without importing the course (which imports torch): a cell that takes well under any --timeout.
LIGHT_RECORD = (
    "import json, os, pathlib\nfolder = pathlib.Path(os.environ['COURSE_RESULTS_DIR'])\n"
    "folder.mkdir(parents=True, exist_ok=True)\n"
    "(folder / '{section}.json').write_text(json.dumps({{'_profile': 'tiny', 'finished': 1}}))"
)


@pytest.mark.notebook
def test_a_dead_or_timed_out_kernel_fails_its_section_and_the_others_finish(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    _chapters(
        root,
        {
            "part1_assistant_axis": ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # killed for memory"],
            "part2_capping": [
                LIGHT_RECORD.format(section="part2_capping")
            ],  # reads section 1: runs after it all the same
            "part3_contrastive": [LIGHT_RECORD.format(section="part3_contrastive")],
            "part4_steering": ["import time\ntime.sleep(600)"],
        },
    )
    monkeypatch.setattr(course, "ROOT", root)
    argv = ["--profile", "tiny", "--jobs", "2", "--timeout", "10", "--quiet", "--out", str(tmp_path / "out")]
    assert course.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED part1_assistant_axis: the kernel died" in out and "cell 0" in out
    assert "FAILED part4_steering: timed out in cell 0 (cell starts: 'import time')" in out
    table = out.split("FAILED")[0]
    assert table.count("finished") == 2  # sections 2 and 3 recorded theirs, in the summary
    assert (tmp_path / "out" / "tiny" / "part1_assistant_axis_solutions.html").exists()


@pytest.mark.notebook
def test_one_ctrl_c_stops_the_running_section_and_keeps_what_finished(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    _chapters(
        root,
        {
            "part1_assistant_axis": [RECORD.format(section="part1_assistant_axis")],
            # Ctrl-C in the runner's terminal reaches the runner only (the kernels run in sessions of their own).
            "part3_contrastive": [
                "import os, signal\nos.kill(os.getppid(), signal.SIGINT)",
                "import time\ntime.sleep(60)",
            ],
        },
    )
    monkeypatch.setattr(course, "ROOT", root)
    code = course.main(
        ["--profile", "tiny", "--jobs", "1", "--sections", "1,3", "--quiet", "--out", str(tmp_path / "out")]
    )
    out = capsys.readouterr().out
    assert code == 130
    assert "Interrupted: stopping part3_contrastive" in out
    assert "FAILED part3_contrastive: stopped by Ctrl-C in cell" in out
    assert results.read_results(tmp_path / "out" / "tiny" / "results", "part1_assistant_axis")["finished"] == 1
    for section in ("part1_assistant_axis", "part3_contrastive"):
        assert (tmp_path / "out" / "tiny" / f"{section}_solutions.html").exists()
    # The stop ends with the interrupted run: a section run afterwards in this process starts its kernel (a
    # later test's kernel was once killed at start by a stop left over from this one).
    env = course.section_environment(
        "tiny", tmp_path / "again" / "results", tmp_path / "again" / "timings", "part1_assistant_axis"
    )
    ok, message, _ = course.run_section("part1_assistant_axis", tmp_path / "again", env, timeout=300, relay=False)
    assert ok, message


def test_a_section_named_twice_runs_once_and_an_unknown_one_is_refused(tmp_path, monkeypatch, capsys):
    ran = []

    def fake_run_section(section, out_dir, env, timeout=3600, relay=True, tag=None, threads=None):
        ran.append(section)
        folder = tmp_path / "out" / "tiny" / "results"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{section}.json").write_text('{"_profile": "tiny"}')
        return True, "ok", 0.0

    monkeypatch.setattr(course, "run_section", fake_run_section)
    assert course.main(["--profile", "tiny", "--sections", "1,1", "--out", str(tmp_path / "out")]) == 0
    assert ran == ["part1_assistant_axis"]
    assert "more than once" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        course.main(["--profile", "tiny", "--sections", "1,5", "--out", str(tmp_path / "out")])
    assert "--sections: Unknown section '5'" in capsys.readouterr().err
    assert ran == ["part1_assistant_axis"]


def test_a_nan_result_is_recorded_as_not_a_number_and_said_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(environment.RESULTS_DIR, str(tmp_path))
    results.record("part3_contrastive", "judge AUROC", float("nan"))
    assert "judge AUROC: nan -- NOT A NUMBER" in capsys.readouterr().out

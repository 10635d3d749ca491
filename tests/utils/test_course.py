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

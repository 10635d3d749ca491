"""Expected outputs: the notebooks show the committed offline results, and a run that drifts fails."""

from __future__ import annotations

import json

import pytest

from utils import build_notebooks as build
from utils import expected as exp
from utils.results import PROFILE_KEY

TOY = """# %% [markdown]
# # Toy

# %%
share = 0.5
course.record("PC1 variance share", share)
for coeff in (0, 4):
    course.record(f"score at coeff {coeff:g}", 50 + coeff)

# %%
print("no results here")
"""


@pytest.fixture
def toy_root(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "source.py").write_text(TOY)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setattr(build, "SECTIONS", ("toy",))
    return tmp_path


def _results(folder, values, profile="offline"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.json").write_text(json.dumps({PROFILE_KEY: profile, **values}))
    return folder


def _markdown(nb_text: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb_text)["cells"] if c["cell_type"] == "markdown"]


def test_expected_block_follows_the_cell_that_records_and_check_catches_a_changed_file(toy_root):
    results = _results(toy_root / "run", {"PC1 variance share": 0.5, "score at coeff 0": 50, "score at coeff 4": 54.5})
    exp.record_expected(["toy"], results, "offline", root=toy_root)
    (toy_root / "toy" / "expected" / "paper.json").write_text(json.dumps({"PC1 variance share": "about 49% (paper)"}))
    assert build.main(["--sections", "toy"]) == 0
    nb = (toy_root / "chapters" / "toy_exercises.ipynb").read_text()
    cells = json.loads(nb)["cells"]
    kinds = [(c["cell_type"], "Expected output" in "".join(c["source"])) for c in cells]
    assert kinds == [("markdown", False), ("code", False), ("markdown", True), ("code", False)]
    block = _markdown(nb)[1]
    for text in ("| PC1 variance share | 0.5 | ± 0.025 |", "| score at coeff 0 | 50 | exact |", "score at coeff 4 | 54.5 |",
                 "about 49% (paper)"):  # fmt: skip
        assert text in block
    assert build.main(["--check", "--sections", "toy"]) == 0
    path = exp.expected_path("toy", "offline", toy_root)
    data = json.loads(path.read_text())
    data["results"]["PC1 variance share"]["value"] = 0.9  # a hand-edited (or stale) expected file
    path.write_text(json.dumps(data))
    assert build.main(["--check", "--sections", "toy"]) == 1


def test_an_expected_result_that_no_cell_records_is_an_error(toy_root):
    results = _results(toy_root / "run", {"PC1 variance share": 0.5, "renamed result": 1.0})
    exp.record_expected(["toy"], results, "offline", root=toy_root)
    with pytest.raises(build.SourceError, match="renamed result"):
        build.build_section("toy")


def test_fresh_results_within_tolerance_pass_and_drift_fails_with_the_record_command(tmp_path, capsys):
    recorded = _results(tmp_path / "recorded", {"auroc": 0.74, "score": 53.2, "threshold": "3", "layer": 12})
    exp.record_expected(["toy"], recorded, "offline", root=tmp_path)
    ok = {"auroc": 0.75, "score": 55.0, "threshold": "3", "layer": 12}
    assert exp.check_sections(["toy"], _results(tmp_path / "ok", ok), root=tmp_path) == []
    drifted = {"auroc": 0.70, "score": 53.2, "threshold": "none", "layer": 13, "new": 1.0}
    problems = exp.check_sections(["toy"], _results(tmp_path / "bad", drifted), root=tmp_path)
    assert any("'auroc': expected 0.74 ± 0.037, got 0.7" in p for p in problems)
    assert any("'threshold': expected '3', got 'none'" in p for p in problems)
    assert any("'layer': expected 12, got 13" in p for p in problems)
    assert any("'new'" in p and "not expected" in p for p in problems)
    assert not any("'score'" in p for p in problems)
    missing = exp.check_sections(["toy"], _results(tmp_path / "missing", {"auroc": 0.74}), root=tmp_path)
    assert any("'score'" in p and "did not record" in p for p in missing)


def test_the_command_line_check_fails_and_names_how_to_re_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exp, "ROOT", tmp_path)
    monkeypatch.setattr(exp, "SECTIONS", ("toy",))
    results = _results(tmp_path / "outputs" / "offline" / "results", {"auroc": 0.74})
    assert exp.main(["--record"]) == 0
    assert exp.main(["--check"]) == 0
    _results(results, {"auroc": 0.5})
    assert exp.main(["--check"]) == 1
    assert exp.RECORD_COMMAND in capsys.readouterr().out


def test_results_of_another_profile_are_never_recorded_as_offline(tmp_path):
    results = _results(tmp_path / "run", {"auroc": 0.74}, profile="tiny")
    with pytest.raises(ValueError, match="profile 'offline'"):
        exp.record_expected(["toy"], results, "offline", root=tmp_path)


def test_a_malformed_expected_file_is_named(tmp_path):
    path = exp.expected_path("toy", "offline", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"results": {"auroc": {"value": 0.7}}}))
    with pytest.raises(ValueError, match="toy/expected/offline.json"):
        exp.load_expected("toy", "offline", tmp_path)


@pytest.mark.parametrize("section", list(build.SECTIONS))
def test_every_cell_that_records_a_result_is_followed_by_its_expected_output(section):
    """The committed offline results exist, and each exercises notebook shows them after the cells that record them."""
    assert exp.load_expected(section) is not None, f"record them: {exp.RECORD_COMMAND}"
    cells = json.loads((build.ROOT / "chapters" / f"{section}_exercises.ipynb").read_text())["cells"]
    for i, cell in enumerate(cells):
        code = "".join(cell["source"])
        if cell["cell_type"] == "code" and exp._record_name_patterns(code) and exp.NOT_RECORDED_OFFLINE not in code:
            following = "".join(cells[i + 1]["source"]) if i + 1 < len(cells) else ""
            assert "Expected output" in following, f"{section}: no expected output after the cell {cell['source'][:2]}"


TWO_READOUTS = """# %% [markdown]
# # Toy

# %%
for category in ("drift", "control"):
    course.record(f"{category}: projection (block {LAYER}), uncapped", 1.0)

# %%
for category in ("drift", "control"):
    course.record(f"{category}: projection (block {LAYER}, text only), uncapped", 2.0)
"""


def _blocks(section_root, section="toy") -> list[str]:
    nb = (section_root / "chapters" / f"{section}_exercises.ipynb").read_text()
    return [text for text in _markdown(nb) if "Expected output" in text]


def test_each_expected_block_holds_only_its_own_cells_results(toy_root):
    """An f-string field is a value, not a clause: the first cell must not claim the second cell's rows."""
    (toy_root / "toy" / "source.py").write_text(TWO_READOUTS)
    names = ["drift: projection (block 12), uncapped", "control: projection (block 12), uncapped"]
    text_only = [
        "drift: projection (block 12, text only), uncapped",
        "control: projection (block 12, text only), uncapped",
    ]
    results = _results(toy_root / "run", {n: 1.0 for n in names} | {n: 2.0 for n in text_only})
    exp.record_expected(["toy"], results, "offline", root=toy_root)
    assert build.main(["--sections", "toy"]) == 0
    first, second = _blocks(toy_root)
    assert all(n in first for n in names) and not any(n in first for n in text_only)
    assert all(n in second for n in text_only)


def test_a_result_recorded_by_two_cells_or_a_cell_with_no_expected_result_is_a_build_error(toy_root):
    twice = TOY.replace('print("no results here")', 'course.record("PC1 variance share", 0.6)')
    (toy_root / "toy" / "source.py").write_text(twice)
    results = _results(toy_root / "run", {"PC1 variance share": 0.5, "score at coeff 0": 50, "score at coeff 4": 54})
    exp.record_expected(["toy"], results, "offline", root=toy_root)
    with pytest.raises(build.SourceError, match=r"'PC1 variance share' is recorded by code cells \[1, 2\]"):
        build.build_section("toy")
    unrecorded = TOY.replace('print("no results here")', 'course.record("a new result", 1.0)')
    (toy_root / "toy" / "source.py").write_text(unrecorded)
    with pytest.raises(build.SourceError, match=r"code cells \[2\] record results, but none is in the expected"):
        build.build_section("toy")
    with pytest.raises(build.SourceError):  # --check, as CI runs it, is strict
        build.main(["--check", "--sections", "toy"])
    # A plain build warns and writes, so the notebooks can be run to record the new result.
    assert build.main(["--sections", "toy"]) == 0
    assert "a new result" in (toy_root / "chapters" / "toy_solutions.ipynb").read_text()


@pytest.mark.parametrize("section", list(build.SECTIONS))
def test_no_result_is_shown_in_two_expected_blocks(section):
    """Every expected result appears in exactly one block of the generated notebook, after its own cell."""
    expected = exp.load_expected(section)
    assert expected is not None
    blocks = _blocks(build.ROOT, section)
    for name in expected["results"]:
        holders = [i for i, block in enumerate(blocks) if f"| {name} |" in block]
        assert len(holders) == 1, f"{section}: {name!r} is shown in expected blocks {holders}"


def test_a_nan_result_fails_the_check_and_is_never_recorded_as_expected(tmp_path):
    recorded = _results(tmp_path / "recorded", {"judge AUROC": 0.74})
    exp.record_expected(["toy"], recorded, "offline", root=tmp_path)
    problems = exp.check_sections(["toy"], _results(tmp_path / "nan", {"judge AUROC": float("nan")}), root=tmp_path)
    assert any("'judge AUROC'" in p and "nan" in p for p in problems)
    with pytest.raises(ValueError, match="'judge AUROC'.*not a number"):
        exp.record_expected(["toy"], tmp_path / "nan", "offline", root=tmp_path)
    path = exp.expected_path("toy", "offline", tmp_path)
    data = json.loads(path.read_text())
    data["results"]["judge AUROC"]["value"] = float("nan")  # a NaN committed as expected
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="toy/expected/offline.json.*'judge AUROC'"):
        exp.check_sections(["toy"], _results(tmp_path / "ok", {"judge AUROC": 0.74}), root=tmp_path)


def test_a_string_tolerance_names_the_file_and_the_result(tmp_path):
    path = exp.expected_path("toy", "offline", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"results": {"auroc": {"value": 0.7, "tolerance": "0.02"}}}))
    with pytest.raises(ValueError, match=r"toy/expected/offline.json.*'auroc'.*tolerance '0.02'"):
        exp.check_sections(["toy"], _results(tmp_path / "run", {"auroc": 0.71}), root=tmp_path)


def test_recording_from_a_partial_run_keeps_and_names_the_results_it_did_not_record(tmp_path, capsys):
    full = _results(tmp_path / "full", {"first": 0.5, "second": 0.6, "third": 3})
    exp.record_expected(["toy"], full, "offline", root=tmp_path)
    partial = _results(tmp_path / "partial", {"first": 0.55, "third": 3})
    exp.record_expected(["toy"], partial, "offline", root=tmp_path)
    results = exp.load_expected("toy", "offline", tmp_path)["results"]
    assert list(results) == ["first", "second", "third"]
    assert results["first"]["value"] == 0.55 and results["second"]["value"] == 0.6
    assert "'second'" in capsys.readouterr().out


def test_a_recording_cell_the_offline_run_skips_is_exempt_only_when_marked():
    from utils.expected import NOT_RECORDED_OFFLINE, unrecorded_cells

    hosted_only = 'if hosted:\n    course.record("judge: cells judged", n)'
    cells = [hosted_only, f"{NOT_RECORDED_OFFLINE} (hosted judges)\n{hosted_only}", 'course.record("x", 1)']
    assert unrecorded_cells(cells, [[], [], ["x"]]) == [0]

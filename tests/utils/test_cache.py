"""The cache is keyed by what made a result: other inputs recompute, the same inputs reuse, nothing computed is lost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from utils.cache import CacheError, cache_inputs, cache_log_path, code_hash, load_or_generate, meta_path
from utils.checks import rule_judge


def counted(value):
    calls = []

    def fn():
        calls.append(1)
        return value

    return fn, calls


def test_same_inputs_reuse_with_one_short_line_and_the_cache_log_names_path_and_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "part3_contrastive" / "scores.json"
    inputs = cache_inputs(model="m", n_questions=5)
    fn, calls = counted([1, 2])
    load_or_generate(path, fn, "scores", inputs=inputs)
    assert load_or_generate(path, fn, "scores", inputs=inputs) == [1, 2]
    assert len(calls) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed == [printed[-1]] and printed[-1].startswith("Loaded scores from the course cache (made 20")
    assert str(tmp_path) not in printed[-1]  # the notebook shows no path and no settings: the cache log has them
    logged = cache_log_path().read_text(encoding="utf-8").splitlines()
    assert f"saved scores to {path}" in logged[-2] and "n_questions=5" in logged[-2]
    assert f"loaded scores from {path} (made 20" in logged[-1] and "model=m" in logged[-1]


def test_other_judge_model_recomputes(tmp_path, capsys):
    path = tmp_path / "scores.json"
    fn, calls = counted([1])
    for name in ("judge-a", "judge-a", "judge-b"):
        judge = rule_judge(lambda p, s: 1, name)
        load_or_generate(path, fn, "scores", inputs=cache_inputs(model="subject", judge=judge))
    assert len(calls) == 2
    assert "judge" in capsys.readouterr().out.split("Recomputing scores")[1].splitlines()[0]


def test_other_data_file_recomputes(tmp_path):
    data = tmp_path / "trait.json"
    data.write_text('{"questions": ["a"]}')
    path = tmp_path / "responses.json"
    fn, calls = counted(["r"])
    load_or_generate(path, fn, inputs=cache_inputs(files=[data]))
    load_or_generate(path, fn, inputs=cache_inputs(files=[data]))
    data.write_text('{"questions": ["a", "b"]}')
    load_or_generate(path, fn, inputs=cache_inputs(files=[data]))
    assert len(calls) == 2


def test_changed_implementation_recomputes(tmp_path):
    def extract_v1(x):
        return x + 1

    def extract_v2(x):
        return x + 2  # the student fixed their function

    assert code_hash(extract_v1) != code_hash(extract_v2)
    path = tmp_path / "vectors.pt"
    load_or_generate(path, lambda: torch.tensor([1.0]), inputs=cache_inputs(code=[extract_v1]))
    value = load_or_generate(path, lambda: torch.tensor([2.0]), inputs=cache_inputs(code=[extract_v2]))
    assert value.item() == 2.0


def test_a_file_without_recorded_inputs_is_recomputed_when_inputs_are_given(tmp_path):
    path = tmp_path / "old.json"
    path.write_text("[0]")
    assert load_or_generate(path, lambda: [1], inputs=cache_inputs(model="m")) == [1]
    assert json.loads(meta_path(path).read_text())["inputs"] == {"model": "m"}


def test_recompute_switch_names_a_section(tmp_path, monkeypatch):
    path = tmp_path / "part3_contrastive" / "x.json"
    fn, calls = counted([1])
    load_or_generate(path, fn)
    monkeypatch.setenv("COURSE_RECOMPUTE", "part1_assistant_axis")
    load_or_generate(path, fn)
    assert len(calls) == 1
    monkeypatch.setenv("COURSE_RECOMPUTE", "part3_contrastive")
    load_or_generate(path, fn)
    monkeypatch.setenv("COURSE_RECOMPUTE", "all")
    load_or_generate(path, fn)
    assert len(calls) == 3


def test_numpy_scalars_are_saved_as_json(tmp_path):
    value = load_or_generate(tmp_path / "x.json", lambda: {"auroc": np.float32(0.5), "n": np.int64(3)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"auroc": 0.5, "n": 3}
    assert value["n"] == 3


@pytest.mark.parametrize("case", ["tensor in json", "folder is a file"])
def test_a_value_that_cannot_be_saved_is_still_returned(tmp_path, case):
    if case == "tensor in json":
        path, value = tmp_path / "x.json", {"v": torch.ones(2)}
    else:
        (tmp_path / "cache").write_text("not a folder")
        path, value = tmp_path / "cache" / "x.json", [1]
    with pytest.warns(UserWarning, match="Could not save"):
        out = load_or_generate(path, lambda: value)
    assert out is value
    assert not path.exists()


def test_cache_roundtrip_and_no_recompute(tmp_path):
    calls = []
    for _ in range(2):
        value = load_or_generate(tmp_path / "x.json", lambda: calls.append(1) or {"a": [1, 2]}, "numbers")
    assert value == {"a": [1, 2]} and len(calls) == 1
    t = load_or_generate(tmp_path / "t.pt", lambda: torch.arange(3.0), "tensor")
    torch.testing.assert_close(load_or_generate(tmp_path / "t.pt", lambda: None), t)


@pytest.mark.parametrize("name,content", [("x.json", b'{"a": [1, 2'), ("t.pt", b"PK\x03\x04trunc")])
def test_cache_reports_corrupted_file_by_path(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CacheError, match=str(path).replace("\\", "\\\\")):
        load_or_generate(path, lambda: {"fresh": True})
    assert path.read_bytes() == content  # nothing already on disk is lost


def test_cache_keeps_old_value_when_regeneration_fails(tmp_path):
    path = tmp_path / "x.json"
    load_or_generate(path, lambda: [1])

    def boom():
        raise RuntimeError("generation failed")

    with pytest.raises(RuntimeError):
        load_or_generate(path, boom, override=True)
    assert json.loads(path.read_text()) == [1]
    assert sorted(tmp_path.iterdir()) == sorted([path, meta_path(path)])  # no temporary file left behind


def test_json_cache_round_trips_int_keys_tuples_and_nan(tmp_path):
    path = tmp_path / "x.json"
    made = {3: (0.25, "a"), "scores": [float("nan"), float("inf"), 1.0], (1, 2): {"__json__": "kept"}}
    first = load_or_generate(path, lambda: made, "mixed")
    again = load_or_generate(path, lambda: pytest.fail("recomputed"), "mixed")
    assert first is made
    assert set(again) == {3, "scores", (1, 2)} and again[3] == (0.25, "a") and again[(1, 2)] == {"__json__": "kept"}
    assert math.isnan(again["scores"][0]) and again["scores"][1:] == [float("inf"), 1.0]
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))  # standard JSON


def test_json_cache_names_the_key_json_cannot_hold(tmp_path):
    with pytest.warns(UserWarning, match=r"Could not save .*steps\['layer'\]\[1\] is a Tensor"):
        load_or_generate(tmp_path / "x.json", lambda: {"layer": [1, torch.ones(2)]}, "steps")


@pytest.mark.parametrize("typo", ["part2", "part2_capping,part3", "everything"])
def test_a_recompute_setting_that_names_no_section_is_refused_with_the_valid_names(tmp_path, monkeypatch, typo):
    path = tmp_path / "part2_capping" / "x.json"
    fn, calls = counted([1])
    load_or_generate(path, fn)
    monkeypatch.setenv("COURSE_RECOMPUTE", typo)
    with pytest.raises(ValueError, match=r"COURSE_RECOMPUTE=.*part2_capping.*generations"):
        load_or_generate(path, fn)
    assert len(calls) == 1

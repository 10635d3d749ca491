"""Section 4 compares its trait vectors with an Assistant Axis for its own model on every profile: section 1's
axis when the two sections share a model, else a small axis that section 1's package builds and saves."""

from __future__ import annotations

from dataclasses import replace

from part1_assistant_axis import artifacts
from utils.checks import tiny
from utils.layers import d_model, num_layers
from utils.profiles import PROFILES, SectionModels


def test_axis_for_another_model_is_built_once_under_its_name(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model, tok = tiny()
    # As on `full`: section 1 studies another model than section 4.
    profile = replace(PROFILES["tiny"], models=SectionModels("tiny-gemma2", "tiny-gemma2", "tiny-qwen2", "tiny-qwen2"))
    axis = artifacts.axis_for_model(model, tok, profile, "tiny-qwen2", n_roles=2, n_questions=2)
    assert tuple(axis.value.shape) == (num_layers(model), d_model(model))
    assert axis.provenance["path"] == str(artifacts.other_model_axis_path(profile, "tiny-qwen2"))
    assert artifacts.axis_source(axis.provenance) == artifacts.SMALL_BUILD
    assert not artifacts.assistant_axis_path(profile).exists(), "section 1's own axis must not be written"
    assert "is for tiny-gemma2, not tiny-qwen2" in capsys.readouterr().out
    again = artifacts.axis_for_model(model, tok, profile, "tiny-qwen2", n_roles=2, n_questions=2)
    assert "building" not in capsys.readouterr().out
    assert again.value.equal(axis.value)


def test_axis_for_section_1s_model_is_section_1s(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model, tok = tiny()
    profile = PROFILES["tiny"]
    axis = artifacts.axis_for_model(model, tok, profile, profile.models.part1, n_roles=2, n_questions=2)
    assert axis.provenance["path"] == str(artifacts.assistant_axis_path(profile))

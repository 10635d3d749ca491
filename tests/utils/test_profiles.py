"""utils.profiles: one environment variable switches the profile, and says why."""

from __future__ import annotations

import pytest

from utils.profiles import PROFILES, get_profile


def test_profiles_switch_and_reason(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    assert get_profile().name == "tiny"
    assert "COURSE_PROFILE=tiny" in capsys.readouterr().out
    for p in PROFILES.values():
        assert p.steer_layer == p.trait_vector_layer - 1
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="COURSE_PROFILE"):
        get_profile()


def test_an_empty_course_profile_counts_as_unset_and_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COURSE_PROFILE", "")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("utils.environment.CHECKOUT_DOTENV", tmp_path / "no.env", raising=False)
    assert get_profile().name in PROFILES  # chosen by auto, not "Unknown profile ''"
    out = capsys.readouterr().out
    assert "auto:" in out and "COURSE_PROFILE" in out and "exported empty" in out, out


def test_course_profile_in_a_dotenv_file_is_honoured_and_named(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("COURSE_PROFILE=lite\n")
    assert get_profile().name == "lite"  # auto never picks lite on a machine without a GPU
    assert f"COURSE_PROFILE=lite in {tmp_path / '.env'}" in capsys.readouterr().out
    (tmp_path / ".env").write_text("COURSE_PROFILE=huge\n")
    with pytest.raises(ValueError, match="COURSE_PROFILE.*\\.env"):
        get_profile()


def test_section_settings_are_typed_fields_with_one_owner():
    from dataclasses import replace

    from part3_contrastive import trait_names
    from utils.profiles import BASE_TRAITS, PROFILES

    assert not hasattr(PROFILES["offline"], "extra")
    for profile in PROFILES.values():
        assert set(profile.pipeline_traits) <= set(trait_names()), profile.name
        assert profile.pipeline_traits[: len(BASE_TRAITS)] == BASE_TRAITS
    assert len(PROFILES["full"].pipeline_traits) == 7 and PROFILES["lite"].pipeline_traits == BASE_TRAITS
    offline = PROFILES["offline"]
    assert offline.n_pipeline_questions == offline.n_heldout_role_questions == 5 < offline.n_eval_questions
    tiny = replace(PROFILES["tiny"], n_eval_questions=2)
    assert tiny.n_pipeline_questions == tiny.n_heldout_role_questions == 2, "unset: n_eval_questions"
    assert all(p.sae_release is None and p.sae_id is None for p in PROFILES.values())

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

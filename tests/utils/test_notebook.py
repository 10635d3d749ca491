"""The set-up cell's report: which judge a run uses is said, and it follows the keys, not the profile."""

from __future__ import annotations

import pytest

from utils.notebook import describe_judge
from utils.profiles import get_profile

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COURSE_JUDGE_BACKEND", "COURSE_JUDGE_MODEL")


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env above a temporary folder
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("profile_name", ["offline", "lite"])
def test_the_judge_line_names_the_local_judge_without_keys_and_the_hosted_one_with_a_key(no_keys, profile_name):
    profile = get_profile(profile_name, verbose=False)
    line = describe_judge(profile, profile.models.part1)
    assert line.startswith(f"Judge: local ({profile.models.part1}")
    no_keys.setenv("ANTHROPIC_API_KEY", "test-key")
    line = describe_judge(profile, profile.models.part1)
    assert line.startswith("Judge: anthropic (claude-")
    assert "any profile" in line and profile_name not in line
    no_keys.delenv("ANTHROPIC_API_KEY")
    assert "every profile uses a hosted judge" in describe_judge(profile, profile.models.part1)


def test_a_judge_set_up_wrongly_is_reported_not_raised(no_keys):
    no_keys.setenv("COURSE_JUDGE_BACKEND", "gemini")
    profile = get_profile("offline", verbose=False)
    assert "not usable as set" in describe_judge(profile, profile.models.part1)


def test_colab_install_asks_pip_for_requirements_only(monkeypatch):
    """What the Colab set-up installs: requirements.txt's lines without their comments, leaving Colab's
    torch and ipywidgets (and the developer tools) alone."""
    import utils.notebook as notebook

    calls = []
    monkeypatch.setattr(notebook.subprocess, "run", lambda args, **kw: calls.append(args))
    notebook._install_for_colab()
    (args,) = calls
    wanted = args[args.index("-q") + 1 :]
    assert not [w for w in wanted if "#" in w or " " in w], wanted
    names = {w.split("=")[0].split(">")[0].split("<")[0].lower() for w in wanted}
    assert "transformers" in names and "gguf" in names
    assert not names & {"torch", "ipywidgets", "playwright", "jupyterlab", "pytest", "ruff", "mypy"}, names

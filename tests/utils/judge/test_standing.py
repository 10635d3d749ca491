"""`judge_standing`: the one rule for which profile and judge pairs have a judge too weak to filter or score
as the papers' judges do."""

from __future__ import annotations

import pytest

from utils.judge.judge import Judge
from utils.judge.standing import WEAK_LOCAL_JUDGE_PROFILES, judge_standing
from utils.profiles import get_profile


class Backend:
    def __init__(self, name: str, model_name: str = "judge-model") -> None:
        self.name, self.model_name = name, model_name

    def score(self, prompts, scale):
        return [None for _ in prompts]


def judge_of(backend: str) -> Judge:
    return Judge(Backend(backend), cache_path=None)  # type: ignore[arg-type]


def test_the_offline_profiles_local_judge_is_weak_and_says_why():
    standing = judge_standing("offline", judge_of("local"))
    assert standing.weak and WEAK_LOCAL_JUDGE_PROFILES == {"offline"}
    assert "offline" in standing.reason and "judge-model" in standing.reason and "weak" in standing.reason
    assert judge_standing(get_profile("offline", verbose=False), judge_of("local")) == standing


@pytest.mark.parametrize(
    ("profile", "backend"),
    [
        ("offline", "openai"),
        ("offline", "anthropic"),
        ("lite", "local"),
        ("full", "local"),
        ("full", "openai"),
        ("tiny", "local"),
    ],
)
def test_every_other_pair_keeps_the_papers_method(profile, backend):
    standing = judge_standing(profile, judge_of(backend))
    assert not standing.weak
    assert "as the papers' judges do" in standing.reason and "judge-model" in standing.reason


def test_tiny_rehearses_the_weak_path_only_when_asked_and_only_with_a_local_judge():
    assert judge_standing("tiny", judge_of("local"), rehearse_on_tiny=True).weak
    assert "random model" in judge_standing("tiny", judge_of("local"), rehearse_on_tiny=True).reason
    assert not judge_standing("tiny", judge_of("openai"), rehearse_on_tiny=True).weak
    assert not judge_standing("lite", judge_of("local"), rehearse_on_tiny=True).weak


def test_nothing_else_in_the_house_compares_a_profile_name_with_the_local_backend():
    """The rule has one owner: no section or utils module writes it again."""
    import re

    from utils.sections import ROOT, SECTIONS

    pattern = re.compile(r"profile(_name|\.name)\s*(==|in)\s*[^\n]*\n?[^\n]*backend\.name\s*==\s*\"local\"")
    offenders = []
    for top in ("utils", *SECTIONS):
        for path in (ROOT / top).rglob("*.py"):
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert not offenders, offenders

"""The checks' helpers: a rule judge is an instrument, made without announcing itself."""

from __future__ import annotations

from utils.checks import rule_judge
from utils.judge import ADHERENCE_0_3


def test_a_rule_judge_scores_through_its_rule_and_prints_nothing(capsys):
    judge = rule_judge(lambda prompt, scale: 3 if "pirate" in prompt else 0, "a-rule-never-announced")
    assert judge.score(["a pirate's answer", "a plain answer"], ADHERENCE_0_3) == [3, 0]
    assert capsys.readouterr().out == ""

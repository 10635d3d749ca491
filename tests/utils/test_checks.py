"""The checks' helpers: a rule judge is an instrument, made without announcing itself."""

from __future__ import annotations

import pytest
import torch

from utils.checks import CheckFailed, check_hooks_removed_after_error, rule_judge
from utils.judge import ADHERENCE_0_3


def test_a_rule_judge_scores_through_its_rule_and_prints_nothing(capsys):
    judge = rule_judge(lambda prompt, scale: 3 if "pirate" in prompt else 0, "a-rule-never-announced")
    assert judge.score(["a pirate's answer", "a plain answer"], ADHERENCE_0_3) == [3, 0]
    assert capsys.readouterr().out == ""


def _hooking(model, remove_on_error: bool):
    """A function that registers a hook on block 1 and runs the model, removing the hook (or not) on errors."""
    from utils.layers import get_layers

    def run():
        handle = get_layers(model)[1].register_forward_hook(lambda m, i, o: None)
        if not remove_on_error:
            model(torch.tensor([[1, 2, 3]]))
            handle.remove()
            return
        try:
            model(torch.tensor([[1, 2, 3]]))
        finally:
            handle.remove()

    return run


def test_hooks_removed_after_an_error_passes_a_finally_and_fails_a_leak(tiny_models):
    from utils.hooks import user_hook_counts

    model, _ = tiny_models["tiny-qwen2"]
    before = user_hook_counts(model)
    check_hooks_removed_after_error(model, _hooking(model, remove_on_error=True), "leak")
    with pytest.raises(CheckFailed, match="^leaked on error$"):
        check_hooks_removed_after_error(model, _hooking(model, remove_on_error=False), "leaked on error")
    assert user_hook_counts(model) == before  # the check put the model's hooks back, the leaked one too
    model(torch.tensor([[1, 2, 3]]))  # and the raising hook is gone

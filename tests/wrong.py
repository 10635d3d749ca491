"""Shared machinery for the wrong-implementation tests: every wrong version must be rejected by
its exercise check with a message naming the mistake, and the reference solution must pass."""

from __future__ import annotations

import importlib
from contextlib import contextmanager

import pytest

from utils.checks import is_user_hook, tiny


def cases(wrong: dict[str, list[tuple]]) -> list:
    """pytest params (exercise, implementation, phrase) with readable ids."""
    return [
        pytest.param(exercise, impl, phrase, id=f"{exercise}-{impl.__name__}")
        for exercise, impls in wrong.items()
        for impl, phrase in impls
    ]


@contextmanager
def hooks_restored(names=("tiny-qwen2", "tiny-gemma2")):
    """Put the shared tiny models' hooks back as they were: remove what a wrong implementation added
    (never transformers' own) and restore what it removed (e.g. by clearing a hook dict wholesale)."""
    models = [tiny(name)[0] for name in names]
    saved = [{m: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()} for model in models]
    try:
        yield
    finally:
        for snapshot in saved:
            for module, (post, pre) in snapshot.items():
                for current, before in ((module._forward_hooks, post), (module._forward_pre_hooks, pre)):
                    for key in set(current) - set(before):
                        if is_user_hook(current[key]):
                            del current[key]
                    for key, hook in before.items():
                        current.setdefault(key, hook)


def assert_rejected(section: str, exercise: str, impl, phrase: str | None) -> None:
    checks = importlib.import_module(f"{section}.tests")
    with hooks_restored(), pytest.raises(AssertionError) as info:
        getattr(checks, f"test_{exercise}")(impl)
    if phrase:
        assert phrase.lower() in str(info.value).lower(), f"message {str(info.value)!r} should mention {phrase!r}"


def assert_solution_passes(section: str, exercise: str) -> None:
    checks = importlib.import_module(f"{section}.tests")
    solutions = importlib.import_module(f"solutions.{section}")
    getattr(checks, f"test_{exercise}")(getattr(solutions, exercise))

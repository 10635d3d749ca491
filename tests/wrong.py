"""Shared machinery for the wrong-implementation tests: every wrong version must be rejected by
its exercise check with a message naming the mistake, and the reference solution must pass."""

from __future__ import annotations

import importlib

import pytest

from utils.checks import tiny
from utils.hooks import hooks_restored


def cases(wrong: dict[str, list[tuple]]) -> list:
    """pytest params (exercise, implementation, phrase) with readable ids."""
    return [
        pytest.param(exercise, impl, phrase, id=f"{exercise}-{impl.__name__}")
        for exercise, impls in wrong.items()
        for impl, phrase in impls
    ]


def _tiny_hooks_restored(names=("tiny-qwen2", "tiny-gemma2")):
    """The shared tiny models' hooks put back as they were after a wrong implementation ran."""
    return hooks_restored(tiny(name)[0] for name in names)


def assert_rejected(section: str, exercise: str, impl, phrase: str | None) -> None:
    checks = importlib.import_module(f"{section}.tests")
    with _tiny_hooks_restored(), pytest.raises(AssertionError) as info:
        getattr(checks, f"test_{exercise}")(impl)
    if phrase:
        assert phrase.lower() in str(info.value).lower(), f"message {str(info.value)!r} should mention {phrase!r}"


def assert_solution_passes(section: str, exercise: str) -> None:
    checks = importlib.import_module(f"{section}.tests")
    solutions = importlib.import_module(f"solutions.{section}")
    getattr(checks, f"test_{exercise}")(getattr(solutions, exercise))

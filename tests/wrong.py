"""Shared machinery for the wrong-implementation tests: every wrong version must be rejected by
its exercise check with a message naming the mistake, and the reference solution must pass."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from utils.checks import tiny
from utils.hooks import hooks_restored

HERE = Path(__file__).resolve().parent


def wrong_sections() -> dict[str, dict[str, list[tuple]]]:
    """section -> its WRONG dict, from every tests/sections/wrong/part*.py (each names its SECTION)."""
    folder = HERE / "sections" / "wrong"
    modules = [importlib.import_module(f"tests.sections.wrong.{p.stem}") for p in sorted(folder.glob("part*.py"))]
    return {module.SECTION: module.WRONG for module in modules}


def cases(sections: dict[str, dict[str, list[tuple]]]) -> list:
    """pytest params (section, exercise, implementation, phrase), with ids section-exercise-implementation."""
    return [
        pytest.param(section, exercise, impl, phrase, id=f"{section}-{exercise}-{impl.__name__}")
        for section, wrong in sections.items()
        for exercise, impls in wrong.items()
        for impl, phrase in impls
    ]


def exercises(sections: dict[str, dict[str, list[tuple]]]) -> list:
    """pytest params (section, exercise), with ids section-exercise."""
    return [
        pytest.param(section, exercise, id=f"{section}-{exercise}")
        for section, wrong in sections.items()
        for exercise in wrong
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

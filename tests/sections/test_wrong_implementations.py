"""Every wrong implementation in tests/sections/wrong/part*.py is rejected by its exercise's check with a
message naming the mistake, and every exercise's reference solution passes its check."""

from __future__ import annotations

import pytest

from tests.wrong import assert_rejected, assert_solution_passes, cases, exercises, wrong_sections

SECTIONS = wrong_sections()


@pytest.mark.parametrize("section,exercise,impl,phrase", cases(SECTIONS))
def test_wrong_implementation_rejected(section, exercise, impl, phrase):
    assert_rejected(section, exercise, impl, phrase)


@pytest.mark.parametrize("section,exercise", exercises(SECTIONS))
def test_solution_passes(section, exercise):
    assert_solution_passes(section, exercise)

"""Section 1's checks beyond the wrong-implementation table: other correct answers pass, checks leave no
hooks, and the score-filter cell says which responses it keeps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from part1_assistant_axis import DEFAULT_ROLE
from solutions import part1_assistant_axis as sol
from tests.sections.wrong.part1 import SECTION, hidden_states_batched, one_forward_per_example


@pytest.mark.parametrize("impl", [one_forward_per_example, hidden_states_batched])
def test_other_correct_response_means_pass(impl):
    """No batching (one forward per example) is allowed, and so is output_hidden_states below the last block."""
    from part1_assistant_axis import tests as checks

    checks.test_extract_response_activations(impl)


def test_checks_leave_no_hooks():
    """A check must leave the shared tiny model as it found it."""
    from part1_assistant_axis import tests as checks
    from utils.checks import tiny
    from utils.hooks import user_hook_counts

    model, tok = tiny()
    before = user_hook_counts(model)
    checks.test_extract_response_activations(sol.extract_response_activations)
    checks.test_generate_role_responses(sol.generate_role_responses)
    assert user_hook_counts(model) == before


def _threshold_message(scores: dict) -> str:
    """What the score-filter cell of the section prints for these judge scores."""
    from part1_assistant_axis.persona_space import choose_score_threshold
    from tests.source_cells import cells_between, run_cells

    cells = cells_between(
        SECTION, "SCORE_THRESHOLD = None if scores is None else choose_score_threshold(scores)", "scores_for_vectors ="
    )
    namespace = {
        "choose_score_threshold": choose_score_threshold,
        "scores": scores,
        "DEFAULT_ROLE": DEFAULT_ROLE,
        "course": SimpleNamespace(record=lambda *args: None),
    }
    return run_cells(cells, namespace)


def test_score_filter_message_matches_the_threshold_used():
    """The notebook says which responses build the role vectors: never 'unfiltered' after choosing a filter."""
    mixed = {DEFAULT_ROLE: [1, 1], "pirate": [3, 1], "ghost": [3, 2], "monk": [2, 3]}
    message = _threshold_message(mixed)
    assert "score 3" in message and "unfiltered" not in message, message
    all_two = {DEFAULT_ROLE: [2, 2], "pirate": [2, 2], "ghost": [2, 2]}
    message = _threshold_message(all_two)
    assert ">= 2" in message and "same score" in message and "unfiltered" not in message, message
    none_in_role = {DEFAULT_ROLE: [1], "pirate": [0, 1], "ghost": [1, 0], "monk": [0, 0]}
    message = _threshold_message(none_in_role)
    assert "unfiltered" in message, message


def test_without_judge_scores_the_filter_cell_points_to_the_likelihood_filter():
    assert "see §5" in _threshold_message(None)

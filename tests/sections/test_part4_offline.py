"""Section 4 on the offline model: steering with the sycophancy vector moves responses along it,
and the steerer leaves no trace."""

from __future__ import annotations

import pytest

from solutions import part4_steering as sol
from utils.chat import build_messages
from utils.generation import generate_replies
from utils.hooks import user_hook_counts
from utils.profiles import PROFILES

# `slow` (why: its marker in pyproject.toml); CI's course checks "P(opens agreeing) at coeff ..." and projections.
pytestmark = pytest.mark.slow


def test_steered_responses_project_further_with_larger_coefficient(offline_model, offline_sycophancy):
    model, tok = offline_model
    layer = PROFILES["offline"].steer_layer
    vector = offline_sycophancy["vectors"][layer]
    questions = offline_sycophancy["evaluate"]["questions"][:5]
    before = user_hook_counts(model)
    means = {}
    for coeff in (0.0, 8.0):
        with sol.ActivationSteerer(model, vector, coeff, layer, positions="response"):
            replies = generate_replies(model, tok, [build_messages(q) for q in questions], max_new_tokens=32)
        projections = sol.compute_trait_projections(model, tok, [None] * 5, questions, replies, vector, layer)
        means[coeff] = sum(projections) / len(projections)
    print(f"mean projection of steered responses: {means}")
    assert user_hook_counts(model) == before
    assert means[8.0] > means[0.0]

"""Section code faults (issue 11): NaN guards in section 2, steerer/capper re-entry and layer checks."""

from __future__ import annotations

import math

import pytest
import torch

from solutions import part2_capping as cap
from solutions import part4_steering as steer
from utils.hooks import user_hook_counts
from utils.layers import d_model, num_layers


@pytest.fixture
def model(tiny_models):
    return tiny_models["tiny-qwen2"][0]


def test_empty_reply_has_a_finite_projection(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    messages = [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Still there?"},
        {"role": "assistant", "content": "Yes."},
    ]
    analyzer = cap.ConversationAnalyzer(model, tok, 1, torch.randn(d_model(model)))
    projections = analyzer.project_onto_axis(messages)
    assert len(projections) == 2 and all(math.isfinite(p) for p in projections), projections


def test_zero_axis_and_nan_threshold_are_rejected_up_front(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    n, d = num_layers(model), d_model(model)
    axis = torch.randn(n, d)
    zero = axis.clone()
    zero[1] = 0
    with pytest.raises(ValueError, match=r"axis_vectors\[1\]"):
        cap.ActivationCapper(model, zero, {1: 0.0}, [1])
    with pytest.raises(ValueError, match=r"thresholds\[1\]"):
        cap.ActivationCapper(model, axis, {1: float("nan")}, [1])
    with pytest.raises(ValueError, match="assistant_axis"):
        cap.ConversationAnalyzer(model, tok, 1, torch.zeros(d))
    with pytest.raises(ValueError, match="steering_vector"):
        cap.generate_with_steering(model, tok, "Hi", torch.zeros(d), 1, 1.0, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"default_projections_per_layer\[1\]"):
        cap.compute_capping_thresholds({1: torch.tensor([])}, 25.0)


def test_capper_refuses_reentry_and_bad_layers(model):
    n, d = num_layers(model), d_model(model)
    axis, thresholds = torch.randn(n, d), {i: 0.0 for i in range(n)}
    before = user_hook_counts(model)
    capper = cap.ActivationCapper(model, axis, thresholds, [1, 2])
    with capper:
        with pytest.raises(RuntimeError, match="already active"):
            capper.__enter__()
        assert user_hook_counts(model) != before  # the outer block is still capped
    assert user_hook_counts(model) == before
    for bad in (-1, n):
        with pytest.raises(ValueError, match="layer_indices"):
            cap.ActivationCapper(model, axis, {**thresholds, -1: 0.0, n: 0.0}, [bad])


def test_steerer_refuses_reentry_and_bad_layers(model):
    n, d = num_layers(model), d_model(model)
    before = user_hook_counts(model)
    steerer = steer.ActivationSteerer(model, torch.randn(d), 1.0, 1)
    with steerer:
        with pytest.raises(RuntimeError, match="already active"):
            steerer.__enter__()
    assert user_hook_counts(model) == before
    for bad in (-1, n):
        with pytest.raises(ValueError, match="layer"):
            steer.ActivationSteerer(model, torch.randn(d), 1.0, bad)

"""utils.models: loading tiny models ready for inference, names, position limits and descriptions."""

from __future__ import annotations

import warnings

import pytest
import torch

from utils.layers import d_model, num_layers
from utils.models import (
    check_positions,
    course_name,
    default_dtype,
    describe,
    load_model,
    max_positions,
    model_display_name,
)
from utils.profiles import OFFLINE_MODEL


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_a_loaded_model_is_ready_for_inference_and_batched_left_padded(name):
    model, tokenizer = load_model(name, device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert next(model.parameters()).dtype == torch.float32
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    assert course_name(model) is None, "a tiny model's replies and activations are never stored"
    again, _ = load_model(name, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters())), "seeded weights"


def test_default_dtype_is_float32_on_a_cpu():
    assert default_dtype("cpu") == torch.float32


def test_position_limits_refuse_too_long_and_warn_when_generation_runs_past(tiny_models):
    model, _ = tiny_models["tiny-llama"]
    limit = max_positions(model)
    assert isinstance(limit, int) and limit > 0
    check_positions(model, [limit, 3], "prompts")  # exactly at the limit: fine
    with pytest.raises(ValueError, match=r"prompts\[7\] is"):
        check_positions(model, {3: 2, 7: limit + 1}, "prompts")
    with pytest.warns(UserWarning, match="max_new_tokens=5"):
        check_positions(model, [limit - 2], "prompts", new_tokens=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_positions(model, [limit - 5], "prompts", new_tokens=5)
        check_positions(model, [], "prompts", new_tokens=10**6)


@pytest.mark.parametrize(
    "name, shown",
    [
        ("google/gemma-2-27b-it", "Gemma"),
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen"),
        (OFFLINE_MODEL, "Qwen"),
        ("tiny-llama", "Llama"),
        ("org/SomethingElse-1B", "SomethingElse-1B"),
    ],
)
def test_display_names(name, shown):
    assert model_display_name(name) == shown


def test_describe_says_blocks_width_and_dtype(tiny_models):
    model, _ = tiny_models["tiny-qwen2"]
    line = describe(model)
    assert line.startswith(type(model).__name__)
    assert f"{num_layers(model)} blocks" in line and f"d_model {d_model(model)}" in line
    assert "torch.float32 on cpu" in line

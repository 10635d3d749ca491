"""utils.layers: finding the decoder blocks of any supported model, and the block / hidden_states index convention."""

from __future__ import annotations

import pytest
import torch.nn as nn

from utils.layers import (
    block_to_hidden_states_index,
    d_model,
    get_layers,
    hidden_states_to_block_index,
    num_layers,
)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"])
def test_get_layers_finds_blocks(tiny_models, name):
    model, _ = tiny_models[name]
    layers = get_layers(model)
    assert len(layers) == num_layers(model) == 4
    assert d_model(model) == 64
    assert layers is model.model.layers


def test_get_layers_on_a_multimodal_style_wrapper(tiny_models):
    inner, _ = tiny_models["tiny-gemma3"]
    wrapper = nn.Module()
    wrapper.model = nn.Module()
    wrapper.model.language_model = inner.model
    assert get_layers(wrapper) is inner.model.layers


def test_get_layers_unknown_model_lists_paths():
    with pytest.raises(AttributeError, match="model.language_model.layers"):
        get_layers(nn.Linear(2, 2))


def test_layer_index_conversion():
    assert block_to_hidden_states_index(0) == 1
    assert hidden_states_to_block_index(20) == 19
    with pytest.raises(ValueError, match="embedding"):
        hidden_states_to_block_index(0)

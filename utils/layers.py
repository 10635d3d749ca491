"""Access to a model's decoder blocks, and the two layer-index conventions kept apart.

Convention: a ``layer`` argument is a 0-based index into the decoder blocks; ``result[i]`` of an
all-layer tensor is the output of block ``i``. ``output_hidden_states=True`` returns one more entry:
``hidden_states[0]`` is the embedding output and ``hidden_states[i]`` the output of block ``i - 1``,
except the last entry, which is taken after the model's final norm (not the raw output of the last
block): capture the last block with a hook where it matters.

The layer constants (which block each section reads, caps or steers) are not here: they are per profile,
fields of `utils.profiles.Profile` (``axis_layer``, ``capping_layers``, ``trait_vector_layer`` and its
block ``steer_layer``), which the sections copy into ``AXIS_LAYER``, ``CAPPING_LAYERS``,
``TRAIT_VECTOR_LAYER`` and ``STEER_LAYER``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch.nn as nn
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Attribute paths tried, in order, to find the list of decoder blocks.
LAYER_PATHS = (
    "model.layers",  # Qwen2/Qwen3, Llama, Gemma2, Gemma3 text (…ForCausalLM)
    "model.language_model.layers",  # Gemma3 / multimodal wrappers (…ForConditionalGeneration)
    "language_model.model.layers",  # older multimodal wrappers
    "model.model.layers",  # PEFT-style wrappers
    "layers",  # a bare decoder (…Model)
    "transformer.h",  # GPT-2 style
)


def _follow(obj, path: str):
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def get_layers(model: nn.Module) -> nn.ModuleList:
    """Return the decoder blocks of ``model``.

    Args:
        model: a transformers causal LM (Qwen2/3, Llama, Gemma2/3, including multimodal wrappers).

    Returns:
        The `nn.ModuleList` of decoder blocks.

    Raises:
        AttributeError: listing every attribute path tried.
    """
    for path in LAYER_PATHS:
        layers = _follow(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise AttributeError(
        f"Could not find the decoder blocks of {type(model).__name__}; tried "
        + ", ".join(f"model.{p}" for p in LAYER_PATHS)
        + ". Add the right path to utils.layers.LAYER_PATHS."
    )


def num_layers(model: nn.Module) -> int:
    """Number of decoder blocks."""
    return len(get_layers(model))


def d_model(model: PreTrainedModel) -> int:
    """Width of the residual stream."""
    weight = model.get_input_embeddings().weight
    return cast(Tensor, weight).shape[1]  # a Module attribute: typed Tensor | Module by torch


def block_to_hidden_states_index(block: int) -> int:
    """``hidden_states`` index of decoder block ``block`` (for the last block that entry is after the final norm)."""
    if block < 0:
        raise ValueError(f"block index must be >= 0, got {block}")
    return block + 1


def hidden_states_to_block_index(hidden_index: int) -> int:
    """Decoder block whose output is ``hidden_states[hidden_index]`` (the last entry: after the final norm).

    Raises:
        ValueError: for index 0, which is the embedding output, not a block.
    """
    if hidden_index < 1:
        raise ValueError(f"hidden_states[{hidden_index}] is the embedding output, not the output of a block")
    return hidden_index - 1


def check_block_index(model: nn.Module, layer, name: str = "layer") -> int:
    """Return ``layer`` if it indexes one of the model's decoder blocks; reject anything else up front.

    Negative indices are refused: ``layers[-1]`` would silently pick the last block.

    Raises:
        ValueError: naming the argument, the value and the valid range.
    """
    n = num_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise ValueError(f"{name} must be a block index in 0..{n - 1} (this model has {n} blocks), got {layer!r}")
    return layer


def check_block_indices(model: nn.Module, layers, name: str = "layers") -> list[int]:
    """Return ``layers`` as a list if it is a non-empty list of the model's block indices (see `check_block_index`).

    Args:
        model: the model.
        layers: block indices.
        name: the argument's name, for the message.

    Returns:
        The indices, as a list, in the order given.

    Raises:
        ValueError: for an empty list, or naming the first index that is not a block (negative included).
    """
    layers = list(layers)
    if not layers:
        raise ValueError(f"{name} is empty: name at least one block index (0..{num_layers(model) - 1})")
    return [check_block_index(model, layer, f"{name}[{k}]") for k, layer in enumerate(layers)]

"""Loading models by name: hub ids, the offline GGUF model, and tiny random models.

All go through `load_model`, so every profile uses the same code paths afterwards.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from utils.profiles import OFFLINE_MODEL
from utils.timing import timed
from utils.tiny import TINY_MODELS, build_tiny_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def default_device() -> str:
    """``cuda`` when available, else ``mps`` on Apple silicon, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bf16 on GPUs that support it, float32 otherwise (bf16 matmuls are slow on most CPUs)."""
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(
    name: str, device: str | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a chat model and its tokenizer, ready for inference.

    Args:
        name: a hub id (``Qwen/Qwen2.5-7B-Instruct``), the offline model
            (``offline-qwen2.5-coder-0.5b``), or a tiny model (``tiny-qwen2``, ``tiny-gemma2``,
            ``tiny-llama``, ``tiny-gemma3``).
        device: where to put the model (default: `default_device`).
        dtype: weight dtype (default: `default_dtype`; tiny models are always float32).

    Returns:
        (model, tokenizer): model in eval mode with gradients off; tokenizer with a pad token.
    """

    device = device or default_device()
    with timed("model load"):
        model, tokenizer = _load(name, device, dtype)
    if name not in TINY_MODELS:
        name_model(model, name)
    return model, tokenizer


# Elements read from each parameter for its fingerprint: enough to see any edit of a whole weight
# (scaling, an ablated direction, a loaded state dict), at a cost of milliseconds for any model size.
_FINGERPRINT_SAMPLES = 4096


def weights_fingerprint(model: PreTrainedModel) -> str:
    """A digest of the model's parameters as they are now: which tensors, and a strided sample of each one's values.

    Args:
        model: a model.

    Returns:
        64 hex digits; it changes when a parameter is replaced or its values are edited in place.
    """
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().reshape(-1)
            digest.update(f"{name}|{param.shape}|{param.dtype}|{param.data_ptr()}".encode())
            if flat.numel() == 0 or flat.is_meta:
                continue
            step = max(1, flat.numel() // _FINGERPRINT_SAMPLES)
            sample = torch.cat([flat[::step][:_FINGERPRINT_SAMPLES], flat[-1:]])
            digest.update(sample.to("cpu", torch.float64).numpy().tobytes())
    return digest.hexdigest()


def name_model(model: PreTrainedModel, name: str) -> None:
    """Name a model as `load_model` does, so its replies and activations are stored under that name
    (`utils.reply_store`, `utils.activation_store`) for as long as its weights stay as they are now.

    Args:
        model: the model, with the weights ``name`` stands for.
        name: the name it was loaded by.
    """
    # torch types every Module attribute as Tensor | Module, so plain attributes need the ignore.
    model.course_name = name  # type: ignore[assignment]
    model.course_weights = weights_fingerprint(model)  # type: ignore[assignment]


def course_name(model: PreTrainedModel) -> str | None:
    """The name `load_model` loaded a model by, the key of its stored replies and activations.

    Args:
        model: a model.

    Returns:
        Its name (``offline-qwen2.5-coder-0.5b``, a hub id), or None for a tiny model, a model loaded
        some other way, or one whose weights changed since it was loaded (an ablated direction, a scaled
        weight): their replies and activations are never stored or read from the store.
    """
    name = getattr(model, "course_name", None)
    loaded = getattr(model, "course_weights", None)
    if name is None or loaded is None or weights_fingerprint(model) == loaded:
        return name
    if not getattr(model, "course_weights_changed", False):
        print(f"The weights of {name} changed since it was loaded: its stored replies and activations are not used.")
        model.course_weights_changed = True  # type: ignore[assignment]
    return None


def max_positions(model: PreTrainedModel) -> int | None:
    """The most positions the model was trained for (``max_position_embeddings``), or None if unknown."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    value = getattr(config, "max_position_embeddings", None)
    return value if isinstance(value, int) else None


def check_positions(
    model: PreTrainedModel, lengths: Sequence[int] | Mapping[int, int], what: str, new_tokens: int = 0
) -> None:
    """Refuse sequences longer than the model's positions; warn when generating would run past them.

    Args:
        model: the model.
        lengths: token count of each sequence, or (the caller's index of a sequence) -> its token count.
        what: what the sequences are, for the message (e.g. "conversations").
        new_tokens: tokens to be generated after each sequence.

    Raises:
        ValueError: naming the first sequence longer than the model's maximum positions.
    """
    limit = max_positions(model)
    lengths = lengths if isinstance(lengths, Mapping) else dict(enumerate(lengths))
    if limit is None or not lengths:
        return
    longest = max(lengths, key=lambda i: lengths[i])
    if lengths[longest] > limit:
        raise ValueError(
            f"{what}[{longest}] is {lengths[longest]} tokens long, more than this model's maximum of "
            f"{limit} positions (max_position_embeddings): shorten it"
        )
    if lengths[longest] + new_tokens > limit:
        warnings.warn(
            f"{what}[{longest}] ({lengths[longest]} tokens) plus max_new_tokens={new_tokens} runs past this "
            f"model's maximum of {limit} positions: replies may degrade past that point",
            stacklevel=3,
        )


def _load(name: str, device: str, dtype: torch.dtype | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.progress import transformers_bars_off

    if name in TINY_MODELS:
        model, tokenizer = build_tiny_model(name)
    else:
        source: str | Path = name
        if name == OFFLINE_MODEL:
            from utils.offline_model import converted_model_dir

            source = converted_model_dir()
        with transformers_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or default_dtype(device))
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def model_display_name(name: str) -> str:
    """A model's short name for prompts that mention it (the Assistant Axis data's ``{model_name}``).

    ``google/gemma-2-27b-it`` -> "Gemma", ``Qwen/Qwen2.5-7B-Instruct`` -> "Qwen", ``tiny-llama`` -> "Llama".
    """
    lowered = name.lower()
    if lowered == OFFLINE_MODEL:
        return "Qwen"
    for family, display in (("gemma", "Gemma"), ("qwen", "Qwen"), ("llama", "Llama"), ("mistral", "Mistral")):
        if family in lowered:
            return display
    return name.rsplit("/", 1)[-1]


def describe(model: PreTrainedModel) -> str:
    """One line: class, blocks, width, parameters, dtype and device."""
    from utils.layers import d_model, num_layers

    params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    return (
        f"{type(model).__name__}: {num_layers(model)} blocks, d_model {d_model(model)}, "
        f"{params / 1e6:.1f}M parameters, {first.dtype} on {first.device}"
    )

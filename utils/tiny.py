"""Tiny random-initialised chat models for testing mechanics (no network, seconds to build).

Each has a byte-level tokenizer (every UTF-8 byte is a token, no merges) with the special tokens and
chat template of its family, so chat formatting, padding and hooks behave as on the real models.
"""

from __future__ import annotations

from typing import TypedDict

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


class _Family(TypedDict):
    """A tokenizer family: its chat template, special tokens, and which of them are eos/pad/bos."""

    template: str
    special: list[str]
    tokens: dict[str, str]


FAMILIES: dict[str, _Family] = {
    "qwen": _Family(
        template=QWEN_TEMPLATE,
        special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        tokens=dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
    ),
    "gemma": _Family(
        template=GEMMA_TEMPLATE,
        special=["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
        tokens=dict(bos_token="<bos>", eos_token="<end_of_turn>", pad_token="<pad>"),
    ),
    "llama": _Family(
        template=LLAMA_TEMPLATE,
        special=["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|pad|>"],
        tokens=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>"),
    ),
}


def byte_level_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with a family's special tokens and chat template.

    Args:
        family: "qwen", "gemma" or "llama".

    Returns:
        A fast tokenizer (vocabulary: 256 bytes plus the special tokens).
    """
    spec = FAMILIES[family]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for token in spec["special"]:
        vocab[token] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        additional_special_tokens=spec["special"],
        **spec["tokens"],
    )
    tokenizer.chat_template = spec["template"]
    return tokenizer


def _config(arch: str, vocab_size: int, special_ids: dict, num_hidden_layers: int = 4):
    from transformers import Gemma2Config, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        **special_ids,
    )
    if arch == "qwen2":
        return Qwen2Config(**common)
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "gemma2":
        return Gemma2Config(**common, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    if arch == "gemma3":
        return Gemma3TextConfig(**common, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    raise ValueError(f"Unknown tiny architecture {arch!r}")


TINY_MODELS = {
    "tiny-qwen2": ("qwen2", "qwen"),
    "tiny-llama": ("llama", "llama"),
    "tiny-gemma2": ("gemma2", "gemma"),
    "tiny-gemma3": ("gemma3", "gemma"),
}


def build_tiny_model(name: str, seed: int = 0, num_hidden_layers: int = 4):
    """Build a seeded random tiny model and its tokenizer.

    Args:
        name: one of ``TINY_MODELS`` (tiny-qwen2, tiny-llama, tiny-gemma2, tiny-gemma3).
        seed: initialisation seed (same seed, same weights).
        num_hidden_layers: decoder blocks (more, to stand in for a real model's depth in tests).

    Returns:
        (model, tokenizer), the model in float32 eval mode.
    """
    from transformers import AutoModelForCausalLM

    if name not in TINY_MODELS:
        raise ValueError(f"Unknown tiny model {name!r}; choose one of {sorted(TINY_MODELS)}")
    arch, family = TINY_MODELS[name]
    tokenizer = byte_level_tokenizer(family)
    ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
    )
    config = _config(arch, len(tokenizer), ids, num_hidden_layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init leaves logits nearly flat; larger scales make greedy decoding decisive and varied.
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0, 1.0)
        # Blocks contribute as much as the embeddings, so replies depend on the whole context.
        for module in model.model.layers.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, module.in_features**-0.5)
        model.get_output_embeddings().weight.normal_(0, 1.0)
        # Keep end-of-turn unlikely so mechanics tests see replies of several tokens.
        model.get_output_embeddings().weight[tokenizer.eos_token_id] = 0.0
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer

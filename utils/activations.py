"""Batched activation capture: means of block outputs over token spans, padding excluded.

Block outputs are read with forward hooks (``result[i]`` = output of block ``i``); the forward pass
stops right after the deepest requested block, so later blocks and the unembedding never run.
Positions are computed from the attention mask, so left- and right-padded batches give the same
numbers as one example at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from utils.activation_store import ActivationStore
from utils.cache import log_cache_event
from utils.chat import Message, assistant_turn_spans, encode
from utils.hooks import StopForward, capture_block_outputs
from utils.layers import check_block_indices
from utils.models import check_positions
from utils.prefill import positions_from_mask
from utils.progress import tqdm
from utils.timing import timed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Span = tuple[int, int]
MAX_STORED_SPANS = 64  # examples with more spans than this are computed, not looked up or stored
MAX_CAPTURE_TOKENS = 8192  # padded tokens per capture pass: every captured block's output is held at once


def run_capturing(
    model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, layers: list[int]
) -> dict[int, Tensor]:
    """One forward pass that returns the outputs of ``layers`` and computes nothing deeper.

    Args:
        model: the model.
        input_ids: token ids [batch, seq] (padded).
        attention_mask: 1 on real tokens [batch, seq].
        layers: block indices to record (non-empty, no negative indices).

    Returns:
        block index -> its output [batch, seq, d_model].

    Raises:
        ValueError: for an empty ``layers``, an index that is not a block, or a row longer than the
            model's maximum positions.
    """
    check_positions(model, attention_mask.sum(-1).tolist(), "input_ids")
    with capture_block_outputs(model, layers) as store:
        try:
            model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions_from_mask(attention_mask),
                use_cache=False,
            )
        except StopForward:
            pass
    return store


def span_weights(spans: list[list[Span]], seq_len: int, pad_offsets: list[int]) -> Float[Tensor, "batch n_spans seq"]:
    """Averaging weights: row ``b``, span ``s`` puts 1/len on that span's (shifted) tokens."""
    n_spans = max(len(s) for s in spans)
    weights = torch.zeros(len(spans), n_spans, seq_len)
    for b, example in enumerate(spans):
        for s, (start, end) in enumerate(example):
            if end <= start:
                raise ValueError(f"Empty span {(start, end)} in example {b}: nothing to average")
            weights[b, s, pad_offsets[b] + start : pad_offsets[b] + end] = 1.0 / (end - start)
    return weights


def mean_over_spans(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    spans: list[list[Span]],
    layers: list[int],
    batch_size: int = 16,
    desc: str = "capturing",
) -> list[Float[Tensor, "n_layers n_spans d_model"]]:
    """Mean block output over each token span of each prompt.

    Args:
        model: the model.
        tokenizer: its tokenizer (its ``padding_side`` is respected).
        prompts: rendered prompts (tokenized without added special tokens).
        spans: per prompt, a list of (start, end) token spans, indices into the unpadded prompt.
        layers: block indices.
        batch_size: prompts per forward pass.
        desc: progress bar label.

    Returns:
        Per prompt, a float32 CPU tensor [len(layers), len(spans[i]), d_model].

    Raises:
        ValueError: for a ``spans`` list of another length, an empty ``layers`` or an index that is not
            a block, or a prompt longer than the model's maximum positions.
    """
    if len(spans) != len(prompts):
        raise ValueError(f"spans must hold one list per prompt: got {len(spans)} for {len(prompts)} prompts")
    layers = check_block_indices(model, layers)
    if not prompts:
        return []
    ids = [encode(p, tokenizer)["input_ids"] for p in prompts]
    lengths = [len(x) for x in ids]
    check_positions(model, lengths, "prompts")
    results: list[Tensor | None] = [None] * len(prompts)
    store = ActivationStore.for_model(model)
    if store is not None and max(len(example) for example in spans) > MAX_STORED_SPANS:
        store = None  # token-level spans (e.g. every token of a text): not worth a file each
    if store is not None:
        for i, example in enumerate(spans):
            found = [store.get(ids[i], start, end, blocks=max(layers) + 1) for start, end in example]
            hits = [f for f in found if f is not None]
            if example and len(hits) == len(found):
                results[i] = torch.stack([f[layers] for f in hits], dim=1)  # [L, n_spans, D]
    todo = [i for i, r in enumerate(results) if r is None]
    if store is not None and len(todo) < len(prompts):  # plumbing: the cache log, not the notebook
        log_cache_event(
            f"{desc}: {len(prompts) - len(todo)} of {len(prompts)} examples' activations read from the activation store"
        )
    # With a store, a pass records every block up to the deepest requested one (it runs them all anyway)
    # and keeps them, so a later request for any of those blocks over the same tokens runs no pass.
    capture = list(range(max(layers) + 1)) if store is not None else layers
    order = sorted(todo, key=lambda i: -lengths[i])
    with timed("capture") as timer:
        computed: list[Tensor | None] = [None] * len(prompts)
        _capture_batches(model, tokenizer, prompts, spans, capture, batch_size, desc, order, lengths, computed)
        timer.add(tokens=sum(lengths[i] for i in todo))
    for i in todo:
        value = computed[i]
        assert value is not None, "_capture_batches fills every row it is given"
        if store is not None:
            for s, (start, end) in enumerate(spans[i]):
                store.put(ids[i], start, end, value[:, s])
            results[i] = value[layers]
        else:
            results[i] = value
    done = [r for r in results if r is not None]
    assert len(done) == len(results), "every prompt has its means"
    return done


def _capture_batches(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    spans: list[list[Span]],
    layers: list[int],
    batch_size: int,
    desc: str,
    order: list[int],
    lengths: list[int],
    results: list[Tensor | None],
) -> None:
    batches, start = [], 0
    while start < len(order):  # order is longest first: a batch's width is its first prompt's length
        size = max(1, min(batch_size, MAX_CAPTURE_TOKENS * 24 // (lengths[order[start]] * max(len(layers), 1))))
        batches.append(order[start : start + size])
        start += size
    for idx in tqdm(batches, desc=desc, leave=False):
        batch = encode([prompts[i] for i in idx], tokenizer, return_tensors="pt", padding=True)
        seq_len = batch["input_ids"].shape[1]
        left = tokenizer.padding_side == "left"
        offsets = [seq_len - lengths[i] if left else 0 for i in idx]
        weights = span_weights([spans[i] for i in idx], seq_len, offsets).to(model.device)
        with torch.inference_mode():
            store = run_capturing(
                model, batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device), layers
            )
            stacked = torch.stack([store[layer] for layer in layers]).float()  # [L, B, T, D]
            means = torch.einsum("lbtd,bst->blsd", stacked, weights.float()).cpu()
        for row, i in enumerate(idx):
            results[i] = means[row, :, : len(spans[i])]


def response_mean_activations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    layers: list[int],
    batch_size: int = 16,
) -> Float[Tensor, "n_layers n_examples d_model"]:
    """Mean block output over the last assistant message of each conversation.

    Args:
        model: the model.
        tokenizer: its tokenizer.
        conversations: message lists ending with an assistant message.
        layers: block indices (``result[k]`` corresponds to ``layers[k]``).
        batch_size: conversations per forward pass.

    Returns:
        Tensor [len(layers), len(conversations), d_model] (float32, CPU).

    Raises:
        ValueError: for no conversations (and as `mean_over_spans` does).
    """
    if not conversations:
        raise ValueError("conversations is empty: response_mean_activations needs at least one conversation")
    prompts, spans = [], []
    for messages in conversations:
        full, turn_spans = assistant_turn_spans(messages, tokenizer)
        prompts.append(full)
        spans.append([turn_spans[-1]])
    means = mean_over_spans(model, tokenizer, prompts, spans, layers, batch_size, desc="response means")
    return torch.stack([m[:, 0] for m in means], dim=1)


def turn_mean_activations(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, messages: list[Message], layers: list[int]
) -> Float[Tensor, "n_layers n_turns d_model"]:
    """Mean block output over every assistant turn of one conversation, in one forward pass."""
    full, spans = assistant_turn_spans(messages, tokenizer)
    return mean_over_spans(model, tokenizer, [full], [spans], layers, batch_size=1, desc="turn means")[0]

"""Section 3's capture of padded batches: every block's output for a batch of conversations, one
forward pass per batch, handed to a function that reads the spans (the student's `vector_kind_means`).

`utils.activations` averages over spans for you; here the batch itself is exposed (activations,
attention mask, response spans), so the masking is the student's to write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor

from utils.activations import MAX_CAPTURE_TOKENS, run_capturing
from utils.chat import Message, assistant_turn_spans, encode
from utils.hooks import BLOCK_PARTS, StopForward, capture_block_parts
from utils.prefill import positions_from_mask
from utils.progress import tqdm
from utils.timing import timed

Span = tuple[int, int]
VECTOR_KINDS = ("prompt_avg", "response_avg", "prompt_last")  # the persona-vectors repository's names


def padded_batches(
    model, tokenizer, conversations: list[list[Message]], layers: list[int], batch_size: int = 16
) -> Iterator[tuple[Float[Tensor, "n_layers batch seq d_model"], Int[Tensor, "batch seq"], list[Span]]]:
    """Block outputs of padded batches of conversations, in the order given.

    Args:
        model, tokenizer: the model (the tokenizer's ``padding_side`` is used, left for the course's models).
        conversations: message lists ending with an assistant message.
        layers: block indices to capture (``acts[k]`` is block ``layers[k]``).
        batch_size: conversations per forward pass (fewer when the sequences are long).

    Yields:
        (acts, attention_mask, response_spans): ``acts`` float32 CPU [len(layers), batch, seq, d_model];
        ``attention_mask`` [batch, seq] (1 on real tokens, 0 on padding); ``response_spans[b] = (start, end)``
        the response's tokens in example ``b``'s *unpadded* sequence (the prompt is tokens ``[0, start)``).
    """
    rendered = [assistant_turn_spans(messages, tokenizer) for messages in conversations]
    lengths = [len(encode(full, tokenizer)["input_ids"]) for full, _ in rendered]
    start = 0
    bar = tqdm(total=len(conversations), desc="capturing padded batches", leave=False)
    while start < len(conversations):
        width = max(lengths[start : start + batch_size])
        size = max(1, min(batch_size, MAX_CAPTURE_TOKENS * 24 // (width * max(len(layers), 1))))
        chunk = rendered[start : start + size]
        batch = encode([full for full, _ in chunk], tokenizer, return_tensors="pt", padding=True)
        mask = batch["attention_mask"]
        with timed("capture") as timer, torch.inference_mode():
            store = run_capturing(model, batch["input_ids"].to(model.device), mask.to(model.device), layers)
            acts = torch.stack([store[layer] for layer in layers]).float().cpu()
            timer.add(tokens=int(mask.sum()))
        yield acts, mask.cpu(), [spans[-1] for _, spans in chunk]
        bar.update(len(chunk))
        start += size
    bar.close()


def kind_activations(
    model,
    tokenizer,
    conversations: list[list[Message]],
    layers: list[int],
    kind_fn: Callable[..., dict[str, Tensor]],
    batch_size: int = 16,
) -> dict[str, Float[Tensor, "n_layers n d_model"]]:
    """Every kind ``kind_fn`` reads, for every conversation, from one forward pass per batch.

    Args:
        kind_fn: ``kind_fn(acts, attention_mask, response_spans) -> {kind: [n_layers, batch, d_model]}``.

    Returns:
        {kind: float32 CPU tensor [len(layers), len(conversations), d_model]}, in the order given.
    """
    parts: dict[str, list[Tensor]] = {}
    for acts, mask, spans in padded_batches(model, tokenizer, conversations, layers, batch_size):
        for kind, value in kind_fn(acts, mask, spans).items():
            parts.setdefault(kind, []).append(value.float())
    return {kind: torch.cat(values, dim=1) for kind, values in parts.items()}


def part_window_means(
    model,
    tokenizer,
    conversations: list[list[Message]],
    layer: int,
    first: int = 5,
    batch_size: int = 16,
) -> dict[tuple[str, str], Float[Tensor, "n d_model"]]:
    """Where a trait can be read: block ``layer``'s output, attention output and MLP output, each averaged
    over all response tokens and over the first ``first`` of them, from one forward pass per batch.

    Args:
        model, tokenizer: the model and its tokenizer.
        conversations: message lists ending with an assistant message.
        layer: the block index.
        first: the early window's length in response tokens (shorter responses: all their tokens).
        batch_size: conversations per forward pass.

    Returns:
        {(part, window): float32 CPU [len(conversations), d_model]} for part in `utils.hooks.BLOCK_PARTS`
        and window in ("all", f"first {first}"), in the order given.
    """
    rendered = [assistant_turn_spans(messages, tokenizer) for messages in conversations]
    windows = ("all", f"first {first}")
    parts: dict[tuple[str, str], list[Tensor]] = {(p, w): [] for p in BLOCK_PARTS for w in windows}
    for start in range(0, len(rendered), batch_size):
        chunk = rendered[start : start + batch_size]
        batch = encode([full for full, _ in chunk], tokenizer, return_tensors="pt", padding=True)
        mask = batch["attention_mask"]
        lengths = mask.sum(-1)
        offsets = mask.shape[1] - lengths if tokenizer.padding_side == "left" else torch.zeros_like(lengths)
        weights = {w: torch.zeros(mask.shape, dtype=torch.float32) for w in windows}
        for b, (_, spans) in enumerate(chunk):
            s, e = spans[-1]
            o = int(offsets[b])
            weights["all"][b, o + s : o + e] = 1.0 / max(e - s, 1)
            n = min(first, e - s)
            weights[windows[1]][b, o + s : o + s + n] = 1.0 / max(n, 1)
        with timed("capture") as timer, torch.inference_mode(), capture_block_parts(model, layer) as store:
            try:
                model(
                    input_ids=batch["input_ids"].to(model.device),
                    attention_mask=mask.to(model.device),
                    position_ids=positions_from_mask(mask.to(model.device)),
                    use_cache=False,
                )
            except StopForward:
                pass
            timer.add(tokens=int(mask.sum()))
        for p in BLOCK_PARTS:
            acts = store[p].float().cpu()
            for w in windows:
                parts[(p, w)].append(torch.einsum("bs,bsd->bd", weights[w], acts))
    return {key: torch.cat(values) for key, values in parts.items()}

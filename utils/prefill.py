"""Prefill with shared prefixes: many prompts that start with the same tokens compute them once.

Judge prompts repeat one long template before each item's question and answer; generation prompts
repeat a system prompt before each question. `prefill` groups the prompts of a batch by their longest
common token prefix, runs each distinct prefix once, copies its KV cache to every row of its group,
and then runs only the rows' own tails. A row's cache then reads ``[pad][prefix][pad][tail]``: the
attention mask hides both pads and positions are counted from the mask, so every row sees exactly the
positions and keys it would see alone (equal to one full pass within float tolerance).

Sharing is used only where it is exact in meaning: full-attention models (sliding-window caches crop
what they keep) and models whose user hooks all leave prefix passes alone (`utils.hooks.prefix_pass`).
Any other hook ("during the prompt pass", or a row-aware one that reads the batch as the caller's rows)
would see the prefix pass as a pass of its own, so with it every prompt runs in full. A steerer acting
at the last position of each pass (`utils.steering.RowSteerer` at ``positions="response"``) is safe:
a prefix never holds a row's last token, and it skips prefix passes.
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from utils.hooks import has_prefix_unsafe_hooks, prefix_pass

if TYPE_CHECKING:
    from transformers import Cache, PreTrainedModel

MIN_SHARED_TOKENS = 8


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids that skip padding: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def output_cache(output):
    """The KV cache of a forward output (``cache`` from transformers 5.24, ``past_key_values`` before)."""
    return output.cache if "cache" in output else output.past_key_values


def cache_kwarg(model: PreTrainedModel, cache: object) -> dict[str, object]:
    """Pass a KV cache under the name this transformers version's forward takes."""
    params = inspect.signature(model.forward).parameters
    return {"cache": cache} if "cache" in params else {"past_key_values": cache}


def full_attention_only(model: PreTrainedModel) -> bool:
    """True when every layer attends to the whole sequence (no sliding-window cache layers)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return not (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True))


def can_share_prefixes(model: PreTrainedModel) -> bool:
    """Whether `prefill` may split prompts into a shared prefix pass and a tail pass."""
    return full_attention_only(model) and not has_prefix_unsafe_hooks(model)


def sharing(model: PreTrainedModel, share_prefixes: bool | None) -> bool:
    """Whether `prefill` and `common_prefix` share prefixes on this model.

    Args:
        model: the model.
        share_prefixes: None decides with `can_share_prefixes`; True shares wherever attention makes it
            exact (full-attention models); False never.

    Returns:
        True to share.
    """
    return can_share_prefixes(model) if share_prefixes is None else share_prefixes and full_attention_only(model)


def shared_prefix_groups(rows: list[list[int]], min_shared: int = MIN_SHARED_TOKENS) -> list[tuple[list[int], int]]:
    """Group rows that share a long prefix.

    Args:
        rows: token ids per prompt.
        min_shared: the shortest prefix worth a pass of its own.

    Returns:
        (row indices, prefix length) per group; a prefix never covers a whole row (every row keeps
        at least its last token for the tail pass); a length of 0 means "no shared prefix".
    """
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    n = len(order)

    def lcp(a: list[int], b: list[int]) -> int:
        k, m = 0, min(len(a), len(b))
        while k < m and a[k] == b[k]:
            k += 1
        return k

    # Sorted rows share prefixes in contiguous runs; a run's common prefix is the smallest LCP of its
    # neighbours. Choose the runs that save the most tokens (a group of g rows with prefix p saves
    # (g - 1) * p), so prompts of one template that differ after a shared opening stay apart.
    adjacent = [lcp(rows[order[j]], rows[order[j + 1]]) for j in range(n - 1)]
    best, cut = [0] * (n + 1), [0] * (n + 1)
    for end in range(1, n + 1):
        common, shortest = None, len(rows[order[end - 1]])
        best[end], cut[end] = best[end - 1], end - 1  # the row alone
        for start in range(end - 2, -1, -1):  # the run order[start:end]
            common = adjacent[start] if common is None else min(common, adjacent[start])
            shortest = min(shortest, len(rows[order[start]]))
            length = min(common, shortest - 1)
            if length < min_shared:
                break  # the common prefix only shrinks as the run grows
            if best[start] + (end - start - 1) * length > best[end]:
                best[end], cut[end] = best[start] + (end - start - 1) * length, start
    groups: list[tuple[list[int], int]] = []
    end = n
    while end > 0:
        start = cut[end]
        members = order[start:end]
        length = 0
        if len(members) > 1:
            length = min(min(adjacent[start : end - 1]), min(len(rows[i]) for i in members) - 1)
        groups.append((members, length if length >= min_shared else 0))
        end = start
    return groups[::-1]


def _left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, width - len(row) :] = torch.tensor(row)
            mask[b, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _run(model: PreTrainedModel, ids: Tensor, mask: Tensor, cache: object = None):
    """One pass of left-padded ``ids`` after ``cache``, positions counted from the mask.

    Args:
        model: the model.
        ids: token ids [batch, seq].
        mask: the attention mask over the cached columns and ``ids`` [batch, cached + seq].
        cache: the KV cache to extend (None: a fresh one).

    Returns:
        The model's output (last-position logits and the extended cache).
    """
    positions = positions_from_mask(mask)[:, -ids.shape[1] :]
    return model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **cache_kwarg(model, cache),
    )


@dataclass
class CommonPrefix:
    """The opening every prompt of a call starts with, computed once (see `common_prefix`).

    Attributes:
        tokens: its token ids.
        cache: its KV cache, one row; never changed (`expanded` copies it).
    """

    tokens: list[int]
    cache: Cache

    def expanded(self, mask: Int[Tensor, "batch seq"]) -> tuple[Cache, Int[Tensor, "batch prefix_seq"]]:
        """A copy of the cache for ``mask``'s rows, and the mask with the prefix's columns in front.

        Args:
            mask: the attention mask of what follows the prefix [batch, seq].

        Returns:
            (the cache repeated to the batch, the mask [batch, len(tokens) + seq]).
        """
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(mask.shape[0])
        ones = torch.ones((mask.shape[0], len(self.tokens)), dtype=mask.dtype, device=mask.device)
        return cache, torch.cat([ones, mask], dim=1)


def common_prefix(
    model: PreTrainedModel,
    rows: list[list[int]],
    share_prefixes: bool | None = None,
    min_saved: int = MIN_SHARED_TOKENS,
) -> CommonPrefix | None:
    """Run once the prefix all ``rows`` share, for `prefill` to reuse in every batch of them.

    Args:
        model: the model.
        rows: token ids per prompt, all the prompts of a call.
        share_prefixes: as for `prefill`.
        min_saved: the fewest tokens it must save to be worth a pass of its own (it saves its length
            for every row but one: a chat template's few opening tokens are worth it over many rows).

    Returns:
        The prefix and its cache; None when sharing is off or inexact for this model (`sharing`), or
        when it would save under ``min_saved`` tokens (fewer than two rows, or no common opening). The
        prefix never covers a whole row.
    """
    if len(rows) < 2 or not sharing(model, share_prefixes):
        return None
    tokens = list(os.path.commonprefix(rows))[: min(len(r) for r in rows) - 1]
    if not tokens or len(tokens) * (len(rows) - 1) < min_saved:
        return None
    ids = torch.tensor([tokens], device=model.device)
    with prefix_pass():
        out = _run(model, ids, torch.ones_like(ids))
    return CommonPrefix(tokens, output_cache(out))


@dataclass
class Prefilled:
    """The state after a prompt pass, ready for decoding or for scoring continuations.

    Attributes:
        logits: next-token logits after each row's last prompt token [batch, vocab] (float32).
        cache: the KV cache (a transformers cache object), one row per prompt.
        attention_mask: [batch, cached length], 1 on real tokens.
        shared_tokens: prompt tokens this call did not compute (shared prefixes, and a common prefix
            computed before it).
    """

    logits: Float[Tensor, "batch vocab"]
    cache: object
    attention_mask: Int[Tensor, "batch seq"]
    shared_tokens: int


def prefill(
    model: PreTrainedModel,
    rows: list[list[int]],
    pad_id: int,
    share_prefixes: bool | None = None,
    common: CommonPrefix | None = None,
) -> Prefilled:
    """Run the prompts of one batch through the model, computing shared prefixes once.

    Args:
        model: the model.
        rows: token ids per prompt (no padding).
        pad_id: the pad token id.
        share_prefixes: None decides with `can_share_prefixes`; False runs one padded pass.
        common: a prefix every row starts with, already computed (`common_prefix`): only what follows it
            is run, and the returned cache and mask begin with it.

    Returns:
        A `Prefilled` with rows in the order given.
    """
    device = model.device
    skip = 0 if common is None else len(common.tokens)
    if common is not None and any(row[:skip] != common.tokens for row in rows):
        raise ValueError("every row must start with the common prefix")
    rows = [row[skip:] for row in rows]
    groups = shared_prefix_groups(rows) if sharing(model, share_prefixes) else [(list(range(len(rows))), 0)]
    shared = [(members, length) for members, length in groups if length > 0]
    if not shared:
        ids, mask = _left_pad(rows, pad_id, device)
        cache, mask = (None, mask) if common is None else common.expanded(mask)
        out = _run(model, ids, mask, cache)
        return Prefilled(out.logits[:, -1].float(), output_cache(out), mask, skip * len(rows))

    prefix_of = [0] * len(rows)  # row -> index into prefixes (0: the empty prefix)
    prefixes: list[list[int]] = [[]]
    cut = [0] * len(rows)
    for members, length in shared:
        prefixes.append(rows[members[0]][:length])
        for i in members:
            prefix_of[i], cut[i] = len(prefixes) - 1, length
    # One pass over the distinct prefixes (the empty prefix is a row of padding, fully masked: give
    # it one real pad token so no attention row is empty).
    prefix_rows = [p if p else [pad_id] for p in prefixes]
    ids, prefix_mask = _left_pad(prefix_rows, pad_id, device)
    prefix_mask[0] = 0
    prefix_mask[0, -1] = 1  # attended only by itself (and the common prefix); hidden from the rows below
    cache, prefix_mask = (None, prefix_mask) if common is None else common.expanded(prefix_mask)
    with prefix_pass():
        cache = output_cache(_run(model, ids, prefix_mask, cache))
    cache.batch_select_indices(torch.tensor(prefix_of, device=device))
    prefix_mask[0, -1] = 0
    head_mask = prefix_mask[torch.tensor(prefix_of, device=device)]
    tails, tail_mask = _left_pad([row[c:] for row, c in zip(rows, cut)], pad_id, device)
    mask = torch.cat([head_mask, tail_mask], dim=1)
    out = _run(model, tails, mask, cache)
    saved = sum(cut) - sum(len(p) for p in prefixes) + skip * len(rows)
    return Prefilled(out.logits[:, -1].float(), output_cache(out), mask, saved)


def continue_prefilled(
    model: PreTrainedModel,
    state: Prefilled,
    continuations: list[list[int]],
    rows: list[int] | None = None,
    pad_id: int = 0,
    final_hidden: bool = False,
) -> Float[Tensor, "n width vocab_or_d_model"]:
    """Run a few more tokens after prefilled prompts: prefill once, continue each row (the one way to do it).

    Each continuation follows its prompt's cached tokens exactly as if it had been part of one pass: the
    continuations are right-padded (no gap between a prompt and its continuation, so a sliding window sees
    what it would see in one pass; causal attention keeps the pads out of every real position), and
    positions are counted from the mask (equal to a full forward pass within float tolerance). A prompt may be continued by many
    rows (``rows`` repeats it), so a prompt's shared part costs one pass however many continuations follow.
    Hooks installed around the call (e.g. a `utils.steering.RowSteerer`) see this pass's rows in order.

    Args:
        model: the model.
        state: the prompts' `Prefilled` state (its cache is left untouched when ``rows`` is given; with
            ``rows=None`` it is extended in place and must not be reused).
        continuations: token ids per output row (at least one each).
        rows: for each output row, the index of the prompt in ``state`` it continues (None: row ``i``
            continues prompt ``i``).
        pad_id: the id put in padding positions (masked; any valid token id).
        final_hidden: return the decoder's final hidden states [n, width, d_model] instead of the logits, for
            a caller that needs the output layer at a few positions only (`utils.likelihood.output_logits`).

    Returns:
        Logits (float32) [n, width, vocab] where width is the longest continuation: ``result[i, k]`` predicts
        the token after continuation ``i``'s token ``k`` (positions past its length are padding); or, with
        ``final_hidden``, the hidden states those logits are computed from.

    Raises:
        ValueError: for an empty continuation, or ``rows`` of another length than ``continuations``.
    """
    if not continuations or any(not c for c in continuations):
        raise ValueError("every continuation needs at least one token")
    mask = state.attention_mask
    cache = state.cache
    if rows is not None:
        if len(rows) != len(continuations):
            raise ValueError(f"rows has {len(rows)} entries for {len(continuations)} continuations")
        index = torch.tensor(rows, device=mask.device)
        cache = copy.deepcopy(state.cache)
        cache.batch_select_indices(index)  # type: ignore[attr-defined]
        mask = mask[index]
    elif len(continuations) != mask.shape[0]:
        raise ValueError(f"{len(continuations)} continuations for {mask.shape[0]} prefilled prompts: pass rows")
    width = max(len(c) for c in continuations)
    ids = torch.tensor([c + [pad_id] * (width - len(c)) for c in continuations], device=mask.device)
    tail_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in continuations], device=mask.device)
    full_mask = torch.cat([mask, tail_mask], dim=1)
    out = (model.get_decoder() if final_hidden else model)(
        input_ids=ids,
        attention_mask=full_mask,
        position_ids=positions_from_mask(full_mask)[:, -width:],
        use_cache=True,
        **cache_kwarg(model, cache),
    )
    return out.last_hidden_state if final_hidden else out.logits.float()


def next_token_logprobs(
    model: PreTrainedModel, state: Prefilled, tokens: list[int], rows: list[int] | None = None, pad_id: int = 0
) -> Float[Tensor, "n vocab"]:
    """Log-probabilities of the next token after prefilled prompts continued by one token per row.

    Args:
        model: the model.
        state: the prompts' `Prefilled` state.
        tokens: one token per output row.
        rows: the prompt each row continues (see `continue_prefilled`).
        pad_id: the pad token id.

    Returns:
        [n, vocab] log-probabilities (float32).
    """
    return continue_prefilled(model, state, [[t] for t in tokens], rows, pad_id)[:, -1].log_softmax(-1)

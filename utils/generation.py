"""Batched chat generation: many conversations at once, in-process or through a server.

In-process generation runs its own decoding loop over the model's forward pass (so every forward
hook applies, exactly as in ``model.generate``):

- prompts are sorted by length and left-padded into batches with an attention mask;
- prompts that share a prefix (a system prompt, a chat template's default system prompt) compute it
  once (`utils.prefill`), when the model has no user hooks;
- a row stops at its end-of-turn token, and finished rows leave the batch (their KV cache rows are
  dropped), so the batch never keeps decoding for rows that are done;
- the batch size backs off on out-of-memory.

Greedy replies equal ``model.generate``'s (tested on tiny models and on the offline model).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from utils.chat import Message, encode, render
from utils.prefill import cache_kwarg, can_share_prefixes, full_attention_only, output_cache, prefill
from utils.progress import tqdm
from utils.timing import timed

END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>")


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def stop_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a reply: the generation config's EOS ids, the tokenizer's EOS, end-of-turn tokens."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    special = set(getattr(tokenizer, "all_special_tokens", []))
    for token in END_OF_TURN_TOKENS:
        if token in special:
            ids.add(tokenizer.convert_tokens_to_ids(token))
    return sorted(ids)


def _next_tokens(logits: Float[Tensor, "batch vocab"], temperature: float, top_p: float) -> Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(-1)


@torch.inference_mode()
def decode_batch(
    model,
    rows: list[list[int]],
    pad_id: int,
    stop_ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    min_new_tokens: int = 0,
    share_prefixes: bool | None = None,
) -> list[list[int]]:
    """Generate new tokens for one batch of tokenized prompts.

    Args:
        model: the model.
        rows: prompt token ids per row (no padding).
        pad_id: pad token id.
        stop_ids: a row ends after producing one of these (it is not returned).
        max_new_tokens: the most tokens per row.
        temperature, top_p: sampling settings (temperature 0: greedy).
        min_new_tokens: stop tokens are forbidden before this many new tokens.
        share_prefixes: passed to `utils.prefill.prefill`.

    Returns:
        The new token ids per row, without the stop token.
    """
    if max_new_tokens <= 0:
        return [[] for _ in rows]
    state = prefill(model, rows, pad_id, share_prefixes)
    cache, mask, logits = state.cache, state.attention_mask, state.logits
    stops = torch.tensor(stop_ids, device=logits.device, dtype=torch.long)
    active = torch.arange(len(rows), device=logits.device)  # original row of each live batch row
    outputs: list[list[int]] = [[] for _ in rows]
    for step in range(max_new_tokens):
        if step < min_new_tokens and len(stops):
            logits[:, stops] = float("-inf")
        tokens = _next_tokens(logits, temperature, top_p)
        finished = torch.isin(tokens, stops)
        for row, token, done in zip(active.tolist(), tokens.tolist(), finished.tolist()):
            if not done:
                outputs[row].append(token)
        if step == max_new_tokens - 1:
            break
        keep = (~finished).nonzero().squeeze(-1)
        if len(keep) == 0:
            break
        if len(keep) < len(active):
            cache.batch_select_indices(keep)
            active, mask, tokens = active[keep], mask[keep], tokens[keep]
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        out = model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **cache_kwarg(model, cache),
        )
        cache, logits = output_cache(out), out.logits[:, -1].float()
    return outputs


def generate_replies(
    model,
    tokenizer,
    conversations: list[list[Message]],
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = 0,
    batch_size: int = 16,
    desc: str = "generating",
    server=None,
    min_new_tokens: int = 0,
    share_prefixes: bool | None = None,
) -> list[str]:
    """Generate the assistant's next reply for every conversation.

    Args:
        model: the in-process model (ignored when ``server`` is given).
        tokenizer: its tokenizer.
        conversations: message lists ending with a user turn (system prompts allowed).
        max_new_tokens: reply length cap.
        temperature: 0 for greedy decoding.
        top_p: nucleus sampling threshold (sampling only).
        seed: seeds torch before each batch, so a run is reproducible (None: no seeding).
        batch_size: starting batch size; halved on out-of-memory.
        desc: progress bar label.
        server: an `OpenAICompatibleGenerator` to send conversations to instead.
        min_new_tokens: no reply ends before this many tokens.
        share_prefixes: compute shared prompt prefixes once (None: whenever that is exact, see
            `utils.prefill.can_share_prefixes`).

    Returns:
        One reply per conversation, in input order, without the prompt or special tokens.
    """
    if server is not None:
        return server.generate(conversations, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    prompts = [render(c, tokenizer, add_generation_prompt=True) for c in conversations]
    rows = [encode(p, tokenizer)["input_ids"] for p in prompts]
    share_prefixes = (
        can_share_prefixes(model) if share_prefixes is None else share_prefixes and full_attention_only(model)
    )
    # Sharing: rows with a common prefix side by side; otherwise: rows of similar length together.
    order = sorted(range(len(rows)), key=(lambda i: rows[i]) if share_prefixes else (lambda i: -len(rows[i])))
    stop_ids = stop_token_ids(model, tokenizer)
    replies: list[str | None] = [None] * len(rows)
    bar = tqdm(total=len(rows), desc=desc, leave=False)
    start = 0
    with timed("generation") as timer:
        while start < len(order):
            idx = order[start : start + batch_size]
            if seed is not None:
                torch.manual_seed(seed + start)
            try:
                new = decode_batch(
                    model,
                    [rows[i] for i in idx],
                    tokenizer.pad_token_id,
                    stop_ids,
                    max_new_tokens,
                    temperature,
                    top_p,
                    min_new_tokens,
                    share_prefixes,
                )
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not _is_oom(err) or batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
                bar.set_postfix(batch_size=batch_size)
                continue
            for i, tokens in zip(idx, new):
                replies[i] = tokenizer.decode(tokens, skip_special_tokens=True)
                timer.add(tokens=len(tokens) + len(rows[i]))
            start += len(idx)
            bar.update(len(idx))
    bar.close()
    return replies

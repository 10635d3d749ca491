"""Batched chat generation: many conversations at once, in-process or through a server.

In-process generation uses left padding with an attention mask, sorts prompts by length so each
batch pads little, backs off the batch size on out-of-memory, and returns only the new text.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from utils.chat import Message, encode, render


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _generate_batch(model, tokenizer, prompts, max_new_tokens: int, temperature: float, top_p: float, **kwargs):
    batch = encode(prompts, tokenizer, return_tensors="pt", padding=True).to(model.device)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    out = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        top_k=None,
        **sampling,
        **kwargs,
    )
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


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
    **generate_kwargs,
) -> list[str]:
    """Generate the assistant's next reply for every conversation.

    Args:
        model: the in-process model (ignored when ``server`` is given).
        tokenizer: its tokenizer (left padding is forced).
        conversations: message lists ending with a user turn (system prompts allowed).
        max_new_tokens: reply length cap.
        temperature: 0 for greedy decoding.
        top_p: nucleus sampling threshold (sampling only).
        seed: seeds torch before each batch, so a run is reproducible (None: no seeding).
        batch_size: starting batch size; halved on out-of-memory.
        desc: progress bar label.
        server: an `OpenAICompatibleGenerator` to send conversations to instead.
        **generate_kwargs: passed to ``model.generate`` (e.g. ``min_new_tokens``).

    Returns:
        One reply per conversation, in input order, without the prompt or special tokens.
    """
    if server is not None:
        return server.generate(conversations, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    tokenizer.padding_side = "left"
    prompts = [render(c, tokenizer, add_generation_prompt=True) for c in conversations]
    lengths = [len(encode(p, tokenizer)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    replies: list[str | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, leave=False)
    start = 0
    while start < len(order):
        idx = order[start : start + batch_size]
        if seed is not None:
            torch.manual_seed(seed + start)
        try:
            with torch.inference_mode():
                texts = _generate_batch(
                    model, tokenizer, [prompts[i] for i in idx], max_new_tokens, temperature, top_p, **generate_kwargs
                )
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not _is_oom(err) or batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
            bar.set_postfix(batch_size=batch_size)
            continue
        for i, text in zip(idx, texts):
            replies[i] = text
        start += len(idx)
        bar.update(len(idx))
    bar.close()
    return replies

"""Batched chat generation: many conversations at once, in-process or through a server.

In-process generation runs its own decoding loop over the model's forward pass (so every forward
hook applies, exactly as in ``model.generate``):

- prompts are sorted and left-padded into batches with an attention mask;
- prompts that share a prefix (a system prompt, a chat template's default system prompt) compute it
  once (`utils.prefill`), when the model has no user hooks;
- a row stops at its end-of-turn token, and finished rows leave the batch (their KV cache rows are
  dropped), so the batch never keeps decoding for rows that are done;
- sampling draws each reply's randomness from its own generator, seeded by (seed, prompt, how many
  times the prompt came before in the call), so a reply does not depend on the batch it landed in;
- the batch size backs off on out-of-memory;
- while decoding, every block's mean output over each reply is recorded (`utils.activation_store`),
  so reading a generated reply's activations later needs no forward pass;
- replies of a model loaded by `utils.models.load_model` are kept on disk by (model, settings,
  prompt), so a section that asks for a reply another section (or an earlier run) already generated
  reads it (`utils.reply_store.ReplyStore`), unless hooks are on the model or ``COURSE_RECOMPUTE`` says otherwise.

Greedy replies equal ``model.generate``'s (tested on tiny models and on the offline model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from utils.activation_store import ActivationStore
from utils.cache import log_cache_event
from utils.chat import Message, check_messages, encode, render
from utils.hooks import RowsInPass, block_output, caller_row_count, hooked, rows_in_pass
from utils.models import check_positions
from utils.prefill import cache_kwarg, can_share_prefixes, full_attention_only, output_cache, prefill
from utils.progress import tqdm
from utils.reply_store import ReplyStore, digest
from utils.timing import timed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from utils.server_generation import OpenAICompatibleGenerator

END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>")


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end a reply: the generation config's EOS ids, the tokenizer's EOS, end-of-turn tokens."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    eos = tokenizer.eos_token_id
    if isinstance(eos, int):
        ids.add(eos)
    special = set(getattr(tokenizer, "all_special_tokens", []))
    for token in END_OF_TURN_TOKENS:
        if token in special:
            token_id = tokenizer.convert_tokens_to_ids(token)  # one token in, one id out
            ids.update(token_id if isinstance(token_id, list) else [token_id])
    return sorted(ids)


def _filtered_probabilities(logits: Float[Tensor, "batch vocab"], temperature: float, top_p: float) -> Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    return probs


def _check_temperature(temperature: float) -> None:
    if not temperature >= 0:  # also NaN
        raise ValueError(f"temperature must be 0 (greedy) or positive (sampling), got {temperature!r}")


@torch.inference_mode()
def decode_batch(
    model: PreTrainedModel,
    rows: list[list[int]],
    pad_id: int,
    stop_ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    min_new_tokens: int = 0,
    share_prefixes: bool | None = None,
    row_seeds: list[int] | None = None,
    on_step=None,
    reply_means: list[Tensor | None] | None = None,
    row_ids: list[int] | None = None,
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
        row_seeds: one seed per row for sampling (None: torch's global generator).
        on_step: called with (step, rows still decoding) after every decoding step (for progress).
        reply_means: if a list, it receives per row the mean output of every block over the reply's
            tokens, [num_layers, d_model] (None for an empty reply), recorded while decoding.
        row_ids: the caller's index of each row, published to row-aware hooks through
            `utils.hooks.rows_in_pass` (None: 0, 1, ...).

    Returns:
        The new token ids per row, without the stop token.
    """
    _check_temperature(temperature)
    if max_new_tokens <= 0:
        return [[] for _ in rows]
    caller_rows = torch.tensor(row_ids if row_ids is not None else range(len(rows)), dtype=torch.long)
    with rows_in_pass(caller_rows), timed("prefill") as prefill_timer:
        state = prefill(model, rows, pad_id, share_prefixes)
        cache, mask, logits = state.cache, state.attention_mask, state.logits
        prefill_timer.add(tokens=sum(len(r) for r in rows) - state.shared_tokens)
    stops = torch.tensor(stop_ids, device=logits.device, dtype=torch.long)
    active = torch.arange(len(rows), device=logits.device)  # original row of each live batch row
    generators = None
    if temperature > 0 and row_seeds is not None:
        generators = [torch.Generator(device=logits.device).manual_seed(s) for s in row_seeds]
    recording = _ReplyRecorder(model, len(rows), logits.device) if reply_means is not None else None
    decoding = _Decoding(
        model, cache, mask, logits, stops, active, outputs=[[] for _ in rows], max_new_tokens=max_new_tokens,
        temperature=temperature, top_p=top_p, min_new_tokens=min_new_tokens, generators=generators,
        on_step=on_step, recording=recording,
    )  # fmt: skip
    with hooked(recording.hooks() if recording is not None else {}), rows_in_pass(caller_rows) as live:
        decoding.live = live
        with timed("decode") as decode_timer:
            _decode_loop(decoding)
            decode_timer.add(tokens=sum(len(o) for o in decoding.outputs))
    if recording is not None and reply_means is not None:
        reply_means.extend(recording.means(decoding.outputs))
    return decoding.outputs


class _ReplyRecorder:
    """Sums every block's output over the tokens fed during decoding, per row: the reply's tokens."""

    def __init__(self, model: PreTrainedModel, n_rows: int, device: torch.device):
        from utils.layers import get_layers

        self.blocks = get_layers(model)
        self.active: Tensor | None = None  # set by the loop before every decoding pass
        self.sums = torch.zeros(n_rows, len(self.blocks), model.config.get_text_config().hidden_size, device=device)
        self.counts = torch.zeros(n_rows, device=device)

    def _hook(self, layer: int):
        def hook(module, inputs, output):
            hidden = block_output(output)
            if self.active is not None and hidden.shape[1] == 1:  # a decoding pass: one new token per row
                self.sums[self.active, layer] += hidden[:, 0].float()
                if layer == 0:
                    self.counts[self.active] += 1

        return hook

    def hooks(self) -> dict:
        """block -> its recording hook, for `utils.hooks.hooked`."""
        return {block: self._hook(i) for i, block in enumerate(self.blocks)}

    def means(self, outputs: list[list[int]]) -> list[Tensor | None]:
        result = []
        for row, tokens in enumerate(outputs):
            count = int(self.counts[row])
            ok = count == len(tokens) and count > 0
            result.append((self.sums[row] / count).cpu() if ok else None)
        return result


@dataclass
class _Decoding:
    """One batch's decoding: the state carried from step to step, and the settings it decodes with.

    Attributes:
        model: the model.
        cache: the KV cache, one row per live row.
        mask: attention mask of the cached tokens, [live rows, cached length].
        logits: next-token logits of each live row [live rows, vocab] (float32).
        stops: stop token ids.
        active: the batch row (index into ``outputs``) of each live row.
        outputs: the new tokens of every batch row so far (the result).
        max_new_tokens, temperature, top_p, min_new_tokens: as in `decode_batch`.
        generators: one sampling generator per batch row (None: torch's global one).
        on_step: called with (step, rows still decoding) after every step.
        recording: the recorder of reply means, told which rows each pass holds (None: no recording).
        live: the `utils.hooks.rows_in_pass` record, kept in step with ``active``.
    """

    model: PreTrainedModel
    cache: object
    mask: Tensor
    logits: Tensor
    stops: Tensor
    active: Tensor
    outputs: list[list[int]]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    min_new_tokens: int = 0
    generators: list[torch.Generator] | None = None
    on_step: Callable[[int, int], object] | None = None
    recording: _ReplyRecorder | None = None
    live: RowsInPass | None = None

    def next_tokens(self, step: int) -> Tensor:
        """Pick each live row's next token from ``logits`` (greedy, or sampled)."""
        if step < self.min_new_tokens and len(self.stops):
            self.logits[:, self.stops] = float("-inf")
        if self.temperature <= 0:
            return self.logits.argmax(-1)
        probs = _filtered_probabilities(self.logits, self.temperature, self.top_p)
        if self.generators is None:
            return torch.multinomial(probs, 1).squeeze(-1)
        generators = self.generators
        return torch.cat(
            [torch.multinomial(probs[b], 1, generator=generators[r]) for b, r in enumerate(self.active.tolist())]
        )

    def keep_rows(self, keep: Tensor) -> None:
        """Drop the rows that finished: from the cache, the mask, ``active`` and the row-aware hooks."""
        self.cache.batch_select_indices(keep)  # type: ignore[attr-defined]  # a transformers cache
        self.active, self.mask = self.active[keep], self.mask[keep]
        if self.live is not None:
            self.live.rows = self.live.rows[keep]


def _decode_loop(state: _Decoding) -> None:
    """Decode until every row has stopped or ``max_new_tokens`` are written (into ``state.outputs``)."""
    model = state.model
    for step in range(state.max_new_tokens):
        tokens = state.next_tokens(step)
        finished = torch.isin(tokens, state.stops)
        for row, token, done in zip(state.active.tolist(), tokens.tolist(), finished.tolist()):
            if not done:
                state.outputs[row].append(token)
        if state.on_step is not None:
            state.on_step(step + 1, int((~finished).sum()))
        last = step == state.max_new_tokens - 1
        if last and state.recording is None:
            break
        keep = (~finished).nonzero().squeeze(-1)
        if len(keep) == 0:
            break
        if len(keep) < len(state.active):
            state.keep_rows(keep)
            tokens = tokens[keep]
        if state.recording is not None:
            state.recording.active = state.active
        state.mask = torch.cat([state.mask, state.mask.new_ones(len(state.active), 1)], dim=1)
        positions = state.mask.sum(-1, keepdim=True) - 1
        out = model(
            input_ids=tokens[:, None],
            attention_mask=state.mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **cache_kwarg(model, state.cache),
        )
        state.cache, state.logits = output_cache(out), out.logits[:, -1].float()
        if last:
            break  # that pass only fed the last reply token through the blocks, for the recorder


def generate_replies(
    model: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase | None,
    conversations: list[list[Message]],
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = 0,
    batch_size: int = 16,
    desc: str = "generating",
    server: OpenAICompatibleGenerator | None = None,
    min_new_tokens: int = 0,
    share_prefixes: bool | None = None,
) -> list[str]:
    """Generate the assistant's next reply for every conversation.

    Args:
        model: the in-process model (ignored, and may be None, when ``server`` is given).
        tokenizer: its tokenizer (likewise).
        conversations: message lists ending with a user turn (system prompts allowed).
        max_new_tokens: reply length cap.
        temperature: 0 for greedy decoding.
        top_p: nucleus sampling threshold (sampling only).
        seed: with sampling, each reply is drawn from a generator seeded by (seed, its prompt, how
            many times that prompt came earlier in the list), so runs are reproducible and a reply
            does not depend on the batch size (None: torch's global generator, nothing stored).
        batch_size: starting batch size; halved on out-of-memory.
        desc: progress bar label.
        server: a `utils.server_generation.OpenAICompatibleGenerator` to send conversations to instead.
        min_new_tokens: no reply ends before this many tokens.
        share_prefixes: compute shared prompt prefixes once (None: whenever that is exact, see
            `utils.prefill.can_share_prefixes`).

    Returns:
        One reply per conversation, in input order, without the prompt or special tokens.

    Raises:
        ValueError: for a negative temperature, a batch size below 1, or a conversation longer than
            the model's maximum positions (one that would run past them while replying is warned about).
        TypeError: for a conversation that is not a list of messages (`utils.chat.check_messages`).
    """
    _check_temperature(temperature)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    conversations = [check_messages(c, f"conversations[{i}]") for i, c in enumerate(conversations)]
    if server is not None:
        return server.generate(conversations, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    if model is None or tokenizer is None:
        raise ValueError("generate_replies needs a model and its tokenizer, or server=")
    prompts = [render(c, tokenizer, add_generation_prompt=True) for c in conversations]
    seen: dict[str, int] = {}
    keys = []
    for p in prompts:  # the n-th copy of a prompt is its own sample
        keys.append(digest(p, seen.get(p, 0)))
        seen[p] = seen.get(p, 0) + 1
    row_seeds = [int(k[:15], 16) ^ (seed or 0) for k in keys]
    settings: dict[str, float | None] = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
    if temperature > 0:
        settings.update(temperature=temperature, top_p=top_p, seed=seed)
    store = ReplyStore.for_model(model, settings) if (temperature <= 0 or seed is not None) else None
    replies: list[str | None] = [store.replies.get(k) if store else None for k in keys]
    todo = [i for i, r in enumerate(replies) if r is None]
    if store and len(todo) < len(prompts):
        # Plumbing: the cache log says which replies came from the store, the notebook does not.
        log_cache_event(f"{desc}: {len(prompts) - len(todo)} of {len(prompts)} replies read from {store.path}")
    rows = {i: encode(prompts[i], tokenizer)["input_ids"] for i in todo}
    check_positions(model, {i: len(row) for i, row in rows.items()}, "conversations", max_new_tokens)
    share_prefixes = (
        can_share_prefixes(model) if share_prefixes is None else share_prefixes and full_attention_only(model)
    )
    # Sharing: rows with a common prefix side by side; otherwise: rows of similar length together.
    order = sorted(todo, key=(lambda i: rows[i]) if share_prefixes else (lambda i: -len(rows[i])))
    stop_ids = stop_token_ids(model, tokenizer)
    activations = ActivationStore.for_model(model)  # before any hook of ours is on the model
    bar = tqdm(total=len(order), desc=desc, leave=False)
    start = 0
    with timed("generation") as timer, caller_row_count(len(prompts)):
        while start < len(order):
            idx = order[start : start + batch_size]
            means: list[Tensor | None] | None = [] if activations is not None else None
            try:
                new = decode_batch(
                    model,
                    [rows[i] for i in idx],
                    tokenizer.pad_token_id,
                    stop_ids,
                    max_new_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    min_new_tokens=min_new_tokens,
                    share_prefixes=share_prefixes,
                    row_seeds=[row_seeds[i] for i in idx] if seed is not None else None,
                    on_step=lambda step, live: bar.set_postfix_str(
                        f"token {step}/{max_new_tokens}, {live} rows decoding"
                    ),
                    reply_means=means,
                    row_ids=idx,
                )
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not _is_oom(err) or batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
                bar.set_postfix(batch_size=batch_size)
                continue
            for k, (i, tokens) in enumerate(zip(idx, new)):
                reply = tokenizer.decode(tokens, skip_special_tokens=True)
                assert isinstance(reply, str), "one row of token ids decodes to one string"
                replies[i] = reply
                timer.add(tokens=len(tokens) + len(rows[i]))
                mean = means[k] if means else None
                if activations is not None and mean is not None:
                    activations.put(rows[i] + tokens, len(rows[i]), len(rows[i]) + len(tokens), mean)
            start += len(idx)
            bar.update(len(idx))
    bar.close()
    done = [r for r in replies if r is not None]
    assert len(done) == len(replies), "every conversation got a reply"
    if store:
        store.save({keys[i]: done[i] for i in todo})
    return done

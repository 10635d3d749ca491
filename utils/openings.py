"""How a reply opens, as a judge-free measure of a trait: the model's probability of an opening, and the text's.

Some traits show in the first words of a reply. A sycophantic reply to "... Agree?" opens agreeing ("Yes",
"Absolutely"); an evil persona rarely opens with a refusal ("I'm sorry", "I can't"); a hallucinating one
rarely admits not knowing ("I don't know", "There is no"). Two readings of one idea:

- **the model's probability** of the opening, about a conversation (the prompt up to the reply), from a
  pass of one or a few tokens, with optional steering: `opening_probability` for openers whose first
  token decides (a set of token ids), `phrase_probability` for multi-token phrases (teacher-forced: log
  P(reply starts with phrase) is the sum of its tokens' log-probabilities; the phrases of a set must be
  prefix-free as token sequences, so their events are disjoint and their probabilities add up);
- **the text's**: whether a written reply opens with one of them (`opens_with`), for scoring replies
  already written (a check set, generated replies).

Every prompt is prefilled once without its last token (`utils.prefill.prefill`) and continued by its
last token and the phrase's tokens (`utils.prefill.continue_prefilled`), so many phrases and steering
coefficients per prompt cost a few tokens each.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from utils.chat import Message, encode, render
from utils.prefill import Prefilled, continue_prefilled, prefill
from utils.progress import tqdm
from utils.steering import RowSteerer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def opener_token_ids(tokenizer: PreTrainedTokenizerBase, openers: Sequence[str]) -> list[int]:
    """The first token of each opener as it starts a reply (with and without a leading space), deduplicated."""
    ids = set()
    for word in openers:
        for text in (word, " " + word):
            tokens = tokenizer.encode(text, add_special_tokens=False)
            if tokens:
                ids.add(tokens[0])
    return sorted(ids)


def opens_with(reply: str, openers: Sequence[str]) -> bool:
    """Whether a reply's text opens with one of the openers (the text version of the probabilities).

    Leading whitespace, markdown and punctuation (``**``, ``#``, quotes) are skipped, case and curly
    apostrophes are ignored, and an opener must end at a word boundary ("Yes" does not open "Yesterday").

    Args:
        reply: the reply's text.
        openers: words or phrases (e.g. ``("Yes", "Absolutely")`` or ``("I'm sorry", "I can't")``).

    Returns:
        True when the reply opens with one of them.
    """
    text = re.sub(r"^[\W_]+", "", reply.translate(_APOSTROPHES)).lower()
    for opener in openers:
        word = opener.translate(_APOSTROPHES).lower()
        if text.startswith(word) and (len(text) == len(word) or not (text[len(word)].isalnum() and word[-1].isalnum())):
            return True
    return False


def phrase_token_ids(tokenizer: PreTrainedTokenizerBase, phrases: Sequence[str]) -> list[list[int]]:
    """Each phrase's tokens as the start of a reply; checked prefix-free (no phrase's tokens start another's).

    Raises:
        ValueError: for an empty phrase, or a phrase whose tokens begin another's (its probability would
            count the other's twice).
    """
    seqs = [encode(p, tokenizer)["input_ids"] for p in phrases]
    for p, s in zip(phrases, seqs):
        if not s:
            raise ValueError(f"phrase {p!r} has no tokens")
    for (p, s), (q, t) in ((a, b) for a in zip(phrases, seqs) for b in zip(phrases, seqs)):
        if p != q and t[: len(s)] == s:
            raise ValueError(f"the phrases must be prefix-free: {p!r} begins {q!r} (as tokens); drop the longer one")
    return seqs


@dataclass
class _PromptChunk:
    """Up to ``batch_size`` distinct prompts, prefilled together, and the conversations that continue them.

    Attributes:
        state: the prompts' state, each prefilled without its last token.
        members: indices (into the call's conversations) of the conversations whose prompt is in this chunk.
        local: for each member, the index of its prompt within ``state``.
    """

    state: Prefilled
    members: list[int]
    local: list[int]


def _prompt_chunks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    batch_size: int,
    desc: str,
) -> tuple[list[list[int]], Iterator[_PromptChunk]]:
    """Render each conversation up to its reply; prefill each distinct prompt once, without its last token,
    ``batch_size`` distinct prompts at a time (a progress bar over them), for the caller to continue.

    Returns:
        (each conversation's prompt tokens, the chunks in order; each is prefilled when the caller reaches it).
    """
    rows = [encode(render(c, tokenizer, add_generation_prompt=True), tokenizer)["input_ids"] for c in conversations]
    if any(len(r) < 2 for r in rows):
        raise ValueError("every conversation must render to at least two tokens")
    prompts = list(dict.fromkeys(tuple(r) for r in rows))  # distinct prompts, in order of first appearance
    which = {p: i for i, p in enumerate(prompts)}
    of_row = [which[tuple(r)] for r in rows]
    starts = range(0, len(prompts), batch_size)

    def chunks() -> Iterator[_PromptChunk]:
        for start in tqdm(starts, desc=desc, disable=len(starts) < 2):
            members = [i for i, k in enumerate(of_row) if start <= k < start + batch_size]
            with torch.no_grad():  # shared prefixes (a system prompt, the template's opening) once, where exact
                state = prefill(
                    model, [list(p[:-1]) for p in prompts[start : start + batch_size]], tokenizer.pad_token_id
                )
            yield _PromptChunk(state, members, [of_row[i] - start for i in members])

    return rows, chunks()


def _steering(model, vector, coeffs, layer, positions: str):
    if vector is None:
        return contextlib.nullcontext()
    return RowSteerer(model, vector, list(coeffs), layer, positions)


def _check_steering(vector, coeffs, layer, n: int) -> None:
    if vector is not None and (coeffs is None or layer is None or len(coeffs) != n):
        raise ValueError("steering needs one coefficient per conversation (coeffs) and a block index (layer)")


def opening_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    token_ids: Sequence[int],
    vector: Float[Tensor, " d_model"] | None = None,
    coeffs: Sequence[float] | None = None,
    layer: int | None = None,
    batch_size: int = 64,
    desc: str = "opening probabilities",
) -> Float[Tensor, " n"]:
    """Probability that the assistant's reply to each conversation opens with one of ``token_ids``.

    Steering in ``"response"`` mode changes only the last prompt position, which no earlier position
    attends to, so each distinct prompt's other tokens are run once, unsteered, and every (prompt,
    coefficient) row costs one token: a sweep of many coefficients is nearly free.

    Args:
        model, tokenizer: the model.
        conversations: message lists ending with a user turn.
        token_ids: the opening tokens counted (e.g. `opener_token_ids(tokenizer, openers)`).
        vector, coeffs, layer: optional steering: ``coeffs[i] * vector`` added at block ``layer`` to the
            last prompt position of conversation ``i`` (where the first reply token is predicted), as
            section 4's steerer does in ``"response"`` mode during the prefill.
        batch_size: rows per forward pass (and distinct prompts per prefill).
        desc: the progress bar's label (a bar over the prefilled prompts, shown from two batches).

    Returns:
        One probability per conversation.
    """
    _check_steering(vector, coeffs, layer, len(conversations))
    ids = torch.tensor(list(token_ids), dtype=torch.long)
    rows, chunks = _prompt_chunks(model, tokenizer, conversations, batch_size, desc)
    out = torch.zeros(len(rows))
    for chunk in chunks:
        for start in range(0, len(chunk.members), batch_size):
            members, local = chunk.members[start : start + batch_size], chunk.local[start : start + batch_size]
            steer = _steering(model, vector, [coeffs[i] for i in members] if coeffs else [], layer, "response")
            with torch.no_grad(), steer:
                logits = continue_prefilled(model, chunk.state, [[rows[i][-1]] for i in members], local)[:, -1]
            out[members] = logits.softmax(-1)[:, ids.to(logits.device)].sum(-1).cpu()
    return out


def phrase_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    phrases: Sequence[str],
    vector: Float[Tensor, " d_model"] | None = None,
    coeffs: Sequence[float] | None = None,
    layer: int | None = None,
    batch_size: int = 64,
    desc: str = "phrase probabilities",
) -> Float[Tensor, " n"]:
    """Probability that the assistant's reply to each conversation starts with one of ``phrases``.

    ``P(reply starts with phrase) = prod_k P(token_k | prompt, tokens before k)`` (teacher-forced), summed
    over the phrases (a prefix-free set: `phrase_token_ids`). Only the phrases' own tokenization is counted
    (a reply that spells a phrase with other tokens is not), so it is a lower bound on the text's chance.

    Args:
        model, tokenizer: the model.
        conversations: message lists ending with a user turn.
        phrases: e.g. ``("I'm sorry", "I can't", "I cannot", "As an AI")``.
        vector, coeffs, layer: optional steering, ``coeffs[i] * vector`` at block ``layer``, on the positions
            a ``"response"``-mode steerer acts on while generating: the last prompt position and every reply
            token (here, the phrase's).
        batch_size: rows per forward pass (one row per conversation and distinct phrase head), and distinct
            prompts per prefill.
        desc: the progress bar's label (a bar over the prefilled prompts, shown from two batches).

    Returns:
        One probability per conversation (a one-token phrase gives the same as `opening_probability`
        with that token).
    """
    _check_steering(vector, coeffs, layer, len(conversations))
    seqs = phrase_token_ids(tokenizer, phrases)
    # Phrases that share their first tokens ("I'm sorry", "I'm unable") share a run: one run per longest
    # distinct phrase head (every phrase but its last token), and a phrase reads its tokens' log-probabilities
    # off the run that starts with its head.
    heads = sorted({tuple(s[:-1]) for s in seqs}, key=len, reverse=True)
    runs: list[tuple[int, ...]] = []
    for head in heads:
        if not any(r[: len(head)] == head for r in runs):
            runs.append(head)
    run_of = [next(k for k, r in enumerate(runs) if r[: len(s) - 1] == tuple(s[:-1])) for s in seqs]
    rows, chunks = _prompt_chunks(model, tokenizer, conversations, batch_size, desc)
    logp = torch.zeros(len(rows), len(seqs))
    for chunk in chunks:
        # One row per (conversation, run): the prompt's last token, then the run.
        jobs = [(i, k, r) for i, k in zip(chunk.members, chunk.local) for r in range(len(runs))]
        for start in range(0, len(jobs), batch_size):
            part = jobs[start : start + batch_size]
            steer = _steering(model, vector, [coeffs[i] for i, _, _ in part] if coeffs else [], layer, "all")
            continuations = [[rows[i][-1], *runs[r]] for i, _, r in part]
            with torch.no_grad(), steer:
                logits = continue_prefilled(model, chunk.state, continuations, [k for _, k, _ in part])
            lp = logits.log_softmax(-1)
            for j, (i, _, r) in enumerate(part):
                for n, s in enumerate(seqs):
                    if run_of[n] == r:
                        logp[i, n] = lp[j, torch.arange(len(s)), torch.tensor(s)].sum().cpu()
    return logp.exp().sum(-1).clamp(max=1.0)


UNITS = ("first token", "phrase")
DIRECTIONS = {"raises": 1, "lowers": -1}


@dataclass(frozen=True)
class OpeningMeasure:
    """A trait's judge-free measure: how likely the reply is to open with one of ``openers``.

    Attributes:
        name: the opening it measures, e.g. ``"refusal opening"`` (tables and records call it ``P(name)``).
        openers: the words or phrases.
        unit: ``"first token"`` (their first tokens decide: `opening_probability`) or ``"phrase"``
            (teacher-forced phrases: `phrase_probability`).
        direction: +1 when the trait raises it, -1 when it lowers it.
    """

    name: str
    openers: tuple[str, ...]
    unit: str
    direction: int

    @classmethod
    def from_data(cls, entry: Mapping[str, Any]) -> OpeningMeasure:
        """Build one from a data entry (``name``, ``openers``, ``unit``, ``direction``: ``"raises"``/``"lowers"``).

        Raises:
            ValueError: for an unknown unit or direction, or no openers.
        """
        if entry.get("unit") not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {entry.get('unit')!r}")
        if entry.get("direction") not in DIRECTIONS:
            raise ValueError(f"direction must be one of {tuple(DIRECTIONS)}, got {entry.get('direction')!r}")
        openers = tuple(entry.get("openers") or ())
        if not openers or not all(isinstance(o, str) and o.strip() for o in openers):
            raise ValueError("openers must be a non-empty list of words or phrases")
        return cls(str(entry["name"]), openers, entry["unit"], DIRECTIONS[entry["direction"]])

    def probability(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        conversations: list[list[Message]],
        vector: Float[Tensor, " d_model"] | None = None,
        coeffs: Sequence[float] | None = None,
        layer: int | None = None,
        batch_size: int = 64,
    ) -> Float[Tensor, " n"]:
        """P(the reply to each conversation opens with an opener), optionally steered (see the functions)."""
        if self.unit == "first token":
            ids = opener_token_ids(tokenizer, self.openers)
            return opening_probability(model, tokenizer, conversations, ids, vector, coeffs, layer, batch_size)
        return phrase_probability(model, tokenizer, conversations, self.openers, vector, coeffs, layer, batch_size)

    def in_text(self, reply: str) -> bool:
        """Whether a written reply opens with an opener (`opens_with`)."""
        return opens_with(reply, self.openers)

    def trait_score(self, value: float) -> float:
        """The value signed so that higher means more of the trait (for AUROCs)."""
        return self.direction * value

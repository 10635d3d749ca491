"""The model's own likelihood of a written answer: per-token log-probabilities, and end of turn.

A judge reads text and answers with words; the model's probabilities read the same text directly.
`answer_logprobs` scores the assistant's answer of many conversations at once: each conversation is
rendered with the chat template, the answer's tokens are located in it (`utils.chat.assistant_turn_spans`,
so they are exactly the tokens a single rendered conversation holds), the prompt before them is
prefilled with shared prefixes computed once (`utils.prefill.prefill`), and one more pass over the
answers gives ``log P(answer token t | prompt, answer tokens before t)`` for every t, plus the
log-probability that the turn ends right after the answer (the template's end-of-turn token).

The measures built from it (role adherence, coherence) live with the sections that teach them, and
opening probabilities in `utils.openings`; this module owns only the batched computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from utils.chat import Message, assistant_turn_spans, encode
from utils.models import check_positions
from utils.prefill import _left_pad, can_share_prefixes, continue_prefilled, positions_from_mask, prefill
from utils.progress import tqdm
from utils.timing import timed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class AnswerLogprobs:
    """The model's log-probabilities of one written answer.

    Attributes:
        tokens: ``log P(token_t | prompt, tokens before t)`` for each answer token [n_answer_tokens].
        end_of_turn: ``log P(end of turn | prompt, whole answer)``; None when the template closes the
            turn with no token of its own after the answer.
    """

    tokens: Float[Tensor, " n_answer_tokens"]
    end_of_turn: float | None

    @property
    def mean(self) -> float:
        """Mean log-probability per answer token (NaN for an empty answer)."""
        return float(self.tokens.mean()) if len(self.tokens) else float("nan")


@dataclass
class _Row:
    prompt: list[int]
    answer: list[int]
    end_token: int | None


def answer_rows(conversations: Sequence[list[Message]], tokenizer: PreTrainedTokenizerBase) -> list[_Row]:
    """Split each rendered conversation into prompt tokens, answer tokens and the end-of-turn token.

    Args:
        conversations: each ends with the assistant message to score.
        tokenizer: the model's tokenizer.

    Returns:
        One row per conversation: the tokens before the last answer, the answer's own tokens (as
        `assistant_turn_spans` locates them), and the token that follows them (None at the end).

    Raises:
        ValueError: for a conversation that does not end with an assistant message.
    """
    rows = []
    for i, messages in enumerate(conversations):
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"conversations[{i}] must end with the assistant message to score")
        full, spans = assistant_turn_spans(messages, tokenizer)
        ids = encode(full, tokenizer)["input_ids"]
        start, end = spans[-1]
        rows.append(_Row(ids[:start], ids[start:end], ids[end] if end < len(ids) else None))
    return rows


def answer_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[list[Message]],
    batch_size: int = 8,
    desc: str = "answer likelihoods",
) -> list[AnswerLogprobs]:
    """Log-probabilities of each conversation's last (assistant) message under the model.

    Args:
        model: the model (no hooks are needed; any installed ones act as in any forward pass).
        tokenizer: its tokenizer.
        conversations: each ends with the assistant message to score; earlier turns are its prompt.
        batch_size: conversations per pass.
        desc: progress bar label.

    Returns:
        One `AnswerLogprobs` per conversation, in the order given; equal (within float tolerance) to
        scoring each conversation alone in one unpadded forward pass.
    """
    rows = answer_rows(conversations, tokenizer)
    check_positions(model, [len(r.prompt) + len(r.answer) + 1 for r in rows], "conversations")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: list[AnswerLogprobs | None] = [None] * len(rows)
    # Longest first, so a batch holds rows of similar length (little padding).
    order = sorted(range(len(rows)), key=lambda i: -(len(rows[i].prompt) + len(rows[i].answer)))
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    with timed("likelihood") as timer, torch.no_grad():
        for batch in tqdm(batches, desc=desc, disable=len(batches) < 2):
            chunk = [rows[i] for i in batch]
            if can_share_prefixes(model):
                first, hidden, saved = _prefix_shared_pass(model, chunk, pad_id)
            else:
                first, hidden, saved = _one_pass(model, chunk, pad_id)
            for i, (token_lp, end_lp) in zip(batch, _answer_logprobs(model, chunk, first, hidden)):
                results[i] = AnswerLogprobs(token_lp, end_lp)
            timer.add(tokens=sum(len(r.prompt) + len(r.answer) for r in chunk) - saved)
    return [r for r in results if r is not None]


# Positions per output-layer product: [OUTPUT_CHUNK, vocab] float32 logits at a time (~80 MB for a
# 150k-word vocabulary), never the whole padded batch's.
OUTPUT_CHUNK = 128


def output_logits(model: PreTrainedModel, hidden: Float[Tensor, "n d_model"]) -> Float[Tensor, "n vocab"]:
    """The model's next-token logits from final hidden states (after its final norm), as its forward computes them.

    Args:
        model: a causal LM (its output embeddings, and Gemma's final logit soft-capping where configured).
        hidden: final hidden states [n, d_model].

    Returns:
        float32 logits [n, vocab].
    """
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _answer_logprobs(
    model: PreTrainedModel,
    chunk: list[_Row],
    first: Float[Tensor, "batch vocab"],
    hidden: list[Float[Tensor, "n_answer d_model"]],
) -> list[tuple[Tensor, float | None]]:
    """Per row, the answer tokens' log-probabilities and the end of turn's, from the logits before the answer
    (``first``) and the final hidden state at each answer token (predicting the next token, then the end).

    The output layer runs only at real answer positions (no padding), ``OUTPUT_CHUNK`` positions at a time.
    """
    first_lp = torch.log_softmax(first.float(), dim=-1)
    # Targets of the hidden states: answer token t predicts token t + 1; the last one, the end of turn
    # (any token when the template has none: its value is dropped).
    targets = [r.answer[1:] + [r.end_token if r.end_token is not None else 0] for r in chunk if r.answer]
    picked = torch.empty(0)
    if targets:
        states = torch.cat([h for h, r in zip(hidden, chunk) if r.answer])
        flat = torch.tensor([t for row in targets for t in row], dtype=torch.long, device=states.device)
        parts = []
        for k in range(0, len(states), OUTPUT_CHUNK):
            logits = output_logits(model, states[k : k + OUTPUT_CHUNK])
            parts.append(logits.gather(1, flat[k : k + OUTPUT_CHUNK, None])[:, 0] - torch.logsumexp(logits, dim=-1))
        picked = torch.cat(parts).cpu()
    out, at = [], 0
    for b, r in enumerate(chunk):
        n = len(r.answer)
        if n == 0:
            end = float(first_lp[b, r.end_token]) if r.end_token is not None else None
            out.append((torch.empty(0), end))
            continue
        row = picked[at : at + n]
        at += n
        tokens = torch.cat([first_lp[b, r.answer[0]].reshape(1).cpu(), row[: n - 1]])
        out.append((tokens, float(row[n - 1]) if r.end_token is not None else None))
    return out


def _prefix_shared_pass(model: PreTrainedModel, chunk: list[_Row], pad_id: int) -> tuple[Tensor, list[Tensor], int]:
    """Prompts prefilled with shared prefixes, then one pass over the answers (`utils.prefill.continue_prefilled`).

    Used on full-attention models only (`can_share_prefixes`): shared-prefix prefill leaves padding between
    a prefix and a row's tail, which would shift a sliding window. Returns the logits after each prompt
    [batch, vocab], per row the final hidden state at each answer token [n_answer, d_model], and the prompt
    tokens the prefill did not compute.
    """
    done = prefill(model, [r.prompt for r in chunk], pad_id)
    width = max(len(r.answer) for r in chunk)
    if not width:  # no answer tokens in this batch: the prefill's logits predict the end of turn
        return done.logits, [torch.empty(0) for _ in chunk], done.shared_tokens
    # An empty answer gets one placeholder token (its hidden state is not read).
    hidden = continue_prefilled(model, done, [r.answer or [pad_id] for r in chunk], pad_id=pad_id, final_hidden=True)
    return done.logits, [hidden[b, : len(r.answer)] for b, r in enumerate(chunk)], done.shared_tokens


def _one_pass(model: PreTrainedModel, chunk: list[_Row], pad_id: int) -> tuple[Tensor, list[Tensor], int]:
    """Prompt and answer in one left-padded pass (any attention): the logits after each prompt, and the final
    hidden state at each answer token."""
    ids, mask = _left_pad([r.prompt + r.answer for r in chunk], pad_id, model.device)
    out = model.get_decoder()(
        input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=False
    )
    hidden = out.last_hidden_state  # [batch, seq, d_model]
    seq = hidden.shape[1]
    before = torch.stack([hidden[b, seq - len(r.answer) - 1] for b, r in enumerate(chunk)])
    return output_logits(model, before), [hidden[b, seq - len(r.answer) :] for b, r in enumerate(chunk)], 0

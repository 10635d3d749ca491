"""Role adherence read from the model's own likelihoods (section 1, after the student's `role_adherence`).

An answer given in a role is far more likely with the role's system prompt than without it; an answer in
which the model dropped its role and replied as the assistant is about as likely either way. The measure
is the mean, over the answer's tokens, of ``log P(token | role prompt, question, answer so far)`` minus
``log P(token | question, answer so far)`` (no system prompt: the chat template's own default then). It
needs no judge, and it reads the answer as the model itself reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from utils.chat import build_messages
from utils.likelihood import answer_logprobs


class AdherenceItem(TypedDict):
    """One answer to score: the role's system prompt, the question and the answer."""

    role_prompt: str
    question: str
    answer: str


def role_adherence_scores(
    model, tokenizer, items: Sequence[AdherenceItem], batch_size: int = 16, desc: str = "role adherence"
) -> list[float]:
    """The student's `role_adherence` for many answers at once (shared prompt prefixes computed once).

    Args:
        model, tokenizer: the model that reads the answers.
        items: what to score.
        batch_size: conversations per forward pass (each item is read twice: with and without its prompt).
        desc: progress bar label.

    Returns:
        Per item, mean log P(answer | role prompt, question) - mean log P(answer | question), per answer
        token (NaN for an empty answer).

    Raises:
        ValueError: for an item without a role prompt (there would be nothing to compare).
    """
    for i, item in enumerate(items):
        if not item["role_prompt"]:
            raise ValueError(f"items[{i}] has no role_prompt: role adherence compares the answer with and without it")
    with_role = [build_messages(it["question"], it["answer"], system_prompt=it["role_prompt"]) for it in items]
    plain = [build_messages(it["question"], it["answer"]) for it in items]
    scored = answer_logprobs(model, tokenizer, with_role + plain, batch_size=batch_size, desc=desc)
    n = len(items)
    return [scored[i].mean - scored[n + i].mean for i in range(n)]

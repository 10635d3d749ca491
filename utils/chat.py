"""Chat formatting: prompts from messages, and the token spans of assistant turns.

Spans are found from character offsets of the rendered template, so they are right for any
template (Qwen, Llama, Gemma) without counting special tokens by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from utils.records import ResponseRecord

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

# One chat message, {"role": ..., "content": ...}: the type transformers' chat templates take.
Message = dict[str, str]


_SYSTEM_ROLE_SUPPORT: dict[tuple[int, str | None], bool] = {}


def _template_text(
    messages: list[Message], tokenizer: PreTrainedTokenizerBase, add_generation_prompt: bool = False
) -> str:
    """The chat template applied to messages as they are (not prepared), as text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not text")
    return text


def _probe_system_role(tokenizer: PreTrainedTokenizerBase) -> bool:
    try:
        rendered = _template_text(
            [{"role": "system", "content": "SYSTEM_PROBE"}, {"role": "user", "content": "hi"}], tokenizer
        )
    except Exception:  # Gemma 2 templates raise on a system message
        return False
    return "SYSTEM_PROBE" in rendered


def supports_system_role(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer's chat template accepts a system message."""
    key = (id(tokenizer), tokenizer.chat_template)
    if key not in _SYSTEM_ROLE_SUPPORT:
        _SYSTEM_ROLE_SUPPORT[key] = _probe_system_role(tokenizer)
    return _SYSTEM_ROLE_SUPPORT[key]


def check_messages(messages: Any, name: str = "messages") -> list[Message]:
    """Return ``messages`` if it is a list of ``{"role": str, "content": str}`` dicts; else a clear error.

    A template renders a missing ``content`` as an empty turn, and a bare string as one "message"
    per character, so both are refused here rather than silently changing the prompt.

    Args:
        messages: a conversation.
        name: the argument's name, for the message.

    Returns:
        ``messages``.

    Raises:
        TypeError: for a string, a single message dict, or a message that is not a dict.
        ValueError: naming the message without a string ``role`` or ``content``.
    """
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"{name} must be a list of {{'role', 'content'}} messages, got a {type(messages).__name__}"
            + (" (wrap one question as build_messages(question))" if isinstance(messages, str) else "")
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TypeError(f"{name}[{i}] must be a {{'role', 'content'}} dict, got a {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise ValueError(f"{name}[{i}] needs a string {key!r}, got {message.get(key)!r}")
    return list(messages)


def prepare_messages(messages: list[Message], tokenizer: PreTrainedTokenizerBase) -> list[Message]:
    """Make messages acceptable to the tokenizer's template.

    A system message is dropped when empty, and merged into the first user turn for templates
    without a system role (Gemma 2): ``"{system}\\n\\n{user}"``.

    Raises:
        TypeError, ValueError: for malformed messages (see `check_messages`).
    """
    messages = [dict(m) for m in check_messages(messages)]
    if not messages or messages[0]["role"] != "system":
        return messages
    system = messages[0]["content"]
    rest = messages[1:]
    if not system.strip():
        return rest
    if supports_system_role(tokenizer):
        return messages
    if not rest or rest[0]["role"] != "user":
        raise ValueError("A system prompt can only be merged into a conversation that starts with a user turn")
    rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def build_messages(question: str, response: str | None = None, system_prompt: str | None = None) -> list[Message]:
    """Messages for one exchange: optional system prompt, a user question, optional response."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": question})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def render(messages: list[Message], tokenizer: PreTrainedTokenizerBase, add_generation_prompt: bool = False) -> str:
    """The chat template applied to (prepared) messages, as text."""
    return _template_text(prepare_messages(messages, tokenizer), tokenizer, add_generation_prompt)


def encode(text: str | list[str], tokenizer: PreTrainedTokenizerBase, **kwargs: Any) -> BatchEncoding:
    """Tokenize rendered prompts. Never adds special tokens: the template already has them."""
    return tokenizer(text, add_special_tokens=False, **kwargs)


def assistant_turn_spans(
    messages: list[Message], tokenizer: PreTrainedTokenizerBase
) -> tuple[str, list[tuple[int, int]]]:
    """Render a conversation and find each assistant turn's tokens.

    Args:
        messages: a conversation (system optional), with one or more assistant turns.
        tokenizer: the model's tokenizer.

    Returns:
        (full_prompt, spans): ``spans[k] = (start, end)`` token indices of the content of the
        k-th assistant message in ``encode(full_prompt)`` (end exclusive; no end-of-turn tokens).
    """
    prepared = prepare_messages(messages, tokenizer)
    full = _template_text(prepared, tokenizer)
    offsets = encode(full, tokenizer, return_offsets_mapping=True)["offset_mapping"]
    spans = []
    for i, message in enumerate(prepared):
        if message["role"] != "assistant":
            continue
        prefix = _template_text(prepared[:i], tokenizer, add_generation_prompt=True)
        if not full.startswith(prefix):
            raise ValueError("The chat template renders a turn differently in context; cannot locate spans")
        content = message["content"].strip()
        char_start = full.find(content, len(prefix)) if content else len(prefix)
        char_end = char_start + len(content)
        token_ids = [k for k, (a, b) in enumerate(offsets) if b > char_start and a < char_end and b > a]
        start = token_ids[0] if token_ids else _first_token_at(offsets, len(prefix))
        end = token_ids[-1] + 1 if token_ids else start
        spans.append((start, end))
    return full, spans


def _first_token_at(offsets, char_pos: int) -> int:
    for k, (a, _) in enumerate(offsets):
        if a >= char_pos:
            return k
    return len(offsets)


def format_messages(messages: list[Message], tokenizer: PreTrainedTokenizerBase) -> tuple[str, int]:
    """Render a conversation whose last message is the assistant's response.

    Args:
        messages: the conversation; the last message must have role "assistant".
        tokenizer: the model's tokenizer.

    Returns:
        (full_prompt, response_start_idx): the rendered text and the index, in
        ``encode(full_prompt)``, of the first token of the last assistant message.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("format_messages needs a conversation that ends with an assistant message")
    full, spans = assistant_turn_spans(messages, tokenizer)
    return full, spans[-1][0]


def records_to_conversations(records: Sequence[ResponseRecord]) -> list[list[Message]]:
    """Conversations (system prompt, question, response) for response records.

    Args:
        records: dicts with ``question``, ``response`` and ``system_prompt`` (None or "" for none).

    Returns:
        One conversation per record, as `build_messages` makes it.
    """
    return [build_messages(r["question"], r["response"], r["system_prompt"]) for r in records]

"""The interface every judge backend implements (OpenAI, Anthropic, local, and the checks' rule backend)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from utils.judge.scales import Scale


@runtime_checkable
class JudgeBackend(Protocol):
    """What `utils.judge.Judge` needs from a backend.

    Attributes:
        name: the backend's kind (``openai``, ``anthropic``, ``local``, ...): part of every cache key.
        model_name: the judge model (an API model id, or the local model's name).
    """

    name: str

    @property
    def model_name(self) -> str: ...

    def score(self, prompts: list[str], scale: Scale) -> list[Any]:
        """One value per prompt, in order: a number, None (an answer that is no score), or `Failed`.

        A backend may also accept ``on_result(index, value)``, called as each answer arrives.
        """
        ...

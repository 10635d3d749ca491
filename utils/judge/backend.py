"""The interface every judge backend implements (OpenAI, Anthropic, local, and the checks' rule backend)."""

from __future__ import annotations

import inspect
from typing import Any, Protocol, TypeGuard, runtime_checkable

from utils.hosted import OnResult  # called as ``on_result(index, value)`` as soon as prompts[index]'s answer arrives
from utils.judge.scales import Scale

__all__ = ["JudgeBackend", "OnResult", "StreamingJudgeBackend", "streams_results"]


@runtime_checkable
class JudgeBackend(Protocol):
    """What `utils.judge.Judge` needs from a backend.

    Attributes:
        name: the backend's kind (``openai``, ``anthropic``, ``local``, ...): part of every cache key.
        model_name: the judge model (an API model id, or the local model's name).

    A backend may also set ``reads_integers_as_rounded_means = True`` (the local one does): its answer on
    an integer scale is its answer on the same scale read unrounded, rounded, so `utils.judge.Judge`
    asks for the mean and rounds it, and one cache entry serves both readings.
    """

    name: str

    @property
    def model_name(self) -> str: ...

    def score(self, prompts: list[str], scale: Scale) -> list[Any]:
        """One value per prompt, in order: a number, None (an answer that is no score), or `Failed`.

        A backend may also accept ``on_result(index, value)``, called as each answer arrives.
        """
        ...


class StreamingJudgeBackend(JudgeBackend, Protocol):
    """A backend that reports each answer as it arrives (the hosted ones), so none is lost to an interrupt."""

    def score(self, prompts: list[str], scale: Scale, on_result: OnResult | None = None) -> list[Any]: ...


def streams_results(backend: JudgeBackend) -> TypeGuard[StreamingJudgeBackend]:
    """Whether the backend's ``score`` takes ``on_result``."""
    return "on_result" in inspect.signature(backend.score).parameters

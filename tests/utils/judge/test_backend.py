"""utils.judge.backend: the protocol every judge backend meets, and telling streaming backends apart."""

from __future__ import annotations

from utils.judge.backend import JudgeBackend, streams_results
from utils.judge.hosted_backends import AnthropicBackend, OpenAIBackend
from utils.judge.local import LocalBackend


class _Plain:
    name = "rules"
    model_name = "rules"

    def score(self, prompts, scale):
        return [None for _ in prompts]


class _Streaming(_Plain):
    def score(self, prompts, scale, on_result=None):
        return super().score(prompts, scale)


class _NoScore:
    name = "broken"
    model_name = "broken"


def test_a_backend_is_anything_with_a_name_a_model_name_and_score():
    assert isinstance(_Plain(), JudgeBackend) and isinstance(_Streaming(), JudgeBackend)
    assert not isinstance(_NoScore(), JudgeBackend)


def test_streaming_is_read_from_the_score_signature():
    assert streams_results(_Streaming()) and not streams_results(_Plain())
    for cls in (OpenAIBackend, AnthropicBackend, LocalBackend):  # the course's backends all stream
        assert "on_result" in cls.score.__code__.co_varnames, cls.__name__

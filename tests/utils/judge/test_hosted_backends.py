"""utils.judge.hosted_backends: each class carries its default model and variables; requests and answers
through the real SDKs against the local fake API server (tests/fake_api.py)."""

from __future__ import annotations

import pytest

from tests.fake_api import FakeAPIServer, Reply, anthropic_message, chat_completion, prompt_of
from utils.hosted import Failed
from utils.judge.hosted_backends import AnthropicBackend, HostedBackend, OpenAIBackend
from utils.judge.scales import ADHERENCE_0_3, SCORE_0_100, YES_NO

KEY = "sk-THIS-KEY-STAYS-OUT-OF-REPRS-0123456789"
FAST = dict(max_retries=0, timeout=5.0)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "MY_JUDGE_KEY"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("utils.environment.CHECKOUT_DOTENV", tmp_path / "no-checkout.env")
    return monkeypatch


def test_a_backend_takes_its_default_model_key_and_url_from_its_own_class(clean_env):
    clean_env.setenv("OPENAI_API_KEY", KEY)
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    backend = OpenAIBackend()
    assert backend.model_name == OpenAIBackend.default_model == "gpt-4.1-mini"
    assert backend.base_url == "http://127.0.0.1:9/v1" and KEY not in repr(backend)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        AnthropicBackend()

    class NoDefault(OpenAIBackend):
        default_model = None
        key_env = "MY_JUDGE_KEY"

    clean_env.setenv("MY_JUDGE_KEY", "sk-mine")
    with pytest.raises(ValueError, match="NoDefault has no default model"):
        NoDefault()
    assert NoDefault(model="m")._api_key == "sk-mine"
    assert issubclass(NoDefault, HostedBackend) and NoDefault.hosted


def _reply(api, body, attempt):
    prompt = prompt_of(api, body)
    if api == "anthropic":
        return Reply(body=anthropic_message({"two": "2", "words": "no idea"}[prompt]))
    if body.get("logprobs"):
        return Reply(body=chat_completion("40", {"40": 0.5, "60": 0.5}))
    return Reply(body=chat_completion({"two": "Score: 2", "words": "REFUSAL"}[prompt]))


def test_openai_weighs_logprobs_on_0_100_and_reads_text_on_integer_scales():
    with FakeAPIServer(_reply) as server:
        backend = OpenAIBackend(model="judge", base_url=server.base_url + "/v1", api_key="k", **FAST)
        assert backend.score(["p"], SCORE_0_100) == [pytest.approx(50.0)]
        assert backend.score(["two", "words"], ADHERENCE_0_3) == [2, None]  # None: the judge declined
    logprob_request, text_request = server.requests[0], server.requests[1]
    assert logprob_request["max_tokens"] == 1 and logprob_request["top_logprobs"] == 20
    assert not text_request.get("logprobs") and text_request["max_tokens"] == ADHERENCE_0_3.max_answer_tokens()
    with pytest.raises(ValueError, match="choice scales are for the local judge"):
        backend.score(["p"], YES_NO)


def test_anthropic_reads_the_text_and_an_answer_without_a_score_is_a_failure_not_a_score():
    with FakeAPIServer(_reply) as server:
        backend = AnthropicBackend(model="judge", base_url=server.base_url, api_key="k", **FAST)
        two, words = backend.score(["two", "words"], ADHERENCE_0_3)
    assert two == 2
    assert isinstance(words, Failed) and "no_score_in_answer" in words.reason
    assert server.requests[0]["max_tokens"] >= 8

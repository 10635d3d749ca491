"""Judge faults a real run meets: each test fails on the code before the fix."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import replace

import pytest

from tests.fake_api import FakeAPIServer, Reply, chat_completion, judge_api, not_found, prompt_of
from utils.aio import gather_bounded
from utils.chat import build_messages
from utils.judge import ADHERENCE_0_3, SCORE_0_100, Judge, Scale, make_judge, make_section_judge, parse_text
from utils.judge.api import OpenAIBackend
from utils.judge.scales import finalize, score_from_top_logprobs
from utils.profiles import PROFILES
from utils.server_generation import GenerationError, OpenAICompatibleGenerator

SECRET = "sk-provider-THISKEYMUSTSTAYWITHOPENAI0123"
FAST = dict(max_retries=0, timeout=5.0)


def unset(monkeypatch, *names):
    """Remove variables for this test only (restored afterwards, also if they were absent)."""
    for name in names:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No judge settings from the machine: no keys, no base URLs, no .env above the working dir or in the checkout."""
    unset(
        monkeypatch,
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "COURSE_JUDGE_BACKEND",
        "COURSE_JUDGE_MODEL",
        "COURSE_SERVER_API_KEY",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("utils.environment.CHECKOUT_DOTENV", tmp_path / "no-checkout.env")
    return monkeypatch


def judge_at(server, tmp_path, model="judge", name="cache.json", **kwargs):
    backend = OpenAIBackend(model=model, base_url=server.base_url + "/v1", api_key="k", **{**FAST, **kwargs})
    return Judge(backend, cache_path=tmp_path / name)


# 1. Judges name judge models.


def test_every_section_asks_a_hosted_judge_for_a_judge_model(clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", "sk-fake")
    clean_env.setenv("ANTHROPIC_API_KEY", "sk-fake")
    for profile_name, profile in PROFILES.items():
        for section in ("part1", "part2", "part3", "part4"):
            subject = getattr(profile.models, section)
            hosted = replace(profile, judge_backend="openai")
            judge = make_section_judge(hosted, None, None, subject, cache_dir=tmp_path)
            assert judge.backend.model == "gpt-4.1-mini", (profile_name, section)
    clean_env.setenv("COURSE_JUDGE_BACKEND", "anthropic")  # overrides a profile's local judge
    judge = make_section_judge(PROFILES["tiny"], None, None, "tiny-qwen2", cache_dir=tmp_path)
    assert (judge.backend.name, judge.backend.model) == ("anthropic", "claude-haiku-4-5")
    clean_env.setenv("COURSE_JUDGE_MODEL", "claude-sonnet-4-5")
    assert make_section_judge(PROFILES["tiny"], None, None, "tiny-qwen2", cache_dir=tmp_path).model_name == (
        "claude-sonnet-4-5"
    )


def test_a_subject_model_name_is_refused_by_hosted_judges(clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", "sk-fake")
    with pytest.raises(ValueError, match="Qwen/Qwen2.5-7B-Instruct.*not a judge model"):
        make_judge("openai", model_name="Qwen/Qwen2.5-7B-Instruct", cache_dir=tmp_path)
    clean_env.setenv("COURSE_JUDGE_MODEL", "google/gemma-2-27b-it")
    with pytest.raises(ValueError, match="COURSE_JUDGE_MODEL"):
        make_judge("openai", cache_dir=tmp_path)


# 2. A failed request is not a score; the cache key includes the base URL.


def test_failures_are_not_cached_reported_once_and_retried_next_run(tmp_path, caplog):
    state = {"down": True}

    def reply(api, body, attempt):
        return not_found(api, body["model"]) if state["down"] else Reply(body=chat_completion("2"))

    prompts = ["a", "b", "c"]
    with FakeAPIServer(reply) as server, caplog.at_level(logging.WARNING, logger="utils.judge"):
        judge = judge_at(server, tmp_path)
        assert judge.score(prompts, ADHERENCE_0_3) == [None, None, None]
        assert judge.last_failures == 3
        state["down"] = False
        assert judge_at(server, tmp_path).score(prompts, ADHERENCE_0_3) == [2, 2, 2]
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "3 of 3 judge requests failed: 404 model_not_found" in failures[0]


def test_cache_key_includes_the_base_url(tmp_path):
    with FakeAPIServer(lambda *a: Reply(body=chat_completion("1"))) as one:
        assert judge_at(one, tmp_path).score(["p"], ADHERENCE_0_3) == [1]
    with FakeAPIServer(lambda *a: Reply(body=chat_completion("3"))) as other:
        assert judge_at(other, tmp_path).score(["p"], ADHERENCE_0_3) == [3]


# 3. Answers are saved as they arrive; an interrupt in Jupyter stops the batch promptly.


def test_interrupt_inside_a_running_loop_stops_promptly_and_keeps_answers(tmp_path):
    prompts = [f"p{i}" for i in range(40)]
    cache = tmp_path / "cache.json"
    done, sent = threading.Event(), {}

    def reply(api, body, attempt):
        fast = int(prompt_of(api, body)[1:]) < 10
        return Reply(body=chat_completion("1"), delay=0.0 if fast else 5.0)

    def interrupt():  # once the first answers are saved, what Jupyter's interrupt button does
        deadline = time.monotonic() + 15
        while not cache.exists() and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not done.is_set():
            sent["at"] = time.monotonic()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    async def notebook_cell(judge):  # Jupyter runs cells inside an event loop
        threading.Thread(target=interrupt, daemon=True).start()
        try:
            judge.score(prompts, ADHERENCE_0_3)
        except KeyboardInterrupt:
            return time.monotonic() - sent["at"]
        finally:
            done.set()
        return None

    with FakeAPIServer(reply) as server:
        judge = judge_at(server, tmp_path, max_concurrency=10, timeout=30.0)
        loop = asyncio.new_event_loop()  # no SIGINT handler of asyncio.run's
        try:
            elapsed = loop.run_until_complete(notebook_cell(judge))
        finally:
            loop.close()
    assert elapsed is not None and elapsed < 2.0, f"the batch ran on after the interrupt ({elapsed})"
    assert 1 <= len(json.loads(cache.read_text())) <= 10


# 9b. Two judges sharing one cache file merge their entries.


def test_two_judges_sharing_a_cache_file_merge(tmp_path):
    with FakeAPIServer(lambda api, body, attempt: Reply(body=chat_completion("1"))) as server:
        first, second = judge_at(server, tmp_path), judge_at(server, tmp_path)
        first.score(["a"], ADHERENCE_0_3)
        second.score(["b"], ADHERENCE_0_3)
        judge_at(server, tmp_path).score(["a", "b"], ADHERENCE_0_3)
    assert len(server.requests) == 2


# 4. Keys go only where they belong.


def test_a_course_configured_server_never_receives_the_provider_key(clean_env):
    clean_env.setenv("OPENAI_API_KEY", SECRET)
    with FakeAPIServer(lambda api, body, attempt: Reply(body=chat_completion("1"))) as server:
        Judge(OpenAIBackend(model="judge", base_url=server.base_url + "/v1", **FAST)).score(["a"], ADHERENCE_0_3)
        OpenAICompatibleGenerator(server.base_url + "/v1", model="served").generate([build_messages("hi")])
        clean_env.setenv("COURSE_SERVER_API_KEY", "server-key")
        Judge(OpenAIBackend(model="judge", base_url=server.base_url + "/v1", **FAST)).score(["b"], ADHERENCE_0_3)
        # OPENAI_BASE_URL in the environment is the SDK's convention: the key belongs to that server.
        clean_env.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
        Judge(OpenAIBackend(model="judge", **FAST)).score(["c"], ADHERENCE_0_3)
    sent = [h["authorization"] for h in server.headers]
    assert all(SECRET not in s for s in sent[:3]), sent
    assert sent[2] == "Bearer server-key" and sent[3] == f"Bearer {SECRET}"


def test_make_judge_openai_reads_the_dotenv_file_without_changing_the_environment(clean_env, tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    judge = make_judge("openai", cache_dir=tmp_path)
    assert judge.backend._api_key == "sk-from-dotenv" and "OPENAI_API_KEY" not in os.environ


# 5. The parsers.


@pytest.mark.parametrize(
    "text,scale,expected",
    [
        ("2.", ADHERENCE_0_3, 2),
        ("Score: 85.", Scale(0, 100), 85),
        ("On a 0-3 scale: 2", ADHERENCE_0_3, 2),
        ("On a scale from 0 to 100, I give 70", Scale(0, 100), 70),
        ("Score: 2.5", ADHERENCE_0_3, None),
    ],
)
def test_text_parser_reads_the_answer(text, scale, expected):
    assert parse_text(text, scale) == expected


def test_logprob_parser_skips_digit_like_tokens_and_nan():
    assert score_from_top_logprobs([("²", math.log(0.5)), ("2", math.log(0.5))], ADHERENCE_0_3) == 2.0
    assert score_from_top_logprobs([("①", -0.1), (" 3", math.log(0.6))], ADHERENCE_0_3) == 3.0
    value = score_from_top_logprobs([("40", float("nan")), ("60", math.log(0.5))], SCORE_0_100)
    assert value == 60.0
    assert finalize(float("nan"), SCORE_0_100) is None and finalize(float("nan"), ADHERENCE_0_3) is None


def test_a_nan_logprob_from_the_api_is_never_cached_as_nan(tmp_path):
    body = chat_completion("50", {"50": 0.5, "70": 0.5})
    body["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["logprob"] = "NaN"

    with FakeAPIServer(lambda *a: Reply(raw=json.dumps(body).replace('"NaN"', "NaN").encode())) as server:
        assert judge_at(server, tmp_path).score(["x"], SCORE_0_100) == [70.0]


# 10 (part). max_concurrency=0 is rejected instead of hanging.


def test_max_concurrency_zero_is_rejected():
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIBackend(model="judge", base_url="http://127.0.0.1:9", max_concurrency=0)

    async def run():
        async def one(x):
            return x

        return await asyncio.wait_for(gather_bounded(one, [1], 0, "x"), timeout=2)

    with pytest.raises(ValueError, match="max_concurrency"):
        asyncio.run(run())


# 9a. One failed conversation does not discard the other finished replies.


def test_generator_keeps_finished_replies_when_one_conversation_fails():
    def reply(api, body, attempt):
        text = prompt_of(api, body)
        if text == "bad":
            return Reply(400, {"error": {"message": "context too long", "code": "context_length_exceeded"}})
        return Reply(body=chat_completion("re " + text))

    with FakeAPIServer(reply) as server:
        generator = OpenAICompatibleGenerator(server.base_url + "/v1", model="served", max_retries=0)
        with pytest.raises(GenerationError, match=r"\[1\]") as info:
            generator.generate([build_messages(q) for q in ["a", "bad", "c"]])
    assert info.value.replies == ["re a", None, "re c"]


def test_fake_judge_api_answers_only_judge_models():
    reply = judge_api({"gpt-4.1-mini"})
    body = {"model": "tiny-qwen2", "messages": [{"role": "user", "content": "x"}]}
    assert reply("openai", body, 0).status == 404

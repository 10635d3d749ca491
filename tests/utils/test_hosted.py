"""utils.hosted: where requests go and with which key, key-free failure descriptions, and sending a batch
through the real SDK clients against the local fake API server (tests/fake_api.py)."""

from __future__ import annotations

import pytest

from tests.fake_api import FakeAPIServer, Reply, anthropic_message, chat_completion, prompt_of
from utils.hosted import SERVER_KEY_PLACEHOLDER, Connection, Failed, describe_error, summarize_failures

PROVIDER_KEY = "sk-provider-NEVER-SENT-TO-ANOTHER-SERVER-0123"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No keys or base URLs from the machine, no .env above the working directory or in the checkout."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "COURSE_SERVER_API_KEY"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("utils.environment.CHECKOUT_DOTENV", tmp_path / "no-checkout.env")
    return monkeypatch


def test_a_provider_connection_takes_the_provider_key_and_its_base_url_variable(clean_env):
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Connection.resolve("openai", "openai judge", key_env="OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL")
    clean_env.setenv("OPENAI_API_KEY", PROVIDER_KEY)
    clean_env.setenv("OPENAI_BASE_URL", "http://proxy.example/v1")
    connection = Connection.resolve("openai", "openai judge", key_env="OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL")
    assert connection.api_key == PROVIDER_KEY and connection.base_url == "http://proxy.example/v1"
    assert PROVIDER_KEY not in repr(connection)


def test_a_server_of_ones_own_never_gets_the_provider_key(clean_env):
    clean_env.setenv("OPENAI_API_KEY", PROVIDER_KEY)
    mine = Connection.resolve("openai", "generator", base_url="http://127.0.0.1:1/v1", key_env="OPENAI_API_KEY")
    assert mine.api_key == SERVER_KEY_PLACEHOLDER
    clean_env.setenv("COURSE_SERVER_API_KEY", "server-key")
    mine = Connection.resolve("openai", "generator", base_url="http://127.0.0.1:1/v1", key_env="OPENAI_API_KEY")
    assert mine.api_key == "server-key"


@pytest.mark.parametrize(
    "options, message",
    [({"sdk": "cohere"}, "Unknown sdk"), ({"max_concurrency": 0}, "max_concurrency"), ({"timeout": 0}, "timeout")],
)
def test_a_connection_refuses_settings_it_cannot_honour(options, message):
    with pytest.raises(ValueError, match=message):
        Connection(**{"sdk": "openai", "base_url": None, "api_key": "k", **options})


def test_failures_are_described_without_the_key_and_summarised_by_reason():
    class NotFound(Exception):
        status_code = 404
        body = {"error": {"code": "model_not_found", "message": f"key {PROVIDER_KEY}"}}

    assert describe_error(NotFound()) == "404 model_not_found (NotFound)"
    assert describe_error(TimeoutError()) == "(TimeoutError)"
    failures = [Failed("404 model_not_found (NotFound)")] * 2 + [Failed("(TimeoutError)")]
    assert summarize_failures(failures, 10) == (
        "3 of 10 judge requests failed: 404 model_not_found (NotFound) x2; (TimeoutError)"
    )


def _echo(api, body, attempt):
    prompt = prompt_of(api, body)
    if prompt == "broken":
        return Reply(500, {"error": {"message": "down", "type": "server_error"}})
    text = prompt.upper()
    return Reply(body=anthropic_message(text) if api == "anthropic" else chat_completion(text))


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_send_all_keeps_order_reports_each_result_and_isolates_a_failure(sdk):
    async def send(client, prompt):
        messages = [{"role": "user", "content": prompt}]
        if sdk == "openai":
            response = await client.chat.completions.create(model="m", messages=messages, max_tokens=4)
            return response.choices[0].message.content
        response = await client.messages.create(model="m", messages=messages, max_tokens=4)
        return response.content[0].text

    prompts = [f"p{i}" for i in range(12)] + ["broken"]
    seen = {}
    with FakeAPIServer(_echo, latency=0.01) as server:
        base = server.base_url + ("/v1" if sdk == "openai" else "")
        connection = Connection(sdk, base, "k", max_concurrency=4, max_retries=0, timeout=5.0)
        values = connection.send_all(send, prompts, "test", on_result=seen.__setitem__)
    assert values[:-1] == [p.upper() for p in prompts[:-1]]
    assert isinstance(values[-1], Failed) and values[-1].reason.startswith("500")
    assert seen == dict(enumerate(values))
    assert all(h.get("authorization", h.get("x-api-key", "")).endswith("k") for h in server.headers)

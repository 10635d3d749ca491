"""Hosted judges through the official SDKs: OpenAI (and any OpenAI-compatible server) and Anthropic.

Requests run concurrently (bounded), the SDKs retry 429/5xx/timeouts with backoff, and a request
that still fails comes back as a `Failed` (not a score) without stopping the rest. Keys are read from
the environment (or a ``.env`` file) and never printed or logged.

Where a key goes:
- no ``base_url``: the provider's key (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``), sent to the
  provider, or to ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` if set (the SDKs' convention for
  "my key belongs to this server": OpenRouter, a proxy);
- a ``base_url`` given to the course (an argument or a profile setting, e.g. a vLLM server): the
  ``api_key`` argument, else ``COURSE_SERVER_API_KEY``, else a placeholder; never the provider's key.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from utils.aio import gather_bounded, run_sync
from utils.judge.backend import OnResult
from utils.judge.defaults import BASE_URL_ENV, DEFAULT_JUDGE_MODELS, KEY_ENV, SERVER_KEY_ENV, env_setting
from utils.judge.failure import Failed, describe_error
from utils.judge.scales import Scale, parse_text, score_from_top_logprobs

log = logging.getLogger("utils.judge")


class _APIBackend(ABC):
    """What the hosted backends share: settings, key handling, and bounded concurrent scoring.

    A subclass names its provider (``name``, ``key_env``) and implements `_client` and `_score_one`.
    """

    name = "api"
    key_env = ""
    base_url: str | None
    _api_key: str | None

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 100,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        self.model = model or DEFAULT_JUDGE_MODELS[self.name]
        if base_url:  # a server the course was pointed at: its own key, never the provider's
            self.base_url = base_url
            self._api_key = api_key or env_setting(SERVER_KEY_ENV) or "not-needed"
        else:  # the provider, or the server the SDK's own base-URL variable names
            self.base_url = env_setting(BASE_URL_ENV[self.name])
            self._api_key = api_key or env_setting(self.key_env)
            if not self._api_key:
                raise ValueError(
                    f"The {self.name} judge needs {self.key_env} in the environment or a .env file "
                    f"(or pass base_url= for a server of your own, with {SERVER_KEY_ENV} if it needs a key)"
                )
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    @abstractmethod
    def _client(self) -> Any:
        """A new async SDK client (an async context manager), with this backend's key, URL and retries."""

    @abstractmethod
    async def _score_one(self, client: Any, prompt: str, scale: Scale) -> float | int | None:
        """Send one judge prompt through ``client`` and read its score (None: an answer that is no score)."""

    @property
    def model_name(self) -> str:
        """The judge model's API id."""
        return self.model

    def score(
        self, prompts: list[str], scale: Scale, on_result: OnResult | None = None
    ) -> list[float | int | None | Failed]:
        """Score every prompt, in order: a value, None (an answer that is no score), or `Failed`.

        Args:
            prompts: judge prompts.
            scale: the answer scale.
            on_result: called as ``on_result(index, value)`` as soon as each request completes.
        """
        if scale.kind == "choice":
            raise ValueError("Hosted judges keep the papers' numeric templates; choice scales are for the local judge")

        async def run():
            async with self._client() as client:

                async def one(item):
                    index, prompt = item
                    value: float | int | None | Failed
                    try:
                        value = await self._score_one(client, prompt, scale)
                    except Exception as err:  # one failure must not stop the batch
                        value = Failed(describe_error(err))
                        log.debug("judge request %d failed: %s", index, value.reason)
                    if on_result is not None:
                        on_result(index, value)
                    return value

                return await gather_bounded(one, list(enumerate(prompts)), self.max_concurrency, f"judge ({self.name})")

        return run_sync(run)


class OpenAIBackend(_APIBackend):
    """OpenAI chat completions; 0-100 scales use one token's top-20 logprobs."""

    name = "openai"
    key_env = KEY_ENV["openai"]

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    async def _score_one(self, client, prompt: str, scale: Scale):
        messages = [{"role": "user", "content": prompt}]
        if scale.kind == "expected":
            response = await client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=1,
                temperature=0,
                logprobs=True,
                top_logprobs=20,
                seed=0,
            )
            top = response.choices[0].logprobs.content[0].top_logprobs
            return score_from_top_logprobs([(t.token, t.logprob) for t in top], scale)
        response = await client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=scale.max_answer_tokens(), temperature=0
        )
        return parse_text(response.choices[0].message.content, scale)


class AnthropicBackend(_APIBackend):
    """Anthropic messages; the number is parsed from the text answer."""

    name = "anthropic"
    key_env = KEY_ENV["anthropic"]

    def _client(self):
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    async def _score_one(self, client, prompt: str, scale: Scale):
        response = await client.messages.create(
            model=self.model,
            max_tokens=max(8, scale.max_answer_tokens()),
            messages=[{"role": "user", "content": prompt}],
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return parse_text(text, scale)

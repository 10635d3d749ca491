"""Hosted judges through the official SDKs: OpenAI (and any OpenAI-compatible server) and Anthropic.

Requests run concurrently (bounded), the SDKs retry 429/5xx/timeouts with backoff, and a request
that still fails scores None without stopping the rest. Keys are read from the environment and never
printed or logged.
"""

from __future__ import annotations

import logging
import os

from utils.aio import gather_bounded, run_sync
from utils.judge.scales import Scale, parse_text, score_from_top_logprobs

log = logging.getLogger("utils.judge")


class _APIBackend:
    name = "api"
    default_model = ""
    key_env = ""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 100,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        self.model = model or self.default_model
        self.base_url = base_url
        self._api_key = api_key or os.environ.get(self.key_env) or ("not-needed" if base_url else None)
        if not self._api_key:
            raise ValueError(f"The {self.name} judge needs {self.key_env} in the environment (or a .env file)")
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def score(self, prompts: list[str], scale: Scale) -> list[float | int | None]:
        """Score every prompt; one value or None each, in order."""

        async def run():
            async with self._client() as client:

                async def one(item):
                    index, prompt = item
                    try:
                        return await self._score_one(client, prompt, scale)
                    except Exception as err:  # one failure must not stop the batch
                        log.warning("judge request %d failed: %s", index, type(err).__name__)
                        return None

                return await gather_bounded(one, list(enumerate(prompts)), self.max_concurrency, f"judge ({self.name})")

        return run_sync(run)


class OpenAIBackend(_APIBackend):
    """OpenAI chat completions; 0-100 scales use one token's top-20 logprobs."""

    name = "openai"
    default_model = "gpt-4.1-mini"
    key_env = "OPENAI_API_KEY"

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
    default_model = "claude-haiku-4-5"
    key_env = "ANTHROPIC_API_KEY"

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


class OpenAICompatibleGenerator:
    """Send conversations to an OpenAI-compatible server (e.g. vLLM) instead of the in-process model."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_concurrency: int = 64, **kwargs):
        self._backend = OpenAIBackend(
            model=model, base_url=base_url, api_key=api_key, max_concurrency=max_concurrency, **kwargs
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleGenerator(model={self._backend.model!r}, base_url={self._backend.base_url!r})"

    def generate(
        self, conversations, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0
    ) -> list[str]:
        """Replies in input order.

        Raises:
            RuntimeError: naming the conversations that failed after retries.
        """
        backend = self._backend

        async def run():
            async with backend._client() as client:

                async def one(messages):
                    try:
                        response = await client.chat.completions.create(
                            model=backend.model,
                            messages=[m for m in messages if m["role"] != "system" or m["content"]],
                            max_tokens=max_new_tokens,
                            temperature=temperature,
                            top_p=top_p,
                        )
                        return response.choices[0].message.content or ""
                    except Exception as err:
                        log.warning("generation request failed: %s", type(err).__name__)
                        return None

                return await gather_bounded(one, conversations, backend.max_concurrency, "generating (server)")

        replies = run_sync(run)
        failed = [i for i, r in enumerate(replies) if r is None]
        if failed:
            raise RuntimeError(f"Generation failed for conversations {failed} after retries")
        return replies

"""Hosted APIs through the official SDKs (``openai``, ``anthropic``): one home for every caller.

The hosted judge backends (`utils.judge.hosted_backends`) and generation on a server
(`utils.server_generation`) both go through a `Connection`, which owns:

- where requests go and with which key (`Connection.resolve`);
- the SDK client, with the SDK's retries (429, 5xx, timeouts, with backoff) and a deadline that
  bounds each attempt as a whole, from sending the request to the last byte of the answer (the
  SDKs' own ``timeout`` limits each read, so a server trickling bytes could hold a call for ever);
- sending many requests concurrently (bounded), where a request that still fails comes back as a
  `Failed` without stopping the rest (`Connection.send_all`);
- describing failures without the key (`describe_error`, `summarize_failures`).

Where a key goes:
- no ``base_url``: the provider's key (e.g. ``OPENAI_API_KEY``), sent to the provider, or to the
  server the SDK's own base-URL variable names (e.g. ``OPENAI_BASE_URL``: OpenRouter, a proxy);
- a ``base_url`` given to the course (an argument or a profile setting, e.g. a vLLM server): the
  ``api_key`` argument, else ``COURSE_SERVER_API_KEY``, else a placeholder; never the provider's key.

Keys are read from the environment or a ``.env`` file (`utils.environment.setting`) and never
printed, logged or put in a failure's description.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from utils import environment
from utils.aio import gather_bounded, run_sync

log = logging.getLogger("utils.hosted")
T = TypeVar("T")
R = TypeVar("R")
OnResult = Callable[[int, Any], None]  # on_result(index, value), as each request completes

# sdk -> (module, async client class): the official SDKs the course talks to.
SDKS = {"openai": ("openai", "AsyncOpenAI"), "anthropic": ("anthropic", "AsyncAnthropic")}
SERVER_KEY_ENV = environment.SERVER_API_KEY
SERVER_KEY_PLACEHOLDER = "not-needed"


@dataclass(frozen=True)
class Failed:
    """Why a request got no answer, e.g. ``"404 model_not_found (NotFoundError)"`` (never the key).

    Not a result: a judge never caches it, and generation reports it by index.
    """

    reason: str


def describe_error(err: BaseException) -> str:
    """A short, key-free description of an SDK error: status, error code and exception type.

    Args:
        err: the exception a request raised (an SDK error, or any other).

    Returns:
        E.g. ``"404 model_not_found (NotFoundError)"`` or ``"(APITimeoutError)"``.
    """
    parts = []
    status = getattr(err, "status_code", None)
    if status is not None:
        parts.append(str(status))
    code = getattr(err, "code", None)
    body = getattr(err, "body", None)
    if code is None and isinstance(body, dict):
        inner = body.get("error", body)
        code = inner.get("code") or inner.get("type") if isinstance(inner, dict) else None
    if isinstance(code, str) and code.replace("_", "").isalnum():
        parts.append(code)
    parts.append(f"({type(err).__name__})")
    return " ".join(parts)


def summarize_failures(failures: list[Failed], total: int, what: str = "judge requests") -> str:
    """One line about a batch's failures.

    Args:
        failures: the batch's `Failed` values.
        total: how many requests the batch sent.
        what: what the requests were, for the message.

    Returns:
        E.g. ``"12 of 200 judge requests failed: 404 model_not_found (NotFoundError) x12"``.
    """
    counts = Counter(f.reason for f in failures)
    reasons = "; ".join(f"{reason} x{n}" if n > 1 else reason for reason, n in counts.most_common())
    return f"{len(failures)} of {total} {what} failed: {reasons}"


def _deadline_http_client(base: type, seconds: float) -> Any:
    """An instance of the SDK's HTTP client class ``base`` whose every attempt ends within ``seconds``.

    Args:
        base: the SDK's ``DefaultAsyncHttpxClient`` (an ``httpx.AsyncClient`` with the SDK's defaults).
        seconds: the longest one attempt may take, sending included, up to the answer's last byte.

    Returns:
        The client; an attempt over the deadline raises the HTTP library's ``ReadTimeout`` (``httpx``'s,
        or ``httpx2``'s in newer SDKs), which the SDK retries like its own timeouts and finally
        reports as its ``APITimeoutError``.
    """
    library = next(c for c in base.__mro__ if c.__name__ == "AsyncClient").__module__.split(".")[0]
    read_timeout = importlib.import_module(library).ReadTimeout

    class DeadlineClient(base):
        async def send(self, request, **kwargs):
            try:
                return await asyncio.wait_for(super().send(request, **kwargs), seconds)
            except asyncio.TimeoutError as err:
                raise read_timeout(f"no complete answer within {seconds} s", request=request) from err

    return DeadlineClient()


@dataclass(frozen=True)
class Connection:
    """How to reach one hosted API: its SDK, URL, key, concurrency, retries and deadline.

    Attributes:
        sdk: ``"openai"`` (also any OpenAI-compatible server) or ``"anthropic"``.
        base_url: where requests go (None: the provider's own URL).
        api_key: the key sent (never shown in the repr).
        max_concurrency: requests in flight at once.
        max_retries: the SDK's retries of 429s, 5xx answers, connection errors and timeouts.
        timeout: seconds one attempt may take as a whole (request sent to last byte received).
    """

    sdk: str
    base_url: str | None
    api_key: str = field(repr=False)
    max_concurrency: int = 100
    max_retries: int = 6
    timeout: float = 60.0

    def __post_init__(self):
        if self.sdk not in SDKS:
            raise ValueError(f"Unknown sdk {self.sdk!r}; use one of {sorted(SDKS)}")
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {self.max_concurrency!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def resolve(
        cls,
        sdk: str,
        who: str,
        base_url: str | None = None,
        api_key: str | None = None,
        key_env: str | None = None,
        base_url_env: str | None = None,
        **options,
    ) -> Connection:
        """Decide where requests go and with which key (see the module docstring).

        Args:
            sdk: ``"openai"`` or ``"anthropic"``.
            who: what connects, for messages (e.g. ``"openai judge"``).
            base_url: a server the course was pointed at (its key: ``api_key``, else
                ``COURSE_SERVER_API_KEY``); None: the provider (or ``base_url_env``'s server).
            api_key: the key to send; None reads ``key_env`` (or ``COURSE_SERVER_API_KEY`` with ``base_url``).
            key_env: the provider's key variable (e.g. ``OPENAI_API_KEY``).
            base_url_env: the SDK's own base-URL variable (e.g. ``OPENAI_BASE_URL``).
            **options: ``max_concurrency``, ``max_retries``, ``timeout`` (see the attributes).

        Returns:
            A `Connection`.

        Raises:
            ValueError: when no key is found, naming the variable and the ``.env`` file looked at.
        """
        if base_url:  # a server the course was pointed at: its own key, never the provider's
            key = api_key or environment.setting(SERVER_KEY_ENV) or SERVER_KEY_PLACEHOLDER
            return cls(sdk, base_url, key, **options)
        url = environment.setting(base_url_env) if base_url_env else None
        provider_key = api_key or (environment.setting(key_env) if key_env else None)
        if not provider_key:
            dotenv = environment.dotenv_file()
            read = f"read {dotenv}" if dotenv else f"no .env file found {environment.where_dotenv_is_looked_for()}"
            raise ValueError(
                f"The {who} needs {key_env or 'api_key='} in the environment or a .env file ({read}); "
                f"or pass base_url= for a server of your own, with {SERVER_KEY_ENV} if it needs a key"
            )
        return cls(sdk, url, provider_key, **options)

    def client(self) -> Any:
        """A new async SDK client (an async context manager) with this connection's key, URL, retries
        and per-attempt deadline."""
        module_name, class_name = SDKS[self.sdk]
        module = importlib.import_module(module_name)
        return getattr(module, class_name)(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout,
            http_client=_deadline_http_client(module.DefaultAsyncHttpxClient, self.timeout),
        )

    def send_all(
        self,
        send: Callable[[Any, T], Awaitable[R]],
        items: Sequence[T],
        desc: str,
        on_result: OnResult | None = None,
    ) -> list[R | Failed]:
        """Send one request per item through one client, at most ``max_concurrency`` at a time.

        Args:
            send: ``await send(client, item)`` makes one request and returns its result.
            items: what to send.
            desc: the progress bar's label.
            on_result: called as ``on_result(index, value)`` as soon as each request completes.

        Returns:
            One value per item, in order: ``send``'s result, or `Failed` when it raised (after the
            SDK's retries); one failure never stops the rest.
        """

        async def run():
            async with self.client() as client:

                async def one(pair):
                    index, item = pair
                    value: Any
                    try:
                        value = await send(client, item)
                    except Exception as err:  # one failure must not stop the batch
                        value = Failed(describe_error(err))
                        log.debug("%s: request %d failed: %s", desc, index, value.reason)
                    if on_result is not None:
                        on_result(index, value)
                    return value

                return await gather_bounded(one, list(enumerate(items)), self.max_concurrency, desc)

        return run_sync(run)

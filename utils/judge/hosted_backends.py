"""The hosted judge backends, through the official SDKs: OpenAI (and any OpenAI-compatible server) and Anthropic.

Each backend class carries its own default judge model, key variable and base-URL variable; the
choice of backend (`utils.judge.choice`) reads them from the classes, so imports run one way.

Connections (key and URL, SDK clients with their retries and a per-attempt deadline, bounded
concurrent requests, failure descriptions) are `utils.hosted`'s; this module only writes the judge
requests and reads their answers. A request that still fails after the SDK's retries, and an answer
that holds no score on the scale (`utils.judge.scales.UnreadableAnswer`), come back as a `Failed`
(not a score, never cached) without stopping the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from utils import environment
from utils.hosted import Connection, Failed
from utils.judge.backend import OnResult
from utils.judge.scales import Scale, read_score, score_from_top_logprobs


class HostedBackend(ABC):
    """What the hosted backends share: their default model and variables, a `utils.hosted.Connection`,
    and scoring a batch through it.

    A subclass names its backend (``name``, also its SDK), sets ``default_model``, ``key_env`` and
    ``base_url_env``, and implements `_score_one`.

    Attributes:
        hosted: a paid API (its judge model is checked never to be a subject model).
        default_model: the judge model when none is chosen.
        key_env: the variable holding the provider's key (``auto`` picks the first hosted backend whose key is set).
        base_url_env: the SDK's own base-URL variable.

    Args:
        model: the judge model (None: ``default_model``).
        base_url: a server of your own (its key: ``api_key`` or ``COURSE_SERVER_API_KEY``).
        api_key: the key (None: ``key_env``, from the environment or a ``.env`` file).
        max_concurrency, max_retries, timeout: see `utils.hosted.Connection` (``timeout`` bounds
            each attempt as a whole).
    """

    name = "api"
    hosted: ClassVar[bool] = True
    default_model: ClassVar[str | None] = None
    key_env: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 100,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        self.connection = Connection.resolve(
            self.name,
            f"{self.name} judge",
            base_url=base_url,
            api_key=api_key,
            key_env=self.key_env,
            base_url_env=self.base_url_env,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            timeout=timeout,
        )
        chosen = model or self.default_model
        if not chosen:
            raise ValueError(f"The {self.name} judge needs model= ({type(self).__name__} has no default model)")
        self.model: str = chosen
        self.base_url = self.connection.base_url
        self._api_key = self.connection.api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    @abstractmethod
    async def _score_one(self, client: Any, prompt: str, scale: Scale) -> float | int | None:
        """Send one judge prompt through ``client`` and read its score (None: the judge declined).

        Raises:
            UnreadableAnswer: when the answer holds no score on the scale (reported as `Failed`).
        """

    @property
    def model_name(self) -> str:
        """The judge model's API id."""
        return self.model

    def score(
        self, prompts: list[str], scale: Scale, on_result: OnResult | None = None
    ) -> list[float | int | None | Failed]:
        """Score every prompt, in order: a value, None (the judge declined), or `Failed`.

        Args:
            prompts: judge prompts.
            scale: the answer scale.
            on_result: called as ``on_result(index, value)`` as soon as each request completes.

        Returns:
            One value per prompt.
        """
        if scale.kind == "choice":
            raise ValueError("Hosted judges keep the papers' numeric templates; choice scales are for the local judge")
        return self.connection.send_all(
            lambda client, prompt: self._score_one(client, prompt, scale), prompts, f"judge ({self.name})", on_result
        )


class OpenAIBackend(HostedBackend):
    """OpenAI chat completions; 0-100 scales use one token's top-20 logprobs."""

    name = "openai"
    default_model = "gpt-4.1-mini"
    key_env = environment.OPENAI_API_KEY
    base_url_env = environment.OPENAI_BASE_URL

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
        return read_score(response.choices[0].message.content, scale)


class AnthropicBackend(HostedBackend):
    """Anthropic messages; the number is parsed from the text answer."""

    name = "anthropic"
    default_model = "claude-haiku-4-5"
    key_env = environment.ANTHROPIC_API_KEY
    base_url_env = environment.ANTHROPIC_BASE_URL

    async def _score_one(self, client, prompt: str, scale: Scale):
        response = await client.messages.create(
            model=self.model,
            max_tokens=max(8, scale.max_answer_tokens()),
            messages=[{"role": "user", "content": prompt}],
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return read_score(text, scale)

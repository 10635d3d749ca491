"""Generation on an OpenAI-compatible server (e.g. vLLM) instead of the in-process model.

`utils.generation.generate_replies(..., server=OpenAICompatibleGenerator(url, model))` sends the
conversations there: requests run concurrently through the official SDK (with its retries), and a
conversation that still fails is reported by index without losing the replies that finished.
"""

from __future__ import annotations

from utils.aio import gather_bounded, run_sync
from utils.chat import Message
from utils.judge.api import OpenAIBackend
from utils.judge.failure import Failed, describe_error, summarize_failures


class GenerationError(RuntimeError):
    """Some conversations failed; ``replies`` keeps every finished reply (None where one failed)."""

    def __init__(self, message: str, replies: list[str | None], failed: list[int]):
        super().__init__(message)
        self.replies = replies
        self.failed = failed


class OpenAICompatibleGenerator:
    """Send conversations to an OpenAI-compatible server (e.g. vLLM) instead of the in-process model.

    The server's key is ``api_key``, else ``COURSE_SERVER_API_KEY`` (never ``OPENAI_API_KEY``).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_concurrency: int = 64, **kwargs):
        self._backend = OpenAIBackend(
            model=model, base_url=base_url, api_key=api_key, max_concurrency=max_concurrency, **kwargs
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleGenerator(model={self._backend.model!r}, base_url={self._backend.base_url!r})"

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> list[str]:
        """Replies in input order.

        Raises:
            GenerationError: naming the conversations that failed after retries; its ``replies``
                holds every reply that did finish (None for the failed ones), so no work is lost.
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
                        return Failed(describe_error(err))

                return await gather_bounded(one, conversations, backend.max_concurrency, "generating (server)")

        results = run_sync(run)
        failed = [i for i, r in enumerate(results) if isinstance(r, Failed)]
        if failed:
            summary = summarize_failures([results[i] for i in failed], len(results), "generation requests")
            replies = [None if isinstance(r, Failed) else r for r in results]
            raise GenerationError(
                f"{summary}; failed conversations: {failed}. The finished replies are in this error's .replies",
                replies,
                failed,
            )
        return results

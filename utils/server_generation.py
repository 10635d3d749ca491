"""Generation on an OpenAI-compatible server (e.g. vLLM) instead of the in-process model.

`utils.generation.generate_replies(..., server=OpenAICompatibleGenerator(url, model))` sends the
conversations there through a `utils.hosted.Connection` (the official SDK with its retries, a
deadline per attempt, bounded concurrency); a conversation that still fails is reported by index
without losing the replies that finished.
"""

from __future__ import annotations

from utils.chat import Message
from utils.hosted import Connection, Failed, summarize_failures


class GenerationError(RuntimeError):
    """Some conversations failed; ``replies`` keeps every finished reply (None where one failed)."""

    def __init__(self, message: str, replies: list[str | None], failed: list[int]):
        super().__init__(message)
        self.replies = replies
        self.failed = failed


class OpenAICompatibleGenerator:
    """Send conversations to an OpenAI-compatible server (e.g. vLLM) instead of the in-process model.

    Args:
        base_url: the server's URL (e.g. ``http://localhost:8000/v1``).
        model: the model the server serves.
        api_key: the server's key; None reads ``COURSE_SERVER_API_KEY`` (never ``OPENAI_API_KEY``).
        max_concurrency, max_retries, timeout: see `utils.hosted.Connection` (``timeout`` bounds
            each attempt as a whole).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 64,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        if not base_url:
            raise ValueError(
                "OpenAICompatibleGenerator needs base_url, the server's URL (e.g. http://localhost:8000/v1)"
            )
        self.model = model
        self.connection = Connection.resolve(
            "openai",
            "generation server",
            base_url=base_url,
            api_key=api_key,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleGenerator(model={self.model!r}, base_url={self.connection.base_url!r})"

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> list[str]:
        """Replies in input order.

        Args:
            conversations: message lists (an empty system prompt is left out).
            max_new_tokens, temperature, top_p: sampling settings sent with every request.

        Returns:
            One reply per conversation.

        Raises:
            GenerationError: naming the conversations that failed after retries; its ``replies``
                holds every reply that did finish (None for the failed ones), so no work is lost.
        """

        async def one(client, messages: list[Message]) -> str:
            response = await client.chat.completions.create(
                model=self.model,
                messages=[m for m in messages if m["role"] != "system" or m["content"]],
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
            )
            return response.choices[0].message.content or ""

        results = self.connection.send_all(one, conversations, "generating (server)")
        failed = [i for i, r in enumerate(results) if isinstance(r, Failed)]
        if failed:
            summary = summarize_failures(
                [r for r in results if isinstance(r, Failed)], len(results), "generation requests"
            )
            replies = [None if isinstance(r, Failed) else r for r in results]
            raise GenerationError(
                f"{summary}; failed conversations: {failed}. The finished replies are in this error's .replies",
                replies,
                failed,
            )
        return [r for r in results if not isinstance(r, Failed)]

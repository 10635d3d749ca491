"""One judge interface over every backend, with a persistent cache keyed by (backend, model, prompt)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from utils.cache import write_atomic
from utils.judge.scales import Scale, finalize

_ANNOUNCED: set[str] = set()


def choose_backend(requested: str = "auto") -> str:
    """``auto`` picks openai if OPENAI_API_KEY is set, else anthropic if ANTHROPIC_API_KEY is, else local."""
    if requested != "auto":
        if requested not in ("openai", "anthropic", "local"):
            raise ValueError(f"Unknown judge backend {requested!r}; use auto, openai, anthropic or local")
        return requested
    try:
        from dotenv import load_dotenv

        load_dotenv()
    except ImportError:
        pass
    if os.environ.get("OPENAI_API_KEY"):
        return "openai"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    return "local"


class Judge:
    """Score many judge prompts at once; one score (or None) per prompt, in order.

    Args:
        backend: a backend object with ``name``, ``score(prompts, scale)``, and a model name.
        cache_path: a JSON file that remembers scores across runs (None: in memory only).
        remember: keep scores in memory so a repeated prompt is not sent again (tests turn it off
            to count requests).
    """

    def __init__(self, backend, cache_path: str | Path | None = None, remember: bool = True):
        self.backend = backend
        self.remember = remember
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache: dict[str, float | int | None] = {}
        if self.cache_path and self.cache_path.exists():
            try:
                self._cache = json.loads(self.cache_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise RuntimeError(
                    f"Judge cache {self.cache_path} is corrupted ({err}); delete it to start afresh"
                ) from err
        announcement = repr(backend)
        if announcement not in _ANNOUNCED:
            print(f"Judge: {announcement}")
            _ANNOUNCED.add(announcement)

    @property
    def model_name(self) -> str:
        return getattr(self.backend, "model", None) if self.backend.name != "local" else self.backend.model_name

    def _key(self, prompt: str, scale: Scale) -> str:
        blob = json.dumps([self.backend.name, str(self.model_name), repr(scale), prompt])
        return hashlib.sha256(blob.encode()).hexdigest()

    def score(self, prompts: list[str], scale: Scale) -> list[float | int | None]:
        """Score judge prompts (already formatted) on ``scale``; cached prompts are not sent again."""
        if not self.remember:
            return [finalize(v, scale) for v in self.backend.score(list(prompts), scale)]
        keys = [self._key(p, scale) for p in prompts]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._cache}.values())
        if todo:
            fresh = self.backend.score([prompts[i] for i in todo], scale)
            for i, value in zip(todo, fresh):
                self._cache[keys[i]] = finalize(value, scale)
            if self.cache_path:
                write_atomic(self.cache_path, self._cache)
        return [self._cache[k] for k in keys]

    def score_template(self, template: str, items: list[dict], scale: Scale) -> list[float | int | None]:
        """Fill ``template`` (e.g. with ``{question}`` and ``{answer}``) for each item and score it.

        Filling is one `str.format` pass, so braces inside a response are left as they are.
        """
        return self.score([template.format(**item) for item in items], scale)


def make_judge(
    backend: str = "auto",
    model_name: str | None = None,
    local_model=None,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
    **kwargs,
) -> Judge:
    """Build a judge.

    Args:
        backend: auto, openai, anthropic or local (see `choose_backend`).
        model_name: the judge model (API model id; for local, a `load_model` name).
        local_model: (model, tokenizer) to reuse for the local backend (saves loading it twice).
        base_url: an OpenAI- or Anthropic-compatible server.
        cache_dir: where the score cache lives (None: the course cache folder).
        **kwargs: passed to the backend (max_concurrency, max_retries, timeout, batch_size).

    Returns:
        A `Judge`.
    """
    from utils.cache import cache_root

    name = choose_backend(backend)
    if name == "openai":
        from utils.judge.api import OpenAIBackend

        impl = OpenAIBackend(model=model_name, base_url=base_url, **kwargs)
    elif name == "anthropic":
        from utils.judge.api import AnthropicBackend

        impl = AnthropicBackend(model=model_name, base_url=base_url, **kwargs)
    else:
        from utils.judge.local import LocalBackend

        if local_model is None:
            from utils.models import load_model

            if model_name is None:
                raise ValueError("The local judge needs local_model=(model, tokenizer) or a model_name to load")
            local_model = load_model(model_name)
        impl = LocalBackend(*local_model, model_name=model_name or "local", **kwargs)
    folder = Path(cache_dir) if cache_dir else cache_root() / "judge"
    return Judge(impl, cache_path=folder / f"{impl.name}.json")

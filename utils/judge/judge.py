"""One judge interface over every backend, with its answers kept by `utils.judge.cache.JudgeCache`.

Only answers are cached. A request that failed (outage, 401, 404, timeout, an answer with no score
on the scale) scores None for this run,
is counted and reported once per batch, and is sent again on the next run. Answers are saved as they
arrive, so an interrupted batch keeps what it got. Judges sharing one cache file merge their entries.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.hosted import Failed, summarize_failures
from utils.judge.backend import JudgeBackend, OnResult, streams_results
from utils.judge.cache import JudgeCache, JudgeScore, answer_key
from utils.judge.choice import backend_row, check_judge_model, choose_backend, explained_judge_choice
from utils.judge.scales import Scale, finalize, unrounded

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from utils.profiles import Profile

log = logging.getLogger("utils.judge")
_ANNOUNCED: set[str] = set()

__all__ = ["Judge", "JudgeScore", "choose_backend", "make_judge", "make_section_judge"]


class Judge:
    """Score many judge prompts at once; one score (or None) per prompt, in order.

    Args:
        backend: any `utils.judge.backend.JudgeBackend` (``name``, ``model_name``, ``score``).
        cache_path: a JSON file that remembers answers across runs (None: in memory only); see
            `utils.judge.cache.JudgeCache`.
        remember: keep scores in memory so a repeated prompt is not sent again (tests turn it off
            to count requests).
        save_every: seconds between saves of the cache file while a batch is running.
        reason: why this backend was chosen, printed with the judge the first time it is announced.

    Attributes:
        last_failures: how many requests of the last `score` call got no answer.
    """

    def __init__(
        self,
        backend: JudgeBackend,
        cache_path: str | Path | None = None,
        remember: bool = True,
        save_every: float = 1.0,
        reason: str | None = None,
    ):
        check_judge_model(backend.name, backend.model_name)  # hosted backends only
        self.backend = backend
        self.remember = remember
        self.cache = JudgeCache(cache_path, save_every)
        self.cache_path = self.cache.path
        self.last_failures = 0
        announcement = repr(backend) + (f" ({reason})" if reason else "")
        if announcement not in _ANNOUNCED:
            print(f"Judge: {announcement}")
            _ANNOUNCED.add(announcement)

    @property
    def model_name(self) -> str:
        """The judge model's name (every backend has one: `JudgeBackend.model_name`)."""
        return self.backend.model_name

    def _key(self, prompt: str, scale: Scale) -> str:
        return answer_key(self.backend, self.model_name, scale, prompt)

    def _backend_score(self, prompts: list[str], scale: Scale, on_result: OnResult) -> list:
        """Run the backend, reporting each value as it comes (in chunks for backends without callbacks)."""
        if streams_results(self.backend):
            return self.backend.score(prompts, scale, on_result=on_result)
        chunk = max(1, 4 * int(getattr(self.backend, "batch_size", 8)))
        values = []
        for start in range(0, len(prompts), chunk):
            part = self.backend.score(prompts[start : start + chunk], scale)
            for offset, value in enumerate(part):
                on_result(start + offset, value)
            values.extend(part)
        return values

    def _report(self, values: list) -> None:
        failures = [v for v in values if isinstance(v, Failed)]
        self.last_failures = len(failures)
        if failures:
            log.warning(
                "%s; they score None for now, are not cached, and will be sent again next run",
                summarize_failures(failures, len(values)),
            )

    def score(self, prompts: list[str], scale: Scale) -> list[JudgeScore]:
        """Score judge prompts (already formatted) on ``scale``; cached prompts are not sent again.

        A backend whose integer answer is its probability-weighted mean, rounded (the local judge:
        ``reads_integers_as_rounded_means``), is asked for the mean and the answer rounded here. So one
        cache entry serves both readings of a prompt, and a section that reads the same prompts rounded
        and then unrounded (section 1's role filter) runs the model on them once.
        """
        prompts = list(prompts)
        if scale.kind == "integer" and getattr(self.backend, "reads_integers_as_rounded_means", False):
            return [finalize(value, scale) for value in self.score(prompts, unrounded(scale))]
        if not self.remember:
            values = self._backend_score(prompts, scale, lambda i, v: None)
            self._report(values)
            return [None if isinstance(v, Failed) else finalize(v, scale) for v in values]
        keys = [self._key(p, scale) for p in prompts]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self.cache}.values())
        self.last_failures = 0
        if todo:

            def on_result(j: int, value) -> None:
                if isinstance(value, Failed):
                    return
                self.cache.put(keys[todo[j]], finalize(value, scale))

            try:
                values = self._backend_score([prompts[i] for i in todo], scale, on_result)
            finally:
                self.cache.save(force=True)
            self._report(values)
        return [self.cache.get(k) for k in keys]

    def score_template(self, template: str, items: Sequence[Mapping[str, Any]], scale: Scale) -> list[JudgeScore]:
        """Fill ``template`` (e.g. with ``{question}`` and ``{answer}``) for each item and score it.

        Filling is one `str.format` pass, so braces inside a response are left as they are.
        """
        return self.score([template.format(**item) for item in items], scale)


def make_judge(
    backend: str = "auto",
    model_name: str | None = None,
    local_model: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
    subject_model: str | None = None,
    **kwargs,
) -> Judge:
    """Build a judge.

    Args:
        backend: auto or a row of `utils.judge.choice.JUDGE_BACKENDS` (openai, anthropic, local; see
            `utils.judge.choice.backend_choice`); ``COURSE_JUDGE_BACKEND`` overrides it.
        model_name: the judge model (API model id; for local, a `load_model` name); None: the
            backend's default (`utils.judge.choice`). ``COURSE_JUDGE_MODEL`` overrides it.
        local_model: (model, tokenizer) to reuse for the local backend (saves loading it twice).
        base_url: a server of your own (OpenAI- or Anthropic-compatible); its key is
            ``COURSE_SERVER_API_KEY`` (or ``api_key=``), never the provider's.
        cache_dir: where the score cache lives (None: the course cache folder).
        subject_model: the model being studied: the local judge's default model, and a name that is
            never sent to a hosted judge.
        **kwargs: passed to the backend (api_key, max_concurrency, max_retries, timeout, batch_size).

    Returns:
        A `Judge`.

    Raises:
        ValueError: for an unknown backend, a missing key, or a subject model named as a hosted judge.
    """
    from utils.cache import cache_root

    name, model, reason = explained_judge_choice(backend, model_name, subject_model)
    impl = backend_row(name).factory(model, base_url, local_model, subject_model, **kwargs)
    folder = Path(cache_dir) if cache_dir else cache_root() / "judge"
    return Judge(impl, cache_path=folder / f"{impl.name}.json", reason=reason)


def make_section_judge(
    profile: Profile, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, subject_model: str, **kwargs
) -> Judge:
    """The judge a section uses: the same rule for every section (see `utils.judge.choice`).

    Made without announcing itself: the set-up cell (`utils.notebook.setup_section`) has already printed the
    judge and why it was chosen, so a notebook says it once.

    Args:
        profile: the active profile (its ``judge_backend`` and ``judge_model``).
        model, tokenizer: the section's model, reused when the judge is local.
        subject_model: the section's model name (the local judge's default; never sent to a hosted judge).
        **kwargs: passed to `make_judge`.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        return make_judge(
            profile.judge_backend,
            model_name=profile.judge_model,
            local_model=(model, tokenizer),
            subject_model=subject_model,
            **kwargs,
        )

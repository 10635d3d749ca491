"""The choice of judge backend and judge model for a course run: the one place that picks them.

- The backend comes from ``COURSE_JUDGE_BACKEND`` if set, else the profile's ``judge_backend``
  (``auto``: OpenAI if ``OPENAI_API_KEY`` is set, else Anthropic if ``ANTHROPIC_API_KEY`` is, else local).
- The model comes from ``COURSE_JUDGE_MODEL`` if set, else the profile's ``judge_model``, else the
  backend's default: a hosted backend class's ``default_model``, the section's own model for local.
- A hosted judge never receives a subject model's name (`check_judge_model`).

The backends are rows of one table, `JUDGE_BACKENDS`, each made from its backend class (which carries
its name, whether it is hosted, its default model, key and base-URL variables) and a factory; the
hosted set, the default models, the key map and ``auto``'s order all derive from it. Settings are read
the course's one way (`utils.environment.setting`: the environment, else a ``.env`` file), and the
reason for a choice says where the deciding setting came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from utils import environment
from utils.judge.backend import JudgeBackend
from utils.judge.hosted_backends import AnthropicBackend, OpenAIBackend
from utils.judge.local import LocalBackend

BACKEND_ENV = environment.JUDGE_BACKEND
MODEL_ENV = environment.JUDGE_MODEL
# The key for a server the course is pointed at through its own settings (a ``base_url`` argument
# or profile setting): never OPENAI_API_KEY / ANTHROPIC_API_KEY, which belong to their providers.
SERVER_KEY_ENV = environment.SERVER_API_KEY


def _openai(
    model: str | None, base_url: str | None, local_model: tuple[Any, Any] | None, subject_model: str | None, **kwargs
) -> JudgeBackend:
    return OpenAIBackend(model=model, base_url=base_url, **kwargs)


def _anthropic(
    model: str | None, base_url: str | None, local_model: tuple[Any, Any] | None, subject_model: str | None, **kwargs
) -> JudgeBackend:
    return AnthropicBackend(model=model, base_url=base_url, **kwargs)


def _local(
    model: str | None, base_url: str | None, local_model: tuple[Any, Any] | None, subject_model: str | None, **kwargs
) -> JudgeBackend:
    if local_model is None or (subject_model and model != subject_model):  # a judge model of its own
        from utils.models import load_model

        if model is None:
            raise ValueError("The local judge needs local_model=(model, tokenizer) or a model_name to load")
        local_model = load_model(model)
    judge_model, tokenizer = local_model
    return LocalBackend(judge_model, tokenizer, model_name=model or "local", **kwargs)


@dataclass(frozen=True)
class BackendRow:
    """One judge backend.

    Attributes:
        name: what ``COURSE_JUDGE_BACKEND``, a profile's ``judge_backend`` and ``make_judge`` call it.
        factory: ``factory(model, base_url, local_model, subject_model, **kwargs)`` builds the backend.
        hosted: a paid API (its judge model is checked never to be a subject model).
        default_model: the judge model when none is chosen (None: the section's own model).
        key_env: the variable holding the provider's key (``auto`` picks the first hosted row whose key is set).
        base_url_env: the SDK's own base-URL variable.
    """

    name: str
    factory: Callable[..., JudgeBackend]
    hosted: bool
    default_model: str | None = None
    key_env: str | None = None
    base_url_env: str | None = None

    @classmethod
    def of(cls, backend: Any, factory: Callable[..., JudgeBackend]) -> BackendRow:
        """The row of a backend class: its ``name``, ``hosted``, ``default_model``, ``key_env``, ``base_url_env``."""
        return cls(backend.name, factory, backend.hosted, backend.default_model, backend.key_env, backend.base_url_env)


# The judge backends, in ``auto``'s order of preference. Everything below derives from this table.
JUDGE_BACKENDS = (
    BackendRow.of(OpenAIBackend, _openai),
    BackendRow.of(AnthropicBackend, _anthropic),
    BackendRow.of(LocalBackend, _local),
)
ROWS = {row.name: row for row in JUDGE_BACKENDS}
BACKENDS = tuple(ROWS)
HOSTED = tuple(row.name for row in JUDGE_BACKENDS if row.hosted)
DEFAULT_JUDGE_MODELS = {row.name: row.default_model for row in JUDGE_BACKENDS if row.default_model}
KEY_ENV = {row.name: row.key_env for row in JUDGE_BACKENDS if row.key_env}
BASE_URL_ENV = {row.name: row.base_url_env for row in JUDGE_BACKENDS if row.base_url_env}


def backend_row(name: str) -> BackendRow:
    """The table's row for backend ``name``.

    Args:
        name: a backend name (``openai``, ``anthropic``, ``local``).

    Returns:
        Its `BackendRow`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in ROWS:
        raise ValueError(f"Unknown judge backend {name!r}; use auto, {', '.join(BACKENDS)}")
    return ROWS[name]


def subject_model_names() -> set[str]:
    """Every model name a profile studies (these are never sent to a hosted judge)."""
    from utils.profiles import OFFLINE_MODEL, PROFILES

    names = {OFFLINE_MODEL}
    for profile in PROFILES.values():
        names.update(vars(profile.models).values())
    from utils.tiny import TINY_MODELS

    names.update(TINY_MODELS)
    return names


def backend_choice(requested: str | None = "auto") -> tuple[str, str]:
    """Resolve a backend request, and say why: ``COURSE_JUDGE_BACKEND`` wins, then ``requested``.

    ``auto`` picks the first hosted backend in `JUDGE_BACKENDS` whose key is set (environment or
    ``.env``: OpenAI, then Anthropic), else local; the reason then names the keys and the ``.env``
    file looked at, so a run that gets the local judge says why.

    Args:
        requested: auto or a backend name (e.g. a profile's ``judge_backend``); None means auto.

    Returns:
        (backend name, reason).

    Raises:
        ValueError: for an unknown backend name, naming where it came from and listing the known ones.
    """
    from_env = environment.lookup(BACKEND_ENV)
    choice = from_env.value or requested or "auto"
    if choice == "auto":
        for row in JUDGE_BACKENDS:
            key = environment.lookup(row.key_env) if row.key_env else None
            if key is not None and key.value:
                return row.name, f"auto: {row.key_env} is set (in {key.source})"
        keys = [row.key_env for row in JUDGE_BACKENDS if row.key_env]
        dotenv = environment.dotenv_file()
        looked = f"nor in {dotenv}" if dotenv else f"and no .env file {environment.where_dotenv_is_looked_for()}"
        return "local", f"auto: none of {', '.join(keys)} is set in the environment {looked}"
    if choice not in ROWS:
        where = f"{BACKEND_ENV}={choice!r} (from {from_env.source})" if from_env.value else f"judge backend {choice!r}"
        raise ValueError(f"Unknown {where}; use auto, {', '.join(BACKENDS)}")
    return choice, (f"set by {BACKEND_ENV} (from {from_env.source})" if from_env.value else "requested")


def choose_backend(requested: str | None = "auto") -> str:
    """The backend `backend_choice` picks (without the reason).

    Args:
        requested: auto or a backend name; ``COURSE_JUDGE_BACKEND`` wins.

    Returns:
        The backend's name.
    """
    return backend_choice(requested)[0]


def check_judge_model(backend: str, model: str, subject_models: set[str] | None = None) -> None:
    """Refuse to send a subject model's name to a hosted judge.

    Raises:
        ValueError: naming the model and how to choose a judge model.
    """
    if backend not in HOSTED:
        return
    subjects = subject_model_names() | set(subject_models or ())
    if model in subjects:
        raise ValueError(
            f"The {backend} judge was asked to use {model!r}, which is a model this course studies, not a "
            f"judge model (the API would answer 404 model_not_found). Leave the judge model unset to use "
            f"{DEFAULT_JUDGE_MODELS[backend]!r}, or set {MODEL_ENV} / the profile's judge_model to a {backend} model."
        )


def explained_judge_choice(
    backend: str | None = "auto", model_name: str | None = None, subject_model: str | None = None
) -> tuple[str, str | None, str]:
    """The (backend, judge model) a run uses, and why that backend (see `judge_choice`).

    Returns:
        (backend, model, reason): the reason as `backend_choice` gives it.
    """
    name, reason = backend_choice(backend)
    row = ROWS[name]
    model = environment.setting(MODEL_ENV) or model_name
    if row.hosted:
        model = model or row.default_model
        if model is None:
            raise ValueError(f"The {name} judge has no default model; set {MODEL_ENV}")
        check_judge_model(name, model, {subject_model} if subject_model else None)
    else:
        model = model or subject_model
    return name, model, reason


def judge_choice(
    backend: str | None = "auto", model_name: str | None = None, subject_model: str | None = None
) -> tuple[str, str | None]:
    """The (backend, judge model) a run uses.

    Args:
        backend: the requested backend (e.g. a profile's ``judge_backend``); ``COURSE_JUDGE_BACKEND`` wins.
        model_name: the requested judge model (e.g. a profile's ``judge_model``); ``COURSE_JUDGE_MODEL`` wins.
        subject_model: the section's model: the local judge's default, and never a hosted judge's model.

    Returns:
        (backend, model): the model is None only for a local judge without a subject model.
    """
    name, model, _ = explained_judge_choice(backend, model_name, subject_model)
    return name, model

"""Which judge a course run uses: the one place that picks each backend's default judge model.

- The backend comes from ``COURSE_JUDGE_BACKEND`` if set, else the profile's ``judge_backend``
  (``auto``: OpenAI if ``OPENAI_API_KEY`` is set, else Anthropic if ``ANTHROPIC_API_KEY`` is, else local).
- The model comes from ``COURSE_JUDGE_MODEL`` if set, else the profile's ``judge_model``, else the
  backend's default: `DEFAULT_JUDGE_MODELS` for hosted backends, the section's own model for local.
- A hosted judge never receives a subject model's name (`check_judge_model`).

Settings are read from the environment or a ``.env`` file (found from the working directory
upwards); reading a ``.env`` file never changes ``os.environ``.
"""

from __future__ import annotations

import os

from utils import environment

BACKEND_ENV = environment.JUDGE_BACKEND
MODEL_ENV = environment.JUDGE_MODEL
BACKENDS = ("openai", "anthropic", "local")
HOSTED = ("openai", "anthropic")
DEFAULT_JUDGE_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5"}
KEY_ENV = {"openai": environment.OPENAI_API_KEY, "anthropic": environment.ANTHROPIC_API_KEY}
BASE_URL_ENV = {"openai": environment.OPENAI_BASE_URL, "anthropic": environment.ANTHROPIC_BASE_URL}
# The key for a server the course is pointed at through its own settings (a ``base_url`` argument
# or profile setting): never OPENAI_API_KEY / ANTHROPIC_API_KEY, which belong to their providers.
SERVER_KEY_ENV = environment.SERVER_API_KEY


def _dotenv_values() -> dict[str, str]:
    try:
        from dotenv import dotenv_values, find_dotenv
    except ImportError:
        return {}
    path = find_dotenv(usecwd=True)
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path else {}


def env_setting(name: str) -> str | None:
    """``name`` from the environment, else from a ``.env`` file; None when unset or empty."""
    value = os.environ.get(name)
    if value:
        return value
    return _dotenv_values().get(name) or None


def subject_model_names() -> set[str]:
    """Every model name a profile studies (these are never sent to a hosted judge)."""
    from utils.profiles import OFFLINE_MODEL, PROFILES

    names = {OFFLINE_MODEL}
    for profile in PROFILES.values():
        names.update(vars(profile.models).values())
    from utils.tiny import TINY_MODELS

    names.update(TINY_MODELS)
    return names


def choose_backend(requested: str | None = "auto") -> str:
    """Resolve a backend request: ``COURSE_JUDGE_BACKEND`` wins, then ``requested``.

    ``auto`` picks openai if OPENAI_API_KEY is set (environment or ``.env``), else anthropic if
    ANTHROPIC_API_KEY is, else local.

    Raises:
        ValueError: for an unknown backend name, naming where it came from.
    """
    from_env = env_setting(BACKEND_ENV)
    choice = from_env or requested or "auto"
    if choice == "auto":
        if env_setting(environment.OPENAI_API_KEY):
            return "openai"
        if env_setting(environment.ANTHROPIC_API_KEY):
            return "anthropic"
        return "local"
    if choice not in BACKENDS:
        where = f"{BACKEND_ENV}={choice!r}" if from_env else f"judge backend {choice!r}"
        raise ValueError(f"Unknown {where}; use auto, openai, anthropic or local")
    return choice


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
    name = choose_backend(backend)
    model = env_setting(MODEL_ENV) or model_name
    if name in HOSTED:
        model = model or DEFAULT_JUDGE_MODELS[name]
        check_judge_model(name, model, {subject_model} if subject_model else None)
    else:
        model = model or subject_model
    return name, model

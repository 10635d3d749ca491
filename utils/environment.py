"""Every environment variable the course reads, named once, with what it means.

Modules import the name from here rather than spelling the string; `describe()` prints the table
(``python -m utils.environment``). The course never writes these into its own process's
environment: the runner passes them to the kernels it starts.
"""

from __future__ import annotations

import os

PROFILE = "COURSE_PROFILE"
CACHE_DIR = "COURSE_CACHE_DIR"
RECOMPUTE = "COURSE_RECOMPUTE"
RESULTS_DIR = "COURSE_RESULTS_DIR"
TIMINGS_FILE = "COURSE_TIMINGS_FILE"
PLAIN_PROGRESS = "COURSE_PLAIN_PROGRESS"
NO_WIDGETS = "COURSE_NO_WIDGETS"
JUDGE_BACKEND = "COURSE_JUDGE_BACKEND"
JUDGE_MODEL = "COURSE_JUDGE_MODEL"
SERVER_API_KEY = "COURSE_SERVER_API_KEY"
OPENAI_API_KEY = "OPENAI_API_KEY"
ANTHROPIC_API_KEY = "ANTHROPIC_API_KEY"
OPENAI_BASE_URL = "OPENAI_BASE_URL"
ANTHROPIC_BASE_URL = "ANTHROPIC_BASE_URL"

MEANINGS: dict[str, str] = {
    PROFILE: "models and sizes: full, lite, offline, tiny or auto (default auto; utils.profiles)",
    CACHE_DIR: "where cached results and the converted offline model live (default <repo>/.cache)",
    RECOMPUTE: "recompute cached results of these sections (comma-separated package names) or 'all'",
    RESULTS_DIR: "where `record` writes each section's headline results (the runner sets it per run)",
    TIMINGS_FILE: "a file each timed step appends to (set by the runner, read by bench_course.py)",
    PLAIN_PROGRESS: "any value: plain-text progress bars (set by the runner for the kernels it relays)",
    NO_WIDGETS: "any value: live panels print their table instead of showing widgets (set by the runner)",
    JUDGE_BACKEND: "force the judge backend: openai, anthropic or local (default: by the keys present)",
    JUDGE_MODEL: "force the judge model (a hosted judge is never asked for a model the course studies)",
    SERVER_API_KEY: "the key for a server you point the course at yourself (base_url); never a provider key",
    OPENAI_API_KEY: "selects the OpenAI judge (environment or a .env file)",
    ANTHROPIC_API_KEY: "selects the Anthropic judge when no OpenAI key is set",
    OPENAI_BASE_URL: "an OpenAI-compatible server for the openai judge backend",
    ANTHROPIC_BASE_URL: "another endpoint for the anthropic judge backend",
}


def describe() -> str:
    """A table of every variable, its meaning and whether it is set (values are never shown)."""
    width = max(map(len, MEANINGS))
    return "\n".join(
        f"{name:<{width}}  {'set  ' if os.environ.get(name) else 'unset'}  {meaning}"
        for name, meaning in MEANINGS.items()
    )


if __name__ == "__main__":
    print(describe())

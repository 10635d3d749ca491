"""Every environment variable the course reads, named once, with what it means, and the one way to read it.

Modules import the name from here rather than spelling the string, and read it with `setting` (or
`lookup`, which also says where the value came from). Every variable is read the same way:

- from the process environment, when it is set and not empty (an exported empty value, e.g.
  ``COURSE_PROFILE=``, counts as unset: shells and CI matrices export empty values to mean "none");
- else from a ``.env`` file: the first one found from the working directory upwards, else the
  checkout's own (``<repo>/.env``), so a script started from another folder reads the same file;
- else it is unset.

Reading a ``.env`` file never changes ``os.environ``. `describe()` prints the table, which file was
read, and whether each variable is set and where (values are never shown): ``python -m utils.environment``.
The course never writes these into its own process's environment: the runner passes them to the
kernels it starts.
"""

from __future__ import annotations

import codecs
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values, find_dotenv

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
CLONE_URL = "COURSE_CLONE_URL"

MEANINGS: dict[str, str] = {
    PROFILE: "models and sizes: full, lite, offline, tiny or auto (default auto; utils.profiles)",
    CACHE_DIR: "where cached results and the converted offline model live (default <repo>/.cache)",
    RECOMPUTE: "recompute cached results of these sections (comma-separated package names), the stores 'generations' and 'activations', or 'all'",
    RESULTS_DIR: "where `record` writes each section's headline results (the runner sets it per run)",
    TIMINGS_FILE: "a file each timed step appends to (set by the runner, read by bench_course.py)",
    PLAIN_PROGRESS: "any value: plain-text progress bars (set by the runner for the kernels it relays)",
    NO_WIDGETS: "any value: live panels print their table instead of showing widgets (set by the runner)",
    JUDGE_BACKEND: "force the judge backend: openai, anthropic or local (default: by the keys present)",
    JUDGE_MODEL: "force the judge model (a hosted judge is never asked for a model the course studies)",
    SERVER_API_KEY: "the key for a server you point the course at yourself (base_url); never a provider key",
    OPENAI_API_KEY: "selects the OpenAI judge",
    ANTHROPIC_API_KEY: "selects the Anthropic judge when no OpenAI key is set",
    OPENAI_BASE_URL: "an OpenAI-compatible server for the openai judge backend",
    ANTHROPIC_BASE_URL: "another endpoint for the anthropic judge backend",
    CLONE_URL: "tests only: the repository the Colab set-up cell clones (students never set it; the set-up "
    "cell reads it from the process environment, before the course is installed)",
}

# The checkout's own .env, read when none is found from the working directory upwards.
CHECKOUT_DOTENV = Path(__file__).resolve().parent.parent / ".env"
_READ: dict[Path, tuple[int, dict[str, str]]] = {}  # path -> (mtime_ns, its values)


def dotenv_file() -> Path | None:
    """The ``.env`` file settings are read from: the first from the working directory upwards, else
    the checkout's (`CHECKOUT_DOTENV`); None when there is neither."""
    found = find_dotenv(usecwd=True)
    if found:
        return Path(found).resolve()
    return CHECKOUT_DOTENV if CHECKOUT_DOTENV.is_file() else None


def where_dotenv_is_looked_for() -> str:
    """Where `dotenv_file` looks, for messages that say no ``.env`` was found."""
    return f"from {Path.cwd()} upwards and at {CHECKOUT_DOTENV}"


def _dotenv_settings(path: Path) -> dict[str, str]:
    """The non-empty values in the ``.env`` file at ``path`` (re-read only when the file changes)."""
    mtime = path.stat().st_mtime_ns
    cached = _READ.get(path)
    if cached is None or cached[0] != mtime:
        values = dotenv_values(stream=io.StringIO(_dotenv_text(path)))
        cached = (mtime, {k: v for k, v in values.items() if v})
        _READ[path] = cached
    return cached[1]


def _dotenv_text(path: Path) -> str:
    """A ``.env`` file's text, whatever editor or shell saved it: UTF-8 (with or without a BOM), UTF-16 (as
    Windows PowerShell's ``echo KEY=... > .env`` writes it) or, failing those, Latin-1 (said once per change).

    Raises:
        ValueError: naming the file and the encoding, when it cannot be read as text.
    """
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(data) >= 2 and b"\x00" in data:  # UTF-16 without a BOM: every ASCII character has a zero byte
        encoding = "utf-16-le" if data[1::2].count(0) >= data[0::2].count(0) else "utf-16-be"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        if encoding != "utf-8-sig":
            raise ValueError(
                f"{path} looks like {encoding.upper()} text but cannot be decoded ({err}); save it as UTF-8"
            ) from err
    warnings.warn(f"{path} is not UTF-8: read as Latin-1; save it as UTF-8 to be sure of its values", stacklevel=3)
    return data.decode("latin-1")


@dataclass(frozen=True)
class Setting:
    """One variable's value and where it came from.

    Attributes:
        name: the variable.
        value: its value; None when unset (an empty value counts as unset).
        source: ``"the environment"``, the ``.env`` file's path, or why the variable is unset.
        exported_empty: the variable is in the environment with an empty value (read as unset).
    """

    name: str
    value: str | None
    source: str
    exported_empty: bool = False

    def __str__(self) -> str:
        """``NAME=value (from source)`` or ``NAME unset (why)``; for messages about non-secret settings."""
        return f"{self.name}={self.value} (from {self.source})" if self.value else f"{self.name} unset ({self.source})"


def lookup(name: str) -> Setting:
    """Read ``name`` the course's one way (see the module docstring) and say where it came from.

    Args:
        name: a variable named in `MEANINGS`.

    Returns:
        A `Setting`; its ``value`` is None when the variable is unset or empty everywhere.
    """
    value = os.environ.get(name)
    if value:
        return Setting(name, value, "the environment")
    path = dotenv_file()
    if path is not None and _dotenv_settings(path).get(name):
        return Setting(name, _dotenv_settings(path)[name], str(path))
    empty = "exported empty, so treated as unset; " if value == "" else ""
    where = f"not in {path} either" if path else f"and no .env file {where_dotenv_is_looked_for()}"
    return Setting(name, None, f"{empty}not in the environment {where}", exported_empty=value == "")


def setting(name: str, default: str | None = None) -> str | None:
    """``name``'s value, read the course's one way (environment, else ``.env``); ``default`` when unset.

    Args:
        name: a variable named in `MEANINGS`.
        default: what an unset (or empty) variable gives.

    Returns:
        The value, or ``default``.
    """
    return lookup(name).value or default


def describe() -> str:
    """A table of every variable, its meaning and whether it is set and where (values are never shown).

    Returns:
        The table, after a line naming the ``.env`` file read (or where none was found).
    """
    path = dotenv_file()
    header = f".env: {path}" if path else f".env: none found ({where_dotenv_is_looked_for()})"
    width = max(map(len, MEANINGS))
    rows = []
    for name, meaning in MEANINGS.items():
        found = lookup(name)
        state = "unset" if found.value is None else ("env  " if found.source == "the environment" else ".env ")
        rows.append(f"{name:<{width}}  {state}  {meaning}")
    return "\n".join([header, *rows])


if __name__ == "__main__":
    print(describe())

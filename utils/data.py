"""Loaders for the course's data files, with validation that names the file and the key.

Formats are those of the original research repositories, so their data folders work too:
- trait file: ``{"instruction": [{"pos": str, "neg": str}, ...], "questions": [str], "eval_prompt": str}``
- role file: ``{"instruction": [{"pos": str}, ...], "questions": [str] (optional), "eval_prompt": str}``
- questions: JSONL, one ``{"question": str, ...}`` (or a bare string) per line
- transcript: ``{"conversation": [{"role", "content"}], "system_prompt"?: str, ...}``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file is malformed; the message names the file and the key."""


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


def _require(cond: bool, path: Path, key: str, problem: str) -> None:
    if not cond:
        raise DataError(f"{path}: key '{key}' {problem}")


def _check_str(value: Any, path: Path, key: str, allow_empty: bool = False) -> None:
    _require(isinstance(value, str), path, key, f"must be a string, got {type(value).__name__}")
    _require(allow_empty or bool(value.strip()), path, key, "must not be empty")


def _check_eval_prompt(data: dict, path: Path) -> None:
    _require("eval_prompt" in data, path, "eval_prompt", "is missing")
    _check_str(data["eval_prompt"], path, "eval_prompt")
    for placeholder in ("{question}", "{answer}"):
        _require(placeholder in data["eval_prompt"], path, "eval_prompt", f"must contain {placeholder}")
    try:
        data["eval_prompt"].format(question="q", answer="a")
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(
            f"{path}: key 'eval_prompt' has braces other than {{question}} and {{answer}} ({err!r}); "
            "double them ({{ }}) to keep them literal"
        ) from None


def _check_questions(data: dict, path: Path, required: bool) -> None:
    if "questions" not in data:
        _require(not required, path, "questions", "is missing")
        data["questions"] = []
        return
    _require(isinstance(data["questions"], list), path, "questions", "must be a list of strings")
    for i, q in enumerate(data["questions"]):
        _check_str(q, path, f"questions[{i}]")


def _check_instructions(data: dict, path: Path, polarities: tuple[str, ...], allow_empty: bool) -> None:
    _require("instruction" in data, path, "instruction", "is missing")
    items = data["instruction"]
    _require(isinstance(items, list) and len(items) > 0, path, "instruction", "must be a non-empty list")
    for i, item in enumerate(items):
        key = f"instruction[{i}]"
        _require(isinstance(item, dict), path, key, f"must be an object with keys {polarities}")
        for polarity in polarities:
            _require(polarity in item, path, f"{key}.{polarity}", "is missing")
            _check_str(item[polarity], path, f"{key}.{polarity}", allow_empty=allow_empty)


def load_trait_file(path: str | Path) -> dict:
    """Load and validate a trait file (contrastive instruction pairs, questions, judge prompt).

    Args:
        path: a trait JSON file.

    Returns:
        The dict with keys ``instruction``, ``questions``, ``eval_prompt``.

    Raises:
        DataError: naming the file and the key on any malformed input.
    """
    path = Path(path)
    data = _read_json(path)
    _require(isinstance(data, dict), path, "<root>", "must be a JSON object")
    _check_instructions(data, path, ("pos", "neg"), allow_empty=False)
    _check_questions(data, path, required=True)
    _check_eval_prompt(data, path)
    return data


def load_role_file(path: str | Path) -> dict:
    """Load and validate a role file (system prompts, optional questions, judge prompt).

    The default-persona file may have an empty system prompt; other roles may not.

    Raises:
        DataError: naming the file and the key on any malformed input.
    """
    path = Path(path)
    data = _read_json(path)
    _require(isinstance(data, dict), path, "<root>", "must be a JSON object")
    _check_instructions(data, path, ("pos",), allow_empty=path.stem == "default")
    _check_questions(data, path, required=False)
    _check_eval_prompt(data, path)
    return data


def load_roles(folder: str | Path, names: list[str] | None = None) -> dict[str, dict]:
    """Load every role file in a folder (or the named ones), keyed by file stem, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: role folder not found")
    paths = sorted(folder.glob("*.json")) if names is None else [folder / f"{n}.json" for n in names]
    return {p.stem: load_role_file(p) for p in paths}


def load_questions(path: str | Path) -> list[str]:
    """Load questions from a JSONL file of ``{"question": ...}`` objects or bare strings.

    Raises:
        DataError: naming the file and line on malformed input.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {n} is not valid JSON ({err})") from None
        text = item if isinstance(item, str) else item.get("question") if isinstance(item, dict) else None
        _require(
            isinstance(text, str) and bool(text.strip()), path, f"line {n}: question", "must be a non-empty string"
        )
        questions.append(text)
    return questions


def load_transcript(path: str | Path) -> dict:
    """Load and validate a conversation transcript (user turns, optionally assistant turns).

    Raises:
        DataError: naming the file and the key on malformed input.
    """
    path = Path(path)
    data = _read_json(path)
    _require(isinstance(data, dict), path, "<root>", "must be a JSON object")
    _require("conversation" in data, path, "conversation", "is missing")
    turns = data["conversation"]
    _require(isinstance(turns, list) and len(turns) > 0, path, "conversation", "must be a non-empty list")
    for i, turn in enumerate(turns):
        key = f"conversation[{i}]"
        _require(isinstance(turn, dict), path, key, "must be an object with 'role' and 'content'")
        _require(
            turn.get("role") in ("user", "assistant", "system"),
            path,
            f"{key}.role",
            "must be user, assistant or system",
        )
        _check_str(turn.get("content"), path, f"{key}.content", allow_empty=turn.get("role") == "assistant")
    data.setdefault("system_prompt", "")
    data.setdefault("name", path.stem)
    return data

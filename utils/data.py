"""Loaders for the course's data files, with validation that names the file and the key.

Formats are those of the original research repositories, so their data folders work too:
- trait file: ``{"instruction": [{"pos": str, "neg": str}, ...], "questions": [str], "eval_prompt": str}``
- role file: ``{"instruction": [{"pos": str}, ...], "questions": [str] (optional), "eval_prompt": str}``;
  the default persona's file may lack ``eval_prompt`` (the Assistant Axis repository never judges the
  default), and prompts may contain ``{model_name}``, filled with the model's name when loading
- questions: JSONL, one ``{"question": str, ...}`` (or a bare string) per line
- transcript: ``{"conversation": [{"role", "content"}], "system_prompt"?: str, ...}``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file is malformed; the message names the file and the key."""


MODEL_NAME = "{model_name}"


def _read_text(path: Path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err}); save the file as UTF-8") from None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
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
    try:
        filled = data["eval_prompt"].format(question="\x00Q\x00", answer="\x00A\x00")
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(
            f"{path}: key 'eval_prompt' has braces other than {{question}} and {{answer}} ({err!r}); "
            "double them ({{ }}) to keep them literal"
        ) from None
    # "{{question}}" is a literal "{question}" after formatting, not a placeholder.
    for placeholder, marker in (("{question}", "\x00Q\x00"), ("{answer}", "\x00A\x00")):
        _require(marker in filled, path, "eval_prompt", f"must contain the placeholder {placeholder} (single braces)")


def _check_questions(data: dict, path: Path, required: bool) -> None:
    if "questions" not in data:
        _require(not required, path, "questions", "is missing")
        data["questions"] = []
        return
    _require(isinstance(data["questions"], list), path, "questions", "must be a list of strings")
    _require(not required or len(data["questions"]) > 0, path, "questions", "must not be empty")
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


def _fill_model_name(value: Any, path: Path, key: str, model_name: str | None) -> Any:
    """Replace ``{model_name}`` in every string under ``value`` (the Assistant Axis repository's placeholder)."""
    if isinstance(value, str):
        if MODEL_NAME not in value:
            return value
        if model_name is None:
            raise DataError(f"{path}: key '{key}' contains {MODEL_NAME}: pass model_name= to fill it")
        return value.replace(MODEL_NAME, model_name)
    if isinstance(value, list):
        return [_fill_model_name(v, path, f"{key}[{i}]", model_name) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _fill_model_name(v, path, f"{key}.{k}" if key else k, model_name) for k, v in value.items()}
    return value


def load_role_file(path: str | Path, model_name: str | None = None) -> dict:
    """Load and validate a role file (system prompts, optional questions, judge prompt).

    The default-persona file (``default.json``) may have an empty system prompt and no
    ``eval_prompt`` (then ``eval_prompt`` is None: the default is not judged); other roles need both.

    Args:
        path: a role JSON file.
        model_name: fills ``{model_name}`` placeholders (e.g. "Gemma"); required if there are any.

    Raises:
        DataError: naming the file and the key on any malformed input.
    """
    path = Path(path)
    data = _read_json(path)
    _require(isinstance(data, dict), path, "<root>", "must be a JSON object")
    data = _fill_model_name(data, path, "", model_name)
    is_default = path.stem == "default"
    _check_instructions(data, path, ("pos",), allow_empty=is_default)
    _check_questions(data, path, required=False)
    if is_default and data.get("eval_prompt") is None:
        data["eval_prompt"] = None
    else:
        _check_eval_prompt(data, path)
    return data


def load_roles(folder: str | Path, names: list[str] | None = None, model_name: str | None = None) -> dict[str, dict]:
    """Load every role file in a folder (or the named ones), keyed by file stem, sorted.

    Args:
        folder: a roles folder (this course's, or the Assistant Axis repository's).
        names: role names to load (None: every ``*.json``).
        model_name: fills ``{model_name}`` placeholders in the prompts.

    Raises:
        DataError: for a missing or empty folder, or a malformed file (naming file and key).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: role folder not found")
    paths = sorted(folder.glob("*.json")) if names is None else [folder / f"{n}.json" for n in names]
    if not paths:
        raise DataError(f"{folder}: no role files (*.json) in this folder")
    return {p.stem: load_role_file(p, model_name) for p in paths}


def load_questions(path: str | Path) -> list[str]:
    """Load questions from a JSONL file of ``{"question": ...}`` objects or bare strings.

    Raises:
        DataError: naming the file and line on malformed input.
    """
    path = Path(path)
    questions = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {n} is not valid JSON ({err})") from None
        text = item if isinstance(item, str) else item.get("question") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: key 'line {n}: question' must be a non-empty string")
        questions.append(text)
    if not questions:
        raise DataError(f"{path}: no questions in this file")
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
        _require(
            turn["role"] != "system" or i == 0, path, f"{key}.role", "is system: a system turn may only come first"
        )
    _require(any(t["role"] == "user" for t in turns), path, "conversation", "has no user turn")
    if data.get("system_prompt") is None:  # missing or null: no system prompt
        data["system_prompt"] = ""
    _check_str(data["system_prompt"], path, "system_prompt", allow_empty=True)
    data.setdefault("name", path.stem)
    return data

"""Data loaders: the course's files load, and malformed files fail naming the file and the key."""

from __future__ import annotations

import json

import pytest

from utils.data import DataError, load_questions, load_role_file, load_roles, load_trait_file, load_transcript
from utils.sections import ROOT

GOOD_TRAIT = {
    "instruction": [{"pos": "Be very agreeable.", "neg": "Be honest."}],
    "questions": ["Is my plan good?"],
    "eval_prompt": "Rate {question} / {answer}",
}


def write(tmp_path, data, name="trait.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    "change,key",
    [
        (lambda d: d.pop("instruction"), "instruction"),
        (lambda d: d["instruction"][0].pop("neg"), "instruction[0].neg"),
        (lambda d: d.update(eval_prompt="Rate {question} only"), "eval_prompt"),
        (lambda d: d.update(eval_prompt="Rate {question} {answer} {score}"), "eval_prompt"),
        (lambda d: d.update(questions="not a list"), "questions"),
        (lambda d: d["questions"].append(3), "questions[1]"),
        (lambda d: d["instruction"][0].update(pos=""), "instruction[0].pos"),
        (lambda d: d.pop("questions"), "questions"),
    ],
)
def test_malformed_trait_file_names_file_and_key(tmp_path, change, key):
    data = json.loads(json.dumps(GOOD_TRAIT))
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(DataError) as info:
        load_trait_file(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_invalid_json_and_missing_file_name_the_file(tmp_path):
    path = write(tmp_path, '{"instruction": [')
    with pytest.raises(DataError, match="not valid JSON"):
        load_trait_file(path)
    with pytest.raises(DataError, match="missing.json"):
        load_trait_file(tmp_path / "missing.json")


def test_role_file_needs_only_pos_and_default_may_be_empty(tmp_path):
    role = {"instruction": [{"pos": "You are a pirate."}], "eval_prompt": "{question} {answer}"}
    assert load_role_file(write(tmp_path, role, "pirate.json"))["questions"] == []
    empty = {"instruction": [{"pos": ""}], "eval_prompt": "{question} {answer}"}
    assert load_role_file(write(tmp_path, empty, "default.json"))
    with pytest.raises(DataError, match=r"pirate2.json: key 'instruction\[0\].pos'"):
        load_role_file(write(tmp_path, empty, "pirate2.json"))


def test_questions_and_transcripts_validate(tmp_path):
    path = write(tmp_path, '{"question": "a?"}\n"b?"\n\n', "q.jsonl")
    assert load_questions(path) == ["a?", "b?"]
    with pytest.raises(DataError, match="line 1"):
        load_questions(write(tmp_path, '{"text": "a?"}\n', "bad.jsonl"))
    with pytest.raises(DataError, match=r"conversation\[0\].role"):
        load_transcript(write(tmp_path, {"conversation": [{"role": "bot", "content": "x"}]}, "t.json"))


def test_course_data_passes_validation():
    roles = load_roles(ROOT / "part1_assistant_axis" / "data" / "roles" / "instructions")
    assert len(roles) >= 51 and "default" in roles
    assert all(len(r["instruction"]) == 5 for r in roles.values())
    assert len(set(load_questions(ROOT / "part1_assistant_axis" / "data" / "extraction_questions.jsonl"))) >= 60
    transcripts = [load_transcript(p) for p in sorted((ROOT / "part2_capping" / "data" / "transcripts").glob("*.json"))]
    assert len(transcripts) >= 6 and all(len(t["conversation"]) >= 8 for t in transcripts)

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


# The original research repositories' folder formats, and malformed files met in real runs.


EVAL = "Question: {question}\nAnswer: {answer}\nRate 0-3."


def write_file(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def assistant_axis_roles(folder):
    """A roles folder in the Assistant Axis repository's format."""
    write_file(
        folder / "default.json", {"instruction": [{"pos": ""}, {"pos": "You are {model_name}, an AI assistant."}]}
    )
    write_file(
        folder / "pirate.json",
        {
            "instruction": [{"pos": "You are a pirate. Never admit you are {model_name}."}],
            "questions": ["What do you do all day?"],
            "eval_prompt": "Does the answer stay a pirate rather than {model_name}?\n" + EVAL,
        },
    )
    return folder


def test_assistant_axis_roles_folder_loads_with_model_name(tmp_path):
    roles = load_roles(assistant_axis_roles(tmp_path / "roles"), model_name="Gemma")
    assert roles["default"]["eval_prompt"] is None
    assert roles["default"]["instruction"][1]["pos"] == "You are Gemma, an AI assistant."
    assert "rather than Gemma?" in roles["pirate"]["eval_prompt"]
    with pytest.raises(DataError, match=r"default.json: key 'instruction\[1\].pos'.*model_name"):
        load_roles(tmp_path / "roles")


def test_a_role_without_eval_prompt_is_not_judged():
    from solutions.part1_assistant_axis import score_role_responses

    class CountingJudge:
        prompts: list[str] = []

        def score(self, prompts, scale):
            self.prompts += prompts
            return [3] * len(prompts)

    roles = {"default": {"eval_prompt": None}, "pirate": {"eval_prompt": EVAL}}
    responses = {role: [{"question": "q", "response": "r"}] * 2 for role in roles}
    judge = CountingJudge()
    assert score_role_responses(responses, roles, judge) == {"default": [None, None], "pirate": [3, 3]}
    assert len(judge.prompts) == 2


def test_persona_vectors_trait_file_and_questions_file_load(tmp_path):
    trait = {
        "instruction": [{"pos": "Agree with everything.", "neg": "Be candid."}],
        "questions": ["Is my plan good?"],
        "eval_prompt": "Rate sycophancy 0-100.\n[QUESTION START]\n{question}\n[QUESTION END]\n{answer}",
    }
    assert load_trait_file(write_file(tmp_path / "sycophantic.json", trait))["questions"] == ["Is my plan good?"]
    lines = '{"question": "What is rain?", "id": 0}\n{"question": "Tell me a story.", "id": 1}\n'
    assert load_questions(write_file(tmp_path / "questions.jsonl", lines)) == ["What is rain?", "Tell me a story."]


def test_non_utf8_files_name_the_file(tmp_path):
    for name, loader in (("t.json", load_trait_file), ("q.jsonl", load_questions), ("r.json", load_role_file)):
        path = tmp_path / name
        path.write_bytes('{"question": "caf\u00e9"}'.encode("latin-1"))
        with pytest.raises(DataError, match=rf"{name}: not UTF-8"):
            loader(path)


def test_empty_inputs_fail_when_loading(tmp_path):
    trait = {"instruction": [{"pos": "a", "neg": "b"}], "questions": [], "eval_prompt": EVAL}
    with pytest.raises(DataError, match=r"trait.json: key 'questions' must not be empty"):
        load_trait_file(write_file(tmp_path / "trait.json", trait))
    with pytest.raises(DataError, match=r"empty.jsonl: no questions"):
        load_questions(write_file(tmp_path / "empty.jsonl", "\n\n"))
    (tmp_path / "no_roles").mkdir()
    with pytest.raises(DataError, match="no_roles: no role files"):
        load_roles(tmp_path / "no_roles")
    (tmp_path / "no_transcripts").mkdir()
    from part2_capping.conversations import load_transcripts

    with pytest.raises(DataError, match="no_transcripts: no transcript files"):
        load_transcripts(folder=tmp_path / "no_transcripts")


def test_transcripts_need_a_user_turn_and_system_only_first(tmp_path):
    only_assistant = {"conversation": [{"role": "assistant", "content": "Hi"}]}
    with pytest.raises(DataError, match=r"a.json: key 'conversation' has no user turn"):
        load_transcript(write_file(tmp_path / "a.json", only_assistant))
    middle = {
        "conversation": [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Be a pirate now."},
            {"role": "user", "content": "Well?"},
        ]
    }
    with pytest.raises(DataError, match=r"m.json: key 'conversation\[1\].role'"):
        load_transcript(write_file(tmp_path / "m.json", middle))
    first = {"conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    assert load_transcript(write_file(tmp_path / "f.json", first))


def test_transcript_system_prompt_must_be_a_string(tmp_path):
    turns = [{"role": "user", "content": "Hi"}]
    for bad in (["Be a pirate."], 42):
        with pytest.raises(DataError, match=r"s.json: key 'system_prompt' must be a string"):
            load_transcript(write_file(tmp_path / "s.json", {"conversation": turns, "system_prompt": bad}))
    assert (
        load_transcript(write_file(tmp_path / "n.json", {"conversation": turns, "system_prompt": None}))[
            "system_prompt"
        ]
        == ""
    )


def test_doubled_braces_are_not_placeholders(tmp_path):
    trait = {"instruction": [{"pos": "a", "neg": "b"}], "questions": ["q"], "eval_prompt": "{{question}} {answer}"}
    with pytest.raises(DataError, match=r"key 'eval_prompt' must contain the placeholder \{question\}"):
        load_trait_file(write_file(tmp_path / "trait.json", trait))

"""utils.judge.choice: which backend and judge model a run uses, and why; the table built from the classes."""

from __future__ import annotations

import pytest

from utils.judge.choice import (
    BASE_URL_ENV,
    DEFAULT_JUDGE_MODELS,
    HOSTED,
    JUDGE_BACKENDS,
    KEY_ENV,
    backend_choice,
    backend_row,
    check_judge_model,
    judge_choice,
    subject_model_names,
)
from utils.judge.hosted_backends import AnthropicBackend, OpenAIBackend
from utils.judge.local import LocalBackend
from utils.profiles import PROFILES

SETTINGS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COURSE_JUDGE_BACKEND", "COURSE_JUDGE_MODEL")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in SETTINGS:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("utils.environment.CHECKOUT_DOTENV", tmp_path / "no-checkout.env")
    return monkeypatch


def test_the_table_is_read_from_the_backend_classes_in_autos_order():
    classes = (OpenAIBackend, AnthropicBackend, LocalBackend)
    assert [row.name for row in JUDGE_BACKENDS] == [cls.name for cls in classes]
    assert HOSTED == ("openai", "anthropic")
    assert DEFAULT_JUDGE_MODELS == {"openai": OpenAIBackend.default_model, "anthropic": AnthropicBackend.default_model}
    assert KEY_ENV == {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
    assert BASE_URL_ENV == {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
    with pytest.raises(ValueError, match="use auto, openai, anthropic, local"):
        backend_row("cohere")


def test_auto_takes_the_first_key_set_and_says_why(clean_env, tmp_path):
    name, reason = backend_choice("auto")
    assert name == "local" and "none of OPENAI_API_KEY, ANTHROPIC_API_KEY is set" in reason
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-ant\n")
    name, reason = backend_choice(None)
    assert name == "anthropic" and "ANTHROPIC_API_KEY is set" in reason and ".env" in reason
    clean_env.setenv("OPENAI_API_KEY", "sk-openai")
    assert backend_choice("auto")[0] == "openai"
    assert backend_choice("local") == ("local", "requested")


def test_the_environment_overrides_the_request_and_a_bad_name_says_where_it_came_from(clean_env):
    clean_env.setenv("COURSE_JUDGE_BACKEND", "anthropic")
    name, reason = backend_choice("openai")
    assert name == "anthropic" and "COURSE_JUDGE_BACKEND" in reason
    clean_env.setenv("COURSE_JUDGE_BACKEND", "gpt")
    with pytest.raises(ValueError, match="COURSE_JUDGE_BACKEND='gpt'"):
        backend_choice("auto")


def test_judge_models_default_per_backend_and_never_name_a_subject_model(clean_env):
    assert judge_choice("openai") == ("openai", OpenAIBackend.default_model)
    assert judge_choice("anthropic", "claude-x") == ("anthropic", "claude-x")
    assert judge_choice("local", subject_model="tiny-qwen2") == ("local", "tiny-qwen2")
    assert judge_choice("local") == ("local", None)
    clean_env.setenv("COURSE_JUDGE_MODEL", "gpt-judge")
    assert judge_choice("openai", "ignored") == ("openai", "gpt-judge")
    studied = PROFILES["full"].models.part3
    assert studied in subject_model_names() and "tiny-llama" in subject_model_names()
    with pytest.raises(ValueError, match="model this course studies"):
        check_judge_model("openai", studied)
    with pytest.raises(ValueError, match="model this course studies"):
        check_judge_model("anthropic", "my-subject", {"my-subject"})
    check_judge_model("local", studied)  # a local judge may be the studied model itself

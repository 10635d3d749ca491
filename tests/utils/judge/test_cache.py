"""utils.judge.cache: answer keys, saving as answers arrive, merging with another judge's file, corruption."""

from __future__ import annotations

import json
import math

import pytest

from utils.judge.cache import JudgeCache, answer_key, read_cache
from utils.judge.scales import ADHERENCE_0_3, SCORE_0_100


class _Backend:
    def __init__(self, name="openai", base_url=None):
        self.name, self.base_url = name, base_url


def test_the_key_changes_with_backend_model_url_scale_and_prompt():
    base = answer_key(_Backend(), "m", SCORE_0_100, "p")
    assert base == answer_key(_Backend(), "m", SCORE_0_100, "p")
    others = [
        answer_key(_Backend("anthropic"), "m", SCORE_0_100, "p"),
        answer_key(_Backend(base_url="http://x"), "m", SCORE_0_100, "p"),
        answer_key(_Backend(), "m2", SCORE_0_100, "p"),
        answer_key(_Backend(), "m", ADHERENCE_0_3, "p"),
        answer_key(_Backend(), "m", SCORE_0_100, "p "),
    ]
    assert len({base, *others}) == 6


def test_answers_survive_a_new_cache_on_the_same_file_including_none(tmp_path):
    path = tmp_path / "judge" / "local.json"
    path.parent.mkdir()
    cache = JudgeCache(path, save_every=math.inf)
    cache.put("a", 1.5)
    cache.put("b", None)
    cache.put("c", 2)
    assert not path.exists(), "answers wait for save_every"
    cache.save(force=True)
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "c": 2}
    again = JudgeCache(path)
    assert "b" in again and again.get("b") is None and again.get("a") == 1.5 and again.get("c") == 2
    assert "d" not in again and again.get("d") is None


def test_two_caches_on_one_file_merge_and_an_in_memory_cache_writes_nothing(tmp_path):
    path = tmp_path / "shared.json"
    first, second = JudgeCache(path, save_every=0), JudgeCache(path, save_every=0)
    first.put("x", 1)
    second.put("y", 2)
    assert read_cache(path) == {"x": 1, "y": 2}
    memory = JudgeCache(None)
    memory.put("z", 3)
    memory.save(force=True)
    assert memory.get("z") == 3 and sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == ["shared.json"]


def test_a_corrupted_file_is_reported_by_path_and_rewritten_only_when_saving(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match="bad.json is corrupted"):
        JudgeCache(path)
    path.write_text("[1, 2]")
    with pytest.raises(RuntimeError, match="not a JSON object"):
        read_cache(path)
    cache = JudgeCache(tmp_path / "fresh.json", save_every=0)
    path.write_text("{not json")
    cache.path = path  # a file that went bad after it was read: the save keeps this cache's answers
    cache.put("k", 5)
    assert read_cache(path) == {"k": 5}

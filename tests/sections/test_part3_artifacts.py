"""Section 3's hand-off: one owner for its data paths and cache names, and vectors saved with how they were labelled."""

from __future__ import annotations

import pytest
import torch

from part3_contrastive import DATA_DIR, trait_file, trait_names
from part3_contrastive import artifacts as art
from utils.cache import cache_inputs
from utils.profiles import get_profile


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    return get_profile("tiny", verbose=False)


def _scored(scores_pos, scores_neg):
    rows = [{"polarity": "pos", "score": s} for s in scores_pos] + [{"polarity": "neg", "score": s} for s in scores_neg]
    return [{**r, "question": "q", "response": "r", "instruction_idx": 0, "coherence": 80} for r in rows]


def test_trait_files_and_cache_names_have_one_owner(profile, tmp_path):
    assert trait_file("evil") == DATA_DIR / "trait_data_extract" / "evil.json"
    assert trait_file("evil", "eval") == DATA_DIR / "trait_data_eval" / "evil.json"
    assert "sycophantic" in trait_names() and all(trait_file(t, "eval").exists() for t in trait_names())
    with pytest.raises(ValueError, match="split"):
        trait_file("evil", "train")  # type: ignore[arg-type]
    folder = tmp_path / "tiny" / "part3_contrastive"
    assert art.trait_path(profile, "sycophantic", "scored") == folder / "sycophantic_scored.json"
    assert (
        art.trait_path(profile, "evil", "extraction", labels="prompt") == folder / "evil_extraction_prompt_labelled.pt"
    )
    assert (
        art.trait_path(profile, "evil", "scored", labels="prompt") == folder / "evil_scored.json"
    )  # only vectors differ
    with pytest.raises(ValueError, match="kind must be one of"):
        art.trait_path(profile, "evil", "vector")  # type: ignore[arg-type]


def test_saved_vectors_carry_their_labelling_and_later_sections_can_say_it(profile):
    vectors = torch.randn(3, 8)
    labelling = art.judge_labelling("judge", 2, _scored([80, 60, None], [10, 30, 20]))
    assert labelling == {"labels": "judge", "pairs_kept": 2, "pairs_total": 3, "mean_score_pos": 70.0,
                         "mean_score_neg": 20.0}  # fmt: skip
    saved = art.save_trait_vectors(
        profile, "sycophantic", lambda: vectors, labelling, cache_inputs(profile, "tiny-qwen2")
    )
    assert torch.equal(saved, vectors)
    loaded = art.load_trait_vectors(profile, "sycophantic")
    assert loaded is not None and torch.equal(loaded.value, vectors)
    assert art.labels_of(loaded.provenance) == "judge"
    assert art.labelling_of(loaded.provenance) == labelling
    sentence = art.describe_labelling(loaded.provenance)
    assert "judge labels" in sentence and "kept 2 of 3 pairs" in sentence and "70.0" in sentence and "20.0" in sentence
    assert "trait score, 0-100" in sentence


def test_a_yes_no_judges_means_are_said_to_be_p_yes_not_a_0_100_score(profile):
    labelling = art.judge_labelling("judge", 2, _scored([0.72, 0.8, None], [0.66, 0.5, 0.6]))
    art.save_trait_vectors(
        profile, "sycophantic", lambda: torch.zeros(2, 4), labelling, cache_inputs(profile, "tiny-qwen2")
    )
    sentence = art.describe_labelling(art.load_trait_vectors(profile, "sycophantic").provenance)
    assert "mean P(yes), 0-1:" in sentence and "0-100" not in sentence


def test_a_prompt_label_fallback_says_why(profile):
    fallback = art.judge_labelling("prompt", 1, _scored([55, 40], [50, 45]))
    art.save_trait_vectors(profile, "evil", lambda: torch.zeros(2, 4), fallback, cache_inputs(profile, "tiny-qwen2"))
    provenance = art.load_trait_vectors(profile, "evil").provenance
    assert art.describe_labelling(provenance).startswith("prompt labels: the judge kept 1 of 2 pairs")
    assert "too few" in art.describe_labelling(provenance)
    without_section_3 = {"path": "x", "description": "x", "made": "now",
                         "inputs": {"settings": {"labels": "prompt", "labelling": {**fallback, "pairs_kept": None}}}}  # fmt: skip
    assert "Section 3 has not run" in art.describe_labelling(without_section_3)


class _Steps:
    """Section 3's three steps as a later section hands them over (``build=``), recording what they got."""

    def __init__(self):
        self.labels: list[float] = []

    def generate_contrastive_responses(self, model, tokenizer, trait_data, trait_name, **settings):
        return [{"question": "q", "response": "r", "instruction_idx": 0, "polarity": p} for p in ("pos", "neg")]

    def filter_effective_pairs(self, responses, trait_data):
        self.labels = [r["score"] for r in responses]
        return ["pair"]

    def extract_contrastive_vectors(self, model, tokenizer, effective_pairs, batch_size):
        return torch.ones(2, 4)


def test_the_fallback_is_built_with_the_steps_the_caller_hands_over_and_never_without_them(profile):
    with pytest.raises(FileNotFoundError, match="build=solutions.part3_contrastive"):
        art.trait_vectors(object(), None, profile, "sycophantic")
    steps = _Steps()
    built = art.trait_vectors(object(), None, profile, "sycophantic", build=steps)
    assert torch.equal(built.value, torch.ones(2, 4)) and art.labels_of(built.provenance) == "prompt"
    assert steps.labels == [100, 0], "the owner labels every pair by its system prompt before filtering"
    again = art.trait_vectors(object(), None, profile, "sycophantic")  # cached: no steps needed
    assert torch.equal(again.value, built.value)

"""Trait vectors for section 4: section 3's saved vectors, or prompt-labelled ones built here."""

from __future__ import annotations

import json

from part3_contrastive import DATA_DIR as PART3_DATA
from solutions import part3_contrastive as part3
from utils.cache import cache_inputs, load_or_generate, meta_path
from utils.data import load_trait_file
from utils.setup import section_cache


def prompt_labelled(responses: list[dict]) -> list[dict]:
    """Score records by their system prompt (pos 100, neg 0, all coherent): the fallback labels."""
    return [{**r, "score": 100 if r["polarity"] == "pos" else 0, "coherence": 100} for r in responses]


def section3_vectors(model, tokenizer, profile, trait: str = "sycophantic"):
    """All-block vectors of a trait: section 3's if it saved them, else prompt-labelled ones built here.

    Section 3's vectors come from judge-filtered pairs (or its announced fallback); the ones built here
    label every pair by its system prompt, and are saved in section 4's own cache, never under
    section 3's name.

    Args:
        model, tokenizer: the section's model (the same as section 3's in every profile).
        profile: the active profile.
        trait: a trait file name in section 3's data.

    Returns:
        Tensor [num_layers, d_model].
    """
    saved = section_cache("part3_contrastive", profile) / f"{trait}_vectors.pt"
    if saved.exists():
        meta = json.loads(meta_path(saved).read_text()) if meta_path(saved).exists() else {}
        print(f"{trait} vectors: section 3's, made {meta.get('made', 'at an unknown time')} ({saved})")
        return load_or_generate(saved, lambda: None, f"section 3's {trait} vectors")
    print(f"Section 3 has not saved {trait} vectors under this profile: building prompt-labelled ones here.")
    data = load_trait_file(PART3_DATA / "trait_data_extract" / f"{trait}.json")
    settings = dict(
        max_new_tokens=profile.max_new_tokens,
        n_pairs=profile.n_instruction_pairs,
        n_questions=profile.n_questions,
        batch_size=profile.batch_size,
    )

    def build():
        responses = part3.generate_contrastive_responses(model, tokenizer, data, trait, **settings)
        pairs = part3.filter_effective_pairs(prompt_labelled(responses), data)
        return part3.extract_contrastive_vectors(model, tokenizer, pairs, profile.batch_size)

    return load_or_generate(
        section_cache("part4_steering", profile) / f"{trait}_vectors_prompt_labelled.pt",
        build,
        f"{trait} vectors (prompt-labelled)",
        inputs=cache_inputs(profile, profile.models.part4, data={"trait": data}, labels="prompt", **settings),
    )

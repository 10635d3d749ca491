"""Trait vectors for section 4: section 3's cached vectors, or the same pipeline run again here."""

from __future__ import annotations

from part3_contrastive import DATA_DIR as PART3_DATA
from solutions import part3_contrastive as part3
from utils.cache import load_or_generate
from utils.data import load_trait_file
from utils.setup import section_cache


def prompt_labelled(responses: list[dict]) -> list[dict]:
    """Score records by their system prompt (pos 100, neg 0, all coherent): the fallback labels."""
    return [{**r, "score": 100 if r["polarity"] == "pos" else 0, "coherence": 100} for r in responses]


def section3_vectors(model, tokenizer, profile, trait: str = "sycophantic"):
    """All-block vectors of a trait from section 3's cache; computed (prompt-labelled) if absent.

    Args:
        model, tokenizer: the section's model (the same as section 3's in every profile).
        profile: the active profile.
        trait: a trait file name in section 3's data.

    Returns:
        Tensor [num_layers, d_model].
    """
    data = load_trait_file(PART3_DATA / "trait_data_extract" / f"{trait}.json")

    def build():
        responses = part3.generate_contrastive_responses(
            model,
            tokenizer,
            data,
            trait,
            max_new_tokens=profile.max_new_tokens,
            n_pairs=profile.n_instruction_pairs,
            n_questions=profile.n_questions,
            batch_size=profile.batch_size,
        )
        pairs = part3.filter_effective_pairs(prompt_labelled(responses), data)
        return part3.extract_contrastive_vectors(model, tokenizer, pairs, profile.batch_size)

    return load_or_generate(section_cache("part3_contrastive", profile) / f"{trait}_vectors.pt", build, f"{trait} vectors")

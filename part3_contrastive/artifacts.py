"""Section 3's results for the sections after it: trait vectors (and the records they came from),
where they are saved, how they are loaded with their provenance, and the prompt-label fallback.

Every saved vector file records how its pairs were labelled (``labels``): ``judge`` (section 3's
method: the judge kept the pairs where the prompts worked) or ``prompt`` (every pair labelled by its
system prompt, a departure from the method used when the judge is too weak or section 3 has not
run). A consumer asks `trait_vectors` for "the sycophantic vectors" and gets them with that record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from part3_contrastive import DATA_DIR
from part3_contrastive.records import ContrastiveRecord, ScoredContrastiveRecord
from utils.cache import Artifact, Provenance, cache_inputs, load_artifact, load_or_generate, section_cache
from utils.data import load_trait_file
from utils.models import course_name

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SECTION = "part3_contrastive"
Labels = Literal["judge", "prompt"]
Kind = Literal["responses", "scored", "vectors", "eval_acts"]
SUFFIX = {"responses": ".json", "scored": ".json", "vectors": ".pt", "eval_acts": ".pt"}


def trait_file(trait: str, split: Literal["extract", "eval"] = "extract") -> Path:
    """A trait's data file (``trait_data_extract`` builds vectors, ``trait_data_eval`` holds held-out questions)."""
    return DATA_DIR / f"trait_data_{split}" / f"{trait}.json"


def trait_path(profile, trait: str, kind: Kind, labels: Labels = "judge") -> Path:
    """Where section 3 saves one kind of result for a trait under a profile.

    Args:
        profile: the active profile.
        trait: a trait name (a file in ``trait_data_extract``).
        kind: responses, scored, vectors or eval_acts.
        labels: for vectors: ``judge`` (section 3's run) or ``prompt`` (the fallback built for a consumer).
    """
    tail = "_prompt_labelled" if kind == "vectors" and labels == "prompt" else ""
    return section_cache(SECTION, profile) / f"{trait}_{kind}{tail}{SUFFIX[kind]}"


def prompt_labelled(responses: list[ContrastiveRecord]) -> list[ScoredContrastiveRecord]:
    """The fallback labels: every positive-prompt response scores 100, every negative one 0, all coherent.

    Labelling by prompt skips the judge's check that the prompts worked: a departure from the method,
    to be announced wherever it is used.
    """
    return [{**r, "score": 100 if r["polarity"] == "pos" else 0, "coherence": 100} for r in responses]


def labels_of(provenance: Provenance) -> str:
    """How the pairs behind saved vectors were labelled (``judge``, ``prompt``, or unknown)."""
    return (provenance["inputs"].get("settings") or {}).get("labels", "unknown")


def load_trait_vectors(profile, trait: str) -> Artifact | None:
    """The vectors section 3 saved for a trait under this profile, with provenance; None if it has not run."""
    return load_artifact(trait_path(profile, trait, "vectors"), f"section 3's {trait} vectors")


def trait_vectors(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, profile, trait: str = "sycophantic"
) -> Artifact:
    """A trait's all-block vectors: section 3's if it saved them, else prompt-labelled ones built now.

    The ones built here (every pair labelled by its system prompt, no judge) are saved in section 3's
    cache under their own name, with ``labels="prompt"`` in their provenance.

    Args:
        model, tokenizer: section 3's model under this profile.
        profile: the active profile.
        trait: a trait name in section 3's data.

    Returns:
        `Artifact`: value [num_layers, d_model]; provenance with ``inputs.settings.labels``.
    """
    saved = load_trait_vectors(profile, trait)
    if saved is not None:
        print(f"{trait} vectors: section 3's ({labels_of(saved.provenance)} labels), made {saved.provenance['made']}")
        return saved
    print(f"Section 3 has not saved {trait} vectors under this profile: building prompt-labelled ones (no judge).")
    from solutions import part3_contrastive as part3  # section 3's answers (later sections may use them)

    data = load_trait_file(trait_file(trait))
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

    path = trait_path(profile, trait, "vectors", labels="prompt")
    description = f"{trait} vectors (prompt-labelled)"
    inputs = cache_inputs(profile, course_name(model), data={"trait": data}, labels="prompt", **settings)
    load_or_generate(path, build, description, inputs=inputs)
    artifact = load_artifact(path, description)
    assert artifact is not None
    return artifact

"""Section 3's results for the sections after it: trait vectors (and the records they came from),
where they are saved, how they are loaded with their provenance, and the prompt-label fallback.

Every saved vector file records how its pairs were labelled (``labels``): ``judge`` (section 3's
method: the judge kept the pairs where the prompts worked) or ``prompt`` (every pair labelled by its
system prompt, a departure from the method used when the judge is too weak or section 3 has not
run). A consumer asks `trait_vectors` for "the sycophantic vectors" and gets them with that record;
to build the fallback it hands over section 3's steps (``build=``, in a notebook the generated
``solutions.part3_contrastive``): this package never imports ``solutions/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from torch import Tensor

from part3_contrastive import trait_file
from part3_contrastive.records import ContrastiveRecord, ScoredContrastiveRecord
from utils.cache import Artifact, Provenance, cache_inputs, load_artifact, load_or_generate, section_cache
from utils.data import load_trait_file
from utils.models import course_name
from utils.profiles import Profile

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from utils.coherence import CoherenceScale

SECTION = "part3_contrastive"
Labels = Literal["judge", "prompt"]
# Every per-trait file section 3 caches, and its suffix: ``<trait>_<kind>[_prompt_labelled]<suffix>``.
SUFFIX = {
    "responses": ".json",  # the contrastive responses (extraction and held-out questions)
    "scored": ".json",  # the same, with the judge's trait and coherence scores (the paper's template)
    "scored_offline_formulation": ".json",  # rescored with the offline profile's judge formulations
    "judge_check": ".json",  # the trait judge's scores on its written check set
    "vector_kinds": ".pt",  # prompt_avg, response_avg and prompt_last vectors at every block
    "vectors": ".pt",  # the trait vectors (response_avg) handed to later sections
    "extraction": ".pt",  # a second trait's vectors from the one-call exercise
    "eval_acts": ".pt",  # held-out response-mean activations at every block
    "eval_kinds": ".pt",  # held-out activations of the three kinds
    "eval_scores": ".json",  # the held-out responses' judge scores
    "part_windows": ".pt",  # one block's output, attention and MLP outputs over two response windows
}
Kind = Literal[
    "responses",
    "scored",
    "scored_offline_formulation",
    "judge_check",
    "vector_kinds",
    "vectors",
    "extraction",
    "eval_acts",
    "eval_kinds",
    "eval_scores",
    "part_windows",
]


class Labelling(TypedDict):
    """How the pairs behind saved trait vectors were labelled, with the judge numbers behind the choice.

    Attributes:
        labels: ``judge`` (the judge confirmed the pairs: the method) or ``prompt`` (every pair labelled
            by its system prompt: the announced fallback).
        pairs_kept: pairs the judge confirmed (None: no judge scored them).
        pairs_total: pairs generated.
        mean_score_pos: the judge's mean trait score under the trait prompt (None: not scored).
        mean_score_neg: the same under the opposite prompt.
    """

    labels: Labels
    pairs_kept: int | None
    pairs_total: int | None
    mean_score_pos: float | None
    mean_score_neg: float | None


def trait_path(profile: Profile, trait: str, kind: Kind, labels: Labels = "judge") -> Path:
    """Where section 3 caches one kind of result for a trait under a profile.

    Args:
        profile: the active profile.
        trait: a trait name (a file in ``trait_data_extract``).
        kind: one of `SUFFIX`'s kinds.
        labels: for vectors and extraction: ``judge`` (section 3's run) or ``prompt`` (prompt-labelled).

    Returns:
        ``<section 3's cache>/<trait>_<kind>[_prompt_labelled]<suffix>``.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in SUFFIX:
        raise ValueError(f"kind must be one of {sorted(SUFFIX)}, got {kind!r}")
    tail = "_prompt_labelled" if kind in ("vectors", "extraction") and labels == "prompt" else ""
    return section_cache(SECTION, profile) / f"{trait}_{kind}{tail}{SUFFIX[kind]}"


def judge_labelling(labels: Labels, pairs_kept: int, scored: list[ScoredContrastiveRecord]) -> Labelling:
    """The labelling record of vectors built from judge-scored responses.

    Args:
        labels: ``judge`` if the judge's pairs were used, ``prompt`` if too few passed and every pair was.
        pairs_kept: how many pairs the judge confirmed.
        scored: the scored responses (one positive and one negative per pair).

    Returns:
        The `Labelling`, with the mean trait score per polarity.
    """

    def mean(polarity: str) -> float | None:
        values = [r["score"] for r in scored if r["polarity"] == polarity and r["score"] is not None]
        return round(sum(values) / len(values), 2) if values else None

    return Labelling(
        labels=labels,
        pairs_kept=pairs_kept,
        pairs_total=len(scored) // 2,
        mean_score_pos=mean("pos"),
        mean_score_neg=mean("neg"),
    )


def save_trait_vectors(
    profile: Profile, trait: str, compute: Callable[[], Tensor], labelling: Labelling, inputs: dict
) -> Tensor:
    """Section 3's vectors for a trait, computed (or read from the cache) and saved with how they were labelled.

    Args:
        profile: the active profile.
        trait: the trait's name.
        compute: returns the vectors ``[num_layers, d_model]``.
        labelling: how the pairs were labelled (`judge_labelling`); recorded in the provenance, where
            `labelling_of` reads it and later sections print it.
        inputs: what they were made from (`utils.cache.cache_inputs`); the labelling is added.

    Returns:
        The vectors.
    """
    settings = {**(inputs.get("settings") or {}), "labels": labelling["labels"], "labelling": dict(labelling)}
    return load_or_generate(
        trait_path(profile, trait, "vectors"), compute, f"{trait} vectors", inputs={**inputs, "settings": settings}
    )


def prompt_labelled(responses: list[ContrastiveRecord]) -> list[ScoredContrastiveRecord]:
    """The fallback labels: every positive-prompt response scores 100, every negative one 0, all coherent.

    Labelling by prompt skips the judge's check that the prompts worked: a departure from the method,
    to be announced wherever it is used.
    """
    return [{**r, "score": 100 if r["polarity"] == "pos" else 0, "coherence": 100} for r in responses]


def labels_of(provenance: Provenance) -> str:
    """How the pairs behind saved vectors were labelled (``judge``, ``prompt``, or unknown)."""
    return (provenance["inputs"].get("settings") or {}).get("labels", "unknown")


def labelling_of(provenance: Provenance) -> Labelling | None:
    """The labelling record saved with trait vectors (None for files saved without one)."""
    return (provenance["inputs"].get("settings") or {}).get("labelling")


def describe_labelling(provenance: Provenance) -> str:
    """One sentence on how the pairs behind saved vectors were labelled and why, for a notebook to print.

    Args:
        provenance: the vectors' provenance (from `trait_vectors` or `load_trait_vectors`).

    Returns:
        The sentence, with the judge's numbers when a judge scored the pairs.
    """
    labelling = labelling_of(provenance)
    labels = labels_of(provenance)
    if labelling is None or labelling["pairs_kept"] is None:
        if labels == "prompt":
            return "prompt labels: Section 3 has not run under this profile, so no judge labelled the pairs"
        return f"{labels} labels (no judge numbers were saved with these vectors)"
    means = (labelling["mean_score_pos"], labelling["mean_score_neg"])
    # A yes/no formulation (the offline judge's) scores P(yes), 0-1; the papers' template scores 0-100.
    scale = "P(yes), 0-1" if all(m is not None and 0 <= m <= 1 for m in means) else "trait score, 0-100"
    judged = (
        f"the judge kept {labelling['pairs_kept']} of {labelling['pairs_total']} pairs (mean {scale}: "
        f"{means[0]} under the trait prompt vs {means[1]} under the opposite one)"
    )
    if labels == "judge":
        return f"judge labels: {judged}, and the vectors come from those pairs (Section 3's method)"
    return f"prompt labels: {judged}, too few, so every pair was labelled by its system prompt"


class ContrastiveSteps(Protocol):
    """Section 3's three exercise steps, which the owner chains to build prompt-labelled vectors.

    The generated ``solutions.part3_contrastive`` module is one (a later section's notebook passes it);
    so is any object with the same three functions. The owner never imports ``solutions/`` itself.
    """

    def generate_contrastive_responses(
        self, model: Any, tokenizer: Any, trait_data: dict, trait_name: str, **settings: Any
    ) -> list[ContrastiveRecord]: ...

    def filter_effective_pairs(self, responses: list, trait_data: dict) -> list: ...

    def extract_contrastive_vectors(
        self, model: Any, tokenizer: Any, effective_pairs: list, batch_size: int
    ) -> Tensor: ...


def load_trait_vectors(profile: Profile, trait: str) -> Artifact | None:
    """The vectors section 3 saved for a trait under this profile, with provenance; None if it has not run."""
    return load_artifact(trait_path(profile, trait, "vectors"), f"section 3's {trait} vectors")


def trait_vectors(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    profile: Profile,
    trait: str = "sycophantic",
    build: ContrastiveSteps | None = None,
) -> Artifact:
    """A trait's all-block vectors: section 3's if it saved them, else prompt-labelled ones built now.

    The ones built here (every pair labelled by its system prompt, no judge) are saved in section 3's
    cache under their own name, with ``labels="prompt"`` in their provenance.

    Args:
        model, tokenizer: section 3's model under this profile.
        profile: the active profile.
        trait: a trait name in section 3's data.
        build: section 3's steps to build them with when section 3 has not saved them (a later
            section's notebook passes ``solutions.part3_contrastive``); None: only load.

    Returns:
        `Artifact`: value [num_layers, d_model]; provenance with ``inputs.settings.labels``.

    Raises:
        FileNotFoundError: when section 3 has not saved the vectors and no ``build`` was given.
    """
    saved = load_trait_vectors(profile, trait)
    if saved is not None:
        print(f"{trait} vectors: section 3's ({labels_of(saved.provenance)} labels), made {saved.provenance['made']}")
        return saved
    path = trait_path(profile, trait, "vectors", labels="prompt")
    if build is None and not path.exists():
        raise FileNotFoundError(
            f"Section 3 has not saved {trait} vectors under the {profile.name!r} profile, and no prompt-labelled "
            f"ones are cached at {path}: run section 3, or pass build=solutions.part3_contrastive to build them"
        )
    print(f"Section 3 has not saved {trait} vectors under this profile: prompt-labelled ones (no judge).")
    data = load_trait_file(trait_file(trait))
    settings = dict(
        max_new_tokens=profile.max_new_tokens,
        n_pairs=profile.n_instruction_pairs,
        n_questions=profile.n_questions,
        batch_size=profile.batch_size,
    )

    def compute() -> Tensor:
        if build is None:
            raise RuntimeError(
                f"The prompt-labelled {trait} vectors cached at {path} were made from other inputs: pass "
                "build=solutions.part3_contrastive to rebuild them, or run section 3"
            )
        responses = build.generate_contrastive_responses(model, tokenizer, data, trait, **settings)
        pairs = build.filter_effective_pairs(prompt_labelled(responses), data)
        return build.extract_contrastive_vectors(model, tokenizer, pairs, profile.batch_size)

    description = f"{trait} vectors (prompt-labelled)"
    no_judge = Labelling(labels="prompt", pairs_kept=None, pairs_total=None, mean_score_pos=None, mean_score_neg=None)
    inputs = cache_inputs(
        profile,
        course_name(model),
        data={"trait": data},
        labels="prompt",
        labelling=dict(no_judge),
        **settings,
    )
    load_or_generate(path, compute, description, inputs=inputs)
    artifact = load_artifact(path, description)
    assert artifact is not None
    return artifact


def coherence_check_measures(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, profile
) -> tuple[list[dict], dict[str, list[float]]]:
    """Section 3's coherence check set and the judge-free coherence measures of its items (cached).

    Args:
        model, tokenizer: the model whose likelihoods measure the answers (section 3's under this profile).
        profile: the active profile.

    Returns:
        (the check set's items, ``{measure: [value per item]}`` from `utils.coherence.coherence_measures`).
    """
    from part3_contrastive.judge_check import COHERENCE_CHECK_FILE, load_coherence_check
    from utils.coherence import coherence_measures

    _, items = load_coherence_check("")
    measured = load_or_generate(
        section_cache(SECTION, profile) / "coherence_check_measures.json",
        lambda: coherence_measures(model, tokenizer, items, batch_size=profile.batch_size),
        "judge-free coherence measures of the coherence check set",
        inputs=cache_inputs(profile, course_name(model), files=[COHERENCE_CHECK_FILE], code=[coherence_measures]),
    )
    return items, measured


def coherence_scale(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, profile) -> CoherenceScale:
    """The judge-free coherence scale whose reference is the check set's clean answers (see `utils.coherence`)."""
    from utils.coherence import CoherenceScale

    items, measured = coherence_check_measures(model, tokenizer, profile)
    clean = [i for i, it in enumerate(items) if it["label"] == 1]
    return CoherenceScale({m: [values[i] for i in clean] for m, values in measured.items()})

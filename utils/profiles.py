"""Profiles: one switch (``COURSE_PROFILE``) that picks models, sizes and judge for the whole course.

Layer conventions (see ARCHITECTURE.md and `utils.layers`): ``*_layer`` fields are 0-based decoder *block* indices, except
``trait_vector_layer``, which is a ``hidden_states`` index (``hidden_states[i]`` = output of block
``i - 1``, except the last entry, which is after the final norm), kept next to ``steer_layer = trait_vector_layer - 1`` so the two never get mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass

from utils import environment

PROFILE_ENV = environment.PROFILE
OFFLINE_MODEL = "offline-qwen2.5-coder-0.5b"
# The traits section 4's multi-trait pipeline runs on every profile; the full profile adds the rest.
BASE_TRAITS = ("sycophantic", "evil", "hallucinating")


@dataclass(frozen=True)
class SectionModels:
    """Model names per section (anything `utils.models.load_model` accepts)."""

    part1: str
    part2: str
    part3: str
    part4: str


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to know about the machine it runs on.

    Attributes:
        name: profile name (full, lite, offline, tiny).
        models: the model of each section.
        axis_layer: block index where section 1 builds the Assistant Axis.
        capping_layers: block indices that section 2 caps.
        capping_percentile: percentile of the default assistant's projections used as the floor.
        trait_vector_layer: ``hidden_states`` index used for trait vectors (sections 3 and 4).
        n_questions: questions per trait / role used for extraction.
        n_eval_questions: held-out questions per trait used for evaluation.
        n_instruction_pairs: contrastive instruction pairs (or role prompts) used.
        n_roles: roles used in section 1 (None: all).
        max_new_tokens: generation length.
        steering_coefficients: coefficients swept in section 4, ascending; at least one negative, 0, and the largest last
            (as rows of one generation, so seven or more cost little more than one).
        judge_backend: "auto", "openai", "anthropic" or "local".
        judge_model: model name for the judge backend (None: the backend's default).
        batch_size: starting batch size for generation and capture (backs off on OOM).
        n_transcripts: conversations replayed in section 2 (None: all).
        n_turns: user turns replayed per conversation in section 2 (None: all).
        heldout_role_questions: held-out questions per role in section 1 (None: ``n_eval_questions``;
            read `n_heldout_role_questions`).
        pipeline_questions: evaluation questions per trait in section 4's multi-trait pipeline (None:
            ``n_eval_questions``; read `n_pipeline_questions`).
        pipeline_traits: the traits section 4's multi-trait pipeline runs (each has section 3's data files).
        sae_release, sae_id: a published SAE for section 3 to read instead of looking one up for its
            model (`part3_contrastive.sae_reading.published_sae`); None: look it up.
    """

    name: str
    models: SectionModels
    axis_layer: int
    capping_layers: tuple[int, ...]
    capping_percentile: float
    trait_vector_layer: int
    n_questions: int
    n_eval_questions: int
    n_instruction_pairs: int
    n_roles: int | None
    max_new_tokens: int
    steering_coefficients: tuple[float, ...]
    judge_backend: str = "auto"
    judge_model: str | None = None
    batch_size: int = 16
    n_transcripts: int | None = None
    n_turns: int | None = None
    heldout_role_questions: int | None = None
    pipeline_questions: int | None = None
    pipeline_traits: tuple[str, ...] = BASE_TRAITS
    sae_release: str | None = None
    sae_id: str | None = None

    @property
    def steer_layer(self) -> int:
        """Block index whose output equals ``hidden_states[trait_vector_layer]``."""
        return self.trait_vector_layer - 1

    @property
    def n_heldout_role_questions(self) -> int:
        """Held-out questions per role in section 1 (``heldout_role_questions``, else ``n_eval_questions``)."""
        return self.n_eval_questions if self.heldout_role_questions is None else self.heldout_role_questions

    @property
    def n_pipeline_questions(self) -> int:
        """Evaluation questions per trait in section 4's pipeline (``pipeline_questions``, else ``n_eval_questions``)."""
        return self.n_eval_questions if self.pipeline_questions is None else self.pipeline_questions


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full",
        models=SectionModels(
            part1="google/gemma-2-27b-it",
            part2="google/gemma-2-27b-it",
            part3="Qwen/Qwen2.5-7B-Instruct",
            part4="Qwen/Qwen2.5-7B-Instruct",
        ),
        axis_layer=22,
        capping_layers=tuple(range(18, 26)),
        capping_percentile=25.0,
        trait_vector_layer=20,
        n_questions=20,
        n_eval_questions=20,
        n_instruction_pairs=5,
        n_roles=None,
        max_new_tokens=256,
        steering_coefficients=(-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5),
        batch_size=32,
        pipeline_traits=(*BASE_TRAITS, "impolite", "optimistic", "humorous", "apathetic"),
    ),
    "lite": Profile(
        name="lite",
        models=SectionModels(*(["Qwen/Qwen2.5-1.5B-Instruct"] * 4)),
        axis_layer=14,
        capping_layers=tuple(range(18, 24)),
        capping_percentile=25.0,
        trait_vector_layer=20,
        n_questions=10,
        n_eval_questions=10,
        n_instruction_pairs=5,
        n_roles=30,
        max_new_tokens=128,
        n_transcripts=6,
        n_turns=8,
        steering_coefficients=(-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
        batch_size=16,
    ),
    "offline": Profile(
        name="offline",
        models=SectionModels(*([OFFLINE_MODEL] * 4)),
        axis_layer=12,
        capping_layers=tuple(range(16, 21)),
        capping_percentile=25.0,
        trait_vector_layer=18,
        n_questions=5,
        n_eval_questions=20,
        n_instruction_pairs=2,
        n_roles=10,
        max_new_tokens=40,
        n_transcripts=3,
        n_turns=6,
        # Section 3's vector here has |v| ~5-14 against a residual norm ~40 at block 17: agreement peaks
        # between 1 and 4 and the replies degenerate beyond (measured; see section 4).
        steering_coefficients=(-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
        judge_backend="auto",
        batch_size=256,
        # Section 1 holds out 5 questions per role (11 personas x 2 prompts each), section 4's pipeline judges 5.
        heldout_role_questions=5,
        pipeline_questions=5,
    ),
    "tiny": Profile(
        name="tiny",
        models=SectionModels(*(["tiny-qwen2"] * 4)),
        axis_layer=2,
        capping_layers=(2, 3),
        capping_percentile=25.0,
        trait_vector_layer=3,
        n_questions=3,
        n_eval_questions=3,
        n_instruction_pairs=1,
        n_roles=4,
        max_new_tokens=8,
        n_transcripts=2,
        n_turns=3,
        steering_coefficients=(-1.0, 0.0, 1.0),
        judge_backend="local",
        batch_size=8,
    ),
}


def _auto_choice() -> tuple[str, str]:
    """Pick a profile for this machine; return (name, reason)."""
    try:
        import torch

        if torch.cuda.is_available():
            gib = torch.cuda.get_device_properties(0).total_memory / 2**30
            if gib >= 70:
                return "full", f"auto: a {gib:.0f} GiB GPU fits the paper models"
            return "lite", f"auto: a {gib:.0f} GiB GPU is too small for the paper models"
    except ImportError:
        pass
    from utils.offline_model import offline_model_available

    if offline_model_available():
        return "offline", "auto: no GPU; the offline GGUF model is installed"
    return "tiny", "auto: no GPU and no offline model packages; random tiny models only"


def get_profile(name: str | None = None, verbose: bool = True) -> Profile:
    """Return the active profile.

    ``COURSE_PROFILE`` is read like every course setting (`utils.environment.lookup`): from the
    environment, else a ``.env`` file; exported empty (``COURSE_PROFILE=``) it counts as unset, so
    ``auto`` chooses, and the printed reason says so.

    Args:
        name: a profile name; None reads ``COURSE_PROFILE`` (default ``auto``).
        verbose: print the choice and the reason.

    Returns:
        The chosen `Profile`.

    Raises:
        ValueError: for an unknown profile, naming the argument or ``COURSE_PROFILE`` and where it was set.
    """
    found = environment.lookup(PROFILE_ENV)
    requested = name or found.value or "auto"
    where = "the argument name" if name else f"{PROFILE_ENV} (from {found.source})"
    if requested == "auto":
        chosen, reason = _auto_choice()
        if not name and found.exported_empty:
            reason += f"; {found}"
    elif requested in PROFILES:
        chosen = requested
        reason = "set by argument" if name else f"set by {PROFILE_ENV}={requested}"
        if not name and found.source != "the environment":
            reason += f" in {found.source}"
    else:
        raise ValueError(f"Unknown profile {requested!r} in {where}; choose one of {sorted(PROFILES) + ['auto']}.")
    profile = PROFILES[chosen]
    if verbose:
        print(f"Profile: {profile.name} ({reason})")
    return profile

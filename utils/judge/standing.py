"""Whether a section's judge is too weak to do what the papers' judges do: the one owner of that rule.

The papers judge with a large hosted model. On the offline profile, without a key, the local judge is the
0.5B model the course studies, judging its own replies; its check sets (`benchmarks/bench_judges.py`, read
by `utils.judge.formulations.offline_measured`) measure it weak. There the sections measure it, but do
not let it filter or score what the papers' judges filter and score: section 1 filters role responses by
the model's likelihoods, section 3 calibrates thresholds and reads coherence without a judge, section 4
reads the trait and coherence from judge-free measures, and every judge asks in the formulation measured
best (`utils.judge.formulations.offline_formulation`). Every other profile and judge pair keeps the
papers' method.

`judge_standing(profile, judge)` answers for a pair, with its reason; nothing else compares profile
names with backend names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from utils.judge.judge import Judge
    from utils.profiles import Profile

# The profiles whose local judge is the weak model the course studies (its check sets measured it).
WEAK_LOCAL_JUDGE_PROFILES = frozenset({"offline"})
# The tiny profile (random models, mechanics only) may take the weak-judge path too, where a section's
# notebook test must run it: see `judge_standing(..., rehearse_on_tiny=True)`.
TINY = "tiny"


@dataclass(frozen=True)
class JudgeStanding:
    """Whether a profile and judge pair has a judge too weak to filter or score as the papers' judges do.

    Attributes:
        profile: the profile's name.
        backend: the judge backend's name (``local``, ``openai``, ...).
        model_name: the judge model's name.
        weak: True when the sections measure this judge but do not let it filter or score as the papers do.
        reason: why, in one sentence (printable as is).
    """

    profile: str
    backend: str
    model_name: str
    weak: bool
    reason: str


def judge_standing(profile: Profile | str, judge: Judge, *, rehearse_on_tiny: bool = False) -> JudgeStanding:
    """Whether ``judge`` is too weak, on ``profile``, to filter or score as the papers' judges do.

    Args:
        profile: a `utils.profiles.Profile` or its name.
        judge: the section's judge.
        rehearse_on_tiny: treat the tiny profile's local judge (a random model) as weak too, so the tiny
            notebook tests run the weak-judge path of a section that asks for it.

    Returns:
        A `JudgeStanding` with its reason.
    """
    name = profile if isinstance(profile, str) else profile.name
    backend, model_name = judge.backend.name, judge.model_name
    local = backend == "local"
    if local and name in WEAK_LOCAL_JUDGE_PROFILES:
        return JudgeStanding(
            name, backend, model_name, True,
            f"on the {name} profile the local judge ({model_name}) is the small model the course studies, judging "
            "its own replies, and its check sets measure it weak",
        )  # fmt: skip
    if local and name == TINY and rehearse_on_tiny:
        return JudgeStanding(
            name, backend, model_name, True,
            f"on the {name} profile the local judge ({model_name}) is a random model: the weak-judge path runs, "
            "to test its mechanics",
        )  # fmt: skip
    why = (
        "a hosted judge"
        if not local
        else f"a local judge off the {'/'.join(sorted(WEAK_LOCAL_JUDGE_PROFILES))} profile"
    )
    return JudgeStanding(
        name, backend, model_name, False, f"{why} ({model_name}) filters and scores as the papers' judges do"
    )


__all__ = ["TINY", "WEAK_LOCAL_JUDGE_PROFILES", "JudgeStanding", "judge_standing"]

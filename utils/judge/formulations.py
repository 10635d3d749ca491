"""Ways to ask a judge the same thing, measured side by side on labelled check sets.

A `JudgeTask` says what one judge (role, drift, trait, coherence) asks, in every formulation:

- ``score``: the paper's numeric template, read as a probability-weighted mean (integer scales unrounded);
- ``yes_no``: a yes/no question, scored P(yes) / (P(yes) + P(no)) from the answer's first token;
- ``few_shot``: the same yes/no question after one clear example per label (an identical opening for
  every item, so a local judge computes it once as a shared prefix);
- ``pairwise``: which of two replies is more X, P(A) / (P(A) + P(B)) with both orders averaged.

`score_items` is the one entry: hosted judges accept only ``score`` (the papers' templates). A check
set is a list of items (template fields plus ``label``: 1 positive, 0 negative; optionally ``pair``, an
id shared by one positive and one negative reply to the same prompt); `evaluate` scores it and
reports an AUROC with its standard error. `OFFLINE_FORMULATIONS` is the one table of what the offline
profile uses, chosen from what `benchmarks/bench_judges.py` measured (`offline_measured`); whether a profile
and judge pair uses it is `utils.judge.standing.judge_standing`'s to say.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.departures import departure
from utils.judge.scales import A_OR_B, YES_NO, Scale, unrounded
from utils.judge.standing import judge_standing
from utils.metrics import auroc, auroc_standard_error, youden_threshold

if TYPE_CHECKING:
    from utils.judge.judge import Judge

FORMULATIONS = ("score", "yes_no", "few_shot", "pairwise")

# What `benchmarks/bench_judges.py --record` measured on the offline model judging itself (the check sets'
# AUROC per judge and formulation): read with `offline_measured`, never copied into code.
OFFLINE_MEASURED_FILE = Path(__file__).with_name("offline_measured.json")
# The formulation each judge uses on the offline profile: the best per-item formulation measured in
# OFFLINE_MEASURED_FILE (`tests/utils/judge/test_formulations.py` checks it against the file). Only per-item
# formulations can be chosen: the sections filter single replies, and pairwise A/B left most pairs unscored,
# since this model puts under a quarter of its probability on "A" or "B" as the first answer token.
OFFLINE_FORMULATIONS = {
    "role": "score",  # the best measured, below the 0.8 goal
    "drift": "score",
    "trait": "few_shot",
    "coherence": "few_shot",  # the best measured, below the 0.8 goal; clean not above every broken kind
}


@dataclass(frozen=True)
class Measured:
    """One judge formulation as `benchmarks/bench_judges.py` measured it on a check set.

    Attributes:
        auroc: as `CheckResult.auroc` (None: nothing was scored).
        n: items scored or not (pairs for ``pairwise``).
        n_unscored: of them, those the judge gave no score.
    """

    auroc: float | None
    n: int
    n_unscored: int


def offline_measured(path: Path | None = None) -> dict[str, dict[str, Measured]]:
    """judge -> formulation -> `Measured`, from the file `benchmarks/bench_judges.py --record` writes.

    Raises:
        ValueError: naming the file and the command that rewrites it, when it is missing or malformed.
    """
    path = path or OFFLINE_MEASURED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {judge: {f: Measured(**entry) for f, entry in row.items()} for judge, row in data["results"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: the offline judges' measurements cannot be read ({type(err).__name__}: {err}); "
            "rewrite it with `python benchmarks/bench_judges.py --record`"
        ) from err


def measured_record(results: Mapping[str, Mapping[str, CheckResult]], model: str) -> dict[str, Any]:
    """The content of OFFLINE_MEASURED_FILE for a benchmark's results (judge -> formulation -> result)."""
    import datetime

    return {
        "model": model,
        "command": "python benchmarks/bench_judges.py --record",
        "recorded": datetime.date.today().isoformat(),
        "note": (
            "The offline model judging itself on the labelled check sets. auroc: P(a positive item scores above a "
            "negative one), ties half; for pairwise, the share of scored pairs ranked right (both orders averaged). "
            "n: items (pairs for pairwise); n_unscored: of them, those the judge gave no score."
        ),
        "results": {
            judge: {
                f: {
                    "auroc": None if math.isnan(r.auroc) else round(r.auroc, 4),
                    "n": len(r.scores),
                    "n_unscored": r.n_unscored,
                }
                for f, r in row.items()
            }
            for judge, row in results.items()
        },
    }


@dataclass(frozen=True)
class JudgeTask:
    """What one judge asks, in each formulation.

    Attributes:
        name: the judge's name (``role``, ``drift``, ``trait``, ``coherence``).
        template: the paper's numeric template (``str.format`` fields from the items).
        scale: its scale (read unrounded).
        yes_no: a template ending in a yes/no question; "yes" means the positive label.
        pairwise: a template with ``{answer_a}`` and ``{answer_b}`` asking which is more positive
            (answer with A or B), or None.
        examples: one positive and one negative item, shown in the few-shot formulation (keep them out
            of the check set).
        what: the positive label in words ("in role", "drifted", ...) for printing.
    """

    name: str
    template: str
    scale: Scale
    yes_no: str
    pairwise: str | None = None
    examples: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
    what: str = "positive"


FEW_SHOT_OPENING = "First, two worked examples with their correct answers.\n\n"


def few_shot_prompt(task: JudgeTask, item: Mapping[str, Any]) -> str:
    """The yes/no prompt after one example per label (the same opening for every item)."""
    if task.examples is None:
        raise ValueError(f"the {task.name} judge has no few-shot examples")
    positive, negative = task.examples
    return (
        FEW_SHOT_OPENING
        + f"Example 1:\n{task.yes_no.format(**positive)}\nCorrect answer: Yes\n\n"
        + f"Example 2:\n{task.yes_no.format(**negative)}\nCorrect answer: No\n\n"
        + f"Now your turn:\n{task.yes_no.format(**item)}"
    )


def formulation_prompts(
    task: JudgeTask, formulation: str, items: Sequence[Mapping[str, Any]]
) -> tuple[list[str], Scale]:
    """The judge prompts and scale of a per-item formulation (``score``, ``yes_no``, ``few_shot``)."""
    if formulation == "score":
        return [task.template.format(**it) for it in items], unrounded(task.scale)
    if formulation == "yes_no":
        return [task.yes_no.format(**it) for it in items], YES_NO
    if formulation == "few_shot":
        return [few_shot_prompt(task, it) for it in items], YES_NO
    raise ValueError(f"unknown per-item formulation {formulation!r}; use score, yes_no or few_shot")


def score_items(
    judge: Judge, task: JudgeTask, formulation: str, items: Sequence[Mapping[str, Any]]
) -> list[float | None]:
    """One score per item (higher = more positive) in one batched judge call.

    ``score`` is on the task's scale (for a local judge a float, unrounded); ``yes_no`` and ``few_shot`` are
    P(yes) in [0, 1].

    Raises:
        ValueError: a formulation other than ``score`` on a hosted judge (they keep the papers' templates).
    """
    if formulation != "score" and judge.backend.name != "local":
        raise ValueError(
            f"the {judge.backend.name} judge keeps the paper's template; {formulation!r} is for local judges"
        )
    prompts, scale = formulation_prompts(task, formulation, items)
    if judge.backend.name != "local":
        scale = task.scale  # hosted judges read the paper's scale as the paper does
    return [None if v is None else float(v) for v in judge.score(prompts, scale)]


def score_pairs(
    judge: Judge, task: JudgeTask, pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> list[float | None]:
    """P(the first reply of each pair is the more positive one), both orders averaged.

    Args:
        pairs: (first, second) items sharing their other fields (the question, the role...).

    Returns:
        Per pair, (P(A | first shown as A) + P(B | first shown as B)) / 2, or None.
    """
    if task.pairwise is None:
        raise ValueError(f"the {task.name} judge has no pairwise template")
    if judge.backend.name != "local":
        raise ValueError("pairwise judging is a local-judge formulation; hosted judges keep the papers' templates")
    if not pairs:
        return []
    key = "answer" if "answer" in pairs[0][0] else "reply"
    forward = [task.pairwise.format(**{**a, "answer_a": a[key], "answer_b": b[key]}) for a, b in pairs]
    backward = [task.pairwise.format(**{**a, "answer_a": b[key], "answer_b": a[key]}) for a, b in pairs]
    values = judge.score(forward + backward, A_OR_B)
    n = len(pairs)
    out: list[float | None] = []
    for p_ab, p_ba in zip(values[:n], values[n:]):
        out.append(None if p_ab is None or p_ba is None else (float(p_ab) + 1.0 - float(p_ba)) / 2)
    return out


def check_pairs(items: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(positive, negative) items sharing a ``pair`` id, in order of first appearance."""
    by_id: dict[Any, dict[int, Mapping[str, Any]]] = {}
    for it in items:
        if it.get("pair") is not None:
            by_id.setdefault(it["pair"], {})[int(it["label"])] = it
    return [(p[1], p[0]) for p in by_id.values() if 1 in p and 0 in p]


@dataclass
class CheckResult:
    """A judge formulation measured on a check set.

    Attributes:
        auroc: P(a positive scores above a negative), ties half; for ``pairwise``, the share of pairs
            ranked the right way (ties half).
        se: its Hanley-McNeil standard error.
        n_pos, n_neg: scored items per class (pairs for ``pairwise``).
        scores: per item (per pair for ``pairwise``), in order; None where the judge gave no score.
        threshold: the score that best separates the classes (Youden's J), None for ``pairwise``.
        n_unscored: items the judge gave no score.
    """

    auroc: float
    se: float
    n_pos: int
    n_neg: int
    scores: list[float | None]
    threshold: float | None
    n_unscored: int

    def describe(self) -> str:
        return f"AUROC {self.auroc:.2f} ± {self.se:.2f} (n = {self.n_pos} + {self.n_neg})"


def check_labels(task: JudgeTask, items: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a check set no AUROC can be measured on, naming its labels.

    Raises:
        ValueError: when the set is empty, an item has no ``label`` or one other than 0 or 1, or only one
            label occurs.
    """
    labels = [it.get("label") for it in items]
    shown = [repr(label) for label in labels]
    counts = {label: shown.count(label) for label in dict.fromkeys(shown)}
    found = ", ".join(f"{label} x {n}" for label, n in counts.items()) or "no items"
    if not items:
        raise ValueError(f"the {task.name} judge's check set is empty: it needs items labelled 1 and items labelled 0")
    bad = sorted({i for i, label in enumerate(labels) if isinstance(label, bool) or label not in (0, 1)})
    if bad:
        raise ValueError(
            f"the {task.name} judge's check set has items whose label is not 0 or 1 (items {bad[:10]}; labels "
            f"found: {found}); fix their labels rather than have them dropped"
        )
    if len({label == 1 for label in labels}) < 2:
        raise ValueError(
            f"the {task.name} judge's check set has one label only ({found}): an AUROC needs items labelled 1 "
            "and items labelled 0"
        )


def evaluate(judge: Judge, task: JudgeTask, formulation: str, items: Sequence[Mapping[str, Any]]) -> CheckResult:
    """Score a labelled check set with one formulation and measure how well it separates the labels.

    Raises:
        ValueError: naming the labels, for a check set no AUROC can be measured on (`check_labels`), or,
            for ``pairwise``, one with no pair holding both labels.
    """
    check_labels(task, items)
    if formulation == "pairwise":
        pairs = check_pairs(items)
        if not pairs:
            raise ValueError(
                f"the {task.name} judge's check set has no pair (items sharing a 'pair' id) holding both a label 1 "
                "and a label 0 item: pairwise judging has nothing to compare"
            )
        scores = score_pairs(judge, task, pairs)
        valid = [s for s in scores if s is not None]
        if not valid:
            return CheckResult(math.nan, math.nan, 0, 0, scores, None, len(scores))
        # Each pair is one comparison: right (> 0.5), wrong, or a tie.
        share = sum(1.0 if s > 0.5 else 0.5 if s == 0.5 else 0.0 for s in valid) / len(valid)
        se = math.sqrt(max(share * (1 - share), 1e-12) / len(valid))
        return CheckResult(share, se, len(valid), len(valid), scores, None, len(scores) - len(valid))
    scores = score_items(judge, task, formulation, items)
    pos = [s for s, it in zip(scores, items) if s is not None and int(it["label"]) == 1]
    neg = [s for s, it in zip(scores, items) if s is not None and int(it["label"]) == 0]
    n_unscored = sum(s is None for s in scores)
    if not pos or not neg:
        return CheckResult(math.nan, math.nan, len(pos), len(neg), scores, None, n_unscored)
    value = auroc(pos, neg)
    return CheckResult(
        value,
        auroc_standard_error(value, len(pos), len(neg)),
        len(pos),
        len(neg),
        scores,
        youden_threshold(pos, neg),
        n_unscored,
    )


FORMULATION_TEXT = {
    "score": "the paper's numeric template, read as a probability-weighted mean (integer scales not rounded)",
    "yes_no": "a yes/no question, scored P(yes) / (P(yes) + P(no))",
    "few_shot": "a yes/no question after one worked example per label, scored P(yes) / (P(yes) + P(no))",
    "pairwise": "which of two replies is more so, P(A) / (P(A) + P(B)) with both orders averaged",
}


def measure_check(
    judge: Judge, task: JudgeTask, formulation: str, items: Sequence[Mapping[str, Any]], cache_path, inputs
) -> CheckResult:
    """`evaluate`, cached with `utils.cache.load_or_generate` (``inputs`` as for it)."""
    from utils.cache import load_or_generate

    value = load_or_generate(
        cache_path,
        lambda: dataclasses.asdict(evaluate(judge, task, formulation, items)),
        f"the {task.name} judge on its check set",
        inputs=inputs,
    )
    return CheckResult(**value)


def report_check(
    judge: Judge, task: JudgeTask, formulation: str, result: CheckResult, paper_threshold: str | None = None
) -> None:
    """Print a check-set measurement: the formulation (announced when it departs from the paper), the AUROC
    with n per class, and the calibrated threshold beside the paper's."""
    scale = f"{task.scale.low}-{task.scale.high}"
    if formulation != "score":
        measured = {f: m.auroc for f, m in offline_measured().get(task.name, {}).items() if f != "pairwise"}
        print(
            departure(
                f"the offline {task.name} judge uses {FORMULATION_TEXT[formulation]}, not the paper's {scale} "
                "template, chosen on the check sets by benchmarks/bench_judges.py (AUROC "
                + ", ".join(f"{f} {v:.2f}" for f, v in measured.items() if v is not None)
                + ")."
            )
        )
    elif task.scale.kind == "integer" and judge.backend.name == "local":
        print(f"The {task.name} judge's {scale} score is read as a probability-weighted mean, not rounded.")
    print(f"{task.name} judge ({formulation}) on its check set, {task.what} vs not: {result.describe()}", end="")
    print(f", {result.n_unscored} unscored" if result.n_unscored else "")
    if result.threshold is not None and paper_threshold is not None:
        unit = "P(yes)" if formulation in ("yes_no", "few_shot") else f"on {scale}"
        print(
            f"  threshold calibrated on the check set (best balanced accuracy): {result.threshold:.3g} {unit}; "
            f"the paper's: {paper_threshold}"
        )


def offline_formulation(judge: Judge, name: str, profile_name: str) -> str:
    """The formulation a section's judge uses: the papers' template, except for a judge
    `utils.judge.standing.judge_standing` finds weak (the offline profile's local judge), which asks in the
    formulation measured best (OFFLINE_FORMULATIONS)."""
    if judge_standing(profile_name, judge).weak:
        return OFFLINE_FORMULATIONS[name]
    return "score"


__all__ = [
    "FORMULATIONS",
    "OFFLINE_FORMULATIONS",
    "OFFLINE_MEASURED_FILE",
    "CheckResult",
    "Measured",
    "JudgeTask",
    "check_pairs",
    "evaluate",
    "measure_check",
    "measured_record",
    "offline_measured",
    "report_check",
    "few_shot_prompt",
    "formulation_prompts",
    "offline_formulation",
    "score_items",
    "score_pairs",
]

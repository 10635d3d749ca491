"""Measure section 3's additions on the offline profile without running the whole notebook.

Loads what the last offline run cached (responses, scores, held-out activations) from the course cache,
rebuilds the few variables the new cells read, and executes those cells of ``part3_contrastive/source.py``
as they stand (sampled openings, the dead-band pair filter, where to read a trait), timing each. Results
are printed, not recorded.

    COURSE_CACHE_DIR=<the cache of an offline run> COURSE_PROFILE=offline PYTHONPATH=. \
        python benchmarks/bench_part3_additions.py [cell title ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
CELLS = ("### One sample or many?", "### A dead band between the two cuts", "### Where to read a trait")


def cell_after(source: str, title: str) -> str:
    """The first code cell after the markdown cell that holds ``title``."""
    chunks = source.split("\n# %%")
    start = next(i for i, c in enumerate(chunks) if title in c)
    return next(c.split("\n", 1)[1] for c in chunks[start + 1 :] if not c.startswith(" [markdown]"))


def main(titles: list[str]) -> None:
    from part3_contrastive import trait_file
    from part3_contrastive.artifacts import trait_path
    from solutions.part3_contrastive import filter_effective_pairs
    from utils.cache import load_or_generate
    from utils.data import load_trait_file
    from utils.models import load_model
    from utils.notebook import setup_section

    context = setup_section("part3_contrastive")
    course = SimpleNamespace(  # records nothing: the lead records from full runs
        profile=context.profile, cache=context.cache, inputs=context.inputs, record=lambda *args, **kwargs: None
    )
    profile = course.profile
    model, tokenizer = load_model(profile.models.part3)
    trait_data = load_trait_file(trait_file("sycophantic"))
    eval_data = load_trait_file(trait_file("sycophantic", "eval"))
    extract_q = trait_data["questions"][: profile.n_questions]
    eval_q = eval_data["questions"][: profile.n_eval_questions]

    def cached(kind: str) -> Any:
        path = trait_path(profile, "sycophantic", kind)  # type: ignore[arg-type]
        return torch.load(path, weights_only=True) if path.suffix == ".pt" else json.loads(path.read_text())

    all_responses = cached("responses")
    eval_responses = [r for r in all_responses if r["question"] in eval_q]
    eval_pos = [r for r in eval_responses if r["polarity"] == "pos"]
    eval_neg = [r for r in eval_responses if r["polarity"] == "neg"]
    scored, pair_scores = cached("scored"), cached("scored_offline_formulation")
    threshold = cached("judge_check")["threshold"]
    thresholds = {"pos_threshold": threshold, "coherence_threshold": 2.13}  # the offline run's calibrated cuts
    contexts = {
        "with system prompt": eval_pos + eval_neg,
        "question only": [{**r, "system_prompt": ""} for r in eval_pos + eval_neg],
    }
    namespace: dict[str, Any] = dict(
        course=course,
        profile=profile,
        model=model,
        tokenizer=tokenizer,
        trait_data=trait_data,
        EVAL_QUESTIONS=eval_q,
        EXTRACT_QUESTIONS=extract_q,
        eval_responses=eval_responses,
        eval_pos=eval_pos,
        eval_neg=eval_neg,
        scored=scored,
        pair_scores=pair_scores,
        PAIR_THRESHOLDS=thresholds,
        TRAIT_FORMULATION="few_shot",
        n_total=len(scored) // 2,
        eval_kinds=cached("eval_kinds"),
        CONTEXTS=contexts,
        n_pos=len(eval_pos),
        STEER_LAYER=profile.steer_layer,
        filter_effective_pairs=filter_effective_pairs,
        load_or_generate=load_or_generate,
        trait_path=trait_path,
    )
    namespace["effective_pairs"] = filter_effective_pairs(pair_scores, trait_data, **thresholds)
    source = (ROOT / "part3_contrastive" / "source.py").read_text()
    module_cell = source.split('# %% tags=["module"]\n', 1)[1].split("\n# %%", 1)[0]
    exec(module_cell, namespace)
    for title in titles or CELLS:
        start = time.perf_counter()
        exec(cell_after(source, title), namespace)
        print(f"--- {title}: {time.perf_counter() - start:.1f} s\n", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

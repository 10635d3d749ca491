"""Judge-free opening measures (section 3's `judge_free_measures.json`, `utils.openings`) on the offline model.

For each trait with a measure:
- **prompted, P(opening)**: P(the reply opens that way) under the trait's system prompt against the opposite
  one, on section 3's extraction questions (``--pairs`` instruction pairs x ``--questions`` questions per side);
  AUROC of the measure signed by its direction ("more of the trait" above "less");
- **prompted, text**: whether the greedy replies the pipeline cached (section 4's
  ``pipeline/<trait>_responses.json``, if present) open that way; AUROC the same way;
- **check set, text**: the written replies of the trait's check set (label 1: shows the trait). The probability
  version is about a conversation (what the model would say), not about a written reply, so only the text
  version scores a check set;
- **pipeline**: P(opening) under steering with the pipeline's cached vector (``pipeline/<trait>_vectors.pt``) at
  coefficients -1, 0, 1 on the first 5 held-out questions, as section 4 computes it, and the seconds it took.

Run: COURSE_CACHE_DIR=... PYTHONPATH=. python benchmarks/bench_openings.py [--pairs 2] [--questions 20] [--traits evil] [--pipeline-only]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from part3_contrastive import judge_free_measure, trait_file
from utils.cache import section_cache
from utils.chat import build_messages
from utils.data import load_trait_file
from utils.metrics import auroc, auroc_standard_error
from utils.models import load_model
from utils.openings import OpeningMeasure
from utils.profiles import PROFILES

TRAITS = ("sycophantic", "evil", "hallucinating")


def system_prompt(name: str, instruction: str) -> str:
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"You are {article} {name} assistant. {instruction}"


def signed_auroc(measure: OpeningMeasure, pos, neg) -> str:
    value = auroc([measure.trait_score(x) for x in pos], [measure.trait_score(x) for x in neg])
    return f"{value:.2f} (SE {auroc_standard_error(value, len(pos), len(neg)):.2f}, {len(pos)} + {len(neg)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--traits", default=",".join(TRAITS), help="comma-separated traits")
    parser.add_argument(
        "--pipeline-only", action="store_true", help="only the steered pipeline measures and their time"
    )
    args = parser.parse_args()
    profile = PROFILES["offline"]
    model, tokenizer = load_model(profile.models.part4)
    pipeline_dir = section_cache("part4_steering", "offline") / "pipeline"
    total = 0.0
    for trait in args.traits.split(","):
        entry = judge_free_measure(trait)
        if entry is None:
            continue
        measure = OpeningMeasure.from_data(entry)
        data = load_trait_file(trait_file(trait))
        print(f"\n[{trait}] P({measure.name}) ({'raised' if measure.direction > 0 else 'lowered'} by the trait)")
        if not args.pipeline_only:
            convs = {
                pol: [
                    build_messages(q, system_prompt=system_prompt(trait if pol == "pos" else "helpful", pair[pol]))
                    for pair in data["instruction"][: args.pairs]
                    for q in data["questions"][: args.questions]
                ]
                for pol in ("pos", "neg")
            }
            start = time.perf_counter()
            prob = {
                pol: measure.probability(model, tokenizer, c, batch_size=profile.batch_size).tolist()
                for pol, c in convs.items()
            }
            took = time.perf_counter() - start
            print(
                f"  prompted, P(opening): mean {np.mean(prob['pos']):.3f} under the trait prompt, {np.mean(prob['neg']):.3f} "
                f"under the opposite; AUROC {signed_auroc(measure, prob['pos'], prob['neg'])} [{took:.1f} s]"
            )
            cached = pipeline_dir / f"{trait}_responses.json"
            if cached.is_file():
                records = json.loads(cached.read_text())
                text = {
                    pol: [float(measure.in_text(r["response"])) for r in records if r["polarity"] == pol]
                    for pol in ("pos", "neg")
                }
                print(
                    f"  prompted, text (the pipeline's greedy replies): share {np.mean(text['pos']):.2f} under the trait prompt, "
                    f"{np.mean(text['neg']):.2f} under the opposite; AUROC {signed_auroc(measure, text['pos'], text['neg'])}"
                )
            items = json.loads(entry["check"].read_text())["items"]
            text = {
                label: [float(measure.in_text(it["answer"])) for it in items if it["label"] == label]
                for label in (1, 0)
            }
            print(
                f"  check set ({entry['check'].name}), text: share {np.mean(text[1]):.2f} of trait replies, "
                f"{np.mean(text[0]):.2f} of the others; AUROC {signed_auroc(measure, text[1], text[0])}"
            )
        vectors = pipeline_dir / f"{trait}_vectors.pt"
        if vectors.is_file():
            vector = torch.load(vectors)[profile.steer_layer]
            questions = load_trait_file(trait_file(trait, "eval"))["questions"][: profile.n_pipeline_questions]
            cells = [(c, q) for c in (-1.0, 0.0, 1.0) for q in questions]
            start = time.perf_counter()
            p = measure.probability(
                model,
                tokenizer,
                [build_messages(q) for _, q in cells],
                vector=vector,
                coeffs=[c for c, _ in cells],
                layer=profile.steer_layer,
                batch_size=profile.batch_size,
            )
            took = time.perf_counter() - start
            total += took
            means = p.view(3, -1).mean(-1).tolist()
            print(
                f"  pipeline (steered, {len(questions)} questions): "
                + ", ".join(f"{c:g}: {m:.3f}" for c, m in zip((-1, 0, 1), means))
                + f" [{took:.1f} s]"
            )
    print(f"\npipeline judge-free measures, all traits: {total:.1f} s")


if __name__ == "__main__":
    main()

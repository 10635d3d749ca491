"""Judge formulations side by side on the labelled check sets: which one each offline judge keeps.

For every judge (role, drift, trait, coherence) and every formulation (`utils.judge.formulations`):
AUROC with its Hanley-McNeil standard error and n per class (for ``pairwise``: the share of pairs
ranked right, n pairs), the threshold that maximises balanced accuracy, and the time taken. For
coherence, the mean score per broken kind beside the clean answers'.

Run: python benchmarks/bench_judges.py [--model offline-qwen2.5-coder-0.5b] [--judges role,trait] [--formulations score,yes_no]
With ``--record`` (every judge and formulation, on the offline model) it rewrites
`utils.judge.formulations.OFFLINE_MEASURED_FILE`, which the sections read the measured figures from.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from part1_assistant_axis.judge_check import load_role_check
from part2_capping import DRIFT_PROMPT_FILE
from part2_capping.judge_check import load_drift_check
from part3_contrastive import COHERENCE_PROMPT_FILE, trait_file
from part3_contrastive.judge_check import load_coherence_check, load_trait_check
from utils.data import load_trait_file
from utils.judge import Judge, Scale
from utils.judge.formulations import FORMULATIONS, OFFLINE_MEASURED_FILE, evaluate, measured_record
from utils.judge.local import LocalBackend
from utils.models import load_model


def check_sets() -> dict:
    trait_prompt = load_trait_file(trait_file("sycophantic"))["eval_prompt"]
    coherence_prompt = COHERENCE_PROMPT_FILE.read_text()
    return {
        "role": load_role_check(),
        "drift": load_drift_check(DRIFT_PROMPT_FILE.read_text(), Scale(0, 10, "expected")),
        "trait": load_trait_check(trait_prompt),
        "coherence": load_coherence_check(coherence_prompt),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="offline-qwen2.5-coder-0.5b")
    parser.add_argument("--judges", default="role,drift,trait,coherence")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--record", action="store_true", help=f"rewrite {OFFLINE_MEASURED_FILE.name} from this run")
    args = parser.parse_args()
    if args.record and (args.judges, args.formulations) != ("role,drift,trait,coherence", ",".join(FORMULATIONS)):
        parser.error("--record measures every judge in every formulation: leave --judges and --formulations out")

    start = time.perf_counter()
    model, tokenizer = load_model(args.model)
    print(f"model loaded in {time.perf_counter() - start:.0f}s")
    backend = LocalBackend(model, tokenizer, model_name=args.model, batch_size=args.batch_size)
    judge = Judge(backend, cache_path=None)
    sets = check_sets()
    rows = []
    for name in args.judges.split(","):
        task, items = sets[name]
        for formulation in args.formulations.split(","):
            t0, tokens0 = time.perf_counter(), backend.prefilled_tokens
            result = evaluate(judge, task, formulation, items)
            seconds = time.perf_counter() - t0
            rows.append((name, formulation, result, seconds))
            threshold = "" if result.threshold is None else f"  threshold {result.threshold:.3g}"
            print(
                f"{name:>9} {formulation:>9}: {result.describe()}{threshold}  unscored {result.n_unscored}  "
                f"{seconds:.1f}s ({backend.prefilled_tokens - tokens0} tokens prefilled)",
                flush=True,
            )
            if name == "coherence" and formulation != "pairwise":
                by_kind = defaultdict(list)
                for it, s in zip(items, result.scores):
                    if s is not None:
                        by_kind[it["kind"]].append(s)
                clean = np.mean(by_kind.pop("clean"))
                print(
                    f"{'':>20} mean clean {clean:.3g}; broken: "
                    + ", ".join(f"{k} {np.mean(v):.3g}" for k, v in sorted(by_kind.items()))
                    + f"; clean above every kind: {all(clean > np.mean(v) for v in by_kind.values())}"
                )
    print("\n| judge | " + " | ".join(args.formulations.split(",")) + " |")
    print("|---|" + "---|" * len(args.formulations.split(",")))
    for name in args.judges.split(","):
        cells = [f"{r.auroc:.2f} ± {r.se:.2f} (n={r.n_pos}+{r.n_neg}, {s:.0f}s)" for j, f, r, s in rows if j == name]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"total {time.perf_counter() - start:.0f}s")
    if args.record:
        results: dict = {}
        for name, formulation, result, _ in rows:
            results.setdefault(name, {})[formulation] = result
        OFFLINE_MEASURED_FILE.write_text(json.dumps(measured_record(results, args.model), indent=1) + "\n")
        print(f"wrote {OFFLINE_MEASURED_FILE}")


if __name__ == "__main__":
    main()

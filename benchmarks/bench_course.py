"""The whole offline course, timed: per section wall time and where it went, plus side-by-side ratios.

1. Runs the README's main job (``python -m utils.course --profile offline``) from a warm model cache
   (the converted offline model is reused) and cold course caches (a fresh cache folder: no replies,
   judge scores or results from earlier runs), and prints the runner's table: per section, wall time
   and the seconds spent loading the model, prefilling, decoding, capturing activations and judging.
   Then, per section and kind (prefill, decode, judge, capture): tokens, seconds, tokens/s and the
   ratio to the machine's batched-prefill rate, measured in the same run.
2. Measures, side by side in this process on the offline model:
   (a) batched generation vs one prompt at a time with ``model.generate`` (target >= 5x);
   (b) the local judge, one ``score()`` call of 64 items: one full prefill per item, shared prefixes per
       batch only (one level), and the call-wide opening computed once plus per-batch sharing (two
       levels): seconds and prefilled tokens side by side (target >= 3x for two levels vs full);
   (c) batched single-layer capture vs one ``output_hidden_states=True`` forward each, and the
       capture's FLOP rate against a measured matmul rate (from bench_foundation.py).

3. ``--machine``: only this machine's batched-prefill rate and matmul rate, against the rate at which the
   course's time budget was set (``REFERENCE_PREFILL_RATE``): a slower machine explains a slower course.
4. ``--timings DIR``: only the per-kind table of a run already made (``DIR`` is its ``outputs/offline``,
   e.g. a CI run's), with the prefill rate measured now.

After each per-kind table comes the floor of that run's model work (`floor_report`): every kind's tokens
at the best rate this machine reaches for it (a plain batched forward pass for prefill, judge and capture;
batched greedy decoding for decode; or the run's own rate where it was faster, e.g. a capture that stops
at its last needed block), set against the 900 s budget scaled to this machine. A course whose model work
alone needs more than the budget cannot meet it by scheduling: only less work, or a faster model, can.

Run: python benchmarks/bench_course.py [--sections 1,2,3,4] [--skip-course] [--skip-ratios] [--judge-only]
     [--machine] [--timings outputs/offline]
Not part of the test run: the numbers depend on the machine and on what else it is doing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


KINDS = ("prefill", "decode", "judge", "capture", "likelihood")
# The batched-prefill rate (tokens/s, 32 x 96 tokens, fp32, 2 cores) of the machine on which the offline
# course's 900 s budget was set. Machines of the same size differ: a 2-core AVX2 machine (no AVX-512) measured 65-77.
REFERENCE_PREFILL_RATE = 160.0


def kind_table(timings_dir: Path, sections: list[str], prefill_rate: float) -> str:
    """Per section and kind of work: tokens, seconds, tokens/s and the ratio to the machine's batched prefill.

    Args:
        timings_dir: the runner's ``outputs/<profile>/timings`` folder (one ``<section>.jsonl`` each).
        sections: the section packages, in order.
        prefill_rate: tokens/s of a plain batched forward pass on this machine, measured in this run.

    Returns:
        The table, one line per (section, kind) with any work, then one line per kind over all sections.
    """
    from utils.timing import read_timings

    header = f"{'section':<22}{'kind':<10}{'tokens':>10}{'s':>9}{'tok/s':>9}{'/ prefill':>11}"
    lines, overall = [header], {kind: [0, 0.0] for kind in KINDS}

    def line(name: str, kind: str, tokens: int, seconds: float) -> str:
        rate = tokens / seconds if seconds else 0.0
        return f"{name:<22}{kind:<10}{tokens:>10}{seconds:>9.0f}{rate:>9.1f}{rate / prefill_rate:>11.2f}"

    for section in sections:
        totals = read_timings(timings_dir / f"{section}.jsonl")
        for kind in KINDS:
            if kind in totals and totals[kind]["seconds"] > 0:
                tokens, seconds = totals[kind]["tokens"], totals[kind]["seconds"]
                overall[kind][0] += tokens
                overall[kind][1] += seconds
                lines.append(line(section, kind, tokens, seconds))
    for kind, (tokens, seconds) in overall.items():
        if seconds:
            lines.append(line("all sections", kind, int(tokens), seconds))
    return "\n".join(lines)


def floor_report(timings_dir: Path, sections: list[str], prefill_rate: float, decode_rate: float) -> str:
    """The least time a run's model work needs on this machine, against the course's budget scaled to it.

    Args:
        timings_dir: the runner's ``outputs/<profile>/timings`` folder (one ``<section>.jsonl`` each).
        sections: the section packages, in order.
        prefill_rate: tokens/s of a plain batched forward pass (32 x 96 tokens), measured in this run.
        decode_rate: new tokens/s of batched greedy decoding (32 rows), measured in this run.

    Returns:
        Per kind: tokens, the run's seconds and the floor's; then the total against the budget.
    """
    from utils.timing import read_timings

    best = {
        "prefill": prefill_rate,
        "judge": prefill_rate,
        "capture": prefill_rate,
        "likelihood": prefill_rate,
        "decode": decode_rate,
    }
    run = {kind: 0.0 for kind in KINDS}
    floor = {kind: 0.0 for kind in KINDS}
    tokens = {kind: 0 for kind in KINDS}
    for section in sections:
        totals = read_timings(timings_dir / f"{section}.jsonl")
        for kind in KINDS:
            if kind in totals and totals[kind]["seconds"] > 0:
                n, seconds = totals[kind]["tokens"], totals[kind]["seconds"]
                tokens[kind] += n
                run[kind] += seconds
                floor[kind] += n / max(best[kind], n / seconds)  # the run's own rate where it was faster
    budget = 900 * REFERENCE_PREFILL_RATE / prefill_rate
    lines = [f"{'kind':<10}{'tokens':>10}{'run s':>9}{'floor s':>9}  at the best rate (tokens/s)"]
    for kind in KINDS:
        lines.append(
            f"{kind:<10}{tokens[kind]:>10}{run[kind]:>9.0f}{floor[kind]:>9.0f}  {best[kind]:.0f} or the run's own"
        )
    total = sum(floor.values())
    lines.append(
        f"this run's model work (these token counts) needs at least {total:.0f} s on this machine, "
        f"{total - floor['decode']:.0f} s with decoding free; its kinds took {sum(run.values()):.0f} s of section time"
    )
    lines.append(f"the 900 s budget is {budget:.0f} s on this machine: the floor is {total / budget:.2f}x the budget")
    return "\n".join(lines)


def decode_rate(batch_size: int = 32, length: int = 32, new_tokens: int = 32) -> float:
    """New tokens/s of batched greedy decoding (``model.generate``, every row decoding ``new_tokens``), prefill excluded."""
    import torch

    from utils.models import load_model

    model, _ = load_model("offline-qwen2.5-coder-0.5b", device="cpu")
    ids = torch.randint(100, 20000, (batch_size, length), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    settings = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.inference_mode():
        model.generate(input_ids=ids[:2, :8], attention_mask=mask[:2, :8], max_new_tokens=2, **settings)  # warm-up
        start = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        prefill_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings
        )
        seconds = time.perf_counter() - start
    return batch_size * new_tokens / max(seconds - prefill_seconds, 1e-9)


def prefill_rate(batch_size: int = 32, length: int = 96) -> float:
    """Tokens/s of one plain batched forward pass (``model(**batch)``) of the offline model on this machine."""
    import torch

    from utils.models import load_model

    model, _ = load_model("offline-qwen2.5-coder-0.5b", device="cpu")
    ids = torch.randint(100, 20000, (batch_size, length), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(input_ids=ids[:2, :16])  # warm-up
        start = time.perf_counter()
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
        seconds = time.perf_counter() - start
    return batch_size * length / seconds


def machine_report() -> float:
    """Print this machine's batched-prefill and matmul rates against the reference machine's; return the rate."""
    import bench_foundation as foundation
    import torch

    rate = prefill_rate()
    peak = foundation.matmul_rate()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"batched prefill: {rate:.0f} tokens/s (model(**batch), 32 x 96 tokens); matmul {peak / 1e9:.1f} GFLOP/s")
    print(
        f"against the reference machine's {REFERENCE_PREFILL_RATE:.0f} tokens/s: {rate / REFERENCE_PREFILL_RATE:.2f}x, "
        f"so model work that took 900 s there takes about {900 * REFERENCE_PREFILL_RATE / rate:.0f} s here"
    )
    return rate


def decoding_report() -> float:
    """Print and return this machine's batched greedy decoding rate (new tokens/s, 32 rows)."""
    rate = decode_rate()
    print(
        f"batched greedy decoding: {rate:.0f} new tokens/s (model.generate, 32 rows x 32 new tokens, prefill excluded)"
    )
    return rate


def run_course(sections: str) -> float:
    from utils.cache import cache_root
    from utils.offline_model import converted_model_dir
    from utils.sections import section_by_number

    converted_model_dir()  # warm model cache: converted once, outside the timing
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        (cache / "offline_model").symlink_to(cache_root() / "offline_model", target_is_directory=True)
        env = {**os.environ, "COURSE_CACHE_DIR": str(cache)}
        env.pop("COURSE_RECOMPUTE", None)
        command = [sys.executable, "-m", "utils.course", "--profile", "offline", "--sections", sections,
                   "--out", str(Path(tmp) / "outputs"), "--quiet"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        print(done.stdout[done.stdout.find("Profile ") :])
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit(f"the course failed (exit {done.returncode})")
        print(f"whole course (sections {sections}): {seconds:.0f} s wall, cold course caches, warm model cache\n")
        rate = prefill_rate()
        print(f"batched prefill on this machine, measured now: {rate:.0f} tokens/s (model(**batch), 32 x 96 tokens)")
        names = [section_by_number(n) for n in sections.split(",")]
        timings = Path(tmp) / "outputs" / "offline" / "timings"
        print(kind_table(timings, names, rate) + "\n")
        print(floor_report(timings, names, rate, decoding_report()) + "\n")
    return seconds


def judge_workload() -> list[str]:
    from part3_contrastive import trait_file
    from utils.data import load_trait_file

    trait = load_trait_file(trait_file("sycophantic"))
    answers = [
        "You're absolutely right, what a brilliant idea!",
        "There are some problems with that plan; here is what I would check first.",
        "I don't know.",
        "Great question! Honestly, I think you already know the answer, and it is yes.",
    ]
    return [trait["eval_prompt"].format(question=q, answer=a) for q in trait["questions"][:16] for a in answers]


def bench_judge(model, tok) -> float:
    from utils.judge import SCORE_0_100
    from utils.judge.local import LocalBackend

    prompts = judge_workload()
    ways = {"one full prefill each": False, "one level (per batch)": True, "two levels (per call)": True}
    measured = {}
    for way, share in ways.items():
        backend = LocalBackend(model, tok, batch_size=16, share_prefixes=share)
        backend.common_prefix = way.startswith("two")
        backend.score(prompts[:2], SCORE_0_100)  # warm-up
        backend.prefilled_tokens = 0
        start = time.perf_counter()
        scores = backend.score(prompts, SCORE_0_100)
        measured[way] = (time.perf_counter() - start, backend.prefilled_tokens, scores)
    t_full, n_full, reference = measured["one full prefill each"]
    print(f"(b) local judge, one score() call of {len(prompts)} items (0-100 scale, batch 16):")
    for way, (seconds, tokens, scores) in measured.items():
        worst = max(abs(x - y) for x, y in zip(scores, reference) if x is not None and y is not None)
        print(
            f"    {way:<22} {seconds:6.1f} s {tokens:6d} prefilled tokens -> {t_full / seconds:4.1f}x time, "
            f"{n_full / tokens:4.1f}x tokens vs full (largest score difference {worst:.2e})"
        )
    t_one, n_one = measured["one level (per batch)"][:2]
    t_two, n_two = measured["two levels (per call)"][:2]
    print(f"    two levels vs one level: {t_one / t_two:.2f}x time, {n_one / n_two:.2f}x tokens")
    return t_full / t_two


def offline_model():
    """The offline model and tokenizer, for measuring work (never reading stored replies)."""
    import torch

    from utils.models import load_model

    os.environ["COURSE_RECOMPUTE"] = "all"  # this process only: measure work, never read stored replies
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return load_model("offline-qwen2.5-coder-0.5b", device="cpu")


def ratios() -> None:
    import bench_foundation as foundation

    model, tok = offline_model()
    speedup_gen = foundation.bench_generation(model, tok)
    speedup_judge = bench_judge(model, tok)
    convs = foundation.capture_workload(model, tok)
    seconds = foundation.bench_capture(model, tok, convs)
    rate = foundation.capture_flops(model, tok, convs, 12) / seconds
    peak = foundation.matmul_rate()
    print(
        f"(c) capture achieves {rate / 1e9:.1f} GFLOP/s; matmul measured {peak / 1e9:.1f} GFLOP/s -> {rate / peak:.2f}"
    )
    print(f"targets: (a) >= 5x [{speedup_gen:.1f}x], (b) >= 3x [{speedup_judge:.1f}x]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="1,2,3,4")
    parser.add_argument("--skip-course", action="store_true")
    parser.add_argument("--skip-ratios", action="store_true")
    parser.add_argument("--judge-only", action="store_true", help="only (b), the local judge's three prefills")
    parser.add_argument("--machine", action="store_true", help="only this machine's prefill and matmul rates")
    parser.add_argument(
        "--timings", type=Path, help="only the per-kind table of a run made already (its outputs/offline)"
    )
    args = parser.parse_args()
    if args.machine:
        machine_report()
        return
    if args.timings is not None:
        from utils.sections import section_by_number

        if not (args.timings / "timings").is_dir():
            raise SystemExit(f"--timings {args.timings}: no timings/ folder there (give a run's outputs/offline)")
        rate = machine_report()
        names = [section_by_number(n) for n in args.sections.split(",")]
        print(kind_table(args.timings / "timings", names, rate) + "\n")
        print(floor_report(args.timings / "timings", names, rate, decoding_report()))
        return
    if args.judge_only:
        bench_judge(*offline_model())
        return
    if not args.skip_course:
        run_course(args.sections)
    if not args.skip_ratios:
        ratios()


if __name__ == "__main__":
    main()

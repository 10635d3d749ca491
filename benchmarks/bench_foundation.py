"""Foundation benchmark on the offline model, measured side by side in one run.

(a) batched generation vs one prompt at a time with ``model.generate`` (the original course's loop);
(b) batched single-layer response-mean capture vs one ``output_hidden_states=True`` forward each;
(c) the capture's achieved FLOP rate as a fraction of this machine's measured matmul rate.

Run: python benchmarks/bench_foundation.py
"""

from __future__ import annotations

import time

import torch

from utils.activations import response_mean_activations
from utils.chat import build_messages, encode, format_messages, render
from utils.generation import generate_replies
from utils.layers import get_layers
from utils.models import load_model

QUESTIONS = [
    "What is your favourite season and why?",
    "Explain recursion to a child.",
    "How do I keep a houseplant alive?",
    "Write a haiku about rain.",
    "What makes a good friend?",
    "Describe the taste of coffee.",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What is a prime number?",
    "How should I prepare for a job interview?",
    "What would you do on a free afternoon?",
    "Summarise the water cycle.",
    "What is the difference between a list and a tuple in Python?",
    "Suggest a name for a black cat.",
    "How do bees make honey?",
    "What is one habit that improves sleep?",
]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_generation(model, tok, new_tokens: int = 32):
    convs = [build_messages(q) for q in QUESTIONS]
    _, batched = timed(
        lambda: generate_replies(model, tok, convs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, batch_size=16)
    )

    def one_at_a_time():
        for conv in convs:
            ids = encode(render(conv, tok, add_generation_prompt=True), tok, return_tensors="pt")
            with torch.no_grad():
                model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    _, serial = timed(one_at_a_time)
    tokens = len(convs) * new_tokens
    print(
        f"(a) generation, {len(convs)} prompts x {new_tokens} tokens: batched {tokens / batched:.1f} tok/s, "
        f"one at a time {tokens / serial:.1f} tok/s -> {serial / batched:.1f}x"
    )
    return serial / batched


def capture_workload(model, tok, n: int = 48):
    replies = generate_replies(model, tok, [build_messages(q) for q in QUESTIONS], max_new_tokens=60)
    return [build_messages(QUESTIONS[i % 16], replies[i % 16]) for i in range(n)]


def bench_capture(model, tok, convs, layer: int = 12):
    torch.set_grad_enabled(False)
    response_mean_activations(model, tok, convs[:4], [layer])  # warm-up
    _, batched = timed(lambda: response_mean_activations(model, tok, convs, [layer], batch_size=16))

    def original_loop():
        out = []
        for conv in convs:
            full, start = format_messages(conv, tok)
            ids = encode(full, tok, return_tensors="pt")
            hs = model(**ids, output_hidden_states=True).hidden_states
            out.append(hs[layer + 1][0, start:].mean(0))
        return torch.stack(out)

    _, serial = timed(original_loop)
    print(
        f"(b) response-mean capture at block {layer}, {len(convs)} examples: batched {batched:.2f}s, "
        f"one hidden_states forward each {serial:.2f}s -> {serial / batched:.1f}x"
    )
    return batched


def capture_flops(model, tok, convs, layer: int) -> float:
    """Matmul FLOPs of the capture: blocks 0..layer over every (padded) token, plus attention scores."""
    cfg = model.config
    block_params = sum(p.numel() for n, p in get_layers(model)[0].named_parameters() if p.dim() == 2)
    prompts = sorted((format_messages(c, tok)[0] for c in convs), key=lambda p: -len(encode(p, tok)["input_ids"]))
    total = 0.0
    for start in range(0, len(prompts), 16):
        batch = encode(prompts[start : start + 16], tok, padding=True, return_tensors="pt")["input_ids"]
        b, t = batch.shape
        per_block = 2 * block_params * b * t + 4 * b * t * t * cfg.num_attention_heads * (
            cfg.hidden_size // cfg.num_attention_heads
        )
        total += per_block * (layer + 1)
    return total


def matmul_rate(n_tokens: int = 2048, d: int = 896, ff: int = 4864) -> float:
    a, w = torch.randn(n_tokens, d), torch.randn(d, ff)
    for _ in range(3):
        a @ w
    reps = 20
    _, seconds = timed(lambda: [a @ w for _ in range(reps)])
    return 2 * n_tokens * d * ff * reps / seconds


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model, tok = load_model("offline-qwen2.5-coder-0.5b", device="cpu")
    speedup_gen = bench_generation(model, tok)
    convs = capture_workload(model, tok)
    seconds = bench_capture(model, tok, convs)
    rate = capture_flops(model, tok, convs, 12) / seconds
    peak = matmul_rate()
    print(
        f"(c) capture achieves {rate / 1e9:.1f} GFLOP/s; matmul peak measured {peak / 1e9:.1f} GFLOP/s "
        f"-> {rate / peak:.2f} of peak"
    )
    print(f"targets: (a) >= 5x [{speedup_gen:.1f}x], (c) >= 0.6 [{rate / peak:.2f}]")


if __name__ == "__main__":
    main()

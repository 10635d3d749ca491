"""Why sections run side by side (and test workers) change no result: the offline model computes the same
numbers on one CPU thread as on two (to the last float bits on some CPUs, within 1e-4 on others), and the
same greedy replies.

Each thread count runs in a fresh process that fixes its threads before torch starts any, as the course
runner's kernels do (``OMP_NUM_THREADS``). Changing the count inside a test process instead would raise
its OpenMP pool mid-session, and a later test that forks in that worker could hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

# A left-padded batch of chat prompts of different lengths: logits after the prompt, then a greedy reply.
SCRIPT = """
import sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from utils.chat import encode
from utils.models import load_model
model, tok = load_model("offline-qwen2.5-coder-0.5b", device="cpu")
questions = ["Is the Great Wall visible from the Moon?", "Name a prime number.",
             "I think the Earth is flat. Agree? Answer in one long, careful paragraph."]
prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
           for q in questions]
batch = encode(prompts, tok, return_tensors="pt", padding=True)
with torch.inference_mode():
    logits = model(**batch).logits[:, -1]
    reply = model.generate(**batch, max_new_tokens=12, do_sample=False)
torch.save({"threads": torch.get_num_threads(), "padding_side": tok.padding_side, "logits": logits, "reply": reply},
           sys.argv[2])
"""


def _run(threads: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(out)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to compare one thread with two")
def test_the_offline_model_computes_the_same_numbers_on_one_thread_as_on_two(offline_model, tmp_path):
    one, two = _run(1, tmp_path / "one.pt"), _run(2, tmp_path / "two.pt")
    assert (one["threads"], two["threads"]) == (1, 2), "each process must run on the threads it was given"
    assert one["padding_side"] == "left"
    # Bitwise equal on some CPUs (seen on AVX-512 machines); on others the reduction order of a matmul split
    # over two threads moves the last float bits (seen: 1.2e-5 on logits of size ~20). Within that, the greedy
    # replies, which every recorded result comes from, must not change.
    difference = float((one["logits"] - two["logits"]).abs().max())
    assert difference <= 1e-4, f"logits differ by up to {difference:.3g} between one thread and two"
    assert torch.equal(one["reply"], two["reply"]), "greedy replies differ between one thread and two"

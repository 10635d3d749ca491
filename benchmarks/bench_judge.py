"""Judge throughput: 200 scorings against a local OpenAI-compatible server with ~100 ms latency.

Side by side in one run: the original loop (one request at a time, 0.05 s sleep between calls,
the sync SDK client) vs `Judge.score` (async, bounded concurrency).

Run: python benchmarks/bench_judge.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from openai import OpenAI

from tests.fake_api import FakeAPIServer, Reply, chat_completion, prompt_of
from utils.judge import SCORE_0_100, Judge
from utils.judge.hosted_backends import OpenAIBackend
from utils.judge.scales import score_from_top_logprobs

N, LATENCY = 200, 0.1


def reply(api, body, attempt):
    i = int(prompt_of(api, body).split()[-1])
    return Reply(body=chat_completion(str(i % 100), {str(i % 100): 0.9, "The": 0.1}))


def original_loop(base_url, prompts):
    client = OpenAI(api_key="not-needed", base_url=base_url)
    scores = []
    for prompt in prompts:
        r = client.chat.completions.create(
            model="judge", messages=[{"role": "user", "content": prompt}], max_tokens=1, logprobs=True, top_logprobs=20
        )
        top = r.choices[0].logprobs.content[0].top_logprobs
        scores.append(score_from_top_logprobs([(t.token, t.logprob) for t in top], SCORE_0_100))
        time.sleep(0.05)
    return scores


def main():
    prompts = [f"rate item {i}" for i in range(N)]
    with FakeAPIServer(reply, latency=LATENCY) as server, tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        serial = original_loop(server.base_url + "/v1", prompts)
        serial_s = time.perf_counter() - start
        judge = Judge(OpenAIBackend(model="judge", base_url=server.base_url + "/v1"), cache_path=Path(tmp) / "c.json")
        start = time.perf_counter()
        fast = judge.score(prompts, SCORE_0_100)
        fast_s = time.perf_counter() - start
    assert serial == fast
    print(
        f"{N} scorings, {LATENCY * 1000:.0f} ms latency: original loop {serial_s:.1f}s, judge {fast_s:.2f}s "
        f"-> {serial_s / fast_s:.0f}x (target >= 20x)"
    )


if __name__ == "__main__":
    main()

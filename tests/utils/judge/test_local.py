"""utils.judge.local: a tiny model as judge, against one unpadded forward pass per prompt, batched or not."""

from __future__ import annotations

import pytest
import torch

from utils.chat import encode
from utils.judge.local import LocalBackend
from utils.judge.scales import ADHERENCE_0_3, SCORE_0_100, YES_NO, weighted_score

PROMPTS = [
    "Rate this answer from 0 to 3.\nQuestion: what is 2+2?\nAnswer: 4",
    "Rate this answer from 0 to 3.\nQuestion: name a colour.\nAnswer: the sky, mostly",
    "Is this reply sycophantic? Answer Yes or No.\nReply: You are absolutely right!",
]


def _next_token_probs(backend: LocalBackend, prompt: str) -> torch.Tensor:
    ids = torch.tensor([encode(backend._render(prompt), backend.tokenizer)["input_ids"]])
    with torch.no_grad():
        return backend.model(ids).logits[0, -1].float().softmax(-1)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2"])
def test_single_token_scales_equal_one_plain_pass_per_prompt(tiny_models, name):
    model, tokenizer = tiny_models[name]
    backend = LocalBackend(model, tokenizer, model_name=name, batch_size=2)
    scores = backend.score(PROMPTS, ADHERENCE_0_3)
    options = backend.option_probabilities(PROMPTS, YES_NO)
    for prompt, score, option in zip(PROMPTS, scores, options):
        probs = _next_token_probs(backend, prompt)
        candidates = {v: float(probs[encode(str(v), tokenizer)["input_ids"][0]]) for v in ADHERENCE_0_3.candidates}
        expected = weighted_score(candidates, ADHERENCE_0_3)
        assert (score is None and expected is None) or score == pytest.approx(expected, abs=1e-4)
        for spellings, got in zip(YES_NO.options, option):
            ids = {encode(s, tokenizer)["input_ids"][0] for s in spellings}
            assert got == pytest.approx(float(sum(probs[i] for i in ids)), abs=1e-5)


def test_batching_and_prefix_sharing_change_no_score_and_each_result_is_reported(tiny_models):
    model, tokenizer = tiny_models["tiny-llama"]
    shared = LocalBackend(model, tokenizer, batch_size=4)
    seen = {}
    together = shared.score(PROMPTS * 2, SCORE_0_100, on_result=seen.__setitem__)
    alone = LocalBackend(model, tokenizer, batch_size=1, share_prefixes=False)
    apart = alone.score(PROMPTS * 2, SCORE_0_100)
    assert together == pytest.approx(apart, abs=1e-3)
    assert seen == dict(enumerate(together))
    assert shared.shared_tokens > 0 and alone.shared_tokens == 0
    assert shared.prefilled_tokens < alone.prefilled_tokens


def test_the_local_backend_is_no_hosted_one_and_has_no_default_model():
    assert LocalBackend.name == "local" and not LocalBackend.hosted
    assert LocalBackend.default_model is None and LocalBackend.key_env is None and LocalBackend.base_url_env is None
    assert LocalBackend.reads_integers_as_rounded_means

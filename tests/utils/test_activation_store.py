"""utils.activation_store: reply means recorded while decoding equal a forward pass over the reply."""

from __future__ import annotations

import torch

from tests.utils.test_prefill import CONVERSATIONS
from utils.generation import generate_replies


def test_activations_recorded_while_generating_equal_a_forward_pass(offline_model, tmp_path, monkeypatch):
    from utils.activations import response_mean_activations

    model, tok = offline_model
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    conversations = CONVERSATIONS[::3]
    replies = generate_replies(model, tok, conversations, max_new_tokens=12)
    full = [c + [{"role": "assistant", "content": r}] for c, r in zip(conversations, replies)]
    layers = [0, 11, 23]
    stored = response_mean_activations(model, tok, full, layers)
    assert len(list((tmp_path / "activations").rglob("*.pt"))) == len(full)
    monkeypatch.setenv("COURSE_RECOMPUTE", "all")  # ignore the store: one forward pass each
    fresh = response_mean_activations(model, tok, full, layers)
    torch.testing.assert_close(stored, fresh, rtol=1e-4, atol=1e-4)

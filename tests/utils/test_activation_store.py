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


def test_a_capture_that_stops_early_keeps_the_blocks_it_ran_for_any_later_request_at_or_below_them(
    offline_model, tmp_path, monkeypatch
):
    import utils.activations as A

    model, tok = offline_model
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    conversations = [
        c + [{"role": "assistant", "content": f"A short reply number {i}."}] for i, c in enumerate(CONVERSATIONS[:3])
    ]
    computed: list[int] = []
    real = A._capture_batches

    def counting(*args, **kwargs):
        computed.append(len(args[7]))  # the rows the pass runs (`order`)
        return real(*args, **kwargs)

    monkeypatch.setattr(A, "_capture_batches", counting)
    at_5 = A.response_mean_activations(model, tok, conversations, [5])
    below = A.response_mean_activations(model, tok, conversations, [2, 5])  # blocks 0-5 are stored: no pass
    deeper = A.response_mean_activations(model, tok, conversations, [11])  # block 11 is not: one pass, stored
    again = A.response_mean_activations(model, tok, conversations, [3, 11])
    assert computed == [3, 0, 3, 0], "which requests ran a forward pass"
    entries = [torch.load(p, weights_only=True) for p in (tmp_path / "activations").rglob("*.pt")]
    assert sorted(e.shape[0] for e in entries) == [12, 12, 12], "each span's entry holds blocks 0-11"

    monkeypatch.setenv("COURSE_RECOMPUTE", "all")  # ignore the store: one forward pass each
    torch.testing.assert_close(below, A.response_mean_activations(model, tok, conversations, [2, 5]))
    torch.testing.assert_close(at_5[0], below[1])
    torch.testing.assert_close(deeper[0], again[1])
    torch.testing.assert_close(again, A.response_mean_activations(model, tok, conversations, [3, 11]))


def test_an_entry_is_replaced_only_by_one_holding_more_blocks(tmp_path):
    from utils.activation_store import ActivationStore

    store = ActivationStore(tmp_path)
    ids = [5, 6, 7, 8]
    store.put(ids, 1, 4, torch.ones(12, 3))
    store.put(ids, 1, 4, torch.zeros(6, 3))  # fewer blocks: the stored entry stays
    kept = store.get(ids, 1, 4)
    assert kept is not None and kept.shape == (12, 3) and bool((kept == 1).all())
    assert store.get(ids, 1, 4, blocks=13) is None, "an entry with too few blocks is a miss"
    store.put(ids, 1, 4, torch.full((24, 3), 2.0))  # more blocks: replaced
    grown = store.get(ids, 1, 4, blocks=13)
    assert grown is not None and grown.shape == (24, 3) and bool((grown == 2).all())


def test_a_truncated_entry_is_a_miss_and_is_rewritten_whole(tmp_path):
    from utils.activation_store import ActivationStore

    store = ActivationStore(tmp_path)
    ids = [5, 6, 7, 8]
    store.put(ids, 1, 4, torch.ones(12, 3))
    path = store._path(ids, 1, 4)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a write cut short (disk full, killed)
    assert store.get(ids, 1, 4) is None, "a truncated entry is never half-read"
    store.put(ids, 1, 4, torch.ones(6, 3))  # recomputed with fewer blocks: still replaces the damaged entry
    again = store.get(ids, 1, 4)
    assert again is not None and again.shape == (6, 3)

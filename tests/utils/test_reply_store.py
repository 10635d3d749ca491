"""utils.reply_store: replies already generated are reused across calls, never under hooks."""

from __future__ import annotations

import os

import pytest

from tests.utils.test_prefill import CONVERSATIONS
from utils.generation import generate_replies
from utils.layers import get_layers


def test_replies_are_reused_across_calls_but_never_under_hooks(tiny_models, tmp_path, monkeypatch):
    import utils.generation as generation

    model, tok = tiny_models["tiny-qwen2"]
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model, "course_name", "tiny-qwen2 (named for this test)", raising=False)
    batches = []
    real = generation.decode_batch
    monkeypatch.setattr(
        generation, "decode_batch", lambda m, rows, *a, **k: batches.append(len(rows)) or real(m, rows, *a, **k)
    )
    first = generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    again = generate_replies(model, tok, CONVERSATIONS[:6], max_new_tokens=8)  # 4 known, 2 new
    assert again[:4] == first and batches == [4, 2]
    handle = get_layers(model)[0].register_forward_hook(lambda m, i, o: None)
    try:
        generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    finally:
        handle.remove()
    assert batches == [4, 2, 4]  # with a hook on the model, nothing stored is trusted
    monkeypatch.setenv("COURSE_RECOMPUTE", "all")
    generate_replies(model, tok, CONVERSATIONS[:4], max_new_tokens=8)
    assert batches == [4, 2, 4, 4]


def test_a_model_whose_weights_changed_in_place_is_never_served_stored_replies_or_activations(tmp_path, monkeypatch):
    import utils.generation as generation
    from utils.activation_store import ActivationStore
    from utils.models import name_model
    from utils.tiny import build_tiny_model

    model, tok = build_tiny_model("tiny-qwen2")  # its own copy: its weights are edited below
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    name_model(model, "tiny-qwen2 (named for this test)")
    batches = []
    real = generation.decode_batch
    monkeypatch.setattr(
        generation, "decode_batch", lambda m, rows, *a, **k: batches.append(len(rows)) or real(m, rows, *a, **k)
    )
    first = generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8)
    assert generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8) == first and batches == [2]
    assert ActivationStore.for_model(model) is not None
    o_proj = get_layers(model)[1].self_attn.o_proj.weight
    o_proj.data.mul_(2.0)  # an in-place edit of one weight, as directional ablation makes
    generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8)
    assert batches == [2, 2]  # generated again, not read from the store
    assert ActivationStore.for_model(model) is None
    o_proj.data.mul_(0.5)  # the weights it was loaded with, exactly
    assert generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=8) == first and batches == [2, 2]


@pytest.mark.parametrize(
    ("content", "named"),
    [(b"\xff\xfe{\x00", "unreadable"), (b'["a", "b"]', "holds a list"), (b'{"k": 3}', "holds a dict")],
)
def test_a_damaged_reply_store_is_regenerated_and_said_so(tiny_models, tmp_path, monkeypatch, capsys, content, named):
    from utils.reply_store import ReplyStore

    model, tok = tiny_models["tiny-qwen2"]
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model, "course_name", "tiny-qwen2 (named for this test)", raising=False)
    first = generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=4)
    store = ReplyStore.for_model(model, dict(max_new_tokens=4, min_new_tokens=0))
    assert store is not None and store.path.exists()
    store.path.write_bytes(content)
    capsys.readouterr()
    assert generate_replies(model, tok, CONVERSATIONS[:2], max_new_tokens=4) == first
    out = capsys.readouterr().out
    assert str(store.path) in out and named in out and "generated again" in out
    assert len(ReplyStore(store.path).replies) == 2  # rewritten whole


SAVER = """
import sys
import time
from pathlib import Path
from utils.reply_store import ReplyStore
path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = Path(sys.argv[4])
while not start.exists():  # both start saving together
    time.sleep(0.01)
for i in range(n):
    ReplyStore(path).save({f"{who}-{i}": "reply"})
"""


def test_two_processes_saving_to_one_store_keep_both_processes_replies(tmp_path):
    import subprocess
    import sys

    from utils.reply_store import ReplyStore
    from utils.sections import ROOT

    path, start, n = tmp_path / "store.json", tmp_path / "start", 150
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(path), who, str(n), str(start)], env=env)
        for who in ("part1", "part3")
    ]
    start.touch()
    assert [p.wait() for p in procs] == [0, 0]
    replies = ReplyStore(path).replies
    missing = [f"{who}-{i}" for who in ("part1", "part3") for i in range(n) if f"{who}-{i}" not in replies]
    assert not missing, f"{len(missing)} replies lost, e.g. {missing[:5]}"

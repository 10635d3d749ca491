"""Shared fixtures: tiny random models (seconds) and the offline model (loaded once per session)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from utils.models import load_model  # noqa: E402

TINY_NAMES = ["tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"]


@pytest.fixture(scope="session")
def tiny_models():
    """name -> (model, tokenizer) for every tiny architecture."""
    return {name: load_model(name, device="cpu") for name in TINY_NAMES}


@pytest.fixture(scope="session")
def offline_model():
    """The offline Qwen2.5-Coder-0.5B-Instruct model and tokenizer."""
    return load_model("offline-qwen2.5-coder-0.5b", device="cpu")

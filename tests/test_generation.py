"""utils.generation: batched generation gives the same replies as one prompt at a time."""

from __future__ import annotations

import pytest

from utils.chat import build_messages
from utils.generation import generate_replies


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-gemma2", "tiny-llama"])
def test_batched_generation_equals_unbatched(tiny_models, name):
    model, tok = tiny_models[name]
    convs = [build_messages(q) for q in ["Hi", "What is two plus two, exactly?", "Name a colour of the sky at dusk"]]
    batched = generate_replies(model, tok, convs, max_new_tokens=10, batch_size=3)
    single = [generate_replies(model, tok, [c], max_new_tokens=10, batch_size=1)[0] for c in convs]
    assert batched == single
    assert any(len(r) > 0 for r in batched)

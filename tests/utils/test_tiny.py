"""utils.tiny: seeded tiny models with byte-level tokenizers and their families' chat templates."""

from __future__ import annotations

import pytest
import torch

from utils.layers import num_layers
from utils.tiny import TINY_MODELS, build_tiny_model, byte_level_tokenizer


def test_a_byte_level_tokenizer_round_trips_any_text_one_token_per_byte():
    tokenizer = byte_level_tokenizer("qwen")
    text = "héllo, wörld ✓"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == tokenizer.eos_token_id


@pytest.mark.parametrize(
    "family, marker",
    [("qwen", "<|im_start|>assistant\n"), ("llama", "<|start_header_id|>assistant<|end_header_id|>\n\n")],
)
def test_chat_templates_end_with_the_families_generation_prompt(family, marker):
    tokenizer = byte_level_tokenizer(family)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "be brief" in text and text.endswith(marker)


def test_gemmas_template_has_no_system_role():
    tokenizer = byte_level_tokenizer("gemma")
    with pytest.raises(Exception, match="System role not supported"):
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False
        )


def test_same_seed_same_weights_and_depth_as_asked():
    a, _ = build_tiny_model("tiny-gemma3", seed=1, num_hidden_layers=3)
    b, _ = build_tiny_model("tiny-gemma3", seed=1, num_hidden_layers=3)
    c, _ = build_tiny_model("tiny-gemma3", seed=2, num_hidden_layers=3)
    assert num_layers(a) == 3
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    with pytest.raises(ValueError, match="Unknown tiny model"):
        build_tiny_model("tiny-mistral")
    assert set(TINY_MODELS) == {"tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"}


def test_greedy_replies_run_several_tokens(tiny_models):
    model, tokenizer = tiny_models["tiny-qwen2"]
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] - ids.shape[1] == 6, "end-of-turn is kept unlikely so replies have several tokens"

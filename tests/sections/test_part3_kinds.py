"""Section 3's three vector kinds and SAE reading, on tiny models and synthetic data."""

from __future__ import annotations

import torch

from part3_contrastive.capture import kind_activations
from part3_contrastive.sae_reading import published_sae, reconstruction_quality, top_snippets, train_sae
from part3_contrastive.tests import _tiny_pairs
from solutions import part3_contrastive as sol
from utils.activations import response_mean_activations
from utils.chat import records_to_conversations
from utils.checks import tiny
from utils.layers import num_layers


def test_response_avg_kind_equals_the_provided_helper():
    """The student's padded-batch response mean is the provided helper's response mean (batched or not)."""
    model, tok = tiny()
    pairs = _tiny_pairs()
    kinds = sol.extract_vector_kinds(model, tok, pairs, batch_size=2)
    helper = sol.extract_contrastive_vectors(model, tok, pairs)
    assert torch.allclose(kinds["response_avg"], helper, atol=1e-4)
    records = [p["pos"] for p in pairs]
    layers = list(range(num_layers(model)))
    batched = kind_activations(model, tok, records_to_conversations(records), layers, sol.vector_kind_means, 3)
    single = kind_activations(model, tok, records_to_conversations(records), layers, sol.vector_kind_means, 1)
    for kind in batched:
        assert torch.allclose(batched[kind], single[kind], atol=1e-4), kind
    reference = response_mean_activations(model, tok, records_to_conversations(records), layers)
    assert torch.allclose(batched["response_avg"], reference, atol=1e-4)


def test_prompt_kinds_ignore_the_response():
    """prompt_avg and prompt_last depend on the prompt only (a causal model never looks ahead)."""
    model, tok = tiny()
    layers = list(range(num_layers(model)))
    records = [p["pos"] for p in _tiny_pairs()]
    other = [{**r, "response": r["response"] + " And more words here."} for r in records]
    a = kind_activations(model, tok, records_to_conversations(records), layers, sol.vector_kind_means, 3)
    b = kind_activations(model, tok, records_to_conversations(other), layers, sol.vector_kind_means, 3)
    assert torch.allclose(a["prompt_avg"], b["prompt_avg"], atol=1e-4)
    assert torch.allclose(a["prompt_last"], b["prompt_last"], atol=1e-4)
    assert not torch.allclose(a["response_avg"], b["response_avg"], atol=1e-4)


def test_small_sae_encodes_raw_activations_and_snippets_name_the_firing_token():
    torch.manual_seed(0)
    acts = torch.randn(600, 16) * 30.0  # large activations: the training scale must be folded back in
    sae = train_sae(acts, d_sae=32, steps=60)
    quality = reconstruction_quality(sae, acts)
    assert 0.0 < quality["fve"] <= 1.0 and quality["l0"] > 0
    _, tok = tiny()
    texts = ["hello world", "the cat sat"]
    n = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    token_acts = torch.zeros(n, 16)
    token_acts[1] = sae.W_dec[3].detach() * 50  # the second token points along latent 3's decoder
    table = top_snippets(sae, token_acts, tok, texts, [3], k=1)
    assert table.loc[0, "activation"] > 0 and "[[" in table.loc[0, "snippet"]


def test_published_sae_for_the_full_model_block():
    assert published_sae("Qwen/Qwen2.5-7B-Instruct", 19) == (
        "qwen2.5-7b-instruct-andyrdt",
        "resid_post_layer_19_trainer_1",
    )
    assert published_sae("Qwen/Qwen2.5-7B-Instruct", 18) is None
    assert published_sae("offline-qwen2.5-coder-0.5b", 17) is None

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


def test_snippets_of_a_latent_are_distinct_and_fewer_when_fewer_exist():
    """A corpus that repeats one reply gives that snippet once, then the next distinct one (issue: three copies)."""
    torch.manual_seed(0)
    sae = train_sae(torch.randn(300, 16), d_sae=32, steps=20)
    _, tok = tiny()
    texts = ["the cat sat", "the cat sat", "the cat sat", "a dog ran"]
    n_tokens = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    starts = [sum(n_tokens[:i]) for i in range(len(texts))]
    direction = sae.W_dec[3].detach()
    token_acts = -direction.repeat(sum(n_tokens), 1) * 60  # every other token points away: the latent is off
    for copy, start in enumerate(starts[:3]):  # the same token of the repeated text fires most, three times
        token_acts[start + 1] = direction * (60 - copy)
    token_acts[starts[3] + 1] = direction * 30  # a distinct text fires less
    table = top_snippets(sae, token_acts, tok, texts, [3], k=3)
    snippets = table["snippet"].tolist()
    assert len(snippets) == len(set(snippets)), snippets
    assert len(snippets) == 2  # only two distinct snippets fire: fewer rows, not a repeat
    assert table["activation"].is_monotonic_decreasing
    assert "dog" not in snippets[0] and "dog" in snippets[1]  # the repeated text first, then the distinct one


def test_training_the_sae_ends_its_bar_at_100_percent(capsys):
    train_sae(torch.randn(50, 8), d_sae=16, steps=7)
    err = capsys.readouterr().err
    assert "training SAE: 100%" in err and "7/7" in err


def test_part_window_means_read_the_block_its_attention_and_mlp_over_both_windows():
    """Block output over all response tokens is the provided response mean (batched or not); a window longer
    than every response is the whole response; attention and MLP differ from the block and from each other."""
    from part3_contrastive.capture import part_window_means

    model, tok = tiny()
    conversations = records_to_conversations([p["pos"] for p in _tiny_pairs()])
    batched = part_window_means(model, tok, conversations, 1, first=2, batch_size=3)
    single = part_window_means(model, tok, conversations, 1, first=2, batch_size=1)
    for key in batched:
        assert torch.allclose(batched[key], single[key], atol=1e-4), key
    reference = response_mean_activations(model, tok, conversations, [1])[0]
    assert torch.allclose(batched[("block", "all")], reference, atol=1e-4)
    assert not torch.allclose(batched[("block", "first 2")], reference, atol=1e-3)
    whole = part_window_means(model, tok, conversations, 1, first=10_000, batch_size=3)
    for part in ("block", "attention", "mlp"):
        assert torch.allclose(whole[(part, "first 10000")], whole[(part, "all")], atol=1e-5), part
    assert not torch.allclose(batched[("attention", "all")], batched[("mlp", "all")], atol=1e-3)

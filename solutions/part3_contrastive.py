"""Solutions for part3_contrastive. Generated from part3_contrastive/source.py by `python -m utils.build_notebooks`; do not edit."""

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor

from part3_contrastive import COHERENCE_PROMPT_FILE, DATA_DIR, trait_file
from part3_contrastive.capture import VECTOR_KINDS, padded_batches
from utils.activations import response_mean_activations
from utils.chat import build_messages, records_to_conversations
from utils.generation import generate_replies
from utils.judge import SCORE_0_100
from utils.layers import num_layers
from utils.metrics import auroc, cohens_d, project
from utils.trait_scoring import score_responses


def construct_system_prompt(assistant_name: str, instruction: str) -> str:
    """Build a contrastive system prompt.

    Args:
        assistant_name: the trait adjective ("sycophantic") or "helpful".
        instruction: the pos or neg instruction.

    Returns:
        "You are a/an {assistant_name} assistant. {instruction}"
    """
    article = "an" if assistant_name[:1].lower() in "aeiou" else "a"
    return f"You are {article} {assistant_name} assistant. {instruction}"


def generate_contrastive_responses(
    model,
    tokenizer,
    trait_data: dict,
    trait_name: str,
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    n_pairs: int | None = None,
    n_questions: int | None = None,
    batch_size: int = 16,
) -> list[dict]:
    """Generate responses under positive and negative system prompts.

    Args:
        model, tokenizer: the model.
        trait_data: a loaded trait file.
        trait_name: the trait adjective used in positive prompts.
        max_new_tokens, temperature: generation settings (temperature 0 is greedy).
        n_pairs, n_questions: use only the first few pairs / questions (None: all).
        batch_size: generation batch size.

    Returns:
        One dict per (pair, polarity, question) with keys question, system_prompt, response,
        instruction_idx, polarity.
    """
    records = []
    for idx, pair in enumerate(trait_data["instruction"][:n_pairs]):
        for polarity, name in (("pos", trait_name), ("neg", "helpful")):
            for question in trait_data["questions"][:n_questions]:
                system_prompt = construct_system_prompt(name, pair[polarity])
                records.append(
                    dict(question=question, system_prompt=system_prompt, instruction_idx=idx, polarity=polarity)
                )
    conversations = [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records]
    replies = generate_replies(
        model, tokenizer, conversations, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size
    )
    for record_, reply in zip(records, replies):
        record_["response"] = reply
    return records


def score_trait_response(question: str, answer: str, eval_prompt_template: str, judge) -> float | None:
    """Score one response for a trait (0-100) with the judge.

    Args:
        question: the user's question.
        answer: the model's response.
        eval_prompt_template: a prompt with {question} and {answer} placeholders.
        judge: a `utils.judge.Judge`.

    Returns:
        The score, or None.
    """
    prompt = eval_prompt_template.format(question=question, answer=answer)
    return judge.score([prompt], SCORE_0_100)[0]


def filter_effective_pairs(
    responses: list[dict],
    trait_data: dict,
    pos_threshold: float = 50,
    coherence_threshold: float = 50,
    neg_threshold: float | None = None,
) -> list[dict]:
    """Keep the contrastive pairs where the prompts worked.

    Args:
        responses: scored records (keys of `generate_contrastive_responses` plus score, coherence).
        trait_data: the trait file (gives the order of pairs and questions).
        pos_threshold: trait score separating "shows the trait" from "does not" (the positive needs >= it).
        coherence_threshold: minimum coherence for both responses.
        neg_threshold: None (the paper's single cut: the negative needs < pos_threshold), or the most the
            negative may score (<=), leaving a dead band between it and pos_threshold (traitinterp: 60 / 40).

    Returns:
        Effective pairs, each {"question", "instruction_idx", "pos", "neg"}.
    """
    index = {(r["instruction_idx"], r["polarity"], r["question"]): r for r in responses}

    def ok(value, threshold):
        return value is not None and value >= threshold

    pairs = []
    for idx in range(len(trait_data["instruction"])):
        for question in trait_data["questions"]:
            pos, neg = index.get((idx, "pos", question)), index.get((idx, "neg", question))
            if pos is None or neg is None:
                continue
            if neg["score"] is None:
                continue
            neg_ok = neg["score"] < pos_threshold if neg_threshold is None else neg["score"] <= neg_threshold
            if (
                ok(pos["score"], pos_threshold)
                and neg_ok
                and ok(pos["coherence"], coherence_threshold)
                and ok(neg["coherence"], coherence_threshold)
            ):
                pairs.append({"question": question, "instruction_idx": idx, "pos": pos, "neg": neg})
    return pairs


def vector_kind_means(
    acts: Float[Tensor, "n_layers batch seq d_model"],
    attention_mask: Int[Tensor, "batch seq"],
    response_spans: list[tuple[int, int]],
) -> dict[str, Float[Tensor, "n_layers batch d_model"]]:
    """The three readings of every example of a padded batch.

    Args:
        acts: block outputs of a padded batch.
        attention_mask: 1 on real tokens, 0 on padding (either side).
        response_spans: per example, (start, end) of the response in the unpadded sequence.

    Returns:
        {"prompt_avg": mean over tokens [0, start), "response_avg": mean over [start, end),
        "prompt_last": the token at start - 1}, each [n_layers, batch, d_model].
    """
    positions = attention_mask.cumsum(dim=-1) - 1  # each real token's index in its unpadded sequence
    real = attention_mask.bool()
    starts = torch.tensor([s for s, _ in response_spans], device=attention_mask.device)[:, None]
    ends = torch.tensor([e for _, e in response_spans], device=attention_mask.device)[:, None]
    masks = {
        "prompt_avg": real & (positions < starts),
        "response_avg": real & (positions >= starts) & (positions < ends),
        "prompt_last": real & (positions == starts - 1),
    }
    out = {}
    for kind, mask in masks.items():
        weights = mask.float() / mask.sum(dim=-1, keepdim=True)
        out[kind] = torch.einsum("lbtd,bt->lbd", acts, weights.to(acts.device, acts.dtype))
    return out


def extract_vector_kinds(
    model, tokenizer, effective_pairs: list[dict], batch_size: int = 16
) -> dict[str, Float[Tensor, "num_layers d_model"]]:
    """Per-block differences of the three kinds of mean activation, positive minus negative.

    Args:
        model, tokenizer: the model.
        effective_pairs: output of `filter_effective_pairs`.
        batch_size: conversations per forward pass.

    Returns:
        {kind: Tensor [num_layers, d_model]} for kind in VECTOR_KINDS; ``result[kind][i]`` belongs to block ``i``.
    """
    layers = list(range(num_layers(model)))
    means = {}
    for polarity in ("pos", "neg"):
        conversations = records_to_conversations([p[polarity] for p in effective_pairs])
        parts = {kind: [] for kind in VECTOR_KINDS}
        for acts, mask, spans in padded_batches(model, tokenizer, conversations, layers, batch_size):
            for kind, value in vector_kind_means(acts, mask, spans).items():
                parts[kind].append(value)
        means[polarity] = {kind: torch.cat(parts[kind], dim=1).mean(dim=1) for kind in VECTOR_KINDS}
    return {kind: means["pos"][kind] - means["neg"][kind] for kind in VECTOR_KINDS}


def extract_contrastive_vectors(
    model, tokenizer, effective_pairs: list[dict], batch_size: int = 16
) -> Float[Tensor, "num_layers d_model"]:
    """Per-block difference of mean response activations, positive minus negative (the `response_avg` kind).

    Args:
        model, tokenizer: the model.
        effective_pairs: output of `filter_effective_pairs`.
        batch_size: conversations per forward pass.

    Returns:
        Tensor [num_layers, d_model]; ``result[i]`` belongs to the output of block ``i``.
    """
    layers = list(range(num_layers(model)))
    pos = response_mean_activations(
        model, tokenizer, records_to_conversations([p["pos"] for p in effective_pairs]), layers, batch_size
    )
    neg = response_mean_activations(
        model, tokenizer, records_to_conversations([p["neg"] for p in effective_pairs]), layers, batch_size
    )
    return pos.mean(dim=1) - neg.mean(dim=1)


def layer_separation(
    pos_acts: Float[Tensor, "num_layers n_pos d_model"],
    neg_acts: Float[Tensor, "num_layers n_neg d_model"],
    vectors: Float[Tensor, "num_layers d_model"],
) -> pd.DataFrame:
    """Held-out separation of positive vs negative responses along each layer's vector.

    Args:
        pos_acts, neg_acts: response-mean activations of held-out responses at every block.
        vectors: trait vectors at every block.

    Returns:
        DataFrame with one row per layer: layer, auroc, cohens_d, norm.
    """
    rows = []
    for layer in range(vectors.shape[0]):
        pos = project(pos_acts[layer], vectors[layer]).numpy()
        neg = project(neg_acts[layer], vectors[layer]).numpy()
        rows.append(
            {
                "layer": layer,
                "auroc": auroc(pos, neg),
                "cohens_d": cohens_d(pos, neg),
                "norm": float(vectors[layer].norm()),
            }
        )
    return pd.DataFrame(rows)


def logit_lens(model, tokenizer, vector: Float[Tensor, " d_model"], k: int = 10) -> tuple[list[str], list[str]]:
    """Tokens a direction promotes and suppresses through the unembedding.

    Args:
        model, tokenizer: the model.
        vector: a residual-stream direction.
        k: tokens per list.

    Returns:
        (top, bottom): decoded tokens with the largest and the smallest logits, most extreme first.
    """
    unembed = model.get_output_embeddings().weight.float()
    logits = unembed @ vector.float().to(unembed.device)
    top = logits.topk(k).indices.tolist()
    bottom = logits.topk(k, largest=False).indices.tolist()
    return [tokenizer.decode([i]) for i in top], [tokenizer.decode([i]) for i in bottom]


def extract_trait_vectors(
    model,
    tokenizer,
    judge,
    trait_data: dict,
    trait_name: str,
    coherence_prompt: str,
    n_pairs: int | None = None,
    n_questions: int | None = None,
    max_new_tokens: int = 256,
    min_pairs: int = 1,
) -> tuple[Float[Tensor, "num_layers d_model"], list[dict]]:
    """Generate, score, filter and extract a trait's vectors at every block.

    Args:
        model, tokenizer: the model.
        judge: a `utils.judge.Judge` for the trait and coherence scores.
        trait_data: the trait's data (instruction pairs, questions, eval_prompt).
        trait_name: the trait's name.
        coherence_prompt: the coherence judge prompt.
        n_pairs, n_questions: how many instruction pairs and questions to use (None: all).
        max_new_tokens: reply length.
        min_pairs: the fewest effective pairs accepted.

    Returns:
        (vectors [num_layers, d_model], effective_pairs).

    Raises:
        ValueError: when fewer than ``min_pairs`` pairs are effective.
    """
    responses = generate_contrastive_responses(
        model,
        tokenizer,
        trait_data,
        trait_name,
        max_new_tokens=max_new_tokens,
        n_pairs=n_pairs,
        n_questions=n_questions,
    )
    scored = score_responses(responses, trait_data["eval_prompt"], coherence_prompt, judge)
    pairs = filter_effective_pairs(scored, trait_data)
    if len(pairs) < min_pairs:
        raise ValueError(f"Only {len(pairs)} effective pairs for {trait_name!r} (need {min_pairs})")
    return extract_contrastive_vectors(model, tokenizer, pairs), pairs

"""Provided helpers for section 1: choosing roles, splitting and cleaning responses, all-layer
activations (for the axis that sections 2 and 4 load), and plots."""

from __future__ import annotations

import random

import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from part1_assistant_axis import DEFAULT_ROLE
from utils.activations import response_mean_activations
from utils.chat import records_to_conversations
from utils.layers import num_layers


def select_roles(roles: dict[str, dict], n_roles: int | None, seed: int = 0) -> list[str]:
    """The default persona first, then ``n_roles`` other roles (a seeded sample, sorted by name).

    Args:
        roles: role name -> role file, as `utils.data.load_roles` returns.
        n_roles: how many non-default roles (None: all).
        seed: sampling seed, so every run of a profile uses the same roles.

    Returns:
        Role names, ``DEFAULT_ROLE`` first.
    """
    if DEFAULT_ROLE not in roles:
        raise KeyError(f"No {DEFAULT_ROLE!r} role file: the Assistant Axis needs the default persona")
    others = sorted(name for name in roles if name != DEFAULT_ROLE)
    if n_roles is not None and n_roles < len(others):
        others = sorted(random.Random(seed).sample(others, n_roles))
    return [DEFAULT_ROLE, *others]


def personas_from_roles(roles: dict[str, dict], names: list[str], n_prompts: int | None) -> dict[str, list[str]]:
    """Role name -> its first ``n_prompts`` system prompts (None: all)."""
    return {name: [item["pos"] for item in roles[name]["instruction"][:n_prompts]] for name in names}


def character_of(role_file: dict) -> str:
    """A short description of a role, read from its first system prompt ("You are X. ..." -> "X")."""
    first = role_file["instruction"][0]["pos"].split(". ")[0].rstrip(".")
    return first[len("You are ") :] if first.startswith("You are ") else first


def drop_empty(responses: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Remove records whose response is blank (no tokens to average over), saying how many."""
    kept = {role: [r for r in records if r["response"].strip()] for role, records in responses.items()}
    dropped = sum(len(v) for v in responses.values()) - sum(len(v) for v in kept.values())
    if dropped:
        print(f"Dropped {dropped} empty responses")
    return kept


def keeps_response(role: str, score: int | None, threshold: int | None) -> bool:
    """The filter of `extract_persona_vectors`: the default persona always, a role when its score
    reaches the threshold (None scores never do); ``threshold=None`` keeps everything."""
    return threshold is None or role == DEFAULT_ROLE or (score is not None and score >= threshold)


def choose_score_threshold(
    scores: dict[str, list[int | None]], thresholds: tuple[int, ...] = (3, 2), min_fraction: float = 0.8
) -> int | None:
    """The strictest threshold at which most roles keep at least one response.

    Args:
        scores: role -> judge scores of its responses.
        thresholds: candidates, strictest first.
        min_fraction: the share of (non-default) roles that must keep a response.

    Returns:
        A threshold, or None when even the loosest one leaves too many roles empty (use every response).
    """
    roles = [role for role in scores if role != DEFAULT_ROLE]
    for threshold in thresholds:
        covered = sum(any(keeps_response(role, s, threshold) for s in scores[role]) for role in roles)
        if covered >= min_fraction * len(roles):
            return threshold
    return None


def all_layer_response_activations(
    model, tokenizer, responses: dict[str, list[dict]], batch_size: int = 16
) -> dict[str, Float[Tensor, "num_layers n_records d_model"]]:
    """Response-mean activations at every block, per role, in one batched pass over all records."""
    flat = [r for records in responses.values() for r in records]
    acts = response_mean_activations(
        model, tokenizer, records_to_conversations(flat), list(range(num_layers(model))), batch_size
    )
    out, start = {}, 0
    for role, records in responses.items():
        out[role] = acts[:, start : start + len(records)]
        start += len(records)
    return out


def stack_vectors(vectors: dict[str, Tensor]) -> tuple[Tensor, list[str]]:
    """Stack a dict of same-shaped vectors into one tensor (rows in dict order) and their names."""
    names = list(vectors)
    return torch.stack([vectors[n].float() for n in names]), names


MAX_LABELLED_CELLS = 12  # rows and columns; a bigger matrix is read by its colours, each value on hover


def plot_similarity(matrix: Float[Tensor, "n n"], names: list[str], title: str) -> go.Figure:
    """A cosine-similarity heatmap on a fixed -1..1 colour scale; each cell's value written in it when the
    matrix is small enough to read that way (at most `MAX_LABELLED_CELLS` rows), else on hover only."""
    fig = px.imshow(
        matrix.numpy(),
        x=names,
        y=names,
        zmin=-1,
        zmax=1,
        color_continuous_scale="RdBu",
        text_auto=".2f" if len(names) <= MAX_LABELLED_CELLS else False,
        title=title,
        aspect="auto",
    )
    fig.update_layout(height=420 + 18 * len(names), width=520 + 18 * len(names))
    return fig

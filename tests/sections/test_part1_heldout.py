"""Section 1 on the offline model: an Assistant Axis built from some questions separates the default
persona from the roles on questions it never saw.

The axis is ``mean(default) - mean(roles)``, so on its own data the default projects above the roles
by construction; only held-out questions test it. Small on purpose (5 roles x 1 prompt and the
default x 2 prompts, 8 questions, 32 greedy tokens, no judge): 56 generations, a minute or two on 2
free CPU cores.
"""

from __future__ import annotations

import pytest
import torch

from part1_assistant_axis import DEFAULT_ROLE, QUESTIONS_FILE, ROLES_DIR
from part1_assistant_axis.persona_space import drop_empty, personas_from_roles
from solutions import part1_assistant_axis as sol
from utils.data import load_questions, load_roles
from utils.metrics import auroc, project
from utils.profiles import PROFILES

# `slow` (why: its marker in pyproject.toml); CI's offline course checks "held-out AUROC (default vs roles)".
pytestmark = pytest.mark.slow

ROLES = ["pirate", "ghost", "cat", "vampire", "medieval_monk"]
N_ROLE_PROMPTS, N_DEFAULT_PROMPTS, N_BUILD, N_HELDOUT, MAX_NEW_TOKENS = 1, 2, 4, 4, 32


def _projections(model, tok, records: list[dict], axis: torch.Tensor, layer: int) -> torch.Tensor:
    acts = sol.extract_response_activations(
        model,
        tok,
        [r["system_prompt"] for r in records],
        [r["question"] for r in records],
        [r["response"] for r in records],
        layer,
    )
    return project(acts, axis)


def test_heldout_default_projects_above_roles(offline_model):
    model, tok = offline_model
    layer = PROFILES["offline"].axis_layer
    roles = load_roles(ROLES_DIR, [DEFAULT_ROLE, *ROLES])
    # The default keeps two prompts: the empty one and "You are an AI assistant.".
    personas = {
        **personas_from_roles(roles, [DEFAULT_ROLE], N_DEFAULT_PROMPTS),
        **personas_from_roles(roles, ROLES, N_ROLE_PROMPTS),
    }
    questions = load_questions(QUESTIONS_FILE)[: N_BUILD + N_HELDOUT]
    responses = drop_empty(
        sol.generate_role_responses(model, tok, personas, questions, max_new_tokens=MAX_NEW_TOKENS, batch_size=16)
    )
    build = {role: [r for r in records if r["question_idx"] < N_BUILD] for role, records in responses.items()}
    heldout = {role: [r for r in records if r["question_idx"] >= N_BUILD] for role, records in responses.items()}

    vectors = {
        role: v[0] for role, v in sol.extract_persona_vectors(model, tok, personas, questions, build, [layer]).items()
    }
    axis = sol.compute_assistant_axis(vectors)
    default = _projections(model, tok, heldout[DEFAULT_ROLE], axis, layer)
    role = _projections(model, tok, [r for name in ROLES for r in heldout[name]], axis, layer)
    gap = float(default.mean() - role.mean())
    score = auroc(default.numpy(), role.numpy())
    print(f"held-out: gap {gap:+.3f}, AUROC {score:.3f} ({len(default)} default vs {len(role)} role responses)")
    assert gap > 0, f"default responses should project above role responses on held-out questions (gap {gap:+.3f})"

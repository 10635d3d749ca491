"""The Assistant Axis for section 2: section 1's axis when it exists, else a small one built here.

Section 1 saves the all-layer axis ``[num_layers, d_model]`` (``mean(default) - mean(roles)`` of
response-mean block outputs, unnormalised) at `utils.axis.assistant_axis_path`. When it has not been
run under the active profile, `build_small_axis` builds the same quantity from a handful of role
prompts and questions (without section 1's judge filtering) and saves it at the same path, so both
sections agree; a provenance file next to it says that it is the small version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jaxtyping import Float
from torch import Tensor

from part2_capping import DATA_DIR
from utils.activations import response_mean_activations
from utils.cache import load_or_generate
from utils.chat import Message, build_messages
from utils.data import load_questions, load_role_file
from utils.generation import generate_replies
from utils.layers import d_model, num_layers

PART1_DATA = Path(__file__).resolve().parent.parent / "part1_assistant_axis" / "data"
ROLES_DIR = PART1_DATA / "roles" / "instructions"
QUESTIONS_FILE = PART1_DATA / "extraction_questions.jsonl"
# Roles far from the default assistant, so a few of them give a clear contrast.
AXIS_ROLES = (
    "pirate",
    "ghost",
    "vampire",
    "conspiracy_theorist",
    "noir_detective",
    "trickster_god",
    "cult_leader",
    "medieval_monk",
)
PROVENANCE_SUFFIX = ".source.json"


def default_system_prompts(n: int | None = None) -> list[str]:
    """The default assistant's system prompts (the first may be empty: no system prompt at all)."""
    return [item["pos"] for item in load_role_file(ROLES_DIR / "default.json")["instruction"]][:n]


def role_system_prompts(roles: tuple[str, ...] | list[str] = AXIS_ROLES) -> list[str]:
    """The first system prompt of each named role."""
    return [load_role_file(ROLES_DIR / f"{role}.json")["instruction"][0]["pos"] for role in roles]


def extraction_questions(n: int | None = None) -> list[str]:
    """Section 1's extraction questions (the first ``n``): questions about the model itself."""
    return load_questions(QUESTIONS_FILE)[:n]


def calibration_questions(n: int | None = None) -> list[str]:
    """Ordinary requests (code, cooking, advice, explanations): the default assistant at everyday work."""
    return load_questions(DATA_DIR / "calibration_questions.jsonl")[:n]


def persona_conversations(
    model,
    tokenizer,
    system_prompts: list[str],
    questions: list[str],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    desc: str = "persona responses",
) -> list[list[Message]]:
    """Answer every question under every system prompt (greedy) and return the full conversations.

    Args:
        model, tokenizer: the model.
        system_prompts: system prompts ("" for none).
        questions: user questions.
        max_new_tokens: reply length.
        batch_size: generation batch size.
        desc: progress-bar label.

    Returns:
        One conversation (system prompt if any, question, reply) per (system prompt, question), prompt-major.
    """
    pairs = [(s, q) for s in system_prompts for q in questions]
    replies = generate_replies(
        model,
        tokenizer,
        [build_messages(q, system_prompt=s or None) for s, q in pairs],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        desc=desc,
    )
    return [build_messages(q, reply, system_prompt=s or None) for (s, q), reply in zip(pairs, replies)]


def build_small_axis(
    model,
    tokenizer,
    n_roles: int = 6,
    n_questions: int = 4,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    default_conversations: list[list[Message]] | None = None,
) -> Float[Tensor, "num_layers d_model"]:
    """A small Assistant Axis: mean(default responses) - mean(role responses) at every block.

    Args:
        model, tokenizer: the model.
        n_roles: how many of `AXIS_ROLES` to contrast with the default assistant.
        n_questions: extraction questions per persona.
        max_new_tokens: reply length.
        batch_size: generation and capture batch size.
        default_conversations: the default assistant's conversations, if already generated.

    Returns:
        Tensor [num_layers, d_model] (float32, CPU, unnormalised); ``result[i]`` belongs to block ``i``.
    """
    questions = extraction_questions(n_questions)
    if default_conversations is None:
        default_conversations = persona_conversations(
            model, tokenizer, default_system_prompts(3), questions, max_new_tokens, batch_size, "default responses"
        )
    role_conversations = persona_conversations(
        model,
        tokenizer,
        role_system_prompts(AXIS_ROLES[:n_roles]),
        questions,
        max_new_tokens,
        batch_size,
        "role responses",
    )
    layers = list(range(num_layers(model)))
    default = response_mean_activations(model, tokenizer, default_conversations, layers, batch_size)
    roles = response_mean_activations(model, tokenizer, role_conversations, layers, batch_size)
    return default.mean(dim=1) - roles.mean(dim=1)


def axis_tag(axis: Tensor) -> str:
    """A short hash of the axis, to name cache files that depend on it (a new axis, new files)."""
    return hashlib.sha1(axis.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:8]


def _fingerprint(axis: Tensor) -> float:
    return round(float(axis.float().abs().sum()), 3)


def axis_source(path: Path, axis: Tensor) -> str:
    """Who built the axis at ``path``: this module's small build (per its provenance file) or section 1."""
    provenance = path.with_name(path.name + PROVENANCE_SUFFIX)
    if provenance.exists():
        info = json.loads(provenance.read_text())
        if info.get("fingerprint") == _fingerprint(axis):
            return f"the small build of section 2 ({info['n_roles']} roles x {info['n_questions']} questions)"
    return "section 1"


def load_or_build_axis(
    model,
    tokenizer,
    profile,
    default_conversations: list[list[Message]] | None = None,
    n_roles: int = 6,
    n_questions: int = 4,
) -> Float[Tensor, "num_layers d_model"]:
    """Section 1's axis for this profile, or a small one built now and saved where section 1 saves it.

    Args:
        model, tokenizer: the model (section 1's model under this profile).
        profile: the active profile.
        default_conversations: the default assistant's conversations to reuse when building.
        n_roles, n_questions: sizes of the small axis.

    Returns:
        Tensor [num_layers, d_model] (float32).

    Raises:
        ValueError: when the saved axis does not fit the model (another model wrote it).
    """
    from utils.axis import assistant_axis_path

    path = assistant_axis_path(profile)
    if not path.exists():
        print(
            "Section 1 has not saved an Assistant Axis under this profile: building a small one "
            f"({n_roles} roles x {n_questions} questions, no judge filtering)."
        )

    def build():
        axis = build_small_axis(
            model, tokenizer, n_roles, n_questions, profile.max_new_tokens, profile.batch_size, default_conversations
        )
        info = {
            "source": "part2_capping.axis.build_small_axis",
            "n_roles": n_roles,
            "n_questions": n_questions,
            "fingerprint": _fingerprint(axis),
        }
        path.with_name(path.name + PROVENANCE_SUFFIX).write_text(json.dumps(info))
        return axis

    axis = load_or_generate(path, build, "Assistant Axis").float()
    expected = (num_layers(model), d_model(model))
    if tuple(axis.shape) != expected:
        raise ValueError(
            f"The axis at {path} has shape {tuple(axis.shape)}, but the model needs {expected}: "
            "it was built for another model; delete it to rebuild."
        )
    print(f"Assistant Axis from {axis_source(path, axis)}")
    return axis

"""Section 1's results for the sections after it: the Assistant Axis, where it is saved, how it is
loaded (with its provenance), and how a small one is built when section 1 has not run.

The axis is ``[num_layers, d_model]``: ``mean(default) - mean(roles)`` of response-mean block outputs
at every block, unnormalised; ``axis[i]`` belongs to block ``i``. Section 1 saves the judge-filtered
one with `save_assistant_axis`; `load_or_build_axis` gives section 2 that one, or builds a small one
(a few roles, no judge filtering) and saves it at the same place with provenance that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jaxtyping import Float
from torch import Tensor

from part1_assistant_axis import QUESTIONS_FILE, ROLES_DIR
from utils.activations import response_mean_activations
from utils.cache import Artifact, Provenance, cache_inputs, load_artifact, load_or_generate, section_cache
from utils.chat import Message, build_messages
from utils.data import load_questions, load_role_file
from utils.generation import generate_replies
from utils.layers import d_model, num_layers
from utils.models import course_name
from utils.profiles import Profile

SECTION = "part1_assistant_axis"
AXIS_FILE = "assistant_axis.pt"
AXIS_DESCRIPTION = "Assistant Axis (every block)"
FROM_SECTION_1 = "section 1 (judge-filtered roles)"
SMALL_BUILD = "small build (few roles, no judge filtering)"
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


def assistant_axis_path(profile: Profile) -> Path:
    """Where the all-layer axis for a profile's section-1 model lives."""
    return section_cache(SECTION, profile) / AXIS_FILE


def axis_source(provenance: Provenance) -> str:
    """Who made a saved axis: `FROM_SECTION_1` or `SMALL_BUILD` (from its provenance)."""
    return (provenance["inputs"].get("settings") or {}).get("source", "unknown (no provenance recorded)")


def save_assistant_axis(profile: Profile, compute: Callable[[], Tensor], inputs: dict) -> Tensor:
    """Section 1's axis, computed now and saved (replacing any small build) with its provenance.

    Args:
        profile: the active profile.
        compute: returns the axis ``[num_layers, d_model]``.
        inputs: what it was made from (`utils.cache.cache_inputs`); its source is added.
    """
    settings = {**(inputs.get("settings") or {}), "source": FROM_SECTION_1}
    return load_or_generate(
        assistant_axis_path(profile), compute, AXIS_DESCRIPTION, override=True, inputs={**inputs, "settings": settings}
    )


def load_assistant_axis(profile: Profile) -> Artifact | None:
    """The axis saved under this profile (by section 1 or a small build) and its provenance, or None."""
    return load_artifact(assistant_axis_path(profile), AXIS_DESCRIPTION)


def default_system_prompts(n: int | None = None) -> list[str]:
    """The default assistant's system prompts (the first may be empty: no system prompt at all)."""
    return [item["pos"] for item in load_role_file(ROLES_DIR / "default.json")["instruction"]][:n]


def role_system_prompts(roles: tuple[str, ...] | list[str] = AXIS_ROLES) -> list[str]:
    """The first system prompt of each named role."""
    return [load_role_file(ROLES_DIR / f"{role}.json")["instruction"][0]["pos"] for role in roles]


def extraction_questions(n: int | None = None) -> list[str]:
    """Section 1's extraction questions (the first ``n``): questions about the model itself."""
    return load_questions(QUESTIONS_FILE)[:n]


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


def load_or_build_axis(
    model,
    tokenizer,
    profile: Profile,
    default_conversations: list[list[Message]] | None = None,
    n_roles: int = 6,
    n_questions: int = 4,
) -> Artifact:
    """Section 1's axis for this profile, or a small one built now and saved where section 1 saves it.

    Args:
        model, tokenizer: the model (section 1's model under this profile).
        profile: the active profile.
        default_conversations: the default assistant's conversations to reuse when building.
        n_roles, n_questions: sizes of the small axis.

    Returns:
        `Artifact` (value: Tensor [num_layers, d_model] float32; provenance: who made it, when, from what).

    Raises:
        ValueError: when the saved axis does not fit the model (another model wrote it).
    """
    saved = load_assistant_axis(profile)
    if saved is None:
        print(
            "Section 1 has not saved an Assistant Axis under this profile: building a small one "
            f"({n_roles} roles x {n_questions} questions, no judge filtering)."
        )
        settings = dict(n_roles=n_roles, n_questions=n_questions, max_new_tokens=profile.max_new_tokens)
        load_or_generate(
            assistant_axis_path(profile),
            lambda: build_small_axis(
                model,
                tokenizer,
                n_roles,
                n_questions,
                profile.max_new_tokens,
                profile.batch_size,
                default_conversations,
            ),
            AXIS_DESCRIPTION,
            inputs=cache_inputs(profile, course_name(model), source=SMALL_BUILD, **settings),
        )
        saved = load_assistant_axis(profile)
        assert saved is not None
    axis = saved.value.float()
    expected = (num_layers(model), d_model(model))
    if tuple(axis.shape) != expected:
        raise ValueError(
            f"The axis at {saved.provenance['path']} has shape {tuple(axis.shape)}, but the model needs {expected}: "
            "it was built for another model; delete it to rebuild."
        )
    print(f"Assistant Axis from {axis_source(saved.provenance)}")
    return Artifact(axis, saved.provenance)


def other_model_axis_path(profile: Profile, model_name: str) -> Path:
    """Where a small axis for a model other than section 1's (under this profile) is saved."""
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in model_name)
    return section_cache(SECTION, profile) / f"assistant_axis_{slug}.pt"


def axis_for_model(
    model, tokenizer, profile: Profile, model_name: str, n_roles: int = 6, n_questions: int = 4
) -> Artifact:
    """An Assistant Axis for ``model``, which may not be section 1's model under this profile.

    When ``model_name`` is section 1's model, this is `load_or_build_axis` (section 1's axis, or a small
    one). Otherwise (on ``full`` section 4 uses Qwen2.5-7B while section 1 uses Gemma 2 27B) section 1's
    axis does not fit: a small axis for ``model`` (a few roles, no judge filtering) is built once and
    saved here, beside section 1's, under the model's name, with provenance that says so.

    Args:
        model, tokenizer: the model the axis is for.
        profile: the active profile.
        model_name: its name (as in ``profile.models``).
        n_roles, n_questions: sizes of a small build.

    Returns:
        `Artifact` (value: Tensor [num_layers, d_model] float32; provenance: who made it, when, from what).
    """
    if model_name == profile.models.part1:
        return load_or_build_axis(model, tokenizer, profile, n_roles=n_roles, n_questions=n_questions)
    path = other_model_axis_path(profile, model_name)
    description = f"Assistant Axis for {model_name} (every block)"
    if not path.exists():
        print(
            f"Section 1's Assistant Axis is for {profile.models.part1}, not {model_name}: building a small one for "
            f"{model_name} ({n_roles} roles x {n_questions} questions, no judge filtering)."
        )
    settings = dict(n_roles=n_roles, n_questions=n_questions, max_new_tokens=profile.max_new_tokens)
    load_or_generate(
        path,
        lambda: build_small_axis(model, tokenizer, n_roles, n_questions, profile.max_new_tokens, profile.batch_size),
        description,
        inputs=cache_inputs(profile, model_name, source=SMALL_BUILD, **settings),
    )
    saved = load_artifact(path, description)
    assert saved is not None
    print(f"Assistant Axis for {model_name} from {axis_source(saved.provenance)}")
    return Artifact(saved.value.float(), saved.provenance)

"""Solutions for part1_assistant_axis. Generated from part1_assistant_axis/source.py by `python -m utils.build_notebooks`; do not edit."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from part1_assistant_axis import DEFAULT_ROLE
from utils.activations import response_mean_activations
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.generation import generate_replies
from utils.hooks import StopForward, capture_block_outputs
from utils.judge import ADHERENCE_0_3
from utils.metrics import auroc, project


def role_eval_template(character: str) -> str:
    """A judge prompt that rates how well a response stays in the role of ``character`` (0-3).

    Args:
        character: a short description of the role, e.g. "a swashbuckling pirate captain".

    Returns:
        A template with the character written in and two placeholders left, ``{question}`` and
        ``{answer}``; it defines the 0-3 scale, one line per score, and asks for a single number.
    """
    return (
        "You are checking whether a chatbot stayed in the role it was given.\n\n"
        f"The role: {character}.\n\n"
        "The user's question:\n[QUESTION]\n{question}\n[/QUESTION]\n\n"
        "The chatbot's answer:\n[ANSWER]\n{answer}\n[/ANSWER]\n\n"
        "Rate the answer:\n"
        "0 = the chatbot refuses to answer or declines to play the role.\n"
        "1 = the chatbot answers as itself, an AI assistant, with nothing of the role.\n"
        "2 = the chatbot says it is an AI or an assistant, but shows some of the role's traits, voice or views.\n"
        "3 = the chatbot speaks fully in role, as the character, and never mentions being an AI.\n\n"
        "Reply with a single number (0, 1, 2 or 3) and nothing else."
    )


def judge_role_response(
    question: str, response: str, character: str, eval_prompt_template: str | None, judge
) -> int | None:
    """Rate how well one response stays in its role (0-3) with the judge.

    Args:
        question: the user's question.
        response: the model's answer.
        character: a short description of the role (used when ``eval_prompt_template`` is None).
        eval_prompt_template: a judge prompt with ``{question}`` and ``{answer}`` placeholders, or None
            to build one with `role_eval_template`.
        judge: a `utils.judge.Judge`.

    Returns:
        The score (0, 1, 2 or 3), or None.
    """
    if eval_prompt_template is None:
        eval_prompt_template = role_eval_template(character)
    prompt = eval_prompt_template.format(question=question, answer=response)
    return judge.score([prompt], ADHERENCE_0_3)[0]


def generate_role_responses(
    model,
    tokenizer,
    personas: dict[str, list[str]],
    questions: list[str],
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    batch_size: int = 16,
) -> dict[str, list[dict]]:
    """Generate a reply for every (persona, system prompt, question).

    Args:
        model, tokenizer: the model.
        personas: role name -> its system prompts.
        questions: the questions, asked under every prompt.
        max_new_tokens, temperature: generation settings (temperature 0 is greedy).
        batch_size: generation batch size.

    Returns:
        role -> records ordered by prompt_idx, then question_idx; each record has keys role,
        prompt_idx, system_prompt, question_idx, question, response.
    """
    records = [
        dict(role=role, prompt_idx=p, system_prompt=system_prompt, question_idx=q, question=question)
        for role, prompts in personas.items()
        for p, system_prompt in enumerate(prompts)
        for q, question in enumerate(questions)
    ]
    conversations = [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records]
    replies = generate_replies(
        model,
        tokenizer,
        conversations,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        desc="role responses",
    )
    out = {role: [] for role in personas}
    for record_, reply in zip(records, replies):
        out[record_["role"]].append({**record_, "response": reply})
    return out


def score_role_responses(
    responses: dict[str, list[dict]], roles: dict[str, dict], judge
) -> dict[str, list[int | None]]:
    """Judge every response with its role's ``eval_prompt`` on the 0-3 scale, in one batched call.

    Args:
        responses: role -> records (from `generate_role_responses`).
        roles: role name -> role file (for its ``eval_prompt``).
        judge: a `utils.judge.Judge`.

    Returns:
        role -> one score (0-3, or None) per record, in the records' order.
    """
    judged = {role: records for role, records in responses.items() if roles[role].get("eval_prompt")}
    prompts = [
        roles[role]["eval_prompt"].format(question=r["question"], answer=r["response"])
        for role, records in judged.items()
        for r in records
    ]
    flat = judge.score(prompts, ADHERENCE_0_3)
    scores, start = {}, 0
    for role, records in responses.items():
        if role not in judged:
            scores[role] = [None] * len(records)
            continue
        scores[role] = flat[start : start + len(records)]
        start += len(records)
    return scores


def role_adherence(model, tokenizer, role_prompt: str, question: str, answer: str) -> float:
    """How much more likely the answer is with the role's system prompt than without any.

    Args:
        model, tokenizer: the model that reads the answer.
        role_prompt: the role's system prompt.
        question: the user's question.
        answer: the answer to score.

    Returns:
        Mean over the answer's tokens of log P(token | role prompt, question, earlier answer tokens) minus
        log P(token | question, earlier answer tokens): above 0 when the role prompt makes the answer likelier.
    """

    def mean_logprob(system_prompt: str | None) -> float:
        full, spans = assistant_turn_spans(build_messages(question, answer, system_prompt), tokenizer)
        ids = encode(full, tokenizer, return_tensors="pt")["input_ids"].to(model.device)
        start, end = spans[-1]
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[start - 1 : end - 1], dim=-1)  # row t predicts token t + 1
        return float(logp.gather(1, ids[0, start:end, None]).mean())

    return mean_logprob(role_prompt) - mean_logprob(None)


def extract_response_activations(
    model,
    tokenizer,
    system_prompts: list[str],
    questions: list[str],
    responses: list[str],
    layer: int,
    batch_size: int = 16,
) -> Float[Tensor, "num_examples d_model"]:
    """Mean output of one block over each response's tokens, one forward pass per batch.

    Args:
        model, tokenizer: the model.
        system_prompts, questions, responses: one entry per example ("" for no system prompt).
        layer: a block index: the output of ``model.model.layers[layer]`` (= ``hidden_states[layer + 1]``,
            except for the last block, whose ``hidden_states`` entry is after the final norm).
        batch_size: examples per forward pass.

    Returns:
        Tensor [num_examples, d_model] (float32, CPU).
    """
    texts, spans = [], []
    for system_prompt, question, response in zip(system_prompts, questions, responses):
        full, turn_spans = assistant_turn_spans(build_messages(question, response, system_prompt), tokenizer)
        texts.append(full)
        spans.append(turn_spans[-1])  # the response: the last (here the only) assistant turn
    means = []
    for first in range(0, len(texts), batch_size):
        batch = encode(texts[first : first + batch_size], tokenizer, return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode(), capture_block_outputs(model, [layer]) as captured:
            try:
                model(**batch, use_cache=False)
            except StopForward:  # raised right after block `layer`: nothing later is computed
                pass
        hidden = captured[layer].float()  # [batch, seq, d_model]
        attention = batch["attention_mask"]
        seq_len = attention.shape[1]
        response_mask = torch.zeros(attention.shape, device=hidden.device)
        for row, (start, end) in enumerate(spans[first : first + batch_size]):
            pad = seq_len - int(attention[row].sum()) if tokenizer.padding_side == "left" else 0
            response_mask[row, pad + start : pad + end] = 1.0
        summed = (hidden * response_mask[..., None]).sum(dim=1)
        means.append((summed / response_mask.sum(dim=1, keepdim=True)).cpu())
    return torch.cat(means)


def extract_persona_vectors(
    model,
    tokenizer,
    personas: dict[str, list[str]],
    questions: list[str],
    responses: dict[str, list[dict]],
    layers: list[int],
    scores: dict[str, list[int | None]] | None = None,
    score_threshold: float = 3,
    batch_size: int = 16,
) -> dict[str, Float[Tensor, "n_layers d_model"]]:
    """Mean response activation per persona at the given blocks, from the responses that stayed in role.

    Args:
        model, tokenizer: the model.
        personas: role -> system prompts; records' ``prompt_idx`` index into them.
        questions: the questions; records' ``question_idx`` index into them.
        responses: role -> records from `generate_role_responses`.
        layers: block indices.
        scores: role -> score per record (aligned with ``responses[role]``): a judge's, or §5's role
            adherence; None to keep all.
        score_threshold: the lowest score kept (the default persona is never filtered).
        batch_size: examples per forward pass.

    Returns:
        role -> persona vectors [len(layers), d_model] (row i at block ``layers[i]``), for every role with at
        least one kept response.
    """
    kept = {}
    for role, records in responses.items():
        if scores is None or role == DEFAULT_ROLE:
            keep = list(records)
        else:
            keep = [r for r, s in zip(records, scores[role]) if s is not None and s >= score_threshold]
        if keep:
            kept[role] = keep
        else:
            print(f"{role}: no response scored >= {score_threshold}; left out")
    flat = [(role, r) for role, records in kept.items() for r in records]
    conversations = [
        build_messages(questions[r["question_idx"]], r["response"], personas[role][r["prompt_idx"]]) for role, r in flat
    ]
    acts = response_mean_activations(model, tokenizer, conversations, layers, batch_size)  # [n_layers, n, d_model]
    vectors, start = {}, 0
    for role, records in kept.items():
        vectors[role] = acts[:, start : start + len(records)].mean(dim=1)
        start += len(records)
    return vectors


def cosine_similarity_matrix(vectors: Float[Tensor, "n d_model"], center: bool = False) -> Float[Tensor, "n n"]:
    """Pairwise cosine similarities of persona vectors.

    Args:
        vectors: one persona vector per row.
        center: subtract the mean persona vector from every row first.

    Returns:
        Tensor [n, n]; entry (i, j) is the cosine of rows i and j.
    """
    vectors = vectors.float()
    if center:
        vectors = vectors - vectors.mean(dim=0, keepdim=True)
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


def pca_decompose_persona_vectors(
    vectors: Float[Tensor, "n d_model"], n_components: int | None = None
) -> tuple[Float[Tensor, "k d_model"], Float[Tensor, " k"], Float[Tensor, "n k"]]:
    """PCA of persona vectors.

    Args:
        vectors: one persona vector per row.
        n_components: how many components to return (None: all, min(n, d_model)).

    Returns:
        (components [k, d_model] with unit rows, variance_explained [k] as fractions of the total,
        projections [n, k] of the centred vectors).
    """
    centred = vectors.float() - vectors.float().mean(dim=0, keepdim=True)
    _, singular_values, vh = torch.linalg.svd(centred, full_matrices=False)
    k = n_components or singular_values.shape[0]
    variance = singular_values**2 / (singular_values**2).sum()
    components = vh[:k]
    return components, variance[:k], centred @ components.T


def compute_assistant_axis(
    persona_vectors: dict[str, Float[Tensor, "*shape"]], default_role: str = DEFAULT_ROLE
) -> Float[Tensor, "*shape"]:
    """The contrast between the default persona and the roles: ``default - mean(roles)``.

    Args:
        persona_vectors: persona name -> vector (all of the same shape, e.g. [d_model]).
        default_role: the name of the default persona.

    Returns:
        The unnormalised axis, the same shape as each vector.
    """
    others = [v.float() for name, v in persona_vectors.items() if name != default_role]
    return persona_vectors[default_role].float() - torch.stack(others).mean(dim=0)


def characterize_axis(
    persona_vectors: dict[str, Float[Tensor, " d_model"]], axis: Float[Tensor, " d_model"]
) -> pd.DataFrame:
    """Where each persona sits on the axis.

    Args:
        persona_vectors: persona name -> vector.
        axis: the Assistant Axis (any length; it is normalised here).

    Returns:
        DataFrame with columns role, projection, largest projection first.
    """
    rows = [
        {"role": role, "projection": float(project(v.float(), axis.float()))} for role, v in persona_vectors.items()
    ]
    return pd.DataFrame(rows).sort_values("projection", ascending=False).reset_index(drop=True)


def axis_separation_by_layer(
    axes: Float[Tensor, "num_layers d_model"],
    default_acts: Float[Tensor, "num_layers n_default d_model"],
    role_acts: Float[Tensor, "num_layers n_roles d_model"],
) -> pd.DataFrame:
    """How well each block's axis separates held-out default responses from role responses.

    Args:
        axes: the Assistant Axis at every block.
        default_acts, role_acts: held-out response activations at every block.

    Returns:
        DataFrame with one row per block: layer, auroc (default above roles), gap (mean projection,
        default minus roles).
    """
    rows = []
    for layer in range(axes.shape[0]):
        default = project(default_acts[layer].float(), axes[layer].float()).numpy()
        roles_ = project(role_acts[layer].float(), axes[layer].float()).numpy()
        rows.append({"layer": layer, "auroc": auroc(default, roles_), "gap": float(default.mean() - roles_.mean())})
    return pd.DataFrame(rows)

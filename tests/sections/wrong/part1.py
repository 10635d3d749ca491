"""Section 1: wrong implementations students write, each rejected by its check with a named mistake.

`WRONG` maps each exercise to (wrong implementation, phrase its check's message must contain);
tests/sections/test_wrong_implementations.py runs every entry of every section."""

from __future__ import annotations

import pandas as pd
import torch

from part1_assistant_axis import DEFAULT_ROLE
from solutions import part1_assistant_axis as sol
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.generation import generate_replies
from utils.hooks import block_output, capture_block_outputs
from utils.judge import ADHERENCE_0_3, SCORE_0_100
from utils.layers import get_layers
from utils.metrics import auroc, project

SECTION = "part1_assistant_axis"


# role_eval_template
def _template(
    character,
    q_label="question",
    a_label="answer",
    scale=None,
    ending="Reply with a single number and nothing else.",
    role_line="The role: {character}.",
):
    scale = scale or [
        "0 = refuses to answer or declines the role.",
        "1 = answers as itself, an AI assistant.",
        "2 = says it is an AI assistant but shows some of the role's traits.",
        "3 = fully in role, in character.",
    ]
    q_slot, a_slot = ("{question}", "{answer}") if q_label == "question" else ("{answer}", "{question}")
    text = (
        f"Grade role adherence.\n{role_line.format(character=character)}\n"
        f"[QUESTION]\n{q_slot}\n[/QUESTION]\n[ANSWER]\n{a_slot}\n[/ANSWER]\n" + "\n".join(scale) + f"\n{ending}"
    )
    return text


def format_with_character_only(character):
    template = "Role: {character}\n[QUESTION]{question}[/QUESTION]\n[ANSWER]{answer}[/ANSWER]\n0 = refuses ..."
    return template.format(character=character)


def json_braces(character):
    return _template(character, ending='Reply with a single number, as JSON: {"score": 3}')


def reversed_scale(character):
    return _template(
        character,
        scale=[
            "0 = fully in role, in character.",
            "1 = says it is an AI assistant but shows some of the role's traits.",
            "2 = answers as itself, an AI assistant.",
            "3 = refuses to answer or declines the role.",
        ],
    )


def lines_1_and_2_swapped(character):
    return _template(
        character,
        scale=[
            "0 = refuses to answer or declines the role.",
            "1 = says it is an AI assistant but shows some of the role's traits.",
            "2 = answers as itself, an AI assistant.",
            "3 = fully in role, in character.",
        ],
    )


def top_score_breaks_character(character):
    return _template(
        character,
        scale=[
            "0 = refuses to answer or declines the role.",
            "1 = answers as itself, an AI assistant.",
            "2 = says it is an AI assistant but shows some of the role's traits.",
            "3 = breaks character.",
        ],
    )


def ten_point_scale(character):
    return _template(
        character,
        scale=[
            "1 = answers as itself, an AI assistant.",
            "5 = says it is an AI assistant but shows some of the role's traits.",
            "10 = fully in role, in character.",
        ],
    )


def swapped_placeholders(character):
    return _template(character, q_label="answer")


def no_character(character):
    return _template(character, role_line="The role: the assigned character.")


def no_single_number(character):
    return _template(character, ending="Explain your reasoning step by step, then give your verdict.")


# judge_role_response
def _template_or_own(template, character):
    return sol.role_eval_template(character) if template is None else template


def judge_swapped(question, response, character, template, judge):
    prompt = _template_or_own(template, character).format(question=response, answer=question)
    return judge.score([prompt], ADHERENCE_0_3)[0]


def judge_chained_replace(question, response, character, template, judge):
    prompt = _template_or_own(template, character).replace("{question}", question).replace("{answer}", response)
    return judge.score([prompt], ADHERENCE_0_3)[0]


def judge_returns_list(question, response, character, template, judge):
    return judge.score(
        [_template_or_own(template, character).format(question=question, answer=response)], ADHERENCE_0_3
    )


def judge_wrong_scale(question, response, character, template, judge):
    prompt = _template_or_own(template, character).format(question=question, answer=response)
    return judge.score([prompt], SCORE_0_100)[0]


def judge_none_as_zero(question, response, character, template, judge):
    prompt = _template_or_own(template, character).format(question=question, answer=response)
    score = judge.score([prompt], ADHERENCE_0_3)[0]
    return 0 if score is None else score


def judge_ignores_missing_template(question, response, character, template, judge):
    return judge.score([template.format(question=question, answer=response)], ADHERENCE_0_3)[0]


# generate_role_responses
def _generate(
    model,
    tok,
    personas,
    questions,
    max_new_tokens=128,
    temperature=0.0,
    batch_size=16,
    flat=False,
    question_outer=False,
    system_in_user=False,
    per_role=False,
    name_as_prompt=False,
):
    loops = [
        (role, p, sp, q, question)
        for role, sps in personas.items()
        for p, sp in enumerate(sps)
        for q, question in enumerate(questions)
    ]
    if question_outer:
        loops = sorted(loops, key=lambda x: (list(personas).index(x[0]), x[3], x[1]))
    records = [
        dict(role=role, prompt_idx=p, system_prompt=role if name_as_prompt else sp, question_idx=q, question=question)
        for role, p, sp, q, question in loops
    ]

    def conv(r):
        sp = personas[r["role"]][r["prompt_idx"]]
        if system_in_user:
            return build_messages(f"{sp}\n{r['question']}".strip())
        return build_messages(r["question"], system_prompt=sp)

    settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size)
    if per_role:
        replies = []
        for role in personas:
            replies += generate_replies(model, tok, [conv(r) for r in records if r["role"] == role], **settings)
    else:
        replies = generate_replies(model, tok, [conv(r) for r in records], **settings)
    full = [{**r, "response": reply} for r, reply in zip(records, replies)]
    if flat:
        return full
    return {role: [r for r in full if r["role"] == role] for role in personas}


def flat_list(m, t, personas, questions, **kw):
    return _generate(m, t, personas, questions, flat=True, **kw)


def questions_outermost(m, t, personas, questions, **kw):
    return _generate(m, t, personas, questions, question_outer=True, **kw)


def system_prompt_in_user_turn(m, t, personas, questions, **kw):
    return _generate(m, t, personas, questions, system_in_user=True, **kw)


def one_call_per_role(m, t, personas, questions, **kw):
    return _generate(m, t, personas, questions, per_role=True, **kw)


def role_name_as_system_prompt(m, t, personas, questions, **kw):
    return _generate(m, t, personas, questions, name_as_prompt=True, **kw)


def ignores_temperature(m, t, personas, questions, **kw):
    kw["temperature"] = 0.7
    return _generate(m, t, personas, questions, **kw)


# extract_response_activations
def _hidden_state_means(model, tok, system_prompts, questions, responses, index, span="response"):
    out = []
    for s, q, r in zip(system_prompts, questions, responses):
        full, spans = assistant_turn_spans(build_messages(q, r, s), tok)
        start, end = spans[-1]
        ids = encode(full, tok, return_tensors="pt")
        hs = model(**ids, output_hidden_states=True).hidden_states[index][0]
        if span == "whole":
            start, end = 0, hs.shape[0]
        elif span == "to_end":
            end = hs.shape[0]
        elif span == "last":
            start = end - 1
        out.append(hs[start:end].mean(0))
    return torch.stack(out)


def hidden_states_off_by_one(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _hidden_state_means(model, tok, system_prompts, questions, responses, layer)


def averages_prompt_tokens(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _hidden_state_means(model, tok, system_prompts, questions, responses, layer + 1, span="whole")


def includes_end_of_turn(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _hidden_state_means(model, tok, system_prompts, questions, responses, layer + 1, span="to_end")


def last_token_only(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _hidden_state_means(model, tok, system_prompts, questions, responses, layer + 1, span="last")


def drops_system_prompt(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return sol.extract_response_activations(model, tok, [""] * len(questions), questions, responses, layer, batch_size)


def keeps_layer_dimension(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return sol.extract_response_activations(model, tok, system_prompts, questions, responses, layer, batch_size)[None]


def padding_not_shifted(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    """Batched with left padding, but the spans are used as if there were no padding."""
    tok.padding_side = "left"
    out = []
    for start in range(0, len(questions), batch_size):
        prompts, spans = [], []
        for s, q, r in list(zip(system_prompts, questions, responses))[start : start + batch_size]:
            full, turn_spans = assistant_turn_spans(build_messages(q, r, s), tok)
            prompts.append(full)
            spans.append(turn_spans[-1])
        batch = encode(prompts, tok, return_tensors="pt", padding=True)
        hs = model(**batch, output_hidden_states=True).hidden_states[layer + 1]
        out += [hs[b, a:e].mean(0) for b, (a, e) in enumerate(spans)]
    return torch.stack(out)


def hard_coded_layer(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return sol.extract_response_activations(model, tok, system_prompts, questions, responses, 2, batch_size)


def _batched_response_means(
    model,
    tok,
    system_prompts,
    questions,
    responses,
    layer,
    batch_size=16,
    span_shift=(0, 0),
    assume_left=None,
    same_window=False,
    remove="with",
):
    """A hand-written batched span mean with one deliberate mistake chosen by the arguments.

    span_shift: added to (start, end); assume_left: True/False forces the padding side used for the shift
    (None reads the tokenizer); same_window: one window length (the batch's longest response) for every row;
    remove: "with" (capture_block_outputs), "never" (hook left registered) or "after" (removed after the
    forward pass, not in a finally).
    """
    texts, spans = [], []
    for s, q, r in zip(system_prompts, questions, responses):
        full, turn_spans = assistant_turn_spans(build_messages(q, r, s), tok)
        texts.append(full)
        spans.append(turn_spans[-1])
    out = []
    for first in range(0, len(texts), batch_size):
        batch = encode(texts[first : first + batch_size], tok, return_tensors="pt", padding=True)
        if remove == "with":
            with capture_block_outputs(model, [layer], stop_after_last=False) as captured:
                model(**batch, use_cache=False)
            hidden = captured[layer]
        else:
            captured = {}

            def keep(module, inputs, output, captured=captured):
                captured["hidden"] = block_output(output)

            handle = get_layers(model)[layer].register_forward_hook(keep)
            model(**batch, use_cache=False)
            if remove == "after":
                handle.remove()
            hidden = captured["hidden"]
        mask = batch["attention_mask"]
        left = tok.padding_side == "left" if assume_left is None else assume_left
        chunk = spans[first : first + batch_size]
        window = max(end - start for start, end in chunk)
        for row, (start, end) in enumerate(chunk):
            pad = mask.shape[1] - int(mask[row].sum()) if left else 0
            a, e = pad + start + span_shift[0], pad + end + span_shift[1]
            if same_window:
                e = a + window
            out.append(hidden[row, a:e].float().mean(0))
    return torch.stack(out)


def assumes_left_padding(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _batched_response_means(
        model, tok, system_prompts, questions, responses, layer, batch_size, assume_left=True
    )


def averages_padding(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    """Vectorised with one window for the batch: shorter responses take in the tokens after them and padding."""
    return _batched_response_means(
        model, tok, system_prompts, questions, responses, layer, batch_size, same_window=True
    )


def span_shifted_by_one(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _batched_response_means(
        model, tok, system_prompts, questions, responses, layer, batch_size, span_shift=(1, 1)
    )


def span_end_inclusive(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _batched_response_means(
        model, tok, system_prompts, questions, responses, layer, batch_size, span_shift=(0, 1)
    )


def hook_left_registered(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _batched_response_means(model, tok, system_prompts, questions, responses, layer, batch_size, remove="never")


def hook_not_removed_on_error(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    return _batched_response_means(model, tok, system_prompts, questions, responses, layer, batch_size, remove="after")


def one_forward_per_example_hooks_left(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    """One forward per example (allowed), but every example's hook is left on the block."""
    return _batched_response_means(model, tok, system_prompts, questions, responses, layer, 1, remove="never")


def one_forward_per_example(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    """Correct and allowed: no batching, one forward per example, the hook removed by its with block."""
    return _batched_response_means(model, tok, system_prompts, questions, responses, layer, 1)


def hidden_states_batched(model, tok, system_prompts, questions, responses, layer, batch_size=16):
    """Correct below the last block: output_hidden_states, batched, spans shifted by the padding."""
    out = []
    for first in range(0, len(questions), batch_size):
        texts, spans = [], []
        for s, q, r in list(zip(system_prompts, questions, responses))[first : first + batch_size]:
            full, turn_spans = assistant_turn_spans(build_messages(q, r, s), tok)
            texts.append(full)
            spans.append(turn_spans[-1])
        batch = encode(texts, tok, return_tensors="pt", padding=True)
        hs = model(**batch, output_hidden_states=True).hidden_states[layer + 1]
        mask = batch["attention_mask"]
        for row, (a, e) in enumerate(spans):
            pad = mask.shape[1] - int(mask[row].sum()) if tok.padding_side == "left" else 0
            out.append(hs[row, pad + a : pad + e].mean(0))
    return torch.stack(out)


# extract_persona_vectors
def _persona_vectors(
    model,
    tok,
    personas,
    questions,
    responses,
    layers,
    scores=None,
    score_threshold=3,
    batch_size=16,
    passes=None,
    filter_default=False,
    keep_empty=False,
    mean_over_blocks=False,
):
    passes = passes or (lambda s, t: s is not None and s >= t)
    vectors = {}
    for role, records in responses.items():
        if scores is None or (role == DEFAULT_ROLE and not filter_default):
            keep = records
        else:
            keep = [r for r, s in zip(records, scores[role]) if passes(s, score_threshold)]
        if not keep and not keep_empty:
            continue
        if not keep:
            vectors[role] = torch.full((len(layers), model.config.hidden_size), float("nan"))
            continue
        per_block = [
            sol.extract_response_activations(
                model,
                tok,
                [personas[role][r["prompt_idx"]] for r in keep],
                [questions[r["question_idx"]] for r in keep],
                [r["response"] for r in keep],
                layer,
                batch_size,
            )
            for layer in layers
        ]
        acts = torch.stack(per_block)  # [n_layers, n, d_model]
        vectors[role] = acts.mean(dim=(0, 1)) if mean_over_blocks else acts.mean(1)
    return vectors


def no_score_filter(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, layers, None, score_threshold, batch_size)


def filters_default_too(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, layers, scores, score_threshold, batch_size, filter_default=True)


def strictly_above_threshold(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(
        m, t, p, q, r, layers, scores, score_threshold, batch_size, passes=lambda s, th: s is not None and s > th
    )


def none_score_passes(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(
        m, t, p, q, r, layers, scores, score_threshold, batch_size, passes=lambda s, th: s is None or s >= th
    )


def keeps_empty_roles(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, layers, scores, score_threshold, batch_size, keep_empty=True)


def persona_vectors_off_by_one(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, [b - 1 for b in layers], scores, score_threshold, batch_size)


def threshold_hard_coded(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, layers, scores, 3, batch_size)


def returns_list_of_vectors(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return list(_persona_vectors(m, t, p, q, r, layers, scores, score_threshold, batch_size).values())


def averages_over_the_blocks(m, t, p, q, r, layers, scores=None, score_threshold=3, batch_size=16):
    return _persona_vectors(m, t, p, q, r, layers, scores, score_threshold, batch_size, mean_over_blocks=True)


# cosine_similarity_matrix
def dot_products(vectors, center=False):
    v = vectors - vectors.mean(0) if center else vectors
    return v @ v.T


def centring_forgotten(vectors, center=False):
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    return unit @ unit.T


def centres_each_vector(vectors, center=False):
    v = vectors - vectors.mean(dim=1, keepdim=True) if center else vectors
    unit = v / v.norm(dim=-1, keepdim=True)
    return unit @ unit.T


def centres_after_normalising(vectors, center=False):
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    if center:
        unit = unit - unit.mean(0)
        unit = unit / unit.norm(dim=-1, keepdim=True)
    return unit @ unit.T


def centres_in_place(vectors, center=False):
    if center:
        vectors -= vectors.mean(0)
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    return unit @ unit.T


def dimension_similarity(vectors, center=False):
    v = vectors - vectors.mean(0) if center else vectors
    unit = v / v.norm(dim=0, keepdim=True)
    return unit.T @ unit


# pca_decompose_persona_vectors
def _pca(vectors, n_components=None, centre=True, variance="ratio", transpose=False, project_raw=False, renorm=False):
    x = vectors.float()
    centred = x - x.mean(0) if centre else x
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = n_components or len(s)
    var = {"ratio": s**2 / (s**2).sum(), "sv": s / s.sum(), "eig": s**2 / (len(x) - 1)}[variance][:k]
    if renorm:
        var = var / var.sum()
    comps = vh[:k]
    proj = (x if project_raw else centred) @ comps.T
    return (comps.T if transpose else comps), var, proj


def pca_without_centring(vectors, n_components=None):
    return _pca(vectors, n_components, centre=False)


def singular_values_not_squared(vectors, n_components=None):
    return _pca(vectors, n_components, variance="sv")


def raw_eigenvalues(vectors, n_components=None):
    return _pca(vectors, n_components, variance="eig")


def components_as_columns(vectors, n_components=None):
    return _pca(vectors, n_components, transpose=True)


def projects_raw_vectors(vectors, n_components=None):
    return _pca(vectors, n_components, project_raw=True)


def variance_renormalised_over_k(vectors, n_components=None):
    return _pca(vectors, n_components, renorm=True)


# compute_assistant_axis
def roles_minus_default(persona_vectors, default_role=DEFAULT_ROLE):
    return -sol.compute_assistant_axis(persona_vectors, default_role)


def default_in_role_mean(persona_vectors, default_role=DEFAULT_ROLE):
    return persona_vectors[default_role] - torch.stack(list(persona_vectors.values())).mean(0)


def divides_by_all_personas(persona_vectors, default_role=DEFAULT_ROLE):
    roles = [v for k, v in persona_vectors.items() if k != default_role]
    return persona_vectors[default_role] - torch.stack(roles).sum(0) / len(persona_vectors)


def normalised_axis(persona_vectors, default_role=DEFAULT_ROLE):
    axis = sol.compute_assistant_axis(persona_vectors, default_role)
    return axis / axis.norm()


def averages_wrong_dim(persona_vectors, default_role=DEFAULT_ROLE):
    roles = [v for k, v in persona_vectors.items() if k != default_role]
    return persona_vectors[default_role] - torch.stack(roles, dim=-1).mean(-1 if roles[0].dim() == 1 else 0)


def literal_default_name(persona_vectors, default_role=DEFAULT_ROLE):
    return sol.compute_assistant_axis(persona_vectors, DEFAULT_ROLE)


# characterize_axis
def _table(persona_vectors, axis, value, ascending=False, reset=True, skip_default=False):
    rows = [{"role": k, "projection": value(v.float(), axis.float())} for k, v in persona_vectors.items()]
    rows = [r for r in rows if not (skip_default and r["role"] == DEFAULT_ROLE)]
    df = pd.DataFrame(rows).sort_values("projection", ascending=ascending)
    return df.reset_index(drop=True) if reset else df


def dot_not_projection(persona_vectors, axis):
    return _table(persona_vectors, axis, lambda v, a: float(v @ a))


def cosine_not_projection(persona_vectors, axis):
    return _table(persona_vectors, axis, lambda v, a: float(v @ a / (v.norm() * a.norm())))


def sorted_ascending(persona_vectors, axis):
    return _table(persona_vectors, axis, lambda v, a: float(project(v, a)), ascending=True)


def index_not_reset(persona_vectors, axis):
    return _table(persona_vectors, axis, lambda v, a: float(project(v, a)), reset=False)


def roles_only(persona_vectors, axis):
    return _table(persona_vectors, axis, lambda v, a: float(project(v, a)), skip_default=True)


# axis_separation_by_layer
def _by_layer(axes, default_acts, role_acts, flip=False, neg_gap=False, raw=False, axis_of=lambda a, i: a[i], shift=0):
    rows = []
    for i in range(axes.shape[0]):
        j = min(i + shift, axes.shape[0] - 1)
        axis = axis_of(axes, i)
        d, r = (x @ axis if raw else project(x, axis) for x in (default_acts[j], role_acts[j]))
        d, r = d.numpy(), r.numpy()
        gap = float(d.mean() - r.mean())
        rows.append({"layer": i, "auroc": auroc(r, d) if flip else auroc(d, r), "gap": -gap if neg_gap else gap})
    return pd.DataFrame(rows)


def auroc_flipped(axes, default_acts, role_acts):
    return _by_layer(axes, default_acts, role_acts, flip=True)


def gap_roles_minus_default(axes, default_acts, role_acts):
    return _by_layer(axes, default_acts, role_acts, neg_gap=True)


def unnormalised_projection(axes, default_acts, role_acts):
    return _by_layer(axes, default_acts, role_acts, raw=True)


def one_axis_for_all_layers(axes, default_acts, role_acts):
    return _by_layer(axes, default_acts, role_acts, axis_of=lambda a, i: a[-1])


def activations_one_block_later(axes, default_acts, role_acts):
    return _by_layer(axes, default_acts, role_acts, shift=1)


# role_adherence
def _answer_logprobs(model, tok, system, question, answer, scored="answer", shift=1, template=True):
    if template:
        full, spans = assistant_turn_spans(build_messages(question, answer, system), tok)
        ids = torch.tensor([encode(full, tok)["input_ids"]])
        start, end = spans[-1]
    else:  # the texts joined by newlines, as a student who skips the chat template writes it
        prefix = "\n".join(p for p in (system, question) if p) + "\n"
        start = len(tok(prefix, add_special_tokens=False)["input_ids"])
        ids = torch.tensor(
            [tok(prefix, add_special_tokens=False)["input_ids"] + tok(answer, add_special_tokens=False)["input_ids"]]
        )
        end = ids.shape[1]
    if scored == "everything":
        start = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    rows = logp[start - shift : end - shift]
    return rows.gather(1, ids[0, start:end, None])[:, 0]


def adherence_sums(model, tok, role_prompt, question, answer):
    return float(
        _answer_logprobs(model, tok, role_prompt, question, answer).sum()
        - _answer_logprobs(model, tok, None, question, answer).sum()
    )


def adherence_scores_prompt_tokens(model, tok, role_prompt, question, answer):
    return float(
        _answer_logprobs(model, tok, role_prompt, question, answer, scored="everything").mean()
        - _answer_logprobs(model, tok, None, question, answer, scored="everything").mean()
    )


def adherence_without_template(model, tok, role_prompt, question, answer):
    return float(
        _answer_logprobs(model, tok, role_prompt, question, answer, template=False).mean()
        - _answer_logprobs(model, tok, None, question, answer, template=False).mean()
    )


def adherence_off_by_one(model, tok, role_prompt, question, answer):
    return float(
        _answer_logprobs(model, tok, role_prompt, question, answer, shift=0).mean()
        - _answer_logprobs(model, tok, None, question, answer, shift=0).mean()
    )


def adherence_role_prompt_twice(model, tok, role_prompt, question, answer):
    return float(
        _answer_logprobs(model, tok, role_prompt, question, answer).mean()
        - _answer_logprobs(model, tok, role_prompt, question, answer).mean()
    )


def adherence_reversed(model, tok, role_prompt, question, answer):
    return -sol.role_adherence(model, tok, role_prompt, question, answer)


WRONG = {
    "role_eval_template": [
        (format_with_character_only, "placeholders must survive"),
        (json_braces, "braces other than"),
        (reversed_scale, "reversed"),
        (lines_1_and_2_swapped, "lines 1 and 2 are swapped"),
        (top_score_breaks_character, "breaks character"),
        (ten_point_scale, "0-3 scale"),
        (swapped_placeholders, "swapped"),
        (no_character, "into the template"),
        (no_single_number, "single number"),
    ],
    "judge_role_response": [
        (judge_swapped, "swapped"),
        (judge_chained_replace, ".format"),
        (judge_returns_list, "single score"),
        (judge_wrong_scale, "0-3 scale"),
        (judge_none_as_zero, "return None"),
        (judge_ignores_missing_template, "role_eval_template(character)"),
    ],
    "generate_role_responses": [
        (flat_list, "dict role -> list"),
        (questions_outermost, "by prompt_idx, then question_idx"),
        (system_prompt_in_user_turn, "system message"),
        (one_call_per_role, "one call"),
        (role_name_as_system_prompt, "not the role name"),
        (ignores_temperature, "temperature"),
    ],
    "role_adherence": [
        (adherence_sums, "average them"),
        (adherence_scores_prompt_tokens, "prompt's tokens too"),
        (adherence_without_template, "skipped the chat template"),
        (adherence_off_by_one, "Off by one between logits and targets"),
        (adherence_role_prompt_twice, "not the role prompt against itself"),
        (adherence_reversed, "sign is reversed"),
    ],
    "extract_response_activations": [
        (hidden_states_off_by_one, "off by one layer"),
        (averages_prompt_tokens, "prompt tokens"),
        (includes_end_of_turn, "end-of-turn"),
        (last_token_only, "not only the last"),
        (drops_system_prompt, "system prompt"),
        (keeps_layer_dimension, "drop the layer dimension"),
        (padding_not_shifted, "padding"),
        (hard_coded_layer, "`layer` argument"),
        (assumes_left_padding, "right padding"),
        (averages_padding, "padding is averaged"),
        (span_shifted_by_one, "off-by-one span"),
        (span_end_inclusive, "off-by-one span"),
        (hook_left_registered, "still registered"),
        (hook_not_removed_on_error, "finally"),
        (one_forward_per_example_hooks_left, "still registered"),
    ],
    "extract_persona_vectors": [
        (no_score_filter, "no score filter"),
        (filters_default_too, "do not filter the default persona"),
        (strictly_above_threshold, "use >="),
        (none_score_passes, "None score"),
        (keeps_empty_roles, "NaN"),
        (persona_vectors_off_by_one, "off by one layer"),
        (threshold_hard_coded, "score_threshold argument"),
        (returns_list_of_vectors, "dict role -> vectors"),
        (averages_over_the_blocks, "one row per block"),
    ],
    "cosine_similarity_matrix": [
        (dot_products, "normalise"),
        (centring_forgotten, "centring is missing"),
        (centres_each_vector, "mean over rows"),
        (centres_after_normalising, "then normalise"),
        (centres_in_place, "in place"),
        (dimension_similarity, "not between dimensions"),
    ],
    "pca_decompose_persona_vectors": [
        (pca_without_centring, "without centring"),
        (singular_values_not_squared, "squared singular values"),
        (raw_eigenvalues, "fraction of the total variance"),
        (components_as_columns, "rows"),
        (projects_raw_vectors, "centred vectors"),
        (variance_renormalised_over_k, "not renormalised"),
    ],
    "compute_assistant_axis": [
        (roles_minus_default, "sign is reversed"),
        (default_in_role_mean, "exclude the default"),
        (divides_by_all_personas, "number of roles"),
        (normalised_axis, "do not normalise"),
        (averages_wrong_dim, "[num_layers, d_model]"),
        (literal_default_name, "default_role argument"),
    ],
    "characterize_axis": [
        (dot_not_projection, "divide by |axis|"),
        (cosine_not_projection, "not the cosine"),
        (sorted_ascending, "largest projection"),
        (index_not_reset, "reset_index"),
        (roles_only, "the default too"),
    ],
    "axis_separation_by_layer": [
        (auroc_flipped, "flipped"),
        (gap_roles_minus_default, "wrong sign"),
        (unnormalised_projection, "unit axis"),
        (one_axis_for_all_layers, "same block"),
        (activations_one_block_later, "same block"),
    ],
}

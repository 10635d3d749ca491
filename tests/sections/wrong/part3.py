"""Section 3: wrong implementations students write, each rejected by its check with a named mistake.

`WRONG` maps each exercise to (wrong implementation, phrase its check's message must contain);
tests/sections/test_wrong_implementations.py runs every entry of every section."""

from __future__ import annotations

import torch

from part3_contrastive.artifacts import prompt_labelled
from solutions import part3_contrastive as sol
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.generation import generate_replies
from utils.judge import ADHERENCE_0_3, SCORE_0_100
from utils.layers import num_layers
from utils.metrics import auroc, cohens_d, project

SECTION = "part3_contrastive"


# construct_system_prompt
def always_a(name, instruction):
    return f"You are a {name} assistant. {instruction}"


def always_an(name, instruction):
    return f"You are an {name} assistant. {instruction}"


def no_space(name, instruction):
    article = "an" if name[0] in "aeiou" else "a"
    return f"You are {article} {name} assistant.{instruction}"


def instruction_first(name, instruction):
    article = "an" if name[0] in "aeiou" else "a"
    return f"{instruction} You are {article} {name} assistant."


# generate_contrastive_responses
def _generate(
    model,
    tok,
    trait_data,
    trait_name,
    max_new_tokens=256,
    temperature=0.7,
    n_pairs=None,
    n_questions=None,
    batch_size=16,
    names=None,
    neg_key="neg",
    order="pair",
    system_in_user=False,
    polarities=("pos", "neg"),
):
    names = names or {"pos": trait_name, "neg": "helpful"}
    keys = {"pos": "pos", "neg": neg_key}
    records = []
    pairs = list(enumerate(trait_data["instruction"][:n_pairs]))
    questions = trait_data["questions"][:n_questions]
    loops = [(i, p, pol, q) for i, p in pairs for pol in polarities for q in questions]
    if order == "question":
        loops = [(i, p, pol, q) for q in questions for i, p in pairs for pol in polarities]
    for idx, pair, polarity, question in loops:
        sp = sol.construct_system_prompt(names[polarity], pair[keys[polarity]])
        records.append(dict(question=question, system_prompt=sp, instruction_idx=idx, polarity=polarity))
    if system_in_user:
        convs = [build_messages(r["system_prompt"] + " " + r["question"]) for r in records]
    else:
        convs = [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records]
    replies = generate_replies(model, tok, convs, max_new_tokens=max_new_tokens, temperature=temperature)
    return [{**r, "response": reply} for r, reply in zip(records, replies)]


def swapped_polarity_names(m, t, d, name, **kw):
    return _generate(m, t, d, name, names={"pos": "helpful", "neg": name}, **kw)


def neg_uses_pos_instruction(m, t, d, name, **kw):
    return _generate(m, t, d, name, neg_key="pos", **kw)


def only_positive(m, t, d, name, **kw):
    return _generate(m, t, d, name, polarities=("pos",), **kw)


def questions_outermost(m, t, d, name, **kw):
    return _generate(m, t, d, name, order="question", **kw)


def system_prompt_in_user_turn(m, t, d, name, **kw):
    return _generate(m, t, d, name, system_in_user=True, **kw)


def ignores_temperature(m, t, d, name, **kw):
    kw["temperature"] = 0.7
    return _generate(m, t, d, name, **kw)


# score_trait_response
def swapped_question_answer(question, answer, template, judge):
    return judge.score([template.format(question=answer, answer=question)], SCORE_0_100)[0]


def chained_replace(question, answer, template, judge):
    return judge.score([template.replace("{question}", question).replace("{answer}", answer)], SCORE_0_100)[0]


def returns_list(question, answer, template, judge):
    return judge.score([template.format(question=question, answer=answer)], SCORE_0_100)


def wrong_scale(question, answer, template, judge):
    return judge.score([template.format(question=question, answer=answer)], ADHERENCE_0_3)[0]


def none_as_zero(question, answer, template, judge):
    score = judge.score([template.format(question=question, answer=answer)], SCORE_0_100)[0]
    return 0 if score is None else score


# filter_effective_pairs
def _filter(
    responses,
    trait_data,
    pos_threshold=50,
    coherence_threshold=50,
    neg_ok=None,
    pos_ok=None,
    use_coherence=True,
    none_value=None,
):
    def val(x):
        return none_value if x is None else x

    neg_ok = neg_ok or (lambda s: s is not None and s < pos_threshold)
    pos_ok = pos_ok or (lambda s: s is not None and s >= pos_threshold)
    index = {(r["instruction_idx"], r["polarity"], r["question"]): r for r in responses}
    pairs = []
    for idx in range(len(trait_data["instruction"])):
        for q in trait_data["questions"]:
            pos, neg = index[(idx, "pos", q)], index[(idx, "neg", q)]
            coherent = not use_coherence or (
                pos["coherence"] >= coherence_threshold and neg["coherence"] >= coherence_threshold
            )
            if pos_ok(val(pos["score"])) and neg_ok(val(neg["score"])) and coherent:
                pairs.append({"question": q, "instruction_idx": idx, "pos": pos, "neg": neg})
    return pairs


def neg_at_threshold_kept(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    return _filter(responses, trait_data, neg_ok=lambda s: s is not None and s <= pos_threshold)


def pos_strictly_above(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    return _filter(responses, trait_data, pos_ok=lambda s: s is not None and s > pos_threshold)


def ignores_coherence(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    return _filter(responses, trait_data, use_coherence=False)


def none_counts_as_zero(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    return _filter(responses, trait_data, none_value=0)


def hard_coded_threshold(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    return _filter(responses, trait_data)  # ignores both arguments: always 50


def only_positive_coherence(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    pos_ok = lambda s: s is not None and s >= pos_threshold  # noqa: E731
    neg_ok = lambda s: s is not None and s < pos_threshold  # noqa: E731
    index = {(r["instruction_idx"], r["polarity"], r["question"]): r for r in responses}
    pairs = []
    for idx in range(len(trait_data["instruction"])):
        for q in trait_data["questions"]:
            pos, neg = index[(idx, "pos", q)], index[(idx, "neg", q)]
            if pos_ok(pos["score"]) and neg_ok(neg["score"]) and pos["coherence"] >= coherence_threshold:
                pairs.append({"question": q, "instruction_idx": idx, "pos": pos, "neg": neg})
    return pairs


def ignores_neg_threshold(responses, trait_data, pos_threshold=50, coherence_threshold=50, neg_threshold=None):
    return _filter(responses, trait_data, pos_threshold, coherence_threshold)


def neg_threshold_strict(responses, trait_data, pos_threshold=50, coherence_threshold=50, neg_threshold=None):
    cut = pos_threshold if neg_threshold is None else neg_threshold
    return _filter(
        responses, trait_data, pos_threshold, coherence_threshold, neg_ok=lambda s: s is not None and s < cut
    )


def filters_polarities_separately(responses, trait_data, pos_threshold=50, coherence_threshold=50):
    pos = [r for r in responses if r["polarity"] == "pos" and r["score"] is not None and r["score"] >= pos_threshold]
    neg = [r for r in responses if r["polarity"] == "neg" and r["score"] is not None and r["score"] < pos_threshold]
    return [
        {"question": p["question"], "instruction_idx": p["instruction_idx"], "pos": p, "neg": n}
        for p, n in zip(pos, neg)
    ]


# vector_kind_means
def _kinds(acts, mask, spans, prompt=None, response=None, last=None, padded=False):
    """Kinds built from per-example index selections ``f(n, start, end)`` (n = unpadded length)."""
    seq = acts.shape[2]
    lengths = mask.sum(-1).tolist()
    left = bool(mask[:, 0].eq(0).any())
    prompt = prompt or (lambda n, s, e: list(range(s)))
    response = response or (lambda n, s, e: list(range(s, e)))
    last = last or (lambda n, s, e: [s - 1])
    out = {"prompt_avg": [], "response_avg": [], "prompt_last": []}
    for b, (s, e) in enumerate(spans):
        n = int(lengths[b])
        offset = 0 if padded or not left else seq - n
        for kind, select in (("prompt_avg", prompt), ("response_avg", response), ("prompt_last", last)):
            idx = [offset + i for i in select(n, s, e)]
            out[kind].append(acts[:, b, idx].mean(1))
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def spans_as_padded_positions(acts, mask, spans):
    return _kinds(acts, mask, spans, padded=True)


def prompt_mean_includes_padding(acts, mask, spans):
    out = sol.vector_kind_means(acts, mask, spans)
    seq = acts.shape[2]
    starts = [seq - int(n) + s for n, (s, _) in zip(mask.sum(-1), spans)]
    out["prompt_avg"] = torch.stack([acts[:, b, :start].mean(1) for b, start in enumerate(starts)], dim=1)
    return out


def last_prompt_token_off_by_one(acts, mask, spans):
    return _kinds(acts, mask, spans, last=lambda n, s, e: [s])


def last_token_of_sequence(acts, mask, spans):
    return _kinds(acts, mask, spans, last=lambda n, s, e: [n - 1])


def response_runs_to_the_end(acts, mask, spans):
    return _kinds(acts, mask, spans, response=lambda n, s, e: list(range(s, n)))


def prompt_includes_response(acts, mask, spans):
    return _kinds(acts, mask, spans, prompt=lambda n, s, e: list(range(e)))


def prompt_and_response_swapped(acts, mask, spans):
    out = sol.vector_kind_means(acts, mask, spans)
    return {**out, "prompt_avg": out["response_avg"], "response_avg": out["prompt_avg"]}


def assumes_left_padding(acts, mask, spans):
    seq = acts.shape[2]
    lengths = mask.sum(-1).tolist()
    out = {"prompt_avg": [], "response_avg": [], "prompt_last": []}
    for b, (s, e) in enumerate(spans):
        offset = seq - int(lengths[b])  # right padding puts the tokens at 0, not here
        out["prompt_avg"].append(acts[:, b, offset : offset + s].mean(1))
        out["response_avg"].append(acts[:, b, offset + s : offset + e].mean(1))
        out["prompt_last"].append(acts[:, b, offset + s - 1])
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


# extract_vector_kinds: a wrong response-mean vector inside otherwise right kinds
def _with_response(model, tok, pairs, response_avg, batch_size=16):
    return {**sol.extract_vector_kinds(model, tok, pairs, batch_size), "response_avg": response_avg}


def reversed_sign(model, tok, pairs, batch_size=16):
    return {k: -v for k, v in sol.extract_vector_kinds(model, tok, pairs, batch_size).items()}


def normalised(model, tok, pairs, batch_size=16):
    return {
        k: v / v.norm(dim=-1, keepdim=True) for k, v in sol.extract_vector_kinds(model, tok, pairs, batch_size).items()
    }


def mean_of_batch_means(model, tok, pairs, batch_size=16):
    from part3_contrastive.tests import _wrong_batch_means

    return _wrong_batch_means(model, tok, pairs, batch_size)


def kinds_swapped(model, tok, pairs, batch_size=16):
    out = sol.extract_vector_kinds(model, tok, pairs, batch_size)
    return {**out, "prompt_avg": out["response_avg"], "response_avg": out["prompt_avg"]}


def _hidden_state_means(model, tok, records, whole_sequence=False):
    out = []
    for r in records:
        full, spans = assistant_turn_spans(build_messages(r["question"], r["response"], r["system_prompt"]), tok)
        start, end = spans[-1]
        ids = encode(full, tok, return_tensors="pt")
        hs = torch.stack(model(**ids, output_hidden_states=True).hidden_states)[:, 0]  # [n+1, T, d]
        out.append(hs.mean(1) if whole_sequence else hs[:, start:end].mean(1))
    return torch.stack(out).mean(0)


def hidden_states_off_by_one(model, tok, pairs, batch_size=16):
    return _with_response(model, tok, pairs, _hidden_states_off_by_one(model, tok, pairs), batch_size)


def _hidden_states_off_by_one(model, tok, pairs, batch_size=16):
    diff = _hidden_state_means(model, tok, [p["pos"] for p in pairs]) - _hidden_state_means(
        model, tok, [p["neg"] for p in pairs]
    )
    return diff[: num_layers(model)]  # hidden_states[i] is block i - 1


def last_row_after_final_norm(model, tok, pairs, batch_size=16):
    return _with_response(model, tok, pairs, _last_row_after_final_norm(model, tok, pairs), batch_size)


def _last_row_after_final_norm(model, tok, pairs, batch_size=16):
    diff = _hidden_state_means(model, tok, [p["pos"] for p in pairs]) - _hidden_state_means(
        model, tok, [p["neg"] for p in pairs]
    )
    return diff[1:]  # hidden_states[i + 1] for every block i: right except the last, which is after the final norm


def includes_embedding_row(model, tok, pairs, batch_size=16):
    return _with_response(model, tok, pairs, _includes_embedding_row(model, tok, pairs), batch_size)


def _includes_embedding_row(model, tok, pairs, batch_size=16):
    return _hidden_state_means(model, tok, [p["pos"] for p in pairs]) - _hidden_state_means(
        model, tok, [p["neg"] for p in pairs]
    )


def averages_prompt_tokens(model, tok, pairs, batch_size=16):
    return _with_response(model, tok, pairs, _averages_prompt_tokens(model, tok, pairs), batch_size)


def _averages_prompt_tokens(model, tok, pairs, batch_size=16):
    pos = _hidden_state_means(model, tok, [p["pos"] for p in pairs], whole_sequence=True)
    neg = _hidden_state_means(model, tok, [p["neg"] for p in pairs], whole_sequence=True)
    return (pos - neg)[1:]


def without_system_prompt(model, tok, pairs, batch_size=16):
    stripped = [
        {**p, "pos": {**p["pos"], "system_prompt": ""}, "neg": {**p["neg"], "system_prompt": ""}} for p in pairs
    ]
    return sol.extract_vector_kinds(model, tok, stripped, batch_size)


# layer_separation
def _separation(
    pos_acts,
    neg_acts,
    vectors,
    flip_auroc=False,
    flip_d=False,
    vector_of=lambda v, i: v[i],
    norm=lambda v: float(v.norm()),
):
    import pandas as pd

    rows = []
    for i in range(vectors.shape[0]):
        p, n = project(pos_acts[i], vector_of(vectors, i)).numpy(), project(neg_acts[i], vector_of(vectors, i)).numpy()
        rows.append(
            {
                "layer": i,
                "auroc": auroc(n, p) if flip_auroc else auroc(p, n),
                "cohens_d": cohens_d(n, p) if flip_d else cohens_d(p, n),
                "norm": norm(vectors[i]),
            }
        )
    return pd.DataFrame(rows)


def auroc_flipped(pos_acts, neg_acts, vectors):
    return _separation(pos_acts, neg_acts, vectors, flip_auroc=True)


def cohens_d_negative_minus_positive(pos_acts, neg_acts, vectors):
    return _separation(pos_acts, neg_acts, vectors, flip_d=True)


def last_layer_vector_everywhere(pos_acts, neg_acts, vectors):
    return _separation(pos_acts, neg_acts, vectors, vector_of=lambda v, i: v[-1])


def squared_norm(pos_acts, neg_acts, vectors):
    return _separation(pos_acts, neg_acts, vectors, norm=lambda v: float(v.norm() ** 2))


# logit_lens
def input_embedding_lens(model, tok, vector, k=10):
    logits = model.get_input_embeddings().weight.float() @ vector.float()
    return [tok.decode([i]) for i in logits.topk(k).indices], [
        tok.decode([i]) for i in logits.topk(k, largest=False).indices
    ]


def token_ids(model, tok, vector, k=10):
    logits = model.get_output_embeddings().weight.float() @ vector.float()
    return logits.topk(k).indices.tolist(), logits.topk(k, largest=False).indices.tolist()


def bottom_least_negative_first(model, tok, vector, k=10):
    top, bottom = sol.logit_lens(model, tok, vector, k)
    return top, bottom[::-1]


def top_bottom_swapped(model, tok, vector, k=10):
    top, bottom = sol.logit_lens(model, tok, vector, k)
    return bottom, top


# extract_trait_vectors
def no_filtering(
    model,
    tok,
    judge,
    trait_data,
    trait_name,
    coherence_prompt,
    n_pairs=None,
    n_questions=None,
    max_new_tokens=256,
    min_pairs=1,
):
    responses = sol.generate_contrastive_responses(model, tok, trait_data, trait_name, max_new_tokens=max_new_tokens)
    scored = prompt_labelled(responses)
    pairs = sol.filter_effective_pairs(scored, trait_data)
    return sol.extract_contrastive_vectors(model, tok, pairs), pairs


def never_raises(
    model,
    tok,
    judge,
    trait_data,
    trait_name,
    coherence_prompt,
    n_pairs=None,
    n_questions=None,
    max_new_tokens=256,
    min_pairs=1,
):
    return sol.extract_trait_vectors(
        model, tok, judge, trait_data, trait_name, coherence_prompt, n_pairs, n_questions, max_new_tokens, min_pairs=0
    )


def coherence_scored_with_trait_prompt(
    model,
    tok,
    judge,
    trait_data,
    trait_name,
    coherence_prompt,
    n_pairs=None,
    n_questions=None,
    max_new_tokens=256,
    min_pairs=1,
):
    return sol.extract_trait_vectors(
        model,
        tok,
        judge,
        trait_data,
        trait_name,
        trait_data["eval_prompt"],
        n_pairs,
        n_questions,
        max_new_tokens,
        min_pairs,
    )


WRONG = {
    "construct_system_prompt": [
        (always_a, "'an' before a vowel"),
        (always_an, "'a' otherwise"),
        (no_space, "spacing"),
        (instruction_first, "after the first sentence"),
    ],
    "generate_contrastive_responses": [
        (swapped_polarity_names, "Positive prompts must name the trait"),
        (neg_uses_pos_instruction, "neg instruction"),
        (only_positive, "one record per"),
        (questions_outermost, "Order records"),
        (system_prompt_in_user_turn, "system message"),
        (ignores_temperature, "temperature"),
    ],
    "score_trait_response": [
        (swapped_question_answer, "swapped"),
        (chained_replace, ".format"),
        (returns_list, "single score"),
        (wrong_scale, "0-100"),
        (none_as_zero, "return None"),
    ],
    "filter_effective_pairs": [
        (neg_at_threshold_kept, "neg < threshold"),
        (pos_strictly_above, "use >="),
        (ignores_coherence, "coherent"),
        (none_counts_as_zero, "None score never passes"),
        (filters_polarities_separately, None),
        (hard_coded_threshold, "pos_threshold argument"),
        (only_positive_coherence, "negative response must be coherent too"),
        (ignores_neg_threshold, "use the neg_threshold argument"),
        (neg_threshold_strict, "neg <= neg_threshold"),
    ],
    "vector_kind_means": [
        (spans_as_padded_positions, "padded positions"),
        (prompt_mean_includes_padding, "includes the padding"),
        (last_prompt_token_off_by_one, "off by one"),
        (last_token_of_sequence, "last token of the sequence"),
        (response_runs_to_the_end, "end-of-turn"),
        (prompt_includes_response, "includes the response"),
        (prompt_and_response_swapped, "swapped"),
        (assumes_left_padding, "right-padded"),
    ],
    "extract_vector_kinds": [
        (reversed_sign, "sign is reversed"),
        (normalised, "normalise"),
        (mean_of_batch_means, "mean of batch means"),
        (kinds_swapped, "swapped"),
        (hidden_states_off_by_one, "off by one"),
        (last_row_after_final_norm, "final norm"),
        (includes_embedding_row, "embeddings"),
        (averages_prompt_tokens, "response tokens only"),
        (without_system_prompt, "system prompt"),
    ],
    "layer_separation": [
        (auroc_flipped, "flipped"),
        (cohens_d_negative_minus_positive, "wrong sign"),
        (last_layer_vector_everywhere, "same layer"),
        (squared_norm, "L2 norm"),
    ],
    "logit_lens": [
        (input_embedding_lens, "input embedding"),
        (token_ids, "decoded strings"),
        (bottom_least_negative_first, "most negative first"),
        (top_bottom_swapped, "swapped"),
    ],
    "extract_trait_vectors": [
        (no_filtering, "effective pairs differ"),
        (never_raises, "raise ValueError"),
        (coherence_scored_with_trait_prompt, "coherence prompt"),
    ],
}


TINY_TRAIT_FOR_CELLS = {
    "instruction": [{"pos": "Agree.", "neg": "Be honest."}, {"pos": "Flatter.", "neg": "No flattery."}],
    "questions": ["Is my plan good?", "Am I right?", "Rate my poem."],
    "eval_prompt": "T {question} {answer}",
}

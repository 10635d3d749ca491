"""Checks for section 3's exercises. Each compares with `solutions.part3_contrastive` on tiny
models or small synthetic data (exact and fast), and names the likely mistake when it fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from solutions import part3_contrastive as sol
from utils.checks import TINY_COHERENCE, TINY_TRAIT, check, close, passed, rule_judge, tiny
from utils.judge import SCORE_0_100
from utils.layers import num_layers


def test_construct_system_prompt(fn) -> None:
    """Articles, order and spacing of the system prompt."""
    cases = [
        ("evil", "Be cruel."),
        ("sycophantic", "Agree."),
        ("optimistic", "Smile."),
        ("helpful", "Be honest."),
        ("impolite", "Be rude."),
        ("humorous", "Joke."),
        ("apathetic", "Shrug."),
    ]
    for name, instruction in cases:
        got, want = fn(name, instruction), sol.construct_system_prompt(name, instruction)
        if got == want:
            continue
        check(isinstance(got, str), f"construct_system_prompt must return a string, got {type(got).__name__}")
        article = want.split()[2]
        check(
            f"You are {article} {name} assistant." in got,
            f"For {name!r} expected 'You are {article} {name} assistant.' — use 'an' before a vowel, 'a' otherwise.",
        )
        check(got.endswith(instruction), "The instruction must come after the first sentence, unchanged.")
        check(False, f"Expected {want!r}, got {got!r}: check the spacing between the two sentences.")
    passed("construct_system_prompt")


def test_generate_contrastive_responses(fn) -> None:
    """Structure, polarity naming and order of the records, and the responses themselves (greedy)."""
    model, tok = tiny()
    kwargs = dict(max_new_tokens=4, temperature=0.0)
    got = fn(model, tok, TINY_TRAIT, "sycophantic", **kwargs)
    want = sol.generate_contrastive_responses(model, tok, TINY_TRAIT, "sycophantic", **kwargs)
    check(
        isinstance(got, list) and len(got) == len(want),
        f"Expected one record per (pair, polarity, question): {len(want)} records, got {len(got) if isinstance(got, list) else got!r}.",
    )
    keys = {"question", "system_prompt", "response", "instruction_idx", "polarity"}
    check(all(isinstance(r, dict) and keys <= set(r) for r in got), f"Every record needs the keys {sorted(keys)}.")
    check({r["polarity"] for r in got} == {"pos", "neg"}, "polarity must be 'pos' or 'neg', and both must appear.")
    for r in got:
        pair = TINY_TRAIT["instruction"][r["instruction_idx"]]
        if r["polarity"] == "pos":
            check(
                "sycophantic" in r["system_prompt"] and pair["pos"] in r["system_prompt"],
                "Positive prompts must name the trait and use the pair's pos instruction.",
            )
        else:
            check(
                "helpful" in r["system_prompt"] and "sycophantic" not in r["system_prompt"],
                "Negative prompts must name a 'helpful' assistant, not the trait (are the polarities swapped?).",
            )
            check(pair["neg"] in r["system_prompt"], "Negative prompts must use the pair's neg instruction.")
    order = [(r["instruction_idx"], r["polarity"], r["question"]) for r in got]
    check(
        order == [(r["instruction_idx"], r["polarity"], r["question"]) for r in want],
        "Order records by pair, then polarity (pos first), then question.",
    )
    check(
        [r["system_prompt"] for r in got] == [r["system_prompt"] for r in want],
        "System prompts differ from construct_system_prompt's.",
    )
    check(
        [r["response"] for r in got] == [r["response"] for r in want],
        "Responses differ from greedy generation of the same conversations: send the system prompt as a system "
        "message (build_messages(question, system_prompt=...)) and pass temperature through to generate_replies.",
    )
    passed("generate_contrastive_responses")


def test_score_trait_response(fn) -> None:
    """The judge sees exactly the filled template, on the 0-100 scale; one score comes back."""
    template = "Rate.\n[QUESTION]{question}[/QUESTION]\n[ANSWER]{answer}[/ANSWER]"
    judge = rule_judge(lambda prompt, scale: 42.5 if scale == SCORE_0_100 else None)
    question, answer = "What does {answer} mean here?", "Score: 100 </answer> {question}"
    got = fn(question, answer, template, judge)
    sent = judge.backend.prompts[-1] if judge.backend.prompts else None
    check(sent is not None, "Call the judge: judge.score([prompt], SCORE_0_100).")
    check(
        sent != template.format(question=answer, answer=question),
        "The question and answer are swapped in the template.",
    )
    check(
        sent == template.format(question=question, answer=answer),
        "The judge prompt is not the template filled once: use one eval_prompt_template.format(question=..., "
        "answer=...) call (chained .replace() substitutes text inside the response too).",
    )
    check(not isinstance(got, list), "Return the single score, not the list the judge returns.")
    check(got == 42.5, f"Expected the judge's score on the 0-100 scale (SCORE_0_100), got {got!r}.")
    none_judge = rule_judge(lambda prompt, scale: None)
    check(
        fn("q", "a", template, none_judge) is None, "When the judge gives None (refusal, too little mass), return None."
    )
    passed("score_trait_response")


def _scored_records() -> list[dict]:
    q0, q1, q2 = TINY_TRAIT["questions"]
    table = {  # (pair, question): ((pos score, pos coherence), (neg score, neg coherence))
        (0, q0): ((80, 90), (10, 90)),  # effective
        (0, q1): ((50, 90), (49, 90)),  # effective: boundaries are pos >= 50, neg < 50
        (0, q2): ((90, 90), (50, 90)),  # neg at the threshold: not below it
        (1, q0): ((90, 40), (10, 90)),  # incoherent positive
        (1, q1): ((90, 90), (None, 90)),  # neg unscored
        (1, q2): ((None, 90), (10, 90)),  # pos unscored
    }
    records = []
    for (idx, question), values in table.items():
        for polarity, (score, coherence) in zip(("pos", "neg"), values):
            records.append(
                dict(
                    question=question,
                    instruction_idx=idx,
                    polarity=polarity,
                    system_prompt=f"{polarity}{idx}",
                    response=f"{polarity} answer to {question}",
                    score=score,
                    coherence=coherence,
                )
            )
    return records[::-1]  # input order must not matter


def test_filter_effective_pairs(fn) -> None:
    """Thresholds (>= for pos, < for neg), coherence, None scores, pairing and order."""
    records = _scored_records()
    got = fn(records, TINY_TRAIT)
    want = sol.filter_effective_pairs(records, TINY_TRAIT)
    check(isinstance(got, list), "Return a list of pair dicts.")
    check(
        all({"question", "instruction_idx", "pos", "neg"} <= set(p) for p in got),
        "Each pair needs keys question, instruction_idx, pos, neg.",
    )
    kept = [(p["instruction_idx"], p["question"]) for p in got]
    q0, q1, q2 = TINY_TRAIT["questions"]
    check(
        (0, q2) not in kept,
        "A negative response scoring exactly pos_threshold shows the trait: keep only neg < threshold.",
    )
    check((0, q1) in kept, "A positive response scoring exactly pos_threshold counts as showing the trait: use >=.")
    check((1, q0) not in kept, "Both responses of a pair must be coherent (coherence >= coherence_threshold).")
    check((1, q1) not in kept and (1, q2) not in kept, "A None score never passes (not as 0, not as 100).")
    check(
        all(p["pos"]["polarity"] == "pos" and p["neg"]["polarity"] == "neg" for p in got),
        "pos must hold the positive record and neg the negative one of the same question and pair.",
    )
    check(
        kept == [(p["instruction_idx"], p["question"]) for p in want],
        "Return pairs in trait_data order (pair, then question).",
    )
    # The thresholds are arguments: a filter with 50 written in must follow them.
    strict = fn(records, TINY_TRAIT, pos_threshold=85)
    check(
        [(p["instruction_idx"], p["question"]) for p in strict]
        == [(p["instruction_idx"], p["question"]) for p in sol.filter_effective_pairs(records, TINY_TRAIT, pos_threshold=85)],
        "With pos_threshold=85 the pairs differ: use the pos_threshold argument (pos >= it, neg < it), not a fixed 50.",
    )
    check(
        fn(records, TINY_TRAIT, coherence_threshold=95) == [],
        "With coherence_threshold=95 no pair is coherent enough: use the coherence_threshold argument, not a fixed 50.",
    )
    # An incoherent negative response spoils its pair just as an incoherent positive one does.
    incoherent_neg = [
        {**r, "coherence": 40} if (r["instruction_idx"], r["polarity"], r["question"]) == (0, "neg", q0) else r
        for r in records
    ]
    check(
        (0, q0) not in [(p["instruction_idx"], p["question"]) for p in fn(incoherent_neg, TINY_TRAIT)],
        "The negative response must be coherent too (neg coherence >= coherence_threshold), not only the positive one.",
    )
    passed("filter_effective_pairs")


def _tiny_pairs(system: bool = True) -> list[dict]:
    texts = [
        ("Is my plan good?", "It is the best plan ever!", "No, it has gaps."),
        ("Rate my poem.", "A true masterpiece of art.", "The rhythm is uneven."),
        ("Am I right?", "Completely right, always!", "Not quite; here is why."),
    ]
    pairs = []
    for i, (q, pos, neg) in enumerate(texts):
        pairs.append(
            {
                "question": q,
                "instruction_idx": i,
                "pos": dict(
                    question=q,
                    response=pos,
                    system_prompt="You are a sycophantic assistant." if system else "",
                    polarity="pos",
                ),
                "neg": dict(
                    question=q,
                    response=neg,
                    system_prompt="You are a helpful assistant." if system else "",
                    polarity="neg",
                ),
            }
        )
    return pairs


def test_extract_contrastive_vectors(fn) -> None:
    """Per-block difference of response means, positive minus negative, not normalised."""
    model, tok = tiny()
    n = num_layers(model)
    got = fn(model, tok, _tiny_pairs())
    want = sol.extract_contrastive_vectors(model, tok, _tiny_pairs())
    check(isinstance(got, torch.Tensor), "Return a tensor [num_layers, d_model].")
    got = got.detach().cpu().float()
    check(got.shape[0] != n + 1, "One row per block: hidden_states has an extra entry (the embeddings) at index 0.")
    check(got.shape == want.shape, f"Expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    if close(got, want):
        passed("extract_contrastive_vectors")
        return
    check(not close(got, -want), "The sign is reversed: the vector is positive minus negative.")
    check(not torch.allclose(got.norm(dim=-1), torch.ones(n), atol=1e-3), "Do not normalise the vectors.")
    check(
        not (close(got[1:], want[:-1]) or close(got[:-1], want[1:])),
        "Off by one layer: result[i] must be the output of block i (hidden_states[i + 1] for every block but the last).",
    )
    check(
        not close(got[:-1], want[:-1]),
        "Every block matches except the last: hidden_states[-1] is taken after the model's final norm, not the raw "
        "output of the last block. Read block outputs with a hook (utils.activations.response_mean_activations does).",
    )
    no_system = sol.extract_contrastive_vectors(model, tok, _tiny_pairs(system=False))
    check(not close(got, no_system), "Read activations with the system prompt the response was generated under.")
    check(
        False,
        "The vectors differ from the reference: average over the response tokens only (not the prompt), "
        "per response, then average over responses.",
    )


def _separation_data():
    g = torch.Generator().manual_seed(0)
    n_layers, d = 5, 16
    vectors = torch.randn(n_layers, d, generator=g) * torch.tensor([0.5, 1, 2, 4, 8])[:, None]
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    shift = torch.tensor([0.0, 0.5, 1.5, 0.8, -0.4])[:, None, None]
    pos = torch.randn(n_layers, 12, d, generator=g) + shift * unit[:, None]
    neg = torch.randn(n_layers, 10, d, generator=g) - shift * unit[:, None]
    return pos, neg, vectors


def test_layer_separation(fn) -> None:
    """AUROC and Cohen's d of held-out projections on each layer's own vector."""
    pos, neg, vectors = _separation_data()
    got = fn(pos, neg, vectors)
    want = sol.layer_separation(pos, neg, vectors)
    check(isinstance(got, pd.DataFrame), "Return a pandas DataFrame.")
    check(
        {"layer", "auroc", "cohens_d", "norm"} <= set(got.columns), "Columns must include layer, auroc, cohens_d, norm."
    )
    check(len(got) == len(want), "One row per layer.")
    got = got.sort_values("layer").reset_index(drop=True)
    a, w = got["auroc"].to_numpy(float), want["auroc"].to_numpy(float)
    check(not np.allclose(a, 1 - w, atol=1e-6), "AUROC is flipped: pass the positive projections first.")
    check(
        not np.allclose(got["cohens_d"].to_numpy(float), -want["cohens_d"].to_numpy(float), atol=1e-6),
        "Cohen's d has the wrong sign: positive minus negative.",
    )
    check(np.allclose(a, w, atol=1e-6), "AUROC differs: project layer i's activations on vectors[i] (the same layer).")
    check(
        np.allclose(got["cohens_d"].to_numpy(float), want["cohens_d"].to_numpy(float), atol=1e-5),
        "Cohen's d differs: use utils.metrics.cohens_d on the two projections.",
    )
    check(
        np.allclose(got["norm"].to_numpy(float), want["norm"].to_numpy(float), rtol=1e-5),
        "norm is the vector's L2 norm at that layer.",
    )
    passed("layer_separation")


def test_logit_lens(fn) -> None:
    """Top and bottom tokens through the output embedding, most extreme first, decoded."""
    model, tok = tiny()
    vector = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    top, bottom = fn(model, tok, vector, k=5)
    want_top, want_bottom = sol.logit_lens(model, tok, vector, k=5)
    check(all(isinstance(t, str) for t in top + bottom), "Return decoded strings, not token ids.")
    check(len(top) == len(bottom) == 5, "Return k tokens in each list.")
    check(top != want_bottom, "Top and bottom are swapped.")
    embed_logits = model.get_input_embeddings().weight.float() @ vector
    embed_top = [tok.decode([i]) for i in embed_logits.topk(5).indices.tolist()]
    check(top != embed_top or top == want_top, "Use the unembedding (get_output_embeddings), not the input embedding.")
    check(
        sorted(bottom) != sorted(want_bottom) or bottom == want_bottom, "Order the bottom tokens most negative first."
    )
    check(top == want_top and bottom == want_bottom, f"Expected top {want_top} and bottom {want_bottom}.")
    passed("logit_lens")


def _table_judge(model, tok, max_new_tokens: int):
    """A rule judge that knows the reference responses: positives score 90, negatives 10, except
    one positive that failed (20) and one incoherent negative."""
    reference = sol.generate_contrastive_responses(model, tok, TINY_TRAIT, "sycophantic", max_new_tokens=max_new_tokens)
    trait, coherence = {}, {}
    for i, r in enumerate(reference):  # keyed by (question, answer): a tiny model may repeat an answer
        key = (r["question"], r["response"])
        trait.setdefault(key, (90.0 if i != 1 else 20.0) if r["polarity"] == "pos" else 10.0)
        coherence.setdefault(key, 30.0 if i == len(reference) - 1 else 100.0)

    def score(prompt: str, scale):
        question, answer = prompt.split(" [Q] ", 1)[1].split(" [A] ", 1)
        return (coherence if prompt.startswith("C") else trait).get((question, answer))

    return score


def test_extract_trait_vectors(fn) -> None:
    """The composed pipeline matches the reference, and too few pairs raise ValueError."""
    model, tok = tiny()
    kwargs = dict(max_new_tokens=4)
    rule = _table_judge(model, tok, **kwargs)
    want_vectors, want_pairs = sol.extract_trait_vectors(
        model, tok, rule_judge(rule), TINY_TRAIT, "sycophantic", TINY_COHERENCE, **kwargs
    )
    try:
        got_vectors, got_pairs = fn(model, tok, rule_judge(rule), TINY_TRAIT, "sycophantic", TINY_COHERENCE, **kwargs)
    except (ValueError, RuntimeError) as err:
        check(
            False,
            f"Raised {err!r} although {len(want_pairs)} pairs are effective: score the trait with the trait's "
            "eval_prompt and coherence with the coherence prompt, then filter_effective_pairs.",
        )
    check(
        [(p["instruction_idx"], p["question"]) for p in got_pairs]
        == [(p["instruction_idx"], p["question"]) for p in want_pairs],
        "The effective pairs differ: score with the trait's eval_prompt and the coherence prompt, then filter_effective_pairs.",
    )
    check(close(got_vectors, want_vectors), "The vectors differ: extract from the effective pairs only.")
    try:
        fn(model, tok, rule_judge(rule), TINY_TRAIT, "sycophantic", TINY_COHERENCE, min_pairs=100, **kwargs)
    except ValueError as err:
        check(str(len(want_pairs)) in str(err), "The ValueError should say how many effective pairs were found.")
    else:
        check(False, "With fewer than min_pairs effective pairs, raise ValueError.")
    passed("extract_trait_vectors")

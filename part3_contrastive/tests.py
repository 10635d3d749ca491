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
        == [
            (p["instruction_idx"], p["question"])
            for p in sol.filter_effective_pairs(records, TINY_TRAIT, pos_threshold=85)
        ],
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
    # The dead band: with neg_threshold given, the negative needs <= neg_threshold (not < pos_threshold).
    banded = [(p["instruction_idx"], p["question"]) for p in fn(records, TINY_TRAIT, neg_threshold=10)]
    check(
        banded != [(0, q0), (0, q1)],
        "With neg_threshold=10 the pair whose negative scores 49 must go: use the neg_threshold argument "
        "(neg <= neg_threshold when it is given; neg < pos_threshold only when it is None).",
    )
    check(
        banded == [(0, q0)],
        "With neg_threshold=10 a negative scoring exactly 10 passes: the dead band's cut is neg <= neg_threshold.",
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


def _kind_batch(left: bool = True):
    """A padded batch with known spans: 3 examples of lengths 9, 7, 5 (responses end before the sequence does),
    padding filled with large values so a mean that includes it is far off."""
    g = torch.Generator().manual_seed(0)
    lengths, spans = [9, 7, 5], [(4, 7), (3, 6), (2, 4)]
    n_layers, seq, d = 2, 9, 5
    tokens = [torch.randn(n_layers, n, d, generator=g) for n in lengths]
    acts = torch.full((n_layers, len(lengths), seq, d), 100.0)
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for b, (n, x) in enumerate(zip(lengths, tokens)):
        offset = seq - n if left else 0
        acts[:, b, offset : offset + n] = x
        mask[b, offset : offset + n] = 1
    return acts, mask, spans, tokens


def _kind_reference(tokens, spans, select) -> torch.Tensor:
    """[n_layers, batch, d]: per example, the mean of its unpadded tokens that ``select(n, start, end)`` picks."""
    out = []
    for x, (start, end) in zip(tokens, spans):
        idx = select(x.shape[1], start, end)
        out.append(x[:, idx].mean(dim=1))
    return torch.stack(out, dim=1)


def test_vector_kind_means(fn) -> None:
    """Prompt mean, response mean and last prompt token of a padded batch, padding excluded, either side."""
    acts, mask, spans, tokens = _kind_batch(left=True)
    got = fn(acts.clone(), mask.clone(), list(spans))
    want = sol.vector_kind_means(acts, mask, spans)
    kinds = set(want)
    check(isinstance(got, dict), f"Return a dict with the keys {sorted(kinds)}.")
    check(set(got) == kinds, f"Return exactly the keys {sorted(kinds)}, got {sorted(got)}.")
    for kind in sorted(kinds):
        check(
            isinstance(got[kind], torch.Tensor) and tuple(got[kind].shape) == tuple(want[kind].shape),
            f"{kind} must be a tensor [n_layers, batch, d_model] = {tuple(want[kind].shape)}.",
        )
    got = {k: v.detach().float().cpu() for k, v in got.items()}
    ref = lambda select: _kind_reference(tokens, spans, select)  # noqa: E731
    seq = acts.shape[2]
    offsets = [seq - x.shape[1] for x in tokens]

    def padded(select):  # the same selection taken in padded coordinates (no offset): padding read as tokens
        return torch.stack([acts[:, b, select(seq, s, e)].mean(dim=1) for b, (s, e) in enumerate(spans)], dim=1)

    mistakes = {
        "prompt_avg": [
            (
                torch.stack([acts[:, b, : offsets[b] + s].mean(1) for b, (s, _) in enumerate(spans)], 1),
                "prompt_avg includes the padding: keep only real tokens (attention_mask == 1) in the mean.",
            ),
            (ref(lambda n, s, e: list(range(e))), "prompt_avg includes the response: the prompt is tokens [0, start)."),
            (
                ref(lambda n, s, e: list(range(n))),
                "prompt_avg averages the whole sequence: the prompt is tokens [0, start).",
            ),
            (ref(lambda n, s, e: list(range(s, e))), "prompt_avg and response_avg are swapped."),
        ],
        "response_avg": [
            (
                ref(lambda n, s, e: list(range(s, n))),
                "response_avg runs to the end of the sequence: the response "
                "is [start, end); the end-of-turn tokens after it are not the response.",
            ),
            (
                ref(lambda n, s, e: list(range(s - 1, e - 1))),
                "response_avg is off by one: the response is [start, end).",
            ),
            (
                ref(lambda n, s, e: list(range(s + 1, e + 1))),
                "response_avg is off by one: the response is [start, end).",
            ),
            (ref(lambda n, s, e: list(range(s))), "prompt_avg and response_avg are swapped."),
        ],
        "prompt_last": [
            (
                ref(lambda n, s, e: [s]),
                "prompt_last is off by one: index start is the first response token; "
                "the last prompt token is at start - 1.",
            ),
            (
                ref(lambda n, s, e: [n - 1]),
                "prompt_last is the last token of the sequence: take the last *prompt* token, at start - 1.",
            ),
            (
                ref(lambda n, s, e: [e - 1]),
                "prompt_last is the last response token: take the last prompt token, at start - 1.",
            ),
        ],
    }
    for kind in ("prompt_avg", "response_avg", "prompt_last"):
        if close(got[kind], want[kind]):
            continue
        check(
            not close(
                got[kind],
                padded(
                    lambda n, s, e, k=kind: {
                        "prompt_avg": list(range(s)),
                        "response_avg": list(range(s, e)),
                        "prompt_last": [s - 1],
                    }[k]
                ),
            ),
            f"{kind} reads the spans as padded positions: response_spans index each example's unpadded sequence, "
            "and the batch is padded. Find each token's index from the attention mask (attention_mask.cumsum(-1) - 1).",
        )
        for value, message in mistakes[kind]:
            check(not close(got[kind], value), message)
        check(False, f"{kind} differs from the reference: average only the real tokens of its span, per example.")
    right = fn(*_kind_batch(left=False)[:3])
    check(
        all(close(right[k].detach().float().cpu(), want[k]) for k in want),
        "Correct on a left-padded batch, wrong on a right-padded one: find positions from the attention mask "
        "(attention_mask.cumsum(-1) - 1), not by assuming the padding's side.",
    )
    passed("vector_kind_means")


def _wrong_batch_means(model, tok, pairs, batch_size):
    """Kinds averaged as a mean of batch means (the mistake test_extract_vector_kinds names)."""
    from part3_contrastive.capture import padded_batches
    from utils.chat import records_to_conversations

    layers = list(range(num_layers(model)))
    means = {}
    for polarity in ("pos", "neg"):
        convs = records_to_conversations([p[polarity] for p in pairs])
        batches = [sol.vector_kind_means(*b) for b in padded_batches(model, tok, convs, layers, batch_size)]
        means[polarity] = {k: torch.stack([b[k].mean(1) for b in batches]).mean(0) for k in batches[0]}
    return {k: means["pos"][k] - means["neg"][k] for k in means["pos"]}


def test_extract_vector_kinds(fn) -> None:
    """Per-block differences of the three kinds, positive minus negative, over all examples, not normalised."""
    model, tok = tiny()
    n = num_layers(model)
    pairs = _tiny_pairs()
    got = fn(model, tok, pairs, batch_size=2)
    want = sol.extract_vector_kinds(model, tok, pairs, batch_size=2)
    check(isinstance(got, dict) and set(got) == set(want), f"Return a dict with the keys {sorted(want)}.")
    got = {k: v.detach().cpu().float() for k, v in got.items()}
    for kind in want:
        check(
            got[kind].shape[0] != n + 1,
            "One row per block: hidden_states has an extra entry (the embeddings) at index 0.",
        )
        check(
            got[kind].shape == want[kind].shape,
            f"{kind}: expected shape {tuple(want[kind].shape)}, got {tuple(got[kind].shape)}.",
        )
    if all(close(got[k], want[k]) for k in want):
        passed("extract_vector_kinds")
        return
    check(
        not all(close(got[k], -want[k]) for k in want), "The sign is reversed: the vector is positive minus negative."
    )
    check(
        not any(torch.allclose(got[k].norm(dim=-1), torch.ones(n), atol=1e-3) for k in want),
        "Do not normalise the vectors.",
    )
    batch_means = _wrong_batch_means(model, tok, pairs, 2)
    check(
        not all(close(got[k], batch_means[k]) for k in want),
        "With 3 pairs and batch_size=2 the batches are unequal: concatenate the examples of every batch and take "
        "one mean over examples, not a mean of batch means.",
    )
    check(
        not close(got["prompt_avg"], want["response_avg"]) or close(want["prompt_avg"], want["response_avg"]),
        "prompt_avg and response_avg are swapped.",
    )
    for kind in want:
        if close(got[kind], want[kind]):
            continue
        g, w = got[kind], want[kind]
        check(not close(g, -w), f"{kind}: the sign is reversed: positive minus negative.")
        check(
            not (close(g[1:], w[:-1]) or close(g[:-1], w[1:])),
            "Off by one layer: result[i] must be the output of block i (hidden_states[i + 1] for every block but the last).",
        )
        check(
            not close(g[:-1], w[:-1]),
            "Every block matches except the last: hidden_states[-1] is taken after the model's final norm, not the raw "
            "output of the last block. Read block outputs with padded_batches (hooks on the blocks).",
        )
        no_system = sol.extract_vector_kinds(model, tok, _tiny_pairs(system=False), batch_size=2)
        check(
            not close(g, no_system[kind]), "Read activations with the system prompt the response was generated under."
        )
        check(
            False,
            f"{kind} differs from the reference: use vector_kind_means on every batch (the response_avg kind averages "
            "the response tokens only), then average over all examples of each polarity.",
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

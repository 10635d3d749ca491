"""Section 4: wrong implementations students write, each rejected by its check with a named mistake.

`WRONG` maps each exercise to (wrong implementation, phrase its check's message must contain);
tests/sections/test_wrong_implementations.py runs every entry of every section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from solutions import part3_contrastive as part3
from solutions import part4_steering as sol
from utils.activations import mean_over_spans
from utils.cache import load_or_generate
from utils.chat import build_messages, encode, render
from utils.generation import generate_replies
from utils.hooks import block_output
from utils.metrics import cosine_matrix
from utils.steering import RowSteerer

SECTION = "part4_steering"
Steerer = sol.ActivationSteerer


# ActivationSteerer
class ResponseModeStepsEverywhere(Steerer):
    def _hook(self, module, inputs, output):
        if self.positions != "response":
            return super()._hook(module, inputs, output)
        hidden = block_output(output) + self.coeff * self.vector
        return hidden if isinstance(output, torch.Tensor) else (hidden, *output[1:])


class PromptModeSteersDecode(Steerer):
    def _hook(self, module, inputs, output):
        if self.positions == "prompt":
            return block_output(output) + self.coeff * self.vector
        return super()._hook(module, inputs, output)


class NeverRemovesHook(Steerer):
    def __exit__(self, *exc):
        return False


class RemovesOnlyWithoutException(Steerer):
    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self._handle.remove()
        return False


class TakesOutputZero(Steerer):
    def _hook(self, module, inputs, output):
        return output[0] + self.coeff * self.vector


class EditsInPlace(Steerer):
    def _hook(self, module, inputs, output):
        hidden = block_output(output)
        if self.positions == "response":
            hidden[:, -1] += self.coeff * self.vector
        elif self.positions == "all" or hidden.shape[1] > 1:
            hidden += self.coeff * self.vector
        return output


class NoValidation(Steerer):
    def __init__(self, model, steering_vector, coeff=1.0, layer=0, positions="all"):
        self.model, self.coeff, self.layer, self.positions = model, coeff, layer, positions
        self.vector = steering_vector
        self._handle = None


class NormalisesVector(Steerer):
    def __init__(self, model, steering_vector, coeff=1.0, layer=0, positions="all"):
        super().__init__(model, steering_vector, coeff, layer, positions)
        self.vector = self.vector / self.vector.norm()


class DropsTupleRest(Steerer):
    def _hook(self, module, inputs, output):
        result = super()._hook(module, inputs, output)
        return block_output(result)


# run_steering_experiment
def _sweep(
    model,
    tok,
    questions,
    vector,
    template,
    judge,
    coherence_prompt,
    layer=0,
    coefficients=None,
    max_new_tokens=256,
    positions="response",
    steer=True,
    exit_hook=True,
    coherence=True,
    order="coeff",
):
    coefficients = coefficients or [0.0, 1.0, 2.0]
    records = []
    for coeff in coefficients:
        steerer = Steerer(model, vector, coeff, layer, positions)
        if steer:
            steerer.__enter__()
        try:
            replies = generate_replies(
                model, tok, [build_messages(q) for q in questions], max_new_tokens=max_new_tokens
            )
        finally:
            if steer and exit_hook:
                steerer.__exit__(None, None, None)
        records += [{"coefficient": coeff, "question": q, "response": r} for q, r in zip(questions, replies)]
    if order == "question":
        records.sort(key=lambda r: questions.index(r["question"]))
    return part3.score_responses(records, template, coherence_prompt if coherence else template, judge)


def ignores_coefficient(*args, **kwargs):
    return _sweep(*args, steer=False, **kwargs)


def steers_all_positions(*args, **kwargs):
    return _sweep(*args, positions="all", **kwargs)


def hook_left_registered(*args, **kwargs):
    return _sweep(*args, exit_hook=False, **kwargs)


def coherence_with_trait_prompt(*args, **kwargs):
    return _sweep(*args, coherence=False, **kwargs)


def questions_outermost(*args, **kwargs):
    return _sweep(*args, order="question", **kwargs)


def judges_even_without_a_judge(*args, **kwargs):
    """Right in every other way (one steerer per coefficient), but always calls the judge."""
    return _sweep(*args, **kwargs)


def one_row_coefficient_per_coefficient(
    model, tok, questions, vector, template, judge, coherence_prompt, layer=0, coefficients=None, max_new_tokens=256
):
    """Gives RowSteerer the coefficient list itself instead of one coefficient per row."""
    coefficients = coefficients or [0.0, 1.0, 2.0]
    rows = [(c, q) for c in coefficients for q in questions]
    with RowSteerer(model, vector, coefficients, layer, positions="response"):
        replies = generate_replies(model, tok, [build_messages(q) for _, q in rows], max_new_tokens=max_new_tokens)
    records = [{"coefficient": c, "question": q, "response": r} for (c, q), r in zip(rows, replies)]
    return part3.score_responses(records, template, coherence_prompt, judge)


# compute_trait_projections
def unnormalised_projection(model, tok, system_prompts, questions, responses, vector, layer):
    return [
        p * float(vector.norm())
        for p in sol.compute_trait_projections(model, tok, system_prompts, questions, responses, vector, layer)
    ]


def off_by_one_layer(model, tok, system_prompts, questions, responses, vector, layer):
    return sol.compute_trait_projections(model, tok, system_prompts, questions, responses, vector, layer + 1)


def drops_system_prompt(model, tok, system_prompts, questions, responses, vector, layer):
    return sol.compute_trait_projections(model, tok, [None] * len(questions), questions, responses, vector, layer)


def averages_whole_sequence(model, tok, system_prompts, questions, responses, vector, layer):
    prompts = [render(build_messages(q, r, s), tok) for s, q, r in zip(system_prompts, questions, responses)]
    spans = [[(0, len(encode(p, tok)["input_ids"]))] for p in prompts]
    means = mean_over_spans(model, tok, prompts, spans, [layer])
    return [float(m[0, 0] @ vector / vector.norm()) for m in means]


# run_trait_pipeline
def _pipeline(
    model,
    tok,
    judge,
    trait_name,
    trait_data,
    coherence_prompt,
    cache_dir,
    eval_questions,
    layer=0,
    steering_coefficients=None,
    max_new_tokens=256,
    n_pairs=None,
    n_questions=None,
    min_pairs=3,
    override=False,
    cached=True,
    fallback=True,
    steer_layer_offset=0,
):
    def step(name, fn):
        if not cached:
            value = fn()
            Path(cache_dir, name.replace(".pt", ".json")).write_text("computed")
            return value
        return load_or_generate(Path(cache_dir) / name, fn, name, override)

    responses = step(
        "responses.json",
        lambda: part3.generate_contrastive_responses(
            model, tok, trait_data, trait_name, max_new_tokens=max_new_tokens, n_pairs=n_pairs, n_questions=n_questions
        ),
    )
    scored = step(
        "scored.json", lambda: part3.score_responses(responses, trait_data["eval_prompt"], coherence_prompt, judge)
    )
    pairs = part3.filter_effective_pairs(scored, trait_data)
    used = len(pairs) >= min_pairs
    if not used and fallback:
        pairs = part3.filter_effective_pairs(sol.prompt_labelled(responses), trait_data)
    vectors = step("vectors.pt", lambda: part3.extract_contrastive_vectors(model, tok, pairs))
    steering = step(
        "steering.json",
        lambda: sol.run_steering_experiment(
            model,
            tok,
            eval_questions,
            vectors[layer + steer_layer_offset],
            trait_data["eval_prompt"],
            judge,
            coherence_prompt,
            layer=layer,
            coefficients=steering_coefficients,
            max_new_tokens=max_new_tokens,
        ),
    )
    return {"vectors": vectors, "effective_pairs": pairs, "steering": steering, "used_judge_labels": used}


def never_caches(*args, **kwargs):
    return _pipeline(*args, cached=False, **kwargs)


def ignores_override(*args, override=False, **kwargs):
    return sol.run_trait_pipeline(*args, override=False, **kwargs)


def no_fallback(*args, **kwargs):
    return _pipeline(*args, fallback=False, **kwargs)


def steers_with_next_layer_vector(*args, **kwargs):
    return _pipeline(*args, steer_layer_offset=1, **kwargs)


# trait_similarity
def dot_products(trait_vectors, center=False):
    names = list(trait_vectors)
    stacked = torch.stack([trait_vectors[n] for n in names])
    if center:
        stacked = stacked - stacked.mean(0)
    return pd.DataFrame((stacked @ stacked.T).numpy(), index=names, columns=names)


def centres_each_vector(trait_vectors, center=False):
    names = list(trait_vectors)
    stacked = torch.stack([trait_vectors[n] for n in names])
    if center:
        stacked = stacked - stacked.mean(1, keepdim=True)
    return pd.DataFrame(cosine_matrix(stacked).numpy(), index=names, columns=names)


def ignores_center(trait_vectors, center=False):
    return sol.trait_similarity(trait_vectors, center=False)


def returns_tensor(trait_vectors, center=False):
    return torch.tensor(sol.trait_similarity(trait_vectors, center).to_numpy())


# extraction_directions
def _directions(pos, neg, stacked_pca=False, sign=True, rescale=True, probe_c=1.0, flip_mean=False, centre_diffs=False):
    mean_diff = (neg.mean(0) - pos.mean(0)) if flip_mean else (pos.mean(0) - neg.mean(0))
    data = torch.cat([pos, neg]) if stacked_pca else pos - neg
    if stacked_pca or centre_diffs:
        data = data - data.mean(0)
    _, _, vh = torch.linalg.svd(data, full_matrices=False)
    pca = vh[0] if (not sign or vh[0] @ mean_diff >= 0) else -vh[0]
    if not sign and vh[0] @ mean_diff > 0:
        pca = -vh[0]  # the unlucky sign a student without the flip can get
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    probe = torch.tensor(
        LogisticRegression(C=probe_c, max_iter=1000).fit(torch.cat([pos, neg]).numpy(), labels).coef_[0],
        dtype=pos.dtype,
    )
    out = {"mean_diff": mean_diff, "pca": pca, "probe": probe}
    if rescale:
        out = {k: v / v.norm() * mean_diff.norm() for k, v in out.items()}
    return out


def pca_of_stacked_activations(pos, neg):
    return _directions(pos, neg, stacked_pca=True)


def pca_of_centred_differences(pos, neg):
    return _directions(pos, neg, centre_diffs=True)


def pca_sign_not_aligned(pos, neg):
    return _directions(pos, neg, sign=False)


def unit_norm_directions(pos, neg):
    return _directions(pos, neg, rescale=False)


def probe_strongly_regularised(pos, neg):
    return _directions(pos, neg, probe_c=0.001)


def mean_diff_reversed(pos, neg):
    return _directions(pos, neg, flip_mean=True)


# random_direction
def uniform_entries(vector, seed=0):
    d = torch.rand(vector.shape, generator=torch.Generator().manual_seed(seed))
    return (d / d.norm() * vector.norm()).to(vector.dtype)


def unit_norm(vector, seed=0):
    d = torch.randn(vector.shape, generator=torch.Generator().manual_seed(seed))
    return (d / d.norm()).to(vector.dtype)


def raw_gaussian(vector, seed=0):
    return torch.randn(vector.shape, generator=torch.Generator().manual_seed(seed)).to(vector.dtype)


def global_random_state(vector, seed=0):
    d = torch.randn(vector.shape)
    return (d / d.norm() * vector.norm()).to(vector.dtype)


def ignores_seed(vector, seed=0):
    return sol.random_direction(vector, seed=0)


def noisy_copy(vector, seed=0):
    d = vector + 0.3 * vector.norm() / vector.numel() ** 0.5 * torch.randn(
        vector.shape, generator=torch.Generator().manual_seed(seed)
    )
    return d / d.norm() * vector.norm()


def always_float32(vector, seed=0):
    return sol.random_direction(vector.float(), seed)


WRONG = {
    "ActivationSteerer": [
        (ResponseModeStepsEverywhere, "only the last position"),
        (PromptModeSteersDecode, "decode steps"),
        (NeverRemovesHook, "still registered"),
        (RemovesOnlyWithoutException, "exception"),
        (TakesOutputZero, "output[0]"),
        (EditsInPlace, "in place"),
        (NoValidation, "ValueError"),
        (NormalisesVector, "normalised"),
        (DropsTupleRest, "tuple"),
    ],
    "run_steering_experiment": [
        (ignores_coefficient, "do not change with the coefficient"),
        (steers_all_positions, "'response' mode"),
        (hook_left_registered, "still registered"),
        (coherence_with_trait_prompt, "coherence"),
        (questions_outermost, "Order records"),
        (judges_even_without_a_judge, "judge=None"),
        (one_row_coefficient_per_coefficient, "one coefficient per conversation"),
    ],
    "compute_trait_projections": [
        (unnormalised_projection, "|v|"),
        (off_by_one_layer, "Off by one"),
        (drops_system_prompt, "system prompt"),
        (averages_whole_sequence, "response tokens only"),
    ],
    "run_trait_pipeline": [
        (never_caches, "judge again"),
        (ignores_override, "override"),
        (no_fallback, "fall back"),
        (steers_with_next_layer_vector, "vectors[layer]"),
    ],
    "trait_similarity": [
        (dot_products, "Normalise"),
        (centres_each_vector, "Centre over traits"),
        (ignores_center, "subtract the mean"),
        (returns_tensor, "DataFrame"),
    ],
    "random_direction": [
        (uniform_entries, "torch.rand"),
        (unit_norm, "norm"),
        (raw_gaussian, "norm"),
        (global_random_state, "same seed"),
        (ignores_seed, "different seed"),
        (noisy_copy, "close to the vector itself"),
        (always_float32, "dtype"),
    ],
    "extraction_directions": [
        (pca_of_stacked_activations, "paired differences"),
        (pca_of_centred_differences, "centring"),
        (pca_sign_not_aligned, "Flip"),
        (unit_norm_directions, "Rescale"),
        (probe_strongly_regularised, "probe differs"),
        (mean_diff_reversed, "mean(pos) - mean(neg)"),
    ],
}

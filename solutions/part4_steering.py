"""Solutions for part4_steering. Generated from part4_steering/source.py by `python -m utils.build_notebooks`; do not edit."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from part3_contrastive.artifacts import prompt_labelled
from solutions.part3_contrastive import (
    extract_contrastive_vectors,
    filter_effective_pairs,
    generate_contrastive_responses,
)
from utils.activations import response_mean_activations
from utils.cache import cache_inputs, load_or_generate
from utils.chat import build_messages
from utils.departures import departure
from utils.generation import generate_replies
from utils.hooks import block_output, hooked, with_block_output
from utils.layers import check_block_index, d_model, get_layers
from utils.metrics import cosine_matrix, project
from utils.models import course_name
from utils.steering import POSITIONS, RowSteerer
from utils.trait_scoring import score_responses

VALID_POSITIONS = POSITIONS  # where a steerer adds its vector: "all", "prompt" or "response" (utils.steering)


class ActivationSteerer:
    """Add ``coeff * steering_vector`` to a block's output inside a ``with`` block.

    Args:
        model: the model.
        steering_vector: a direction of size d_model (a tensor, numpy array or list; not normalised here).
        coeff: its multiplier.
        layer: block index (e.g. STEER_LAYER).
        positions: "all", "prompt" (prefill only) or "response" (last position only).

    Raises:
        ValueError: for a vector of the wrong size or an unknown ``positions``.
    """

    def __init__(
        self,
        model,
        steering_vector: Float[Tensor, " d_model"],
        coeff: float = 1.0,
        layer: int = 0,
        positions: str = "all",
    ):
        steering_vector = torch.as_tensor(steering_vector)  # a numpy array or a list of numbers works too
        if positions not in VALID_POSITIONS:
            raise ValueError(f"positions must be one of {VALID_POSITIONS}, got {positions!r}")
        if steering_vector.shape != (d_model(model),):
            raise ValueError(f"steering_vector must have shape ({d_model(model)},), got {tuple(steering_vector.shape)}")
        check_block_index(model, layer)
        self.model, self.coeff, self.layer, self.positions = model, coeff, layer, positions
        self.vector = steering_vector.detach()
        self._handle = None

    def _hook(self, module, inputs, output):
        hidden = block_output(output)
        shift = (self.coeff * self.vector).to(device=hidden.device, dtype=hidden.dtype)
        if self.positions == "all":
            hidden = hidden + shift
        elif self.positions == "prompt":
            if hidden.shape[1] > 1:
                hidden = hidden + shift
        else:
            mask = torch.zeros(hidden.shape[1], 1, device=hidden.device, dtype=hidden.dtype)
            mask[-1] = 1
            hidden = hidden + mask * shift
        return with_block_output(output, hidden)

    def __enter__(self):
        if self._handle is not None:
            raise RuntimeError("This ActivationSteerer is already active: exit it before entering it again")
        self._handle = get_layers(self.model)[self.layer].register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False


def run_steering_experiment(
    model,
    tokenizer,
    questions: list[str],
    steering_vector: Float[Tensor, " d_model"],
    eval_prompt_template: str,
    judge,
    coherence_prompt: str,
    layer: int = 0,
    coefficients: list[float] | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
) -> list[dict]:
    """Generate under steering at several coefficients (as rows of one batch) and score trait and coherence.

    Args:
        model, tokenizer: the model.
        questions: user questions.
        steering_vector: the trait vector at ``layer``.
        eval_prompt_template: the trait's judge prompt ({question}, {answer}).
        judge: a `utils.judge.Judge`, or None to leave ``score`` and ``coherence`` None.
        coherence_prompt: the coherence judge prompt.
        layer: block index to steer.
        coefficients: steering coefficients (default 0, 1, 2).
        max_new_tokens: reply length.
        batch_size: rows per generation pass.

    Returns:
        Records with keys coefficient, question, response, score, coherence.
    """
    coefficients = [0.0, 1.0, 2.0] if coefficients is None else coefficients
    rows = [(coeff, q) for coeff in coefficients for q in questions]
    with RowSteerer(model, steering_vector, [coeff for coeff, _ in rows], layer, positions="response"):
        replies = generate_replies(
            model, tokenizer, [build_messages(q) for _, q in rows], max_new_tokens=max_new_tokens, batch_size=batch_size
        )
    records = [{"coefficient": coeff, "question": q, "response": r} for (coeff, q), r in zip(rows, replies)]
    if judge is None:
        return [{**r, "score": None, "coherence": None} for r in records]
    return score_responses(records, eval_prompt_template, coherence_prompt, judge)


def compute_trait_projections(
    model,
    tokenizer,
    system_prompts: list[str | None],
    questions: list[str],
    responses: list[str],
    trait_vector: Float[Tensor, " d_model"],
    layer: int,
) -> list[float]:
    """Projection of each response's mean activation at block ``layer`` on the trait vector.

    Args:
        model, tokenizer: the model, unsteered.
        system_prompts: one per response (None: no system prompt).
        questions: the user question each response answers.
        responses: the responses to read.
        trait_vector: the direction at ``layer`` (any norm).
        layer: block index.

    Returns:
        One float per response: a . v / |v|.
    """
    conversations = [build_messages(q, r, s) for s, q, r in zip(system_prompts, questions, responses)]
    acts = response_mean_activations(model, tokenizer, conversations, [layer])[0]
    return project(acts, trait_vector).tolist()


def random_direction(vector: Float[Tensor, " d_model"], seed: int = 0) -> Float[Tensor, " d_model"]:
    """An isotropic random direction with the norm (and shape, dtype, device) of ``vector``.

    Args:
        vector: the direction to match (e.g. a trait vector).
        seed: seeds a `torch.Generator`; the same seed gives the same direction.

    Returns:
        A tensor like ``vector`` whose norm equals ``vector``'s.
    """
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(vector.shape, generator=generator, dtype=torch.float32)
    direction = direction / direction.norm() * vector.detach().float().norm()
    return direction.to(dtype=vector.dtype, device=vector.device)


def run_trait_pipeline(
    model,
    tokenizer,
    judge,
    trait_name: str,
    trait_data: dict,
    coherence_prompt: str,
    cache_dir: Path,
    eval_questions: list[str],
    layer: int = 0,
    steering_coefficients: list[float] | None = None,
    max_new_tokens: int = 256,
    n_pairs: int | None = None,
    n_questions: int | None = None,
    min_pairs: int = 3,
    override: bool = False,
) -> dict:
    """Generate, score, filter, extract and steer one trait, caching every step.

    Args:
        model, tokenizer: the model.
        judge: a `utils.judge.Judge` for the trait and coherence scores.
        trait_name: the trait's name (used in the cache file names).
        trait_data: the trait's data (instruction pairs, questions, eval_prompt).
        coherence_prompt: the coherence judge prompt.
        cache_dir: where every step's result is cached.
        eval_questions: held-out questions for the steering sweep.
        layer: block index to steer (the vector used is ``vectors[layer]``).
        steering_coefficients: the sweep's coefficients.
        max_new_tokens: reply length.
        n_pairs, n_questions: how many instruction pairs and extraction questions to use (None: all).
        min_pairs: fewer effective pairs than this falls back to prompt labels (announced).
        override: recompute every step.

    Returns:
        dict with vectors [num_layers, d_model], effective_pairs, steering records, used_judge_labels.
    """
    cache_dir = Path(cache_dir)
    # What every step depends on: a step cached under other data or settings is recomputed.
    step = cache_inputs(
        model=course_name(model),
        judge=judge,
        data={"trait": trait_data, "eval_questions": eval_questions},
        n_pairs=n_pairs,
        n_questions=n_questions,
        max_new_tokens=max_new_tokens,
        layer=layer,
        coefficients=steering_coefficients,
        min_pairs=min_pairs,
    )
    responses = load_or_generate(
        cache_dir / f"{trait_name}_responses.json",
        lambda: generate_contrastive_responses(
            model,
            tokenizer,
            trait_data,
            trait_name,
            max_new_tokens=max_new_tokens,
            n_pairs=n_pairs,
            n_questions=n_questions,
        ),
        f"{trait_name} responses",
        override,
        inputs=step,
    )
    scored = load_or_generate(
        cache_dir / f"{trait_name}_scored.json",
        lambda: score_responses(responses, trait_data["eval_prompt"], coherence_prompt, judge),
        f"{trait_name} scores",
        override,
        inputs=step,
    )
    pairs = filter_effective_pairs(scored, trait_data)
    used_judge_labels = len(pairs) >= min_pairs
    if not used_judge_labels:
        means = pd.DataFrame(scored).groupby("polarity")["score"].mean()
        print(
            f"{trait_name}: "
            + departure(
                f"the judge kept only {len(pairs)} effective pairs (< {min_pairs}; mean "
                f"trait score {means.get('pos', float('nan')):.1f} under the trait prompt vs {means.get('neg', float('nan')):.1f} "
                "under the opposite one); labelling pairs by their prompt instead"
            )
        )
        pairs = filter_effective_pairs(prompt_labelled(responses), trait_data)
    vectors = load_or_generate(
        cache_dir / f"{trait_name}_vectors.pt",
        lambda: extract_contrastive_vectors(model, tokenizer, pairs),
        f"{trait_name} vectors",
        override,
        inputs=step,
    )
    steering = load_or_generate(
        cache_dir / f"{trait_name}_steering.json",
        lambda: run_steering_experiment(
            model,
            tokenizer,
            eval_questions,
            vectors[layer],
            trait_data["eval_prompt"],
            judge,
            coherence_prompt,
            layer=layer,
            coefficients=steering_coefficients,
            max_new_tokens=max_new_tokens,
        ),
        f"{trait_name} steering",
        override,
        inputs=step,
    )
    return {"vectors": vectors, "effective_pairs": pairs, "steering": steering, "used_judge_labels": used_judge_labels}


def trait_similarity(trait_vectors: dict[str, Float[Tensor, " d_model"]], center: bool = False) -> pd.DataFrame:
    """Cosine similarities between trait vectors, optionally after removing their mean.

    Args:
        trait_vectors: trait name -> vector at one layer.
        center: subtract the mean over traits first.

    Returns:
        A square DataFrame of cosines, index and columns in the dict's order.
    """
    names = list(trait_vectors)
    stacked = torch.stack([trait_vectors[n].float() for n in names])
    if center:
        stacked = stacked - stacked.mean(dim=0, keepdim=True)
    return pd.DataFrame(cosine_matrix(stacked).numpy(), index=names, columns=names)


def extraction_directions(
    pos_acts: Float[Tensor, "n d_model"], neg_acts: Float[Tensor, "n d_model"]
) -> dict[str, Float[Tensor, " d_model"]]:
    """Mean-difference, paired-difference PCA and probe directions at equal norm.

    Args:
        pos_acts, neg_acts: paired response-mean activations (row i of each from the same question).

    Returns:
        {"mean_diff", "pca", "probe"}, every vector with the norm of the mean difference.
    """
    mean_diff = pos_acts.mean(0) - neg_acts.mean(0)
    diffs = pos_acts - neg_acts  # not centred: their mean is the trait direction we are after
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    pca = vh[0] if vh[0] @ mean_diff >= 0 else -vh[0]
    features = torch.cat([pos_acts, neg_acts]).numpy()
    labels = np.r_[np.ones(len(pos_acts)), np.zeros(len(neg_acts))]
    probe = torch.tensor(LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).coef_[0], dtype=mean_diff.dtype)
    norm = mean_diff.norm()
    return {name: v / v.norm() * norm for name, v in {"mean_diff": mean_diff, "pca": pca, "probe": probe}.items()}

"""Checks for section 4's exercises: compared with `solutions.part4_steering` on tiny models and
synthetic data, each failure naming the likely mistake."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from solutions import part3_contrastive as part3
from solutions import part4_steering as sol
from utils.chat import build_messages, encode, render
from utils.checks import TINY_TRAIT, check, close, passed, rule_judge, tiny
from utils.generation import generate_replies
from utils.hooks import block_output, user_hook_counts
from utils.layers import d_model, get_layers

LAYER = 1
PROMPTS = ["Tell me about cats.", "Hi"]


def _vector(model, seed: int = 0) -> torch.Tensor:
    return torch.randn(d_model(model), generator=torch.Generator().manual_seed(seed)) * 3


def _passes_with_steerer(cls, model, tok, vector, coeff, positions, new_tokens=3):
    """Per forward pass at block LAYER: (original output clone, original reference, steered output)."""
    blocks = get_layers(model)
    passes = []

    def before(module, inputs, output):
        hidden = block_output(output)
        passes.append({"clone": hidden.clone(), "ref": hidden})

    def after(module, inputs, output):
        passes[-1]["steered"] = output

    batch = encode(
        [render(build_messages(p), tok, add_generation_prompt=True) for p in PROMPTS],
        tok,
        return_tensors="pt",
        padding=True,
    )
    first = blocks[LAYER].register_forward_hook(before)
    try:
        with cls(model, vector, coeff, LAYER, positions) as _:
            second = blocks[LAYER].register_forward_hook(after)
            try:
                model.generate(
                    **batch,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            finally:
                second.remove()
    finally:
        first.remove()
    return passes


class _TupleBlock(nn.Module):
    def forward(self, x):
        return (x * 2.0, "extra")


class _TupleModel(nn.Module):
    """A model whose block returns a tuple, as in older transformers versions."""

    def __init__(self, d: int):
        super().__init__()
        self.embed = nn.Embedding(4, d)
        self.layers = nn.ModuleList([_TupleBlock(), _TupleBlock()])

    def get_input_embeddings(self):
        return self.embed


def _expected_delta(positions: str, step: int, shape, shift: torch.Tensor) -> torch.Tensor:
    delta = torch.zeros(shape)
    if positions == "all" or (positions == "prompt" and step == 0):
        delta[:] = shift
    elif positions == "response":
        delta[:, -1] = shift
    return delta


def _check_construction(cls, model) -> None:
    d = d_model(model)
    for bad, what in ((torch.randn(d + 1), "a vector of the wrong size"), (torch.randn(2, d), "a 2-D vector")):
        try:
            cls(model, bad, 1.0, LAYER, "all")
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001
            check(False, f"Reject {what} with a ValueError in __init__, got {type(err).__name__}.")
        check(False, f"Reject {what} in __init__ with a ValueError (check steering_vector.shape == (d_model,)).")
    try:
        cls(model, torch.randn(d), 1.0, LAYER, "everywhere")
    except ValueError:
        pass
    else:
        check(False, "Reject an unknown positions mode in __init__ with a ValueError.")


def _check_cleanup(cls, model, tok) -> None:
    before = user_hook_counts(model)
    with cls(model, _vector(model), 1.0, LAYER, "all"):
        pass
    check(user_hook_counts(model) == before, "A hook is still registered after the with block: remove it in __exit__.")
    try:
        with cls(model, _vector(model), 1.0, LAYER, "all"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    check(
        user_hook_counts(model) == before,
        "After an exception inside the with block the hook is still registered: "
        "remove it in __exit__ (which runs on exceptions too).",
    )


def _check_positions(cls, model, tok) -> None:
    vector, coeff = _vector(model), 2.0
    shift = coeff * vector
    for positions in ("all", "prompt", "response"):
        try:
            passes = _passes_with_steerer(cls, model, tok, vector, coeff, positions)
        except Exception as err:  # noqa: BLE001
            check(
                False,
                f"Generation under the steerer crashed ({type(err).__name__}: {err}). Did you take output[0] of "
                "a bare tensor (that is batch row 0), or return a different form than the block gave you?",
            )
        for step, p in enumerate(passes):
            steered = p["steered"]
            check(
                isinstance(steered, torch.Tensor) and steered.shape == p["clone"].shape,
                "Return the same form the block returned (a bare tensor here), with the same shape; output[0] of a "
                "tensor takes batch row 0.",
            )
            check(
                torch.equal(p["ref"], p["clone"]),
                "You edited the block's output in place: build a new tensor (hidden + shift), do not use += on it.",
            )
            delta = steered - p["clone"]
            want = _expected_delta(positions, step, delta.shape, shift)
            if close(delta, want, atol=1e-4):
                continue
            check(
                delta.abs().max() > 0 or want.abs().max() == 0,
                f"Nothing was added in '{positions}' mode: the hook must return the steered output.",
            )
            unit = vector / vector.norm() * coeff
            check(
                not close(delta, _expected_delta(positions, step, delta.shape, unit), atol=1e-4),
                "You normalised the steering vector: add coeff * steering_vector as given.",
            )
            check(
                not close(delta, _expected_delta(positions, step, delta.shape, vector), atol=1e-4),
                "Multiply the vector by coeff.",
            )
            if positions == "prompt" and step > 0:
                check(False, "In 'prompt' mode do not steer during decode steps (sequence length 1).")
            if positions == "prompt":
                check(False, "In 'prompt' mode steer every position of the prefill pass.")
            if positions == "response":
                check(False, "In 'response' mode steer only the last position of each pass.")
            check(False, f"In 'all' mode steer every position of every pass (failed at pass {step}).")


def _check_tuple_output(cls) -> None:
    model = _TupleModel(6)
    vector = torch.arange(6.0)
    x = torch.ones(2, 3, 6)
    with cls(model, vector, 0.5, 1, "all"):
        out = model.layers[1](x)
    check(
        isinstance(out, tuple) and len(out) == 2 and out[1] == "extra",
        "When the block returns a tuple, return a tuple: (steered hidden, *the rest unchanged).",
    )
    check(torch.allclose(out[0], x * 2 + 0.5 * vector), "For tuple outputs steer output[0] (the hidden states).")


def test_ActivationSteerer(cls) -> None:
    """Construction checks, cleanup, every positions mode in prefill and decode, tuple outputs, batching."""
    model, tok = tiny()
    _check_construction(cls, model)
    _check_cleanup(cls, model, tok)
    _check_positions(cls, model, tok)
    _check_tuple_output(cls)
    convs = [build_messages(p) for p in PROMPTS]
    plain = generate_replies(model, tok, convs, max_new_tokens=5)
    with cls(model, _vector(model), 0.0, LAYER, "all"):
        zero = generate_replies(model, tok, convs, max_new_tokens=5)
    check(zero == plain, "With coeff 0 the steered model must behave exactly like the unsteered one.")
    with cls(model, _vector(model), 2.0, LAYER, "response"):
        batched = generate_replies(model, tok, convs, max_new_tokens=5, batch_size=2)
        single = [generate_replies(model, tok, [c], max_new_tokens=5, batch_size=1)[0] for c in convs]
    check(batched == single, "Batched (left-padded) steered generation differs from one prompt at a time.")
    check(
        generate_replies(model, tok, convs, max_new_tokens=5) == plain,
        "After the with block the model must be unsteered.",
    )
    passed("ActivationSteerer")


def _length_judge():
    return rule_judge(lambda prompt, scale: float(len(prompt) % 101) + (0.5 if prompt.startswith("C") else 0.0))


def test_run_steering_experiment(fn) -> None:
    """Records per (coefficient, question), steered generation, trait and coherence scores."""
    model, tok = tiny()
    vector, questions = _vector(model), ["Hi", "How are you today?"]
    args = (model, tok, questions, vector, "T {question} [A] {answer}")
    before = user_hook_counts(model)
    try:
        got = fn(
            *args, _length_judge(), "C {question} [A] {answer}", layer=LAYER, coefficients=[0.0, 4.0], max_new_tokens=4
        )
    except RuntimeError as err:
        check(
            "coefficient" not in str(err),
            "RowSteerer takes one coefficient per conversation (row): repeat each coefficient once per question, "
            f"e.g. [coeff for coeff, _ in rows] (it said: {err})",
        )
        raise
    want = sol.run_steering_experiment(
        *args, _length_judge(), "C {question} [A] {answer}", layer=LAYER, coefficients=[0.0, 4.0], max_new_tokens=4
    )
    check(
        user_hook_counts(model) == before,
        "A steering hook is still registered: generate inside `with ActivationSteerer(...)`.",
    )
    check(
        isinstance(got, list) and len(got) == len(want),
        f"Expected {len(want)} records (one per coefficient and question).",
    )
    keys = {"coefficient", "question", "response", "score", "coherence"}
    check(all(keys <= set(r) for r in got), f"Each record needs keys {sorted(keys)}.")
    check(
        [(r["coefficient"], r["question"]) for r in got] == [(r["coefficient"], r["question"]) for r in want],
        "Order records by coefficient, then question.",
    )
    steered = [r["response"] for r in got if r["coefficient"] == 4.0]
    check(
        steered != [r["response"] for r in got if r["coefficient"] == 0.0]
        or steered == [r["response"] for r in want if r["coefficient"] == 4.0],
        "The responses do not change with the coefficient: generate inside the steerer, with that coefficient.",
    )
    check(
        [r["response"] for r in got] == [r["response"] for r in want],
        "Responses differ from greedy generation steered at the last position ('response' mode) of block `layer`.",
    )
    check(
        all(r["coherence"] is not None for r in got)
        and [r["coherence"] for r in got] == [r["coherence"] for r in want],
        "Score coherence with the coherence prompt (score_responses does both).",
    )
    check([r["score"] for r in got] == [r["score"] for r in want], "Score the trait with eval_prompt_template.")
    try:
        unjudged = fn(*args, None, "C {question} [A] {answer}", layer=LAYER, coefficients=[0.0, 4.0], max_new_tokens=4)
    except Exception as err:  # noqa: BLE001 - any failure here is the same mistake
        unjudged = err
    check(
        isinstance(unjudged, list)
        and [r["response"] for r in unjudged] == [r["response"] for r in want]
        and all(r["score"] is None and r["coherence"] is None for r in unjudged),
        "With judge=None, return the same records with score and coherence None, without calling the judge"
        + (f" (it raised {unjudged!r})" if isinstance(unjudged, Exception) else "."),
    )
    passed("run_steering_experiment")


def test_compute_trait_projections(fn) -> None:
    """Scalar projection of response means at block `layer` (not normalised away, not off by one)."""
    model, tok = tiny()
    vector = _vector(model, 3)
    args = (["You are terse.", None], ["Hi", "What is two plus two?"], ["Hello there, friend.", "Four."])
    got = fn(model, tok, *args, vector, LAYER)
    want = sol.compute_trait_projections(model, tok, *args, vector, LAYER)
    check(isinstance(got, list) and len(got) == 2, "Return a list with one float per response.")
    got_t, want_t = torch.tensor([float(x) for x in got]), torch.tensor(want)
    if torch.allclose(got_t, want_t, rtol=1e-4, atol=1e-5):
        passed("compute_trait_projections")
        return
    check(not torch.allclose(got_t, want_t * vector.norm(), rtol=1e-4), "Divide by |v|: the projection is a . v / |v|.")
    for other in (LAYER - 1, LAYER + 1):
        shifted = torch.tensor(sol.compute_trait_projections(model, tok, *args, vector, other))
        check(
            not torch.allclose(got_t, shifted, rtol=1e-4),
            "Off by one layer: `layer` is a block index (hidden_states[layer + 1], below the last block).",
        )
    no_system = torch.tensor(sol.compute_trait_projections(model, tok, [None, None], *args[1:], vector, LAYER))
    check(not torch.allclose(got_t, no_system, rtol=1e-4), "Include the system prompt in the conversation you read.")
    check(False, "Projections differ: average the block output over the response tokens only.")


class _TableJudge:
    """Scores reference responses: positives 90, negatives 10; unknown answers None."""

    def __init__(self, responses: list[dict]):
        self.trait = {r["response"]: 90.0 if r["polarity"] == "pos" else 10.0 for r in responses}

    def __call__(self, prompt: str, scale):
        answer = prompt.split(" [A] ", 1)[1]
        return 100.0 if prompt.startswith("C") else self.trait.get(answer, 50.0)


def test_run_trait_pipeline(fn) -> None:
    """Same results as the reference, every step cached (a rerun costs nothing), override recomputes.

    The pipelines the check runs (the student's and the reference's, on a tiny model and temporary folders)
    print their own cache lines and notes; the check keeps them out of the cell, which shows one verdict.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        _check_run_trait_pipeline(fn)
    passed("run_trait_pipeline")


def _check_run_trait_pipeline(fn) -> None:
    model, tok = tiny()
    kwargs = dict(layer=LAYER, steering_coefficients=[0.0, 8.0], max_new_tokens=4, min_pairs=2)
    responses = part3.generate_contrastive_responses(model, tok, part3_trait(), "sycophantic", max_new_tokens=4)
    table = _TableJudge(responses)
    with tempfile.TemporaryDirectory() as got_dir, tempfile.TemporaryDirectory() as want_dir:
        judge = rule_judge(table)
        got = fn(
            model,
            tok,
            judge,
            "sycophantic",
            part3_trait(),
            "C {question} [A] {answer}",
            Path(got_dir),
            ["Hi", "How are you?"],
            **kwargs,
        )
        want = sol.run_trait_pipeline(
            model,
            tok,
            rule_judge(table),
            "sycophantic",
            part3_trait(),
            "C {question} [A] {answer}",
            Path(want_dir),
            ["Hi", "How are you?"],
            **kwargs,
        )
        check(
            isinstance(got, dict) and {"vectors", "effective_pairs", "steering", "used_judge_labels"} <= set(got),
            "Return a dict with vectors, effective_pairs, steering, used_judge_labels.",
        )
        check(close(got["vectors"], want["vectors"]), "The vectors differ from generate -> score -> filter -> extract.")
        check(
            [r["response"] for r in got["steering"]] == [r["response"] for r in want["steering"]],
            "The steering records differ: steer with vectors[layer] at the given coefficients.",
        )
        n_prompts = len(judge.backend.prompts)
        cached = list(Path(got_dir).iterdir())
        check(len(cached) >= 4, f"Cache every step in cache_dir with load_or_generate (found {len(cached)} files).")

        def rerun(**extra):
            """The student's pipeline again, on the same cache folder and judge."""
            return fn(model, tok, judge, "sycophantic", part3_trait(), "C {question} [A] {answer}", Path(got_dir),
                      ["Hi", "How are you?"], **kwargs, **extra)  # fmt: skip

        rerun()
        check(
            len(judge.backend.prompts) == n_prompts,
            "A second run called the judge again: load every step from its cache.",
        )
        rerun(override=True)
        check(len(judge.backend.prompts) > n_prompts, "override=True must recompute every step.")
    with tempfile.TemporaryDirectory() as weak_dir:
        try:
            weak = fn(
                model,
                tok,
                rule_judge(lambda p, s: None),
                "sycophantic",
                part3_trait(),
                "C {question} [A] {answer}",
                Path(weak_dir),
                ["Hi"],
                **kwargs,
            )
        except (ValueError, RuntimeError, IndexError) as err:
            check(False, f"With no effective pairs the pipeline crashed ({err!r}): fall back to prompt labels.")
        check(
            weak["used_judge_labels"] is False and len(weak["effective_pairs"]) == 6,
            "With fewer than min_pairs effective pairs, fall back to prompt labels (prompt_labelled) and report it.",
        )


def part3_trait() -> dict:

    return {**TINY_TRAIT, "eval_prompt": "T {question} [A] {answer}"}


def test_trait_similarity(fn) -> None:
    """Cosines of trait vectors (normalised), raw and after removing the mean over traits."""
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(12, generator=g) * 3
    vectors = {
        name: shared + torch.randn(12, generator=g) * scale
        for name, scale in (("evil", 1.0), ("sycophantic", 2.0), ("humorous", 0.5), ("apathetic", 4.0))
    }
    for center in (False, True):
        got, want = fn(vectors, center=center), sol.trait_similarity(vectors, center=center)
        check(isinstance(got, pd.DataFrame), "Return a pandas DataFrame.")
        check(
            list(got.index) == list(vectors) and list(got.columns) == list(vectors),
            "Index and columns are the trait names, in order.",
        )
        g_np, w_np = got.to_numpy(float), want.to_numpy(float)
        if abs(g_np - w_np).max() < 1e-5:
            continue
        check(
            abs(abs(g_np).diagonal() - 1).max() < 1e-4,
            "Normalise the vectors: a cosine matrix has ones on its diagonal.",
        )
        if center:
            raw = sol.trait_similarity(vectors, center=False).to_numpy(float)
            check(abs(g_np - raw).max() > 1e-5, "With center=True subtract the mean over traits before the cosines.")
            check(False, "Centre over traits (the mean vector, dim 0), not over the entries of each vector.")
        check(False, "Raw cosines differ: do not centre when center=False.")
    passed("trait_similarity")


def _paired_data():
    g = torch.Generator().manual_seed(0)
    n, d = 40, 10
    base = torch.randn(n, d, generator=g) * 2
    direction = torch.randn(d, generator=g)
    pos = (
        base
        + direction
        + torch.randn(n, d, generator=g) * 0.3
        + torch.linspace(-1, 1, n)[:, None] * torch.eye(d)[0] * 2
    )
    neg = base - direction + torch.randn(n, d, generator=g) * 0.3
    return pos, neg


def test_extraction_directions(fn) -> None:
    """Mean difference, paired-difference PCA (signed) and probe, each at the mean difference's norm."""
    pos, neg = _paired_data()
    got, want = fn(pos, neg), sol.extraction_directions(pos, neg)
    check(
        isinstance(got, dict) and set(got) == {"mean_diff", "pca", "probe"},
        "Return a dict with keys mean_diff, pca, probe.",
    )
    norm = want["mean_diff"].norm()
    check(close(got["mean_diff"], want["mean_diff"]), "mean_diff is mean(pos) - mean(neg).")
    for name in ("pca", "probe"):
        check(
            abs(got[name].norm() - norm) < 1e-3 * norm,
            f"Rescale {name} to the norm of the mean difference (equal-norm comparison).",
        )
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=0))  # noqa: E731
    check(cos(got["pca"], want["pca"]) > -0.999, "Flip the PCA direction when it points against the mean difference.")
    stacked = torch.cat([pos, neg])
    _, _, vh = torch.linalg.svd(stacked - stacked.mean(0), full_matrices=False)
    check(
        abs(cos(got["pca"], vh[0])) < 0.999 or abs(cos(vh[0], want["pca"])) > 0.999,
        "Take the PCA of the paired differences pos_i - neg_i, not of the stacked activations.",
    )
    diffs = pos - neg
    _, _, vh_centred = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False)
    check(
        abs(cos(got["pca"], vh_centred[0])) < 0.999 or abs(cos(vh_centred[0], want["pca"])) > 0.999,
        "Do not centre the paired differences: centring removes their mean, which is the shared trait direction, "
        "and leaves only how the pairs differ from one another. Take the top right-singular vector of the "
        "uncentred pos_i - neg_i.",
    )
    check(
        cos(got["pca"], want["pca"]) > 0.999,
        "PCA differs: take the top right-singular vector of the uncentred paired differences pos_i - neg_i.",
    )
    check(
        cos(got["probe"], want["probe"]) > 0.999,
        "The probe differs: fit LogisticRegression(C=1.0, max_iter=1000) on pos (label 1) and neg (label 0) activations.",
    )
    passed("extraction_directions")


def test_random_direction(fn) -> None:
    """Same shape, norm, dtype as the vector; reproducible from the seed; isotropic (Gaussian), not the vector's."""
    g = torch.Generator().manual_seed(1)
    vector = torch.randn(4096, generator=g) * 0.3 + 0.05
    got = fn(vector, seed=0)
    check(
        isinstance(got, torch.Tensor) and got.shape == vector.shape, f"Return a tensor of shape {tuple(vector.shape)}."
    )
    check(got.dtype == vector.dtype, f"Return the vector's dtype ({vector.dtype}), got {got.dtype}.")
    check(
        abs(float(got.norm()) - float(vector.norm())) < 1e-3 * float(vector.norm()),
        f"Rescale to the vector's norm ({float(vector.norm()):.3f}), got {float(got.norm()):.3f}: the control must push "
        "as hard as the trait vector.",
    )
    check(
        torch.equal(fn(vector, seed=0), got),
        "The same seed must give the same direction: draw from a torch.Generator "
        "seeded with `seed`, not from the global random state.",
    )
    other = fn(vector, seed=1)
    check(
        not torch.allclose(other, got),
        "A different seed must give a different direction: seed the generator with `seed`.",
    )
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=0))  # noqa: E731
    check(
        abs(cos(got, vector)) < 0.2,
        f"The direction is close to the vector itself (cosine {cos(got, vector):.2f}): draw it "
        "independently of the vector; only its norm is the vector's.",
    )
    ones = torch.ones_like(vector)
    check(
        abs(cos(got, ones)) < 0.2 and abs(cos(other, ones)) < 0.2,
        f"The direction is close to the all-ones direction (cosine {cos(got, ones):.2f}): uniform entries (torch.rand) are "
        "all positive. Draw Gaussian entries (torch.randn) so that every direction is equally likely.",
    )
    wide = fn(vector.to(torch.float64), seed=0)
    check(
        wide.dtype == torch.float64 and abs(float(wide.norm()) - float(vector.norm())) < 1e-3 * float(vector.norm()),
        "Return the vector's dtype (float64 in, float64 out) at its norm.",
    )
    passed("random_direction")

# %% [markdown]
# # Section 4: Steering with persona vectors — monitoring, a multi-trait pipeline, and geometry
#
# Section 3 built trait vectors by *reading* activations. A direction you can read is not
# necessarily a direction the model *uses*. This section tests the vectors two ways: by
# intervening (add the vector during generation and see whether the trait appears) and by
# monitoring (project responses on the vector and see whether the projection tracks the trait).
# Then it scales the pipeline to several traits and looks at how the traits sit relative to each
# other and to the Assistant Axis of Section 1.
#
# **Learning objectives**
# - Write a steering hook as a context manager that is correct for prefill and decode steps, for
#   tensor and tuple block outputs, for batched left-padded generation, and that always cleans up.
# - Measure the judge before trusting it, and word every conclusion to match what it can see.
# - Run steering sweeps in both directions and read the trade-off between trait expression and coherence.
# - Monitor a trait by projecting response activations on its vector, against a random direction of
#   the same norm as a control.
# - Build a cached, resumable multi-trait pipeline.
# - Compare extraction methods by detection *and* by steering, and see that the best detector is
#   not necessarily the best steerer.
#
# **How to read this notebook**
# - **Profiles.** `COURSE_PROFILE` chooses the models and sizes: `offline` (the default: a 0.5B model on
#   a CPU, no download, what CI runs), `lite` (Qwen2.5-1.5B-Instruct, a small GPU), `full` (the papers'
#   models, a large GPU). The set-up cell prints which profile is running and why.
# - **Expected outputs.** Each collapsed "Expected output" block is the `offline` profile's recorded
#   run, and CI checks every fresh offline run against it within the stated tolerance. On `offline`
#   your numbers should match; on `lite` and `full` compare the shape: trait expression rises with the steering coefficient, then
#   falls once the push breaks the replies (an inverted U), and the projection on the vector tracks the
#   trait where a random direction does not. The paper raises the trait score with coefficients around
#   1-3 on Qwen2.5-7B. The original course material's run (its figures, not the paper's) scored sycophancy
#   13.5 at coefficient 0, 89.5 at +3 and 32.0 at +5: at +5 the push was so strong that the replies lost
#   their thread, and with it the trait the judge looks for.
# - **The judge follows the keys, not the profile.** With `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` set
#   (in the environment or a `.env` file), every profile uses a hosted judge, `offline` included: a small
#   subject model with a strong judge is a cheap and informative set-up. Without a key the section's own
#   model judges locally, and the notebook measures how well it does before leaning on it. The set-up
#   cell prints which judge is in use.
# - **Departures from the method** are printed as one line starting "Departure from the method:". On the
#   `offline` profile with the local judge this section makes two. §2's sweep reads coherence from
#   section 3's judge-free coherence score (the model's likelihood of the reply, its distinct bigrams and
#   P(end of turn)), not from the judge's 0-100 coherence: the local judge does not see repetition or
#   truncation. §4's pipeline labels a trait's pairs by their system prompt when the judge keeps too few
#   effective pairs (the offline run's local judge keeps too few for its traits), and prints the judge's
#   numbers. A third appears in the set-up when section 3's sycophancy vectors were themselves labelled by
#   prompt (section 3 not run, or its judge confirmed too few pairs); on the offline run they come from the
#   judge's labels. Not a departure line, but said in the set-up: on that profile the local judge, the
#   model being steered, is not asked about the trait or coherence; P(opens agreeing) and the judge-free
#   coherence carry those conclusions.

# %%
# COURSE SETUP

# %% tags=["module"]
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

# %%
import json
from collections.abc import Callable

import plotly.express as px
import plotly.graph_objects as go

from part3_contrastive import COHERENCE_PROMPT_FILE, trait_file
from part4_steering import tests
from part1_assistant_axis.artifacts import axis_for_model, axis_source
from part3_contrastive.artifacts import coherence_scale, describe_labelling, labels_of, trait_vectors
from solutions import part3_contrastive as section3_steps  # builds section 3's vectors if it has not run
from utils.chat import records_to_conversations
from utils.coherence import judge_free_coherence
from utils.data import load_trait_file
from utils.judge import SCORE_0_100, make_section_judge
from utils.judge.choice import HOSTED as HOSTED_BACKENDS
from utils.layers import num_layers
from utils.metrics import auroc
from utils.models import describe, load_model
from part3_contrastive import judge_free_measure
from utils.coherence import distinct_bigram_share
from utils.openings import OpeningMeasure, opener_token_ids, opening_probability, opens_with

AGREEING_OPENERS = tuple(judge_free_measure("sycophantic")["openers"])  # section 3's data: "Yes", "Absolutely", ...
from part4_steering.sweeps import (
    ORIGINAL_SWEEP_TRAIT, coherence_floor, judged_cells, largest_coherent_coefficient, missing_cells, rank_correlation,
    typical_residual_norm,
)


# %% [markdown]
# ## Set-up: the model, the judge and Section 3's vectors
#
# `STEER_LAYER` is a block index: the block whose output equals `hidden_states[TRAIT_VECTOR_LAYER]`,
# where Section 3 read its vectors. The sycophancy vectors come from Section 3
# (`part3_contrastive.artifacts.trait_vectors`), with how their pairs were labelled: `judge` (section
# 3's method) or `prompt` (every pair labelled by its system prompt: a departure from the method, used
# when the judge was too weak or Section 3 has not run; then they are built here, without a judge).
#
# A word on the judge: without an API key it is a local model, and on the offline profile that is the
# same 0.5B model we steer. So before any steering we measure what it can see (next cell), and every
# conclusion below is only as strong as that measurement: read the replies themselves next to every judge
# number in this section.

# %%
model, tokenizer = load_model(profile.models.part4)
print(describe(model))
TRAIT_VECTOR_LAYER, STEER_LAYER = profile.trait_vector_layer, profile.steer_layer
judge = make_section_judge(profile, model, tokenizer, profile.models.part4)
COHERENCE_PROMPT = COHERENCE_PROMPT_FILE.read_text()
syco_data = load_trait_file(trait_file("sycophantic"))
syco_eval = load_trait_file(trait_file("sycophantic", "eval"))
syco_vectors, syco_provenance = trait_vectors(model, tokenizer, profile, "sycophantic", build=section3_steps)
syco_vector = syco_vectors[STEER_LAYER]


print(f"sycophancy vectors: {describe_labelling(syco_provenance)}")
# How big a push is coefficient 1? Compare |v| with the norm of the residual stream it is added to.
RESIDUAL_NORM = typical_residual_norm(model, tokenizer, [build_messages(q) for q in syco_eval["questions"][:8]], STEER_LAYER)
print(f"STEER_LAYER = {STEER_LAYER}; |v| = {syco_vector.norm():.2f}; the residual stream's typical norm there is "
      f"{RESIDUAL_NORM:.1f}, so coefficient 1 adds a push of {syco_vector.norm() / RESIDUAL_NORM:.0%} of it")
course.record("|v| at STEER_LAYER", float(syco_vector.norm()))
course.record("residual norm at STEER_LAYER", RESIDUAL_NORM)

# %% [markdown]
# ### Checking the judge before using it
#
# Every steering result below is a judge score, so first measure the judge on two things whose answer we
# know:
# - **the trait**: the held-out sycophancy responses (Section 3's evaluation questions, answered under the
#   sycophantic and under the helpful system prompts). A judge that sees sycophancy scores the
#   sycophantic-prompted responses higher; its AUROC (sycophantic-prompted vs helpful-prompted) is near 1
#   when it separates them, near 0.5 when it does not. A low value has two possible causes, the judge or the
#   model not following its prompt: read a few responses of each kind to tell which.
# - **coherence**: a few clean replies, and the same replies garbled two ways: words shuffled, and one
#   fragment repeated (as over-steered replies look). A coherence judge worth the name scores both garbled
#   versions far below the clean ones.
#
# The responses come from the same call as Section 3's, so if Section 3 has run they are read, not generated.

# %% [markdown]
# **Before you run:** with a hosted judge, will it separate sycophantic-prompted from helpful-prompted
# responses, and will it score a shuffled reply as less coherent than the clean one? (On the offline profile
# the local judge, the 0.5B model it judges, is not asked here: the cell says why.)
#
# <details><summary>Answer</summary>
#
# Compare the printed AUROC with 0.5 and the three coherence means with each other. With a hosted judge expect
# an AUROC near 1 and garbled replies far below clean ones. A low AUROC has two possible causes, the judge or
# the labels: under the sycophantic prompt a small model can still refuse, and under the helpful one agree.
# On the offline profile this cell prints no judge numbers: the local judge is the 0.5B model being steered,
# Section 3 measured it on check sets whose labels are known (its AUROCs are printed there), and here the
# judge-free measures below carry the section's conclusions.
# </details>

# %%
# expected: this cell records only where the offline run does not reach it (the judge check: not the offline local judge)
held_out = load_or_generate(
    course.cache / "sycophantic_eval_responses.json",
    lambda: generate_contrastive_responses(
        model, tokenizer, syco_eval, "sycophantic", max_new_tokens=profile.max_new_tokens,
        n_pairs=profile.n_instruction_pairs, n_questions=profile.n_eval_questions, batch_size=profile.batch_size,
    ),
    "held-out sycophantic responses",
    inputs=course.inputs(data={"eval": syco_eval}, code=[generate_contrastive_responses],
                        n_pairs=profile.n_instruction_pairs, n_questions=profile.n_eval_questions,
                        max_new_tokens=profile.max_new_tokens),
)
# On the offline profile the local judge is the model it judges, and section 3 measured it on written check
# sets whose labels are known (its trait and coherence AUROCs are printed there), so on this profile it is
# not asked again here: P(opens agreeing) carries the trait and section 3's judge-free coherence
# carries coherence (both below). A hosted judge, or a local one on another profile, is checked here.
from utils.judge.standing import judge_standing  # the one owner of "is this judge too weak to score as the paper's"

JUDGE_STANDING = judge_standing(profile, judge)
OFFLINE_LOCAL_JUDGE = JUDGE_STANDING.weak


def mean_or_nan(values) -> float:
    """The mean of the scores the judge gave (nan when it refused every one)."""
    return float(np.mean(values)) if len(values) else float("nan")


def shuffle_words(text: str, seed: int = 0) -> str:
    words = text.split()
    np.random.default_rng(seed).shuffle(words)
    return " ".join(words)


def repeat_fragment(text: str, times: int = 12) -> str:
    return " ".join((text.split()[:3] or ["the"]) * times)


judge_auroc = float("nan")
if OFFLINE_LOCAL_JUDGE:
    print(f"The judge is not asked here: {JUDGE_STANDING.reason} (section 3 measured it on its check sets). The trait "
          "is read from P(opens agreeing) and coherence from section 3's judge-free coherence score (likelihood, distinct bigrams, end of turn), below.")
else:
    # The judge reads the responses to the first ten held-out questions (both prompts, every instruction pair):
    # enough to see whether it separates them at all; Section 3 measures it on a larger labelled check set.
    judge_check = [r for r in held_out if r["question"] in syco_eval["questions"][:10]]
    held_scores = judge.score_template(syco_data["eval_prompt"], [{"question": r["question"], "answer": r["response"]} for r in judge_check],
                                       SCORE_0_100)
    by_polarity = {pol: [s for s, r in zip(held_scores, judge_check) if r["polarity"] == pol and s is not None] for pol in ("pos", "neg")}
    judge_auroc = auroc(by_polarity["pos"], by_polarity["neg"]) if all(by_polarity.values()) else float("nan")  # nan: the judge refused
    clean = sorted((r for r in held_out if r["polarity"] == "neg"), key=lambda r: -len(r["response"]))[:3]  # the longest helpful replies
    coherence_check = {
        name: mean_or_nan([c for c in judge.score_template(COHERENCE_PROMPT, [{"question": r["question"], "answer": garble(r["response"])}
                                                                           for r in clean], SCORE_0_100) if c is not None])
        for name, garble in (("clean", lambda t: t), ("words shuffled", shuffle_words), ("fragment repeated", repeat_fragment))
    }
    print(f"Judge: {judge.model_name} ({'the model being steered' if judge.model_name == profile.models.part4 else 'not the model being steered'})")
    print(f"trait: mean score {mean_or_nan(by_polarity['pos']):.1f} (sycophantic prompt) vs {mean_or_nan(by_polarity['neg']):.1f} (helpful prompt); "
          f"AUROC {judge_auroc:.2f} over {sum(map(len, by_polarity.values()))} held-out responses")
    print("coherence:", ", ".join(f"{name} {value:.1f}" for name, value in coherence_check.items()),
          f"(e.g. {shuffle_words(clean[0]['response'])[:80]!r})")
    score_gap = mean_or_nan(by_polarity["pos"]) - mean_or_nan(by_polarity["neg"])
    JUDGE_SEES_TRAIT = judge_auroc >= 0.9 and score_gap >= 20  # ranks them apart, and by a margin a sweep could show
    JUDGE_SEES_GARBLE = coherence_check["clean"] - max(coherence_check["words shuffled"], coherence_check["fragment repeated"]) >= 20
    trait_verdict = ("separates" if JUDGE_SEES_TRAIT else "only partly separates" if judge_auroc >= 0.7 else "does NOT separate")
    print(f"So: the judge {trait_verdict} sycophantic from helpful responses (AUROC {judge_auroc:.2f}, means {score_gap:+.1f} apart), "
          f"and {'scores' if JUDGE_SEES_GARBLE else 'does NOT score'} garbled replies at least 20 points below clean ones. "
          + ("Its scores below can be read as evidence." if JUDGE_SEES_TRAIT and JUDGE_SEES_GARBLE
             else "Read its scores below as weak evidence at best; the replies and the projections carry the conclusions."))
    course.record("judge: sycophancy AUROC, held-out prompted responses", judge_auroc)
    for name, value in coherence_check.items():
        course.record(f"judge: coherence, {name}", value)

# %% [markdown]
# How were the pairs behind the sycophancy vector labelled? Section 3's method keeps only the pairs the judge
# confirmed (`judge` labels). When its judge confirmed too few, or Section 3 has not run, the pairs are
# labelled by their system prompt instead (`prompt` labels): a departure from the method, announced here with
# the judge numbers that forced it.

# %%
# Section 3 saved how the pairs were labelled, and the judge's numbers, with the vectors.
if labels_of(syco_provenance) == "prompt":
    print(departure(f"the sycophancy vectors come from pairs labelled by their system prompt, not by the "
          f"judge ({describe_labelling(syco_provenance)})"
          + ("" if OFFLINE_LOCAL_JUDGE else f"; the judge check above gave AUROC {judge_auroc:.2f}") + ". The vector "
          "is 'what the sycophantic prompt changes', whether or not the replies were sycophantic."))
else:
    print(f"The sycophancy vectors come from {describe_labelling(syco_provenance)}.")

# %% [markdown]
# ## 1. An activation steerer
#
# A steerer can add its vector to the prompt, to the reply, or to both. Generation runs one forward pass over
# the whole prompt (the prefill), then one pass per new token.
#
# **Before you run** (and before you read the exercise): to steer only the reply (the `"response"` mode
# below), which position of the prefill pass must be steered, and why that one? The exercise's specification
# and the printout after it show it.
#
# <details><summary>Answer</summary>
#
# The last one: the generation cursor, whose output predicts the first reply token. Every decode pass after
# it holds one position, the newest token, and that is steered too. `[-1]` is the cursor only because the
# course pads batches on the left (`tokenizer.padding_side == "left"`, set by `utils.models.load_model`): with
# right padding, the last position of a shorter row is padding, and its steer would land on a pad token
# while its real cursor went unsteered.
# </details>

# %% [markdown]
# ### Exercise 1: `ActivationSteerer`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 25 min
#
# A context manager that adds `coeff * steering_vector` to the output of block `layer` during
# every forward pass inside the `with` block. `positions` says where:
# - `"all"`: every position of every forward pass;
# - `"prompt"`: every position during the prefill pass (the whole prompt at once), nothing during
#   the one-token decode steps that follow;
# - `"response"`: the last position only (the token being generated) in every pass.
#
# Requirements, each checked:
# - in transformers 5 a decoder block returns a bare tensor; older versions and some models return
#   a tuple `(hidden, ...)`. Handle both and return the same form you received (`block_output` and
#   `with_block_output` from `utils.hooks` do both; beware `output[0]`
#   on a tensor: it silently takes batch row 0);
# - never edit the block's output in place (`+=` on it, or on a slice): other hooks and caches hold
#   the same tensor. Build a new tensor;
# - reject a vector whose size is not `d_model`, and an unknown `positions`, in `__init__` with a
#   `ValueError`; so is a `layer` that is not one of the model's blocks (`utils.layers.check_block_index`
#   also refuses negative indices, which would silently pick a block from the end);
# - refuse to enter a steerer that is already active (a `RuntimeError`): a second hook would double
#   the shift, and the inner exit would leave one behind;
# - remove the hook in `__exit__`, also when the body raised.
#
# <details><summary>Hint: telling prefill from decode</summary>
#
# With a KV cache, generation runs one forward pass over the whole prompt, then one pass per new
# token with sequence length 1. The hidden state's second dimension tells you which one you are in.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# mask = torch.zeros(hidden.shape[1], 1, device=hidden.device, dtype=hidden.dtype)
# mask[-1] = 1  # "response": only the last position of this pass
# hidden = hidden + mask * shift
# ```
# </details>

# %% tags=["exercise"]
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

    def __init__(self, model, steering_vector: Float[Tensor, " d_model"], coeff: float = 1.0, layer: int = 0, positions: str = "all"):
        steering_vector = torch.as_tensor(steering_vector)  # a numpy array or a list of numbers works too
        # BEGIN SOLUTION
        if positions not in VALID_POSITIONS:
            raise ValueError(f"positions must be one of {VALID_POSITIONS}, got {positions!r}")
        if steering_vector.shape != (d_model(model),):
            raise ValueError(f"steering_vector must have shape ({d_model(model)},), got {tuple(steering_vector.shape)}")
        check_block_index(model, layer)
        self.model, self.coeff, self.layer, self.positions = model, coeff, layer, positions
        self.vector = steering_vector.detach()
        self._handle = None
        # END SOLUTION

    def _hook(self, module, inputs, output):
        # BEGIN SOLUTION
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
        # END SOLUTION

    def __enter__(self):
        # BEGIN SOLUTION
        if self._handle is not None:
            raise RuntimeError("This ActivationSteerer is already active: exit it before entering it again")
        self._handle = get_layers(self.model)[self.layer].register_forward_hook(self._hook)
        return self
        # END SOLUTION

    def __exit__(self, *exc):
        # BEGIN SOLUTION
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False
        # END SOLUTION


# %%
tests.test_ActivationSteerer(ActivationSteerer)

# %% [markdown]
# **What each mode changes.** One short greedy generation (the prompt, then three new tokens) under each
# mode, with a recorder on the same block before the steerer and another after it: for every forward pass,
# the positions whose block output the steerer changed: it shows the answer to the prediction before
# Exercise 1.

# %%
def steered_positions(positions: str, question: str, max_new_tokens: int = 3) -> list[str]:
    """For each forward pass of a short greedy generation, the positions the steerer changed.

    Args:
        positions: the steerer's mode.
        question: the user question to generate from.
        max_new_tokens: how many tokens to generate (one prefill pass, then a decode pass per further token).

    Returns:
        One line per forward pass: its kind, its length and the positions changed.
    """
    block = get_layers(model)[STEER_LAYER]
    before, after = [], []

    def recorder(store: list) -> Callable:
        return lambda module, inputs, output: store.append(block_output(output)[0].detach().clone())

    with hooked({block: recorder(before)}), ActivationSteerer(model, syco_vector, 1.0, STEER_LAYER, positions):
        with hooked({block: recorder(after)}):  # registered after the steerer's hook, so it sees the steered output
            generate_replies(model, tokenizer, [build_messages(question)], max_new_tokens=max_new_tokens)
    lines = []
    for i, (unsteered, steered) in enumerate(zip(before, after)):
        changed = torch.nonzero((steered - unsteered).abs().amax(dim=-1) > 0).flatten().tolist()
        shown = changed if len(changed) <= 4 else f"all {len(changed)}: {changed[0]}..{changed[-1]}"
        kind = "prefill" if i == 0 else f"decode step {i}"
        lines.append(f"{kind:>13} ({len(unsteered):2d} positions): steered {shown}")
    return lines


for mode in VALID_POSITIONS:
    print(f"positions={mode!r}")
    for line in steered_positions(mode, syco_eval["questions"][0]):
        print("  " + line)

# %% [markdown]
# **Coefficients across sections.** Section 2 steered with `alpha` times the *unit* axis and chose `alpha`
# as a multiple of `|axis|`, so its multiple `m` added `m` times the raw axis. Here `coeff` multiplies the
# raw trait vector `v`: coefficient 1 adds one whole mean difference, `|v|` long. The two scales agree on
# what 1 means (one full difference between the two groups' means), and to compare pushes between vectors,
# compare `coeff * |v|` with the residual norm printed in the set-up.

# %% [markdown]
# ## 2. Steering sweeps
#
# ### Exercise 2: `run_steering_experiment`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 15 min
#
# Generate greedy replies to **all** questions at **every** coefficient, steering at block `layer` in
# `"response"` mode, then score every reply for the trait and for coherence with `score_responses` from
# Section 3 (it takes records with `question` and `response`). Return one dict per (coefficient, question)
# with keys `coefficient`, `question`, `response`, `score`, `coherence`, ordered by coefficient then question.
# With `judge=None`, skip the scoring and set `score` and `coherence` to None.
#
# A sweep is many coefficients, and one batched generation per coefficient leaves the batch small and the
# machine idle. Make every (coefficient, question) pair a **row of one generation** instead, with
# `utils.steering.RowSteerer`: your steerer, row-aware. It takes one coefficient per conversation
# (`coeffs[i]` steers conversation `i`, whichever rows the decoding loop still holds) and gives exactly the
# replies of one `ActivationSteerer` per coefficient. A loop with your own steerer gives the same replies,
# more slowly, and passes the check too.
#
# <details><summary>Hint</summary>
#
# Build the rows first, `rows = [(coeff, q) for coeff in coefficients for q in questions]` (coefficient
# outermost, so the records come out in the required order), then one `RowSteerer` with
# `[coeff for coeff, _ in rows]` around one `generate_replies` call over `[build_messages(q) for _, q in rows]`.
# Score all records at the end with one `score_responses(records, eval_prompt_template, coherence_prompt, judge)`.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# with RowSteerer(model, steering_vector, [coeff for coeff, _ in rows], layer, positions="response"):
#     replies = generate_replies(model, tokenizer, [build_messages(q) for _, q in rows], max_new_tokens=max_new_tokens,
#                                batch_size=batch_size)
# ```
# </details>

# %% tags=["exercise"]
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
    # BEGIN SOLUTION
    coefficients = [0.0, 1.0, 2.0] if coefficients is None else coefficients
    rows = [(coeff, q) for coeff in coefficients for q in questions]
    with RowSteerer(model, steering_vector, [coeff for coeff, _ in rows], layer, positions="response"):
        replies = generate_replies(model, tokenizer, [build_messages(q) for _, q in rows], max_new_tokens=max_new_tokens,
                                   batch_size=batch_size)
    records = [{"coefficient": coeff, "question": q, "response": r} for (coeff, q), r in zip(rows, replies)]
    if judge is None:
        return [{**r, "score": None, "coherence": None} for r in records]
    return score_responses(records, eval_prompt_template, coherence_prompt, judge)
    # END SOLUTION


# %%
tests.test_run_steering_experiment(run_steering_experiment)

# %% [markdown]
# ### Measuring the trait without a judge
#
# The sweep runs every coefficient of the profile, negative ones included (the original material swept -3 to
# +5), at every held-out question. Three measures need no judge:
# - **trait expression**: Section 3's sycophancy questions end in "Agree?" or "right?", so the model's first
#   reply token says whether it goes along with the user. `opening_probability` is the probability that the
#   reply opens by agreeing (its first token is one of `AGREEING_OPENERS`: "Yes", "Absolutely", ...), from one
#   forward pass per question under the same steering: no sampling noise, no judge;
# - **opens agreeing**: the same thing read off the greedy reply's text (`opens_with`), a share of replies;
# - **coherence**: with a local judge, Section 3's judge-free coherence (`judge_free_coherence`: the reply's
#   likelihood, its distinct bigrams and P(end of turn) after it, each placed among the clean answers of
#   Section 3's check set, the smallest of the three, 0-1); with a hosted judge, distinct bigrams alone. The table
#   shows both;
# - **distinct bigrams**: the share of a reply's word bigrams that are distinct (`distinct_bigram_share`): 1.0
#   for a reply that never repeats itself, low for "every new year, every new year, ...".
#
# The useful coefficients are those whose replies stay about as coherent as the unsteered model's. So, as
# traitinterp does, we measure a **coherence floor** on the unsteered replies (their mean less 0.1) and
# search for the **largest coefficient whose coherence stays above it** (`largest_coherent_coefficient`).
# Up to that coefficient, does trait expression rise with the coefficient? Spearman's rank correlation says
# how monotonically (1.0: every step up raises it).

# %% [markdown]
# **Before you run:** sketch P(opens agreeing) against the coefficient, from the most negative to the largest.
# Where will it peak, and what happens to it past the coherence floor?
#
# <details><summary>Answer</summary>
#
# Expect an inverted U, the shape the papers report: subtracting the vector keeps or lowers agreement (the
# unsteered model mostly refuses these leading questions), adding it raises agreement over the first
# coefficients, and past the floor the replies degenerate into repetition, which opens with no word at all,
# so agreement falls again. On the offline run (|v| = 9.07, 24% of the residual norm per unit
# of coefficient; 20 questions per coefficient) P(opens agreeing) goes 0.09, 0.15, 0.22, 0.25, 0.27, 0.28,
# 0.27, 0.24, 0.20, 0.09 over coefficients -2, -1, 0, 0.5, 1, 1.5, 2, 3, 4, 6: the inverted U, peaking at 1.5,
# but a shallow one (0.22 unsteered, 0.28 at the peak). The floor comes from the judge-free coherence: the
# unsteered replies average 0.431, so the floor is 0.331; the coherence stays at or above it from -2 to 1
# (0.33, 0.51, 0.43, 0.38, 0.47), falls to 0.22 at 1.5 and 0.15 at 2, and to 0.05 or 0.00 from 3 on. So the search
# keeps coefficient 1, and up to it agreement rose at every step (Spearman 1.00 over 5 coefficients). Distinct
# bigrams alone would have kept more: they stay at 0.92-1.00 up to 1.5 and fall to 0.87 at 2, 0.76 at 3 and
# 0.31 at 4. The replies to the knuckle-cracking question show it: at -1 and 0, "I'm sorry, but I can't assist
# with that."; from 0.5 to 1.5, "I'm glad you're feeling well! ..." (no refusal, no agreement yet); at 2 and 3,
# "Yes, you're right! Your grandmother's story is inspiring! ..."; at 4, "Yes, the good fortune of the new new
# new ..."; at 6, "YES, YES, YES! ...". The share of replies whose text opens with an agreeing word rises from
# 0.25 unsteered to 0.50 at 1 and stays at 0.50-0.55 beyond, because a degenerate reply can still open with
# "Yes": the first-token probability, which falls as the text breaks, is the cleaner measure.
# </details>

# %%
def show_replies(records: list[dict], question: str | None = None, width: int = 160) -> None:
    """Print the reply to one question (the first by default) at every coefficient of a sweep, truncated."""
    question = question or records[0]["question"]
    print(f"Q: {question[:width]}")
    for r in records:
        if r["question"] == question:
            print(f"  coeff {r['coefficient']:>5g}: {r['response'][:width]!r}")


AGREE_IDS = opener_token_ids(tokenizer, AGREEING_OPENERS)


def agreement(direction, records: list[dict]) -> list[float]:
    """P(the reply opens agreeing) for each record's question, steered by ``direction`` at its coefficient."""
    return opening_probability(model, tokenizer, [build_messages(r["question"]) for r in records], AGREE_IDS,
                               vector=direction, coeffs=[r["coefficient"] for r in records], layer=STEER_LAYER,
                               batch_size=profile.batch_size).tolist()


def sweep_table(records: list[dict]) -> pd.DataFrame:
    """Per coefficient: mean trait expression, share opening agreeing, mean coherence (judge-free), judge means."""
    df = pd.DataFrame(records)
    return df.groupby("coefficient").agg(
        p_agree=("p_agree", "mean"), opens_agreeing=("opens_agreeing", "mean"), coherence=("text_coherence", "mean"),
        distinct_bigrams=("distinct_bigrams", "mean"),
        n=("question", "size"),
    )


# %%
eval_questions = syco_eval["questions"][: profile.n_eval_questions]
sweep = load_or_generate(
    course.cache / "sycophancy_sweep.json",
    lambda: run_steering_experiment(
        model, tokenizer, eval_questions, syco_vector, syco_data["eval_prompt"], None, COHERENCE_PROMPT,
        layer=STEER_LAYER, coefficients=list(profile.steering_coefficients), max_new_tokens=profile.max_new_tokens,
        batch_size=profile.batch_size,
    ),
    "sycophancy steering sweep",
    inputs=course.inputs(code=[run_steering_experiment, RowSteerer],
                        data={"vector": syco_vector, "questions": eval_questions}, layer=STEER_LAYER,
                        coefficients=profile.steering_coefficients, max_new_tokens=profile.max_new_tokens),
)
# With a local judge, coherence is section 3's judge-free score (0-1 here): the unsteered model's likelihood of
# each reply, its distinct bigrams and P(end of turn) after it, each placed among the clean answers of
# section 3's check set; the smallest of the three. Elsewhere, distinct bigrams alone (a hosted judge scores
# the whole sweep below).
JUDGE_FREE = judge.backend.name == "local"
if JUDGE_FREE:
    COHERENCE_SCALE = coherence_scale(model, tokenizer, profile)
    sweep_coherence = load_or_generate(
        course.cache / "sycophancy_sweep_coherence.json",
        lambda: [c / 100 for c in judge_free_coherence(model, tokenizer, COHERENCE_SCALE, [{"question": r["question"], "answer": r["response"]} for r in sweep],
                                                       profile.batch_size, cut_at=profile.max_new_tokens)],
        "judge-free coherence of the sweep's replies",
        inputs=course.inputs(code=[judge_free_coherence], data={"sweep": [r["response"] for r in sweep], "scale": COHERENCE_SCALE.clean},
                            cut_at=profile.max_new_tokens),
    )
    print(departure("the coherence floor is read from section 3's judge-free coherence (not a judge's "
          "0-100 coherence score): the local judge does not see repetition or truncation."))
else:
    sweep_coherence = [distinct_bigram_share(r["response"]) for r in sweep]
for r, p, c in zip(sweep, agreement(syco_vector, sweep), sweep_coherence):
    r.update(p_agree=p, opens_agreeing=float(opens_with(r["response"], AGREEING_OPENERS)), distinct_bigrams=distinct_bigram_share(r["response"]),
             text_coherence=c)
summary = sweep_table(sweep)
FLOOR = coherence_floor([r["text_coherence"] for r in sweep if r["coefficient"] == 0])
C_STAR = largest_coherent_coefficient(summary.index.tolist(), summary["coherence"].tolist(), FLOOR)
sweep_rho = rank_correlation(summary.index.tolist(), summary["p_agree"].tolist(), up_to=C_STAR)
print(summary.round(3).to_string())
print(f"coherence ({'judge-free' if JUDGE_FREE else 'distinct bigrams'}) floor {FLOOR:.3f} (unsteered mean less 0.1); largest coefficient above it: {C_STAR:g}; "
      f"Spearman(coefficient, P(opens agreeing)) from {summary.index.min():g} to {C_STAR:g}: {sweep_rho:.2f} "
      f"over {len(summary.loc[:C_STAR])} coefficients x {len(eval_questions)} questions")
fig = px.line(summary.reset_index(), x="coefficient", y=["p_agree", "opens_agreeing", "coherence", "distinct_bigrams"], markers=True,
              title="Steering with the sycophancy vector: trait expression and coherence (no judge)")
fig.add_hline(y=FLOOR, line_dash="dot", annotation_text="coherence floor")
fig.add_vline(x=C_STAR, line_dash="dash", annotation_text="largest coherent coefficient")
fig.show()
for coeff, row in summary.iterrows():
    course.record(f"P(opens agreeing) at coeff {coeff:g}", row["p_agree"], echo=False)  # the table above shows them
    course.record(f"coherence (distinct bigrams) at coeff {coeff:g}", row["distinct_bigrams"], echo=False)
    if JUDGE_FREE:
        course.record(f"coherence (judge-free) at coeff {coeff:g}", row["coherence"], echo=False)
course.record("largest coefficient above the coherence floor", C_STAR)
course.record("steering: Spearman(coefficient, trait expression) up to the coherence floor", sweep_rho)
show_replies(sweep)

# %% [markdown]
# ### The judge beside the measures
#
# With a hosted judge the whole sweep is judged, as in the original material: every coefficient x every
# evaluation question, for the trait and for coherence. The figure draws the judge's mean trait score and
# coherence per coefficient, with the original material's run beside them (its trait score: 13.5 at 0, 89.5
# at +3, 32.0 at +5, on Qwen2.5-7B). A local judge is slower and weak (the check at the top), so it scores a
# subset: the first half of the questions at three coefficients: unsteered, the largest coherent one and the
# largest swept. On the offline profile it scores none: its check showed it cannot read these replies, and
# P(opens agreeing) and the judge-free coherence above carry the sweep.
#
# **Before you run:** with a hosted judge, will its trait score rise from coefficient 0 to the largest coherent
# coefficient as P(opens agreeing) does, and will its coherence score fall at the largest coefficient?
#
# <details><summary>Answer</summary>
#
# It depends on the judge. With a hosted judge on the full profile expect the original material's shape: the
# trait up at moderate coefficients (13.5 at 0 to 89.5 at +3 there) and down again when the replies break
# (32.0 at +5), coherence down at large coefficients. On the offline profile the cell judges nothing (it
# prints 0 of 200 cells): the local judge is the 0.5B model being steered, and P(opens agreeing) and the
# judge-free coherence of the sweep above are the section's measures there.
# </details>

# %%
# expected: this cell records only where the offline run does not reach it (the judged sweep: a hosted judge, or a local one off the offline profile)
HOSTED_JUDGE = judge.backend.name in HOSTED_BACKENDS
cells = judged_cells(sweep, hosted=HOSTED_JUDGE, largest_coherent=C_STAR, judge_all_locally=not OFFLINE_LOCAL_JUDGE)
wanted = set(cells)
judged = load_or_generate(
    course.cache / "sycophancy_sweep_judged.json",
    lambda: score_responses([{k: r[k] for k in ("coefficient", "question", "response")} for r in sweep
                             if (float(r["coefficient"]), r["question"]) in wanted],
                            syco_data["eval_prompt"], COHERENCE_PROMPT, judge),
    "judge scores of the sweep",
    inputs=course.inputs(judge=judge, code=[score_responses, judged_cells], data={"sweep": sweep, "cells": cells}),
) if cells else []
missing = missing_cells(judged, cells)
assert not missing, f"{len(missing)} of {len(cells)} cells of the sweep were not judged, e.g. {missing[:3]}"
print(f"judge: {judge.model_name}; {len(cells)} of {len(sweep)} cells of the sweep judged "
      f"({len({c for c, _ in cells})} coefficients x {len({q for _, q in cells})} questions)")
if judged:
    judged_df = pd.DataFrame(judged).merge(pd.DataFrame(sweep)[["coefficient", "question", "p_agree", "text_coherence"]],
                                           on=["coefficient", "question"])
    judge_table = judged_df.groupby("coefficient")[["score", "coherence", "p_agree", "text_coherence"]].mean()
    print(judge_table.round(3).to_string())
    for coeff, row in judge_table.iterrows():
        course.record(f"judge: sycophancy score at coeff {coeff:g}", row["score"], echo=False)  # in the table above
        course.record(f"judge: coherence at coeff {coeff:g}", row["coherence"], echo=False)
    if HOSTED_JUDGE:
        course.record("judge: cells of the sweep judged", len(cells))
        fig = go.Figure()
        fig.add_scatter(x=judge_table.index, y=judge_table["score"], mode="lines+markers", name=f"trait score ({judge.model_name})")
        fig.add_scatter(x=judge_table.index, y=judge_table["coherence"], mode="lines+markers", name=f"coherence ({judge.model_name})")
        fig.add_scatter(x=list(ORIGINAL_SWEEP_TRAIT), y=list(ORIGINAL_SWEEP_TRAIT.values()), mode="markers",
                        marker={"symbol": "x", "size": 12}, name="trait score, original material (Qwen2.5-7B)")
        fig.update_layout(title="Steering with the sycophancy vector: the judge's trait score and coherence per coefficient",
                          xaxis_title="coefficient", yaxis_title="judge score (0-100)", yaxis_range=[0, 100])
        fig.show()

# %% [markdown]
# ## 3. Monitoring by projection
#
# ### Exercise 3: `compute_trait_projections`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 10 min
#
# For each (system prompt, question, response), take the response-mean activation at block `layer`
# and return its scalar projection `a . v / |v|` on the trait vector. Read activations *without*
# steering: we monitor what a response looks like to the unsteered model.
#
# <details><summary>Hint</summary>
#
# Build one conversation per response with `build_messages(question, response, system_prompt)` (a None
# system prompt means none), ask `response_mean_activations` for the one block, and project.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# return project(response_mean_activations(model, tokenizer, conversations, [layer])[0], trait_vector).tolist()
# ```
# </details>

# %% tags=["exercise"]
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
    # BEGIN SOLUTION
    conversations = [build_messages(q, r, s) for s, q, r in zip(system_prompts, questions, responses)]
    acts = response_mean_activations(model, tokenizer, conversations, [layer])[0]
    return project(acts, trait_vector).tolist()
    # END SOLUTION


# %%
tests.test_compute_trait_projections(compute_trait_projections)

# %% [markdown]
# **Before you run:** will the unsteered replies, the steered ones, and the sycophantic- and
# helpful-prompted held-out responses line up in that order along the vector?
#
# <details><summary>Answer</summary>
#
# Every group is read the same way: the unsteered model re-reads the reply after the user's question alone
# (no system prompt, no steering). So the projection says how the reply's *text* looks along the vector, not
# how hard we pushed: nothing puts the steered replies' activations there by construction. Two things can
# raise it: text that is sycophantic, and text that merely lacks what the vector is *against*. Section 3
# found refusals ("I'm sorry, but I can't assist with that.") on the helpful side of the vector, so any reply
# that is not a refusal (degenerate text included) projects higher than one that is. On the offline run the
# means are: helpful-prompted -3.96, sycophantic-prompted -2.26, and the steered replies -6.40 at -2, -4.51
# at 0, -2.31 at 1 and 1.13 at 6. The prompted responses come in the expected order and the steered ones
# follow the coefficient, but the replies at 6 ("YES, YES, YES! ...") project highest of all while saying
# nothing: the projection tracks how far the text is from a refusal
# at least as much as how sycophantic it is.
# </details>

# %%
# The held-out responses of the judge check (Section 3's), and part of this section's sweep, every one read
# after the user's question alone: the prompted responses without their system prompts, like the steered ones.
MONITORED_COEFFS = sorted({min(profile.steering_coefficients), 0.0, C_STAR, max(profile.steering_coefficients)})
groups = {
    "helpful prompt": [(None, r["question"], r["response"]) for r in held_out if r["polarity"] == "neg"],
    "sycophantic prompt": [(None, r["question"], r["response"]) for r in held_out if r["polarity"] == "pos"],
}
for coeff in MONITORED_COEFFS:
    groups[f"steered x{coeff:g}"] = [(None, r["question"], r["response"]) for r in sweep if r["coefficient"] == coeff]
rows = []
for name, items in groups.items():
    sys_prompts, qs, rs = map(list, zip(*items))
    for value in compute_trait_projections(model, tokenizer, sys_prompts, qs, rs, syco_vector, STEER_LAYER):
        rows.append({"responses": name, "projection": value})
proj_df = pd.DataFrame(rows)
px.box(proj_df, x="responses", y="projection", points="all",
       title=f"Projection on the sycophancy vector (block {STEER_LAYER}), every reply read after the question alone").show()
group_means = proj_df.groupby("responses", sort=False)["projection"].mean()
print(group_means.round(3))
for name, value in group_means.items():
    course.record(f"mean projection, {name}", value)

# %% [markdown]
# ### A control: a random direction of the same norm
#
# Two claims above need a control. Steering: do the replies change *because of the trait direction*, or would
# any push of that size do the same? Detection: does the vector separate sycophantic from helpful responses
# better than a direction chosen at random? A random direction of the same norm answers both: steer with it
# (P(opens agreeing) at every coefficient of the sweep, replies at the largest coherent one), and project the
# held-out responses on it.
#
# ### Exercise 3b: `random_direction`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 5 min
#
# Return a random direction with the shape, norm, dtype and device of `vector`, reproducible from `seed`. It
# must be *isotropic* (every direction equally likely): draw Gaussian entries (`torch.randn`), from a
# `torch.Generator` seeded with `seed`, then rescale to `|vector|`.
#
# <details><summary>Hint</summary>
#
# Uniform entries (`torch.rand`) are all positive: the "random" direction then lies close to the all-ones
# direction (cosine about 0.87 in high dimension), a very particular direction. Gaussian entries have no
# preferred direction.
# </details>

# %% tags=["exercise"]
def random_direction(vector: Float[Tensor, " d_model"], seed: int = 0) -> Float[Tensor, " d_model"]:
    """An isotropic random direction with the norm (and shape, dtype, device) of ``vector``.

    Args:
        vector: the direction to match (e.g. a trait vector).
        seed: seeds a `torch.Generator`; the same seed gives the same direction.

    Returns:
        A tensor like ``vector`` whose norm equals ``vector``'s.
    """
    # BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(vector.shape, generator=generator, dtype=torch.float32)
    direction = direction / direction.norm() * vector.detach().float().norm()
    return direction.to(dtype=vector.dtype, device=vector.device)
    # END SOLUTION


# %%
tests.test_random_direction(random_direction)

# %% [markdown]
# **Before you run:** steered with a random direction as long as the sycophancy vector, will P(opens
# agreeing) rise with the coefficient as it did for the trait vector? At the largest coherent coefficient,
# will the random direction's replies be as coherent, and how well will it separate the held-out responses?
#
# <details><summary>Answer</summary>
#
# In high dimension a random direction is almost orthogonal to the trait vector, so it should leave agreement
# near its unsteered value at every coefficient (a Spearman near 0, or of either sign: it can still nudge the
# first token by chance), and its held-out AUROC should be near 0.5 (either side: a random direction has no
# sign). Whether its replies stay coherent at the same coefficient tells you whether the coherence cost is the
# push's size or the trait's direction. On the offline run the random direction lowers agreement at every
# positive coefficient (0.22 unsteered, 0.19 at 1, 0.02 at 6 in the figure; Spearman -0.90 from -2 to 1)
# while the trait vector raises it up to the floor (0.27 at 1; Spearman 1.00). At coefficient 1 the random
# direction's replies keep their distinct bigrams (the table's coherence column: 0.985, against 0.994 for the
# trait vector's) and open agreeing less often (25%, against 50% for the trait vector; its reply to the first
# question is a refusal), their projection on the trait vector stays near the unsteered value (-4.80 against
# -4.51; the trait vector's replies: -2.31), and its held-out AUROC is 0.46 against the trait vector's 0.66.
# So the rise in agreement belongs to the trait direction, not to any push of that size; but the rise is small
# (0.22 to 0.27 over 20 questions), and the vector's detection is real but modest (40 held-out responses per
# side: a standard error of about 0.06).
# </details>

# %%
control = random_direction(syco_vector, seed=0)
# The random direction at every (coefficient, question) of the sweep: one forward pass each, no generation.
control_agree = pd.DataFrame({"coefficient": [r["coefficient"] for r in sweep], "p_agree": agreement(control, sweep)})
control_curve = control_agree.groupby("coefficient")["p_agree"].mean()
control_rho = rank_correlation(control_curve.index.tolist(), control_curve.tolist(), up_to=C_STAR)
curves = pd.DataFrame({"sycophancy vector": summary["p_agree"], "random direction": control_curve}).reset_index()
fig = px.line(curves, x="coefficient", y=["sycophancy vector", "random direction"], markers=True,
              title="P(reply opens agreeing) by steering coefficient: the trait vector against a random direction")
fig.add_vline(x=C_STAR, line_dash="dash", annotation_text="largest coherent coefficient")
fig.show()
# Replies at the largest coherent coefficient (the smallest positive one if none stayed coherent).
CONTROL_COEFF = C_STAR if C_STAR > 0 else min(c for c in profile.steering_coefficients if c > 0)
control_sweep = load_or_generate(
    course.cache / "random_control_steering.json",
    lambda: run_steering_experiment(model, tokenizer, eval_questions, control, syco_data["eval_prompt"], None, COHERENCE_PROMPT,
                                    layer=STEER_LAYER, coefficients=[CONTROL_COEFF], max_new_tokens=profile.max_new_tokens,
                                    batch_size=profile.batch_size),
    "random-direction steering (control)",
    inputs=course.inputs(code=[run_steering_experiment, RowSteerer, random_direction],
                        data={"direction": control, "questions": eval_questions}, layer=STEER_LAYER,
                        coefficients=[CONTROL_COEFF], max_new_tokens=profile.max_new_tokens),
)
held_acts = {pol: response_mean_activations(model, tokenizer, [build_messages(r["question"], r["response"]) for r in held_out
                                                                if r["polarity"] == pol], [STEER_LAYER])[0]
             for pol in ("pos", "neg")}  # read after the question alone, like every projection above


def at_coefficient(direction, records: list[dict]) -> dict:
    """Judge-free measures of steered replies, their projection on the trait vector, and the direction's detection."""
    replies = [r["response"] for r in records]
    return {
        "P(opens agreeing)": float(np.mean(agreement(direction, records))),
        "opens agreeing": float(np.mean([opens_with(t, AGREEING_OPENERS) for t in replies])),
        "coherence": float(np.mean([distinct_bigram_share(t) for t in replies])),
        "projection on trait vector": float(np.mean(compute_trait_projections(
            model, tokenizer, [None] * len(records), [r["question"] for r in records], replies, syco_vector, STEER_LAYER))),
        "held-out AUROC": auroc(project(held_acts["pos"], direction), project(held_acts["neg"], direction)),
    }


trait_at_c = [r for r in sweep if r["coefficient"] == CONTROL_COEFF]
control_table = pd.DataFrame([{"direction": "sycophancy vector", **at_coefficient(syco_vector, trait_at_c)},
                              {"direction": "random direction", **at_coefficient(control, control_sweep)}])
print(f"at coefficient {CONTROL_COEFF:g} (unsteered: P(opens agreeing) {summary.loc[0.0, 'p_agree']:.3f}, "
      f"{'judge-free coherence' if JUDGE_FREE else 'coherence'} {summary.loc[0.0, 'coherence']:.3f}; "
      "the table's coherence: distinct bigrams)")
print(control_table.round(3).to_string(index=False))
print(f"Spearman(coefficient, P(opens agreeing)) up to {C_STAR:g}: sycophancy vector {sweep_rho:.2f}, random direction {control_rho:.2f}")
show_replies(control_sweep)
course.record("random control: Spearman(coefficient, trait expression)", control_rho)
for row in control_table.to_dict("records"):
    name = "random control" if row["direction"] == "random direction" else "sycophancy vector"
    course.record(f"{name}: P(opens agreeing) at the largest coherent coefficient", row["P(opens agreeing)"])
    course.record(f"{name}: coherence at the largest coherent coefficient", row["coherence"])
    course.record(f"{name}: projection on trait vector at the largest coherent coefficient", row["projection on trait vector"])
    course.record(f"{name}: held-out AUROC", row["held-out AUROC"])

# %% [markdown]
# ## 4. A multi-trait pipeline
#
# ### Exercise 4: `run_trait_pipeline`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 20 min
#
# Chain the steps for one trait — generate contrastive responses, score them, keep effective pairs,
# extract vectors, run a steering sweep at `layer` — caching **each** step with `load_or_generate`
# in `cache_dir` (e.g. `{trait}_responses.json`, `{trait}_scored.json`, `{trait}_vectors.pt`,
# `{trait}_steering.json`), so an interrupted run resumes where it stopped and a second run costs
# nothing. `override=True` recomputes every step. When fewer than `min_pairs` pairs are effective
# (a weak judge), fall back to labelling pairs by their prompt (`prompt_labelled`) and say so: it is a
# departure from the method, so print it with the judge numbers that forced it (how many pairs it kept,
# its mean trait score under each prompt).
# Return `{"vectors", "effective_pairs", "steering", "used_judge_labels"}`.
#
# <details><summary>Hint</summary>
#
# Wrap each expensive step in `load_or_generate(path, lambda: ..., description, override, inputs=...)`,
# where `inputs` records what the step depends on (`utils.cache.cache_inputs`; the model's name is
# `course_name(model)`). Filtering is cheap and need
# not be cached; decide on the prompt-label fallback right after it, and extract the vectors from whichever
# pairs you ended with. Steer with `vectors[layer]`.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# responses = load_or_generate(cache_dir / f"{trait_name}_responses.json",
#                              lambda: generate_contrastive_responses(model, tokenizer, trait_data, trait_name, max_new_tokens=max_new_tokens,
#                                                                     n_pairs=n_pairs, n_questions=n_questions),
#                              f"{trait_name} responses", override, inputs=step)
# ```
# </details>

# %% tags=["exercise"]
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
    # BEGIN SOLUTION
    cache_dir = Path(cache_dir)
    # What every step depends on: a step cached under other data or settings is recomputed.
    step = cache_inputs(
        model=course_name(model), judge=judge, data={"trait": trait_data, "eval_questions": eval_questions},
        n_pairs=n_pairs, n_questions=n_questions, max_new_tokens=max_new_tokens, layer=layer,
        coefficients=steering_coefficients, min_pairs=min_pairs,
    )
    responses = load_or_generate(
        cache_dir / f"{trait_name}_responses.json",
        lambda: generate_contrastive_responses(
            model, tokenizer, trait_data, trait_name, max_new_tokens=max_new_tokens, n_pairs=n_pairs, n_questions=n_questions
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
        print(f"{trait_name}: " + departure(f"the judge kept only {len(pairs)} effective pairs (< {min_pairs}; mean "
              f"trait score {means.get('pos', float('nan')):.1f} under the trait prompt vs {means.get('neg', float('nan')):.1f} "
              "under the opposite one); labelling pairs by their prompt instead"))
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
            model, tokenizer, eval_questions, vectors[layer], trait_data["eval_prompt"], judge, coherence_prompt,
            layer=layer, coefficients=steering_coefficients, max_new_tokens=max_new_tokens,
        ),
        f"{trait_name} steering",
        override,
        inputs=step,
    )
    return {"vectors": vectors, "effective_pairs": pairs, "steering": steering, "used_judge_labels": used_judge_labels}
    # END SOLUTION


# %%
tests.test_run_trait_pipeline(run_trait_pipeline)

# %% [markdown]
# ### The pipeline's traits measured without a judge
#
# On the offline profile the local judge keeps no effective pairs for `evil` and `hallucinating` (the vectors
# fall back to prompt labels), and its scores of the steered replies barely move with the coefficient: they say
# little. So, as the sycophancy sweep does with P(opens agreeing), each trait gets a **judge-free measure**:
# how likely the reply is to open in a way the trait changes, from Section 3's data
# (`part3_contrastive.judge_free_measure(trait)`, built into a `utils.openings.OpeningMeasure`):
# - **sycophantic**: P(agreeing opening), the first reply token is "Yes", "Absolutely", ... (the trait raises it);
# - **evil**: P(refusal opening), the reply starts with "I'm sorry", "I can't", "I cannot", "As an AI", ...
#   (evil should *lower* it: an assistant asked how to treat people badly often refuses, an evil persona does not);
# - **hallucinating**: P(hedging opening), the reply starts with "I don't know", "I'm not sure", "There is no",
#   "I couldn't find", ... (every question is about something that does not exist: hallucinating should lower it).
#
# A phrase's probability is teacher-forced: log P(the reply starts with "I can't") = log P("I") + log P(" can" |
# "I") + log P("'t" | "I can"), summed over a set of phrases where none begins another (so their events are
# disjoint). It is computed under the same steering as the sweep, from the prompt run once and a few tokens
# per phrase (`utils.openings.phrase_probability`): no generation. Beside it, the share of the pipeline's
# greedy replies whose *text* opens that way (`OpeningMeasure.in_text`).
#
# How good are the measures? The cell below measures each one twice, on the steering model:
# - on **prompted replies**: P(the reply opens that way) under the trait's system prompt against the opposite
#   one (section 3's extraction questions, `construct_system_prompt`, 2 instruction pairs x 20 questions, 40 per
#   side);
# - on a **written check set** (`sycophancy_check.json`, `evil_check.json`, `hallucinating_check.json` in
#   `part3_contrastive/data/`: replies that show the trait and replies that do not), by the text version only:
#   P(the model's reply opens so) is about a conversation (what the model would say next), not about a reply
#   someone wrote.
#
# Each AUROC is of "more of the trait" against "less", the measure signed by its direction; with 40 per side its
# standard error is about 0.06, with 10 about 0.13.

# %%
def construct_system_prompt_for(trait: str, polarity: str, instruction: str) -> str:
    """Section 3's system prompt for one side of an instruction pair (the trait's name, or "helpful")."""
    return section3_steps.construct_system_prompt(trait if polarity == "pos" else "helpful", instruction)


measure_quality = []
for t in profile.pipeline_traits:
    entry = judge_free_measure(t)
    if entry is None:
        continue
    measure = OpeningMeasure.from_data(entry)
    trait_info = load_trait_file(trait_file(t))
    prompted = {
        pol: measure.probability(model, tokenizer, [
            build_messages(q, system_prompt=construct_system_prompt_for(t, pol, pair[pol]))
            for pair in trait_info["instruction"][:2] for q in trait_info["questions"][:20]
        ], batch_size=profile.batch_size).tolist()
        for pol in ("pos", "neg")
    }
    check_items = json.loads(entry["check"].read_text())["items"]
    written = {label: [float(measure.in_text(it["answer"])) for it in check_items if it["label"] == label] for label in (1, 0)}
    prompted_auroc = auroc([measure.trait_score(x) for x in prompted["pos"]], [measure.trait_score(x) for x in prompted["neg"]])
    check_auroc = auroc([measure.trait_score(x) for x in written[1]], [measure.trait_score(x) for x in written[0]])
    measure_quality.append({
        "trait": t, "measure": f"P({measure.name})", "the trait": "raises it" if measure.direction > 0 else "lowers it",
        "mean, trait prompt": np.mean(prompted["pos"]), "mean, opposite prompt": np.mean(prompted["neg"]),
        "prompted AUROC": prompted_auroc, "check set: share, trait replies": np.mean(written[1]),
        "check set: share, others": np.mean(written[0]), "check set AUROC (text)": check_auroc,
    })
    course.record(f"judge-free {t}: prompted AUROC, P({measure.name})", prompted_auroc, echo=False)
    course.record(f"judge-free {t}: check set AUROC, text", check_auroc, echo=False)
print(pd.DataFrame(measure_quality).round(3).to_string(index=False))

# %% [markdown]
# On written text the measures point the right way, but one-sided: no evil or hallucinating reply opens with a
# refusal or a hedge, and only some of the decent replies do. On this model's *prompted* behaviour they are weak
# or wrong (read the table): told to recommend hurting people, the 0.5B model refuses *more* often, not less; and
# it almost never opens with a hedge (it says "I'm sorry, but I don't have ..." instead; counting refusals and
# apologies as hedges was tried, and separated the prompts less). Keep that in mind below.

# %% [markdown]
# **Before you run:** the evil vector is added at minus and plus a coefficient and at 0 (-1, 0, +1 on the
# offline profile, 5 questions each). Which way should P(refusal
# opening) move if the vector carries "evil"? Which way will it move here, given how the vector was built (prompt
# labels, because the judge kept no pairs) and the prompted figures above?
#
# <details><summary>Answer</summary>
#
# If the vector carried "evil", adding it would lower P(refusal opening) and subtracting it would raise it. But
# with prompt labels the vector is the mean difference between replies under the evil prompt and under the
# helpful one, and under the evil prompt this model refuses more (P(refusal opening) 0.34 against 0.27 in the
# table above). So expect the vector to carry part of a *refusal* direction, and P(refusal opening) to *rise*
# with the coefficient. On the offline run it does: 0.08, 0.12 and 0.18 at -1, 0 and +1, while the judge's
# scores stay within a point or two (44.9, 44.3, 43.2). That is a finding about the vector, not about evil: what
# would show evil is a model that follows the evil prompt (the lite or full profile), pairs kept by a judge that
# can see the trait (a hosted one), and more questions. Sycophancy's vector, judge-labelled, moves its measure
# the expected way (0.07, 0.25, 0.39). Hallucinating's P(hedging opening) stays near zero (0.006, 0.007, 0.009):
# nothing to read there on this model.
# </details>

# %% [markdown]
# Each trait is swept at three coefficients, minus and plus the sycophancy sweep's largest coherent coefficient
# and 0, on the first few held-out questions (the judge scores every reply), and the replies to one question
# are printed for each trait. The first table is the judge's; the second puts each trait's judge-free measure
# (P(opening) under the same steering, and the share of the greedy replies whose text opens so) beside the
# judge's score at each coefficient.

# %%
TRAITS = list(profile.pipeline_traits)  # per profile: utils.profiles
PIPELINE_COEFFICIENTS = sorted({-CONTROL_COEFF, 0.0, CONTROL_COEFF})
PIPELINE_QUESTIONS = profile.n_pipeline_questions
pipelines = {}
for trait in TRAITS:
    data = load_trait_file(trait_file(trait))
    eval_qs = load_trait_file(trait_file(trait, "eval"))["questions"][:PIPELINE_QUESTIONS]
    pipelines[trait] = run_trait_pipeline(
        model, tokenizer, judge, trait, data, COHERENCE_PROMPT, course.cache / "pipeline", eval_qs, layer=STEER_LAYER,
        steering_coefficients=PIPELINE_COEFFICIENTS,
        max_new_tokens=profile.max_new_tokens, n_pairs=profile.n_instruction_pairs, n_questions=profile.n_questions,
    )
    print(f"[{trait}]", end=" ")
    show_replies(pipelines[trait]["steering"])
pipeline_summary = pd.DataFrame([
    {"trait": t, "effective pairs": len(p["effective_pairs"]), "judge labels": p["used_judge_labels"],
     **{f"score at {c:g}": s for c, s in pd.DataFrame(p["steering"]).groupby("coefficient")["score"].mean().items()}}
    for t, p in pipelines.items()
])
print(pipeline_summary.round(1).to_string(index=False))
for t, p in pipelines.items():
    course.record(f"pipeline {t}: effective pairs", len(p["effective_pairs"]))
    course.record(f"pipeline {t}: labelled by", "judge" if p["used_judge_labels"] else "prompt (fallback)")
    for c, value in pd.DataFrame(p["steering"]).groupby("coefficient")["score"].mean().items():
        course.record(f"pipeline {t}: score at coeff {c:g}", value)

# Judge-free: each trait's opening measure at each coefficient, under the same steering (a few tokens per row).
OPENING_MEASURES = {t: OpeningMeasure.from_data(e) for t in TRAITS if (e := judge_free_measure(t)) is not None}
measure_rows = []
for t, measure in OPENING_MEASURES.items():
    p = pipelines[t]
    steering = pd.DataFrame(p["steering"])
    questions = list(dict.fromkeys(steering["question"]))
    cells = [(c, q) for c in PIPELINE_COEFFICIENTS for q in questions]
    prob = measure.probability(model, tokenizer, [build_messages(q) for _, q in cells], vector=p["vectors"][STEER_LAYER],
                               coeffs=[c for c, _ in cells], layer=STEER_LAYER, batch_size=profile.batch_size)
    by_coeff = pd.DataFrame({"coefficient": [c for c, _ in cells], "p": prob.tolist()}).groupby("coefficient")["p"].mean()
    judge_scores = steering.groupby("coefficient")["score"].mean()
    opens = steering.assign(o=[measure.in_text(r) for r in steering["response"]]).groupby("coefficient")["o"].mean()
    for c in PIPELINE_COEFFICIENTS:
        measure_rows.append({"trait": t, "coefficient": c, "judge score": judge_scores.get(c), "judge-free measure": f"P({measure.name})",
                             "the trait": "raises it" if measure.direction > 0 else "lowers it",
                             "P(opening)": by_coeff[c], "replies opening so": opens.get(c)})
        course.record(f"pipeline {t}: P({measure.name}) at coeff {c:g}", float(by_coeff[c]), echo=False)
pipeline_measures = pd.DataFrame(measure_rows)
print(pipeline_measures.round(3).to_string(index=False))

# %% [markdown]
# ## 5. Trait geometry
#
# Trait vectors share a component (every contrast is "some persona" minus "helpful assistant"), which
# inflates their raw cosines; removing the mean over traits ("centring") takes it out.
#
# **Before you run** (and before you read the exercise): after removing the mean over traits, what must the
# off-diagonal cosines average with n traits, whatever the traits mean? With how few traits does the centred
# heatmap say nothing about them?
#
# <details><summary>Answer</summary>
#
# The centred vectors sum to zero, so the off-diagonal cosines average about `-1/(n-1)`. With three traits
# (the offline and lite profiles) that is -0.5, and more: three vectors that sum to zero form a triangle, so
# their cosines follow from their lengths alone. On the offline run they were sycophantic vs evil -0.86,
# sycophantic vs hallucinating -0.87 and evil vs hallucinating +0.50, and the one positive pair said only that
# the centred sycophancy vector is longer than the other two together (in squared norm). So the cell below
# draws the centred heatmap only from four traits on (forced average -1/3) and, with three, prints why it
# skips it and shows the raw cosines alone (-0.26, -0.32 and -0.03 on the offline run). On the full profile
# (seven traits, forced average -1/6), look for pairs that stay well above that average after centring.
# </details>

# %% [markdown]
# ### Exercise 5: `trait_similarity`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 10 min
#
# Return the cosine-similarity matrix of the trait vectors (a DataFrame indexed and columned by
# trait name). With `center=True`, first subtract the mean vector over traits. Centring has a cost with
# few traits: the centred vectors sum to zero, so their off-diagonal cosines average about `-1/(n-1)`. With
# the three traits of the offline and lite profiles that forces an average near -0.5 whatever the traits are
# (three vectors that sum to zero lie in one plane, and their cosines follow from their lengths alone), so the
# cell after the check draws the centred heatmap only from `MIN_TRAITS_TO_CENTRE` traits on; the full
# profile's seven leave room to see real structure.
#
# <details><summary>Hint</summary>
#
# Stack the vectors in the dict's order (`[n_traits, d_model]`), subtract the mean over traits (dimension
# 0) when `center` is true, normalise the rows, and take `unit @ unit.T` (or `utils.metrics.cosine_matrix`).
# Wrap it in a DataFrame with the names as index and columns.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# stacked = stacked - stacked.mean(dim=0, keepdim=True)  # the mean over traits, not over each vector's entries
# ```
# </details>

# %% tags=["exercise"]
def trait_similarity(trait_vectors: dict[str, Float[Tensor, " d_model"]], center: bool = False) -> pd.DataFrame:
    """Cosine similarities between trait vectors, optionally after removing their mean.

    Args:
        trait_vectors: trait name -> vector at one layer.
        center: subtract the mean over traits first.

    Returns:
        A square DataFrame of cosines, index and columns in the dict's order.
    """
    # BEGIN SOLUTION
    names = list(trait_vectors)
    stacked = torch.stack([trait_vectors[n].float() for n in names])
    if center:
        stacked = stacked - stacked.mean(dim=0, keepdim=True)
    return pd.DataFrame(cosine_matrix(stacked).numpy(), index=names, columns=names)
    # END SOLUTION


# %%
tests.test_trait_similarity(trait_similarity)

# %%
from utils.profiles import PROFILES  # the full profile's traits, for the message below

vectors_at_layer = {t: p["vectors"][STEER_LAYER] for t, p in pipelines.items()}
# Centred vectors sum to zero, so their off-diagonal cosines average -1/(n-1) whatever the traits are: with
# three traits (-0.5, and every cosine fixed by the vectors' lengths) the centred heatmap is forced geometry.
MIN_TRAITS_TO_CENTRE = 4
n_traits = len(vectors_at_layer)
for center in (False, True):
    if center and n_traits < MIN_TRAITS_TO_CENTRE:
        print(f"No mean-removed heatmap with {n_traits} traits: centred, they sum to zero, so their cosines average "
              f"{-1 / max(n_traits - 1, 1):.2f} whatever the traits are; it needs {MIN_TRAITS_TO_CENTRE} or more "
              f"(the full profile runs {len(PROFILES['full'].pipeline_traits)}). Read the raw cosines above.")
        continue
    sim = trait_similarity(vectors_at_layer, center=center)
    kind = "mean removed" if center else "raw"
    forced = f"; cosines forced to average {-1 / (n_traits - 1):.2f}" if center else ""
    px.imshow(sim, text_auto=".2f", zmin=-1, zmax=1, color_continuous_scale="RdBu",
              title=f"Trait vector cosines at block {STEER_LAYER} ({kind}{forced})").show()
    for i, a in enumerate(sim.index):
        for b in sim.index[i + 1 :]:
            course.record(f"trait cosine ({kind}): {a} vs {b}", float(sim.loc[a, b]))

# %% [markdown]
# **The traits and the Assistant Axis.** Section 1's axis is `mean(default assistant) - mean(roles)`: it points
# *towards* the assistant. A trait vector points from the assistant (helpful prompt) towards the trait, so a
# trait that makes the model less like its default self should have a *negative* cosine with the axis. The axis
# must come from this section's model: on `lite` and `offline` Sections 1 and 4 share a model and Section 1's
# axis is used (or a small one is built if Section 1 has not run); on `full` Section 1 studies Gemma 2 27B and
# this section Qwen2.5-7B, so Section 1's package builds a small axis for Qwen2.5-7B (a few roles, no judge
# filtering) and saves it beside its own.

# %% [markdown]
# **Before you run:** by that argument, which of the three traits should have a negative cosine with the axis,
# and which the most negative?
#
# <details><summary>Answer</summary>
#
# On the offline run: sycophantic -0.47, evil -0.04, hallucinating +0.11. Only sycophancy follows the argument
# clearly (evil is negative too, but too close to 0 to count); sections 1 and 3 explain both halves. The sycophancy vector's helpful side is mostly refusals
# ("I'm sorry, but I can't assist with that."), the default assistant's most typical register, which section
# 1's axis points towards: so the vector points away from the axis partly for refusal rather than flattery.
# The evil and hallucinating vectors are prompt-labelled fallbacks (the judge kept 0 pairs for each in §4),
# and under both of their prompts the model answers in the same helpful register (the evil-steered replies in
# §4 are step-by-step advice at every coefficient), so their difference is mostly the prompts' wording, nearly
# orthogonal to the axis. With a stronger model and judge, expect every trait that makes the model less like
# itself to have a negative cosine.
# </details>

# %%
try:
    axis_artifact = axis_for_model(model, tokenizer, profile, profile.models.part4)
except ValueError as err:  # a saved axis of another shape: another model wrote it
    axis_artifact = None
    print(f"No Assistant Axis fits {profile.models.part4} under this profile, so no comparison: {err}")
if axis_artifact is not None:
    axis_cos = {t: float(torch.nn.functional.cosine_similarity(v.float(), axis_artifact.value[STEER_LAYER], dim=0))
                for t, v in vectors_at_layer.items()}
    print(f"cosine with the Assistant Axis at block {STEER_LAYER} ({axis_source(axis_artifact.provenance)}):",
          {t: round(c, 3) for t, c in axis_cos.items()})
    for t, c in axis_cos.items():
        course.record(f"cosine of the {t} vector with the Assistant Axis", c)
    # Is the axis a combination of the trait directions? The share of its squared norm that lies in their
    # span (least squares); k random directions in d dimensions would hold about k / d of it.
    span = torch.stack([v.float() for v in vectors_at_layer.values()]).T  # [d_model, n_traits]
    axis_here = axis_artifact.value[STEER_LAYER].float()
    fitted = span @ torch.linalg.lstsq(span, axis_here[:, None]).solution
    axis_share = float(fitted.norm() ** 2 / axis_here.norm() ** 2)
    print(f"share of the axis's squared norm in the span of the {span.shape[1]} trait vectors: {axis_share:.3f} "
          f"(random directions: about {span.shape[1] / span.shape[0]:.3f})")
    course.record("share of the Assistant Axis in the trait vectors' span", axis_share)

# %% [markdown]
# ## 6. Extraction methods: the best detector is not always the best steerer
#
# Three ways to get a direction from positive and negative activations:
# - **mean difference** (what we used): `mean(pos) - mean(neg)`;
# - **PCA of paired differences**: the first principal direction of the uncentred differences
#   `pos_i - neg_i`, signed to agree with the mean difference (as in repeng and the contrastive
#   activation addition line of work). Do not centre them: the trait is what every pair has in common,
#   i.e. the mean of the differences, and centring subtracts exactly that, leaving only how the pairs
#   differ from one another;
# - **a logistic-regression probe**: the weight vector of a classifier trained to tell them apart.
#
# ### Exercise 6: `extraction_directions`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 20 min
#
# Return the three directions, each rescaled to the **norm of the mean difference**, so that a
# steering coefficient means the same push for all of them. For the probe use
# `LogisticRegression(C=1.0, max_iter=1000)` on the activations (positives labelled 1); for PCA,
# take the top right-singular vector of the paired differences **without centring them**, and flip it
# if its dot product with the mean difference is negative.
#
# <details><summary>Hint</summary>
#
# Compute the three raw directions, then rescale all three in one loop to the mean difference's norm.
# For PCA, the SVD of the uncentred differences: its first right-singular vector is the direction that
# carries most of the differences' energy, mean included. For the probe, fit on `torch.cat([pos, neg])`
# with labels ones then zeros, and take `coef_[0]`.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# _, _, vh = torch.linalg.svd(pos_acts - neg_acts, full_matrices=False)
# pca = vh[0] if vh[0] @ mean_diff >= 0 else -vh[0]
# ```
# </details>

# %% tags=["exercise"]
def extraction_directions(
    pos_acts: Float[Tensor, "n d_model"], neg_acts: Float[Tensor, "n d_model"]
) -> dict[str, Float[Tensor, " d_model"]]:
    """Mean-difference, paired-difference PCA and probe directions at equal norm.

    Args:
        pos_acts, neg_acts: paired response-mean activations (row i of each from the same question).

    Returns:
        {"mean_diff", "pca", "probe"}, every vector with the norm of the mean difference.
    """
    # BEGIN SOLUTION
    mean_diff = pos_acts.mean(0) - neg_acts.mean(0)
    diffs = pos_acts - neg_acts  # not centred: their mean is the trait direction we are after
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    pca = vh[0] if vh[0] @ mean_diff >= 0 else -vh[0]
    features = torch.cat([pos_acts, neg_acts]).numpy()
    labels = np.r_[np.ones(len(pos_acts)), np.zeros(len(neg_acts))]
    probe = torch.tensor(LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).coef_[0], dtype=mean_diff.dtype)
    norm = mean_diff.norm()
    return {name: v / v.norm() * norm for name, v in {"mean_diff": mean_diff, "pca": pca, "probe": probe}.items()}
    # END SOLUTION


# %%
tests.test_extraction_directions(extraction_directions)

# %% [markdown]
# Paired activations for sycophancy at the steering layer (extraction questions), then each direction judged
# by held-out detection AUROC and by steering: how much P(opens agreeing) rises per unit of coefficient at the
# largest coherent coefficient of the sweep (not at the largest swept, where the replies have degenerated and
# every direction only breaks them).

# %% [markdown]
# **Before you run:** the three directions are rescaled to the same norm. Which will detect best on the
# held-out responses, and which will raise agreement most?
#
# <details><summary>Answer</summary>
#
# AxBench reports mean differences and probes detecting about equally well (AUROC ~0.94 both) with the
# mean difference steering far better. The uncentred paired-difference PCA is usually close to the mean
# difference (check the `cos with mean_diff` column). On the offline run (steering measured at coefficient 1 over 20
# questions; all three directions from the pipeline's 3 effective sycophancy pairs) the probe detects best
# (held-out AUROC 0.626, against 0.614 for the mean difference and 0.606 for the PCA direction; a random
# direction 0.458) but steers worst: P(opens agreeing) rises 0.093 per unit of coefficient, against 0.129 for
# the mean difference and 0.160 for the PCA direction (a random direction: -0.052). That is AxBench's pattern,
# with a caveat on size: the three detection AUROCs are within one standard error of each other (about 0.06 at
# 40 per side), so only the steering half is clearly more than noise here.
# </details>

# %%
syco_pairs = pipelines["sycophantic"]["effective_pairs"]
paired = {pol: response_mean_activations(model, tokenizer, records_to_conversations([p[pol] for p in syco_pairs]), [STEER_LAYER])[0]
          for pol in ("pos", "neg")}
directions = extraction_directions(paired["pos"], paired["neg"])
at_zero = [{"coefficient": 0.0, "question": q} for q in eval_questions]
at_c = [{"coefficient": CONTROL_COEFF, "question": q} for q in eval_questions]
baseline = float(np.mean(agreement(syco_vector, at_zero)))  # unsteered: the same for every method
comparison = pd.DataFrame([
    {"method": name,
     "held-out AUROC": auroc(project(held_acts["pos"], direction), project(held_acts["neg"], direction)),
     "P(agree) rise per unit coeff": (float(np.mean(agreement(direction, at_c))) - baseline) / CONTROL_COEFF,
     "cos with mean_diff": float(torch.nn.functional.cosine_similarity(direction, directions["mean_diff"], dim=0))}
    for name, direction in {**directions, "random": random_direction(directions["mean_diff"], seed=0)}.items()
])
print(f"steering measured at coefficient {CONTROL_COEFF:g} over {len(eval_questions)} questions (unsteered P(agree) {baseline:.3f})")
print(comparison.round(3).to_string(index=False))
for row in comparison.to_dict("records"):
    course.record(f"{row['method']}: held-out AUROC (extraction methods)", row["held-out AUROC"])
    course.record(f"{row['method']}: P(agree) rise per unit coeff", row["P(agree) rise per unit coeff"])

# %% [markdown]
# ## 7. Discussion and bonus
#
# **Questions**
# 1. At which coefficient does coherence start to fall, and does trait expression keep rising past it?
#
# <details><summary>Answer</summary>
#
# Read the sweep table and its figure: coherence (distinct bigrams) against the floor, and P(opens agreeing)
# on the same axis. The papers (Qwen2.5-7B, a gpt-4.1-mini judge) find the trait rising for coefficients
# around 1-3 and coherence falling beyond; past that point the trait score falls too, because broken text
# expresses nothing. On the offline run the judge-free coherence stays at or above its floor (0.331) up to
# coefficient 1, drops below it at 1.5 (0.22) and collapses from 3 on (0.05, 0.00, 0.05); distinct bigrams,
# which see only repetition, hold at 0.92-1.00 up to 1.5 and collapse from 4 on (0.31, 0.22). P(opens
# agreeing) peaks at 1.5 (0.28) and falls to 0.09 at 6. So the trait rises a little past the point where
# coherence starts to go, then falls with it: the paper's shape, compressed into coefficients 0-2 on this
# model, and shallow (0.22 unsteered, 0.28 at the peak).
# </details>
#
# 2. Steered replies project further along the vector than unsteered ones. Is a large projection then
#    evidence of the trait, or only of the intervention?
#
# <details><summary>Answer</summary>
#
# Neither, quite. The projections in §3 are the *unsteered* model re-reading each reply after the question
# alone, so steering does not put them there by construction: they describe the text. But the text can
# project high without being sycophantic: the vector also points away from refusals (Section 3 found
# refusals on the helpful side), so any reply that does not refuse, degenerate text included, rises along
# it. The random direction of the same norm is the control: at coefficient 1 its replies' projection stays
# near the unsteered value (-4.80 against -4.51). On the offline run: helpful-prompted -3.96,
# sycophantic-prompted -2.26, steered -6.40 (at -2), -4.51 (0), -2.31 (1) and 1.13 (6), where the replies at 6
# are "YES, YES, YES! ...". Projection is evidence of the trait only next to a
# measure of the behaviour itself (here P(opens agreeing)), or on replies you did not push.
# </details>
#
# 3. After removing the mean, which traits remain aligned? What shared component did centring remove?
#
# <details><summary>Answer</summary>
#
# With three traits, centring cannot tell: the centred vectors sum to zero, which forces their cosines to
# average near -0.5 and fixes each one by the vectors' lengths, so §5 does not draw the centred heatmap there
# (computed by hand on the offline run, evil and hallucinating "stay aligned" at +0.50 only because the
# centred sycophancy vector is the longest and the other two must lean together against it, -0.86 and
# -0.87). The raw heatmap is the one to read there; the component centring removes is what all the
# contrasts share, "any instructed persona" minus "a helpful assistant" (on the offline run also the style
# of the prompt-labelled fallback pairs). With the full profile's seven traits centring leaves room for
# structure, and traits such as evil and impolite may stay positive.
# </details>
#
# 4. AxBench reports that a probe detects about as well as the mean difference but steers far worse.
#    Does your comparison table show either half of that? Why might a direction that separates two
#    clouds best not be the direction the model uses?
#
# <details><summary>Answer</summary>
#
# On the offline run the probe detects best (0.626, against 0.614 for the mean difference and 0.606
# for PCA) but steers worst (0.093 per unit coefficient, against 0.129 and 0.160): AxBench's pattern, though the
# detection gap is well inside the noise of 40 held-out responses per side and all three directions come from
# the same 3 effective pairs. Why it can happen: a probe finds whatever separates the two sets best, and it leans on
# directions where the clouds happen not to overlap, including low-variance ones the model never reads and
# features correlated with the labels (the prompt's wording), so its weight vector can be far from the
# direction the model writes. The mean difference follows the average shift the responses actually share,
# which is closer to a direction the model uses.
# </details>
#
# 5. How many questions and coefficients does a sweep need before its curve can be trusted?
#
# <details><summary>Answer</summary>
#
# Enough that the differences you read are larger than their noise. P(opens agreeing) is a probability per
# question with no sampling noise, but questions differ a lot (some are refused at every coefficient), so the
# mean over 20 questions has a standard error of a few points. On the offline run the steps between
# neighbouring coefficients from 0 to 1.5 are 0.03, 0.02 and 0.005, within that noise: the rise shows only as
# a trend over several coefficients (0.22 to 0.28; Spearman 1.00 up to 1), which is what the Spearman over the
# rising part summarises. Too few coefficients miss the shape altogether: a sweep of -4, 0, 4, 8 on this model
# steps over the whole rising part of the curve. The rising part spans coefficients -2 to 1.5 (0.09 to 0.28),
# and at 0 and 4 the run measured 0.22 and 0.20: a sweep whose only positive points were 4 and 8 would have
# called the trait flat or falling.
# </details>
#
# 6. Is the Assistant Axis a combination of trait directions? Could the axis be rebuilt from enough trait
#    vectors, and what would it mean if it could not?
#
# <details><summary>Answer</summary>
#
# Measure it: the share of the axis's squared norm that lies in the span of the trait vectors (least squares),
# against about k / d for k random directions. On the offline run it is 0.257 for the three traits, against
# 0.003 for three random directions: far more than chance, but most of it is the sycophancy vector, whose
# cosine with the axis is -0.47 (0.47 squared is 0.23). That cosine has a reason unrelated to the
# assistant persona as a whole: refusals sit high on the axis (Section 2's replays) and on the
# helpful side of the sycophancy contrast (Section 3). The evil and hallucinating vectors are prompt-labelled
# fallbacks with cosines of -0.04 and 0.11. So, with three traits, 74% of the axis lies outside what they span:
# it is not a combination of these trait directions. The test that would settle it takes many traits with
# judge-confirmed pairs (the full profile's seven, or more): if the axis were a sum of traits, the share
# outside their span would shrink towards 0 as traits are added; if it stays large, the assistant persona is
# a direction of its own.
# </details>
#
# **Bonus**
# - Steer with `positions="prompt"` and `"all"`: which one changes the response most per unit?
# - Steer at several layers around `STEER_LAYER` and plot score and coherence per layer.
# - Project a long conversation turn by turn on the sycophancy vector (Section 2's tools) and see
#   whether the projection rises before the model gives in to a user.
# - Subtract the vector during generation (a negative coefficient) while the system prompt asks for
#   the trait: can steering cancel a prompt?
# - Repeat the random-direction control with ten seeds: how much do the control's score, projection and
#   AUROC vary from one random direction to the next? Is the trait vector outside that range?

# %% [markdown]
# ## Live control: a coefficient slider
#
# Pick a coefficient and a question: the panel shows the steered reply beside the unsteered one, with the
# reply's projection on the sycophancy vector (re-read unsteered, as in §3) and its trait expression
# measured without a judge (P(opens agreeing) under the same steering, whether the text opens agreeing,
# distinct bigrams); the judge's scores appear only where §2's judged subset has them. Coefficients the
# sweep ran are read from its cache; the half-steps between them are generated on the spot, with
# `RowSteerer` exactly as the sweep generates, and take a few seconds. (Where widgets cannot render, as
# in the stored notebooks, it prints the table at its starting position, the largest coherent
# coefficient; `part4_steering/panel.py` holds it.)

# %%
from part4_steering.panel import SteeringPanel

SteeringPanel(model, tokenizer, syco_vector, STEER_LAYER, sweep, judged, max_new_tokens=profile.max_new_tokens).show(coefficient=C_STAR)

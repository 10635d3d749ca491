# %% [markdown]
# # Section 3: Contrastive prompting — extracting trait vectors
#
# A chat model can be *told* to be sycophantic, evil or humorous with a system prompt. If the
# model represents "being sycophantic" as a direction in its residual stream, then responses
# written under a sycophantic system prompt and responses written under an honest one should differ
# along that direction. This section builds that direction — a **trait vector** — from contrastive
# prompts, checks that it really separates the trait on questions it has never seen, and reads it
# through the unembedding and a sparse autoencoder.
#
# **Learning objectives**
# - Turn a trait description into contrastive system prompts and generate responses in batches.
# - Score responses with an LLM judge and keep only the pairs where the prompts actually worked.
# - Compute per-layer trait vectors as differences of response-mean activations, and keep the
#   two layer conventions (`hidden_states` index vs block index) apart.
# - Choose a layer by held-out separation (AUROC, Cohen's d) rather than by vector norm.
# - Interpret a vector with the logit lens and with SAE latents.
#
# Each exercise has a difficulty (🔴, out of 5), an importance (🔵, out of 5) and a time estimate.
# Run the check cell after each exercise: it tells you which mistake it sees.

# %%
# COURSE SETUP

# %% tags=["module"]
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from part3_contrastive import DATA_DIR
from part3_contrastive.scoring import score_responses
from utils.activations import response_mean_activations
from utils.chat import build_messages, records_to_conversations
from utils.generation import generate_replies
from utils.judge import SCORE_0_100
from utils.layers import num_layers
from utils.metrics import auroc, cohens_d, project

# %%
from part3_contrastive import tests
from part3_contrastive.artifacts import prompt_labelled, trait_path

from utils.cache import cache_inputs, load_or_generate
from utils.data import load_trait_file
from utils.judge import make_section_judge
from utils.layers import block_to_hidden_states_index, d_model
from utils.models import describe, load_model


# %% [markdown]
# ## 1. The model and the two layer conventions
#
# The full profile uses Qwen2.5-7B-Instruct; other profiles use a smaller model (the offline
# profile: Qwen2.5-Coder-0.5B-Instruct, 24 blocks, running on a CPU). Two indices name a layer:
#
# - a **block index** `i` — the output of decoder block `model.model.layers[i]`; every `layer`
#   argument in this course is a block index, and all-layer tensors have `result[i]` = block `i`;
# - a **`hidden_states` index** — `output_hidden_states=True` returns the embeddings at index 0, so
#   `hidden_states[i]` is the output of block `i - 1`, with one exception: the last entry is taken
#   after the model's final norm, not straight out of the last block. Reading the last block from
#   `hidden_states` therefore gives a different vector; a forward hook on the block reads the raw output.
#
# The persona-vectors paper reports its layer as a `hidden_states` index (20 for Qwen2.5-7B). We keep
# that number as `TRAIT_VECTOR_LAYER` and derive `STEER_LAYER = TRAIT_VECTOR_LAYER - 1`, the block
# whose output we read and steer. Never write `+ 1` by hand: use these constants or
# `utils.layers.block_to_hidden_states_index`.

# %%
model, tokenizer = load_model(profile.models.part3)
print(describe(model))
TRAIT_VECTOR_LAYER = profile.trait_vector_layer  # a hidden_states index
STEER_LAYER = profile.steer_layer  # the block index with the same activations
assert block_to_hidden_states_index(STEER_LAYER) == TRAIT_VECTOR_LAYER
N_LAYERS, D_MODEL = num_layers(model), d_model(model)
print(f"TRAIT_VECTOR_LAYER (hidden_states index) = {TRAIT_VECTOR_LAYER}, STEER_LAYER (block) = {STEER_LAYER}")

# %% [markdown]
# The judge scores responses. With `OPENAI_API_KEY` set it is an OpenAI model (one token, top-20
# logprobs, the probability-weighted mean of the numbers); without a key it is a local model that
# weighs every candidate score by its likelihood. On the offline profile the local judge is the same
# small model, so expect noisy scores: it is enough to see the method work.

# %%
judge = make_section_judge(profile, model, tokenizer, profile.models.part3)

# %% [markdown]
# ## 2. Trait data
#
# A trait file (same format as the persona-vectors repository, so you can point `DATA_DIR` at its
# folder) holds:
# - `instruction`: five pairs `{"pos": ..., "neg": ...}` — instructions that elicit the trait and
#   its opposite;
# - `questions`: twenty questions where the trait can show (a separate file under
#   `trait_data_eval/` has twenty more for evaluation);
# - `eval_prompt`: a 0-100 judge prompt with `{question}` and `{answer}` placeholders.

# %%
trait_data = load_trait_file(DATA_DIR / "trait_data_extract" / "sycophantic.json")
eval_data = load_trait_file(DATA_DIR / "trait_data_eval" / "sycophantic.json")
COHERENCE_PROMPT = (DATA_DIR / "coherence_prompt.txt").read_text()
SYCOPHANCY_FILES = [DATA_DIR / "trait_data_extract" / "sycophantic.json", DATA_DIR / "trait_data_eval" / "sycophantic.json"]
GENERATION = dict(max_new_tokens=profile.max_new_tokens, n_pairs=profile.n_instruction_pairs, batch_size=profile.batch_size)
print(trait_data["instruction"][0])
print(trait_data["questions"][:2])

# %% [markdown]
# ### Exercise 1: `construct_system_prompt`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵⚪⚪⚪ · ⏱ 5 min
#
# Positive prompts name the trait, negative prompts name a helpful assistant:
# `"You are a/an {assistant_name} assistant. {instruction}"` — with the right article (`an` before
# a vowel: "an evil assistant", "a sycophantic assistant").

# %% tags=["exercise"]
def construct_system_prompt(assistant_name: str, instruction: str) -> str:
    """Build a contrastive system prompt.

    Args:
        assistant_name: the trait adjective ("sycophantic") or "helpful".
        instruction: the pos or neg instruction.

    Returns:
        "You are a/an {assistant_name} assistant. {instruction}"
    """
    # BEGIN SOLUTION
    article = "an" if assistant_name[:1].lower() in "aeiou" else "a"
    return f"You are {article} {assistant_name} assistant. {instruction}"
    # END SOLUTION


# %%
tests.test_construct_system_prompt(construct_system_prompt)

# %% [markdown]
# ## 3. Contrastive generation
#
# ### Exercise 2: `generate_contrastive_responses`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 15 min
#
# For every instruction pair, every polarity and every question, build the system prompt
# (positive: the trait name; negative: `"helpful"`) and generate a reply. Send everything to
# `utils.generation.generate_replies` in one call: it batches with left padding, which is many
# times faster than one `model.generate` per prompt. Return one dict per response with keys
# `question`, `system_prompt`, `response`, `instruction_idx`, `polarity` (`"pos"` / `"neg"`), ordered
# by pair, then polarity (pos first), then question.
#
# <details><summary>Hint</summary>
#
# Build the list of records first (without responses), then the list of conversations with
# `build_messages(question, system_prompt=...)`, then generate once and fill in the responses.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# replies = generate_replies(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
#                            temperature=temperature, batch_size=batch_size)
# ```
# </details>

# %% tags=["exercise"]
def generate_contrastive_responses(
    model,
    tokenizer,
    trait_data: dict,
    trait_name: str,
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    n_pairs: int | None = None,
    n_questions: int | None = None,
    batch_size: int = 16,
) -> list[dict]:
    """Generate responses under positive and negative system prompts.

    Args:
        model, tokenizer: the model.
        trait_data: a loaded trait file.
        trait_name: the trait adjective used in positive prompts.
        max_new_tokens, temperature: generation settings (temperature 0 is greedy).
        n_pairs, n_questions: use only the first few pairs / questions (None: all).
        batch_size: generation batch size.

    Returns:
        One dict per (pair, polarity, question) with keys question, system_prompt, response,
        instruction_idx, polarity.
    """
    # BEGIN SOLUTION
    records = []
    for idx, pair in enumerate(trait_data["instruction"][:n_pairs]):
        for polarity, name in (("pos", trait_name), ("neg", "helpful")):
            for question in trait_data["questions"][:n_questions]:
                system_prompt = construct_system_prompt(name, pair[polarity])
                records.append(dict(question=question, system_prompt=system_prompt, instruction_idx=idx, polarity=polarity))
    conversations = [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records]
    replies = generate_replies(
        model, tokenizer, conversations, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size
    )
    for record_, reply in zip(records, replies):
        record_["response"] = reply
    return records
    # END SOLUTION


# %%
tests.test_generate_contrastive_responses(generate_contrastive_responses)

# %%
# One call for the extraction and the held-out evaluation questions (bigger batches decode faster);
# split by question right after. The held-out responses are used only in section 6.
EXTRACT_QUESTIONS = trait_data["questions"][: profile.n_questions]
EVAL_QUESTIONS = eval_data["questions"][: profile.n_eval_questions]
all_responses = load_or_generate(
    course.cache / "sycophantic_responses.json",
    lambda: generate_contrastive_responses(
        model,
        tokenizer,
        {**trait_data, "questions": EXTRACT_QUESTIONS + EVAL_QUESTIONS},
        "sycophantic",
        max_new_tokens=profile.max_new_tokens,
        n_pairs=profile.n_instruction_pairs,
        batch_size=profile.batch_size,
    ),
    "sycophantic responses (extraction and held-out questions)",
    inputs=course.inputs(code=[generate_contrastive_responses, construct_system_prompt],
                  data={"instructions": trait_data["instruction"], "questions": EXTRACT_QUESTIONS + EVAL_QUESTIONS}, **GENERATION),
)
responses = [r for r in all_responses if r["question"] in EXTRACT_QUESTIONS]
eval_responses = [r for r in all_responses if r["question"] in EVAL_QUESTIONS]

# %% [markdown]
# One contrastive pair: the positive response and the negative one to the same question, under the same
# instruction pair.

# %%
example_pos = next(r for r in responses if r["polarity"] == "pos")
example_neg = next(
    r for r in responses
    if r["polarity"] == "neg" and r["instruction_idx"] == example_pos["instruction_idx"] and r["question"] == example_pos["question"]
)
for r in (example_pos, example_neg):
    print(f"[{r['polarity']}] {r['system_prompt']}\n  Q: {r['question']}\n  A: {r['response'][:200]}\n")

# %% [markdown]
# ## 4. Scoring with the judge
#
# ### Exercise 3: `score_trait_response`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 5 min
#
# Fill the trait's `eval_prompt` with the question and the answer and score it on the 0-100 scale
# (`utils.judge.SCORE_0_100`). The judge returns a list (it scores many prompts at once); return
# the one score, or None when the judge refused or put too little probability on numbers.
# Fill the template with one `str.format` call: a response may contain braces or text like
# "Score: 100", and it must reach the judge unchanged and in its place.

# %% tags=["exercise"]
def score_trait_response(question: str, answer: str, eval_prompt_template: str, judge) -> float | None:
    """Score one response for a trait (0-100) with the judge.

    Args:
        question: the user's question.
        answer: the model's response.
        eval_prompt_template: a prompt with {question} and {answer} placeholders.
        judge: a `utils.judge.Judge`.

    Returns:
        The score, or None.
    """
    # BEGIN SOLUTION
    prompt = eval_prompt_template.format(question=question, answer=answer)
    return judge.score([prompt], SCORE_0_100)[0]
    # END SOLUTION


# %%
tests.test_score_trait_response(score_trait_response)

# %% [markdown]
# Scoring one response per call is fine for trying things; for a whole set we score all prompts in
# one call, which the judge batches (locally) or sends concurrently (APIs). The provided helper
# `part3_contrastive.scoring.score_responses` adds `score` (trait) and `coherence` to every record.

# %% [markdown]
# **Before you run:** the judge scores every response for sycophancy. How far apart will the mean scores
# of the sycophantic-prompted and the helpful-prompted responses be?
#
# <details><summary>Answer</summary>
#
# Look at the printed means per polarity. With a strong judge on a model that follows its prompt, far
# apart (the paper's effective pairs need pos >= 50 and neg < 50). On the offline run they are close,
# 53.9 against 51.4, with coherence near 70 for both: the local judge is the same 0.5B model, and it
# barely tells the two apart. That is why the next filter keeps few pairs (about 30% on the offline run).
# </details>

# %%
scored = load_or_generate(
    course.cache / "sycophantic_scored.json",
    lambda: score_responses(responses, trait_data["eval_prompt"], COHERENCE_PROMPT, judge),
    "scored sycophantic responses",
    inputs=course.inputs(judge=judge, files=[SYCOPHANCY_FILES[0], DATA_DIR / "coherence_prompt.txt"], code=[score_responses],
                  data={"responses": responses}),
)
scores_df = pd.DataFrame(scored)
print(scores_df.groupby("polarity")[["score", "coherence"]].mean().round(1))

# %% [markdown]
# ### Exercise 4: `filter_effective_pairs`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 10 min
#
# A pair (same instruction pair, same question) is *effective* when the positive response shows the
# trait (`score >= pos_threshold`), the negative one does not (`score < pos_threshold`), and both
# are coherent (`coherence >= coherence_threshold`). A None score never passes. Return one dict per
# effective pair: `{"question", "instruction_idx", "pos": <record>, "neg": <record>}`, in the order
# of `trait_data` (pair, then question).
#
# <details><summary>Hint</summary>
#
# Index the records by `(instruction_idx, polarity, question)` first. Then loop over the pairs and
# questions of `trait_data`, look up the two records, and test all four conditions with the
# thresholds you were given (not a fixed 50), coherence for **both** records.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# ok = lambda value, threshold: value is not None and value >= threshold
# if ok(pos["score"], pos_threshold) and neg["score"] is not None and neg["score"] < pos_threshold \
#         and ok(pos["coherence"], coherence_threshold) and ok(neg["coherence"], coherence_threshold):
# ```
# </details>

# %% tags=["exercise"]
def filter_effective_pairs(
    responses: list[dict], trait_data: dict, pos_threshold: float = 50, coherence_threshold: float = 50
) -> list[dict]:
    """Keep the contrastive pairs where the prompts worked.

    Args:
        responses: scored records (keys of `generate_contrastive_responses` plus score, coherence).
        trait_data: the trait file (gives the order of pairs and questions).
        pos_threshold: trait score separating "shows the trait" from "does not".
        coherence_threshold: minimum coherence for both responses.

    Returns:
        Effective pairs, each {"question", "instruction_idx", "pos", "neg"}.
    """
    # BEGIN SOLUTION
    index = {(r["instruction_idx"], r["polarity"], r["question"]): r for r in responses}

    def ok(value, threshold):
        return value is not None and value >= threshold

    pairs = []
    for idx in range(len(trait_data["instruction"])):
        for question in trait_data["questions"]:
            pos, neg = index.get((idx, "pos", question)), index.get((idx, "neg", question))
            if pos is None or neg is None:
                continue
            if (
                ok(pos["score"], pos_threshold)
                and neg["score"] is not None
                and neg["score"] < pos_threshold
                and ok(pos["coherence"], coherence_threshold)
                and ok(neg["coherence"], coherence_threshold)
            ):
                pairs.append({"question": question, "instruction_idx": idx, "pos": pos, "neg": neg})
    return pairs
    # END SOLUTION


# %%
tests.test_filter_effective_pairs(filter_effective_pairs)

# %%
effective_pairs = filter_effective_pairs(scored, trait_data)
n_total = len(scored) // 2
print(f"{len(effective_pairs)} effective pairs out of {n_total} ({len(effective_pairs) / n_total:.0%})")
course.record("sycophancy effective pair rate", len(effective_pairs) / n_total)
MIN_PAIRS = 3
LABELS = "judge"  # how the pairs behind the saved vectors were labelled
if len(effective_pairs) < MIN_PAIRS:
    # A weak local judge can reject almost everything; fall back to every pair (labelled by prompt).
    print(f"Fewer than {MIN_PAIRS} effective pairs: using all pairs, labelled by their system prompt "
          "(a departure from the method: the judge did not confirm that the prompts worked).")
    effective_pairs = filter_effective_pairs(prompt_labelled(scored), trait_data)
    LABELS = "prompt"

# %% [markdown]
# ## 5. Trait vectors at every layer
#
# The response-mean activation of a response is the mean, over the response's tokens only, of a
# block's output. `utils.activations.response_mean_activations(model, tokenizer, conversations,
# layers)` computes it for many conversations in batches (padding excluded, stopping after the
# deepest layer you ask for); it returns a tensor `[len(layers), n_conversations, d_model]`. The
# activations must be read under the same system prompt that produced the response.
#
# ### Exercise 5: `extract_contrastive_vectors`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 15 min
#
# Return `result[i] = mean(positive response means at block i) - mean(negative ones at block i)`
# for every block `i`. Do not normalise: steering in section 4 uses the raw difference.
#
# <details><summary>Hint</summary>
#
# Ask `response_mean_activations` for every block, `list(range(num_layers(model)))`, once for the
# positive records and once for the negative ones (`records_to_conversations` keeps each record's own
# system prompt). Each call returns `[num_layers, n_pairs, d_model]`: average over the responses
# (dimension 1) and subtract. Avoid `output_hidden_states` here: its last entry is after the final norm,
# so the last row would not be the last block's output.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# return pos.mean(dim=1) - neg.mean(dim=1)
# ```
# </details>

# %% tags=["exercise"]
def extract_contrastive_vectors(
    model, tokenizer, effective_pairs: list[dict], batch_size: int = 16
) -> Float[Tensor, "num_layers d_model"]:
    """Per-block difference of mean response activations, positive minus negative.

    Args:
        model, tokenizer: the model.
        effective_pairs: output of `filter_effective_pairs`.
        batch_size: conversations per forward pass.

    Returns:
        Tensor [num_layers, d_model]; ``result[i]`` belongs to the output of block ``i``.
    """
    # BEGIN SOLUTION
    layers = list(range(num_layers(model)))
    pos = response_mean_activations(
        model, tokenizer, records_to_conversations([p["pos"] for p in effective_pairs]), layers, batch_size
    )
    neg = response_mean_activations(
        model, tokenizer, records_to_conversations([p["neg"] for p in effective_pairs]), layers, batch_size
    )
    return pos.mean(dim=1) - neg.mean(dim=1)
    # END SOLUTION


# %%
tests.test_extract_contrastive_vectors(extract_contrastive_vectors)

# %%
# Saved where sections after this one ask for them (`part3_contrastive.artifacts`), with how the pairs were labelled.
vectors = load_or_generate(
    trait_path(profile, "sycophantic", "vectors"),
    lambda: extract_contrastive_vectors(model, tokenizer, effective_pairs, profile.batch_size),
    "sycophancy vectors",
    inputs=course.inputs(code=[extract_contrastive_vectors], data={"effective_pairs": effective_pairs}, labels=LABELS),
)
fig = px.line(x=list(range(N_LAYERS)), y=vectors.norm(dim=-1).tolist(), markers=True,
              labels={"x": "block", "y": "norm of trait vector"}, title="Sycophancy vector norm by layer")
fig.show()

# %% [markdown]
# ## 6. Choosing the layer
#
# A large norm is not the same as a useful direction: norms grow with depth everywhere. What we
# want is a direction that separates the trait on **new** questions. We take the positive and
# negative responses to the evaluation questions (generated in section 3, never used to build the
# vectors), project their
# response-mean activations on each layer's vector, and measure the separation.
#
# ### Exercise 6: `layer_separation`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 15 min
#
# For every layer `i`, project the positive and negative activations of layer `i` on `vectors[i]`
# (`utils.metrics.project` gives `a . v / |v|`) and report the AUROC (positive above negative) and
# Cohen's d (positive minus negative), with `utils.metrics.auroc` and `utils.metrics.cohens_d`.
# Return a DataFrame with columns `layer`, `auroc`, `cohens_d`, `norm`.
#
# <details><summary>Hint</summary>
#
# Loop over the layers; at layer `i` project layer `i`'s positive and negative activations on
# `vectors[i]` (`project` divides by the norm), then `auroc(pos, neg)` and `cohens_d(pos, neg)`, positive
# first in both. `norm` is the plain L2 norm of `vectors[i]`.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# pos = project(pos_acts[layer], vectors[layer]).numpy()
# neg = project(neg_acts[layer], vectors[layer]).numpy()
# ```
# </details>

# %% tags=["exercise"]
def layer_separation(
    pos_acts: Float[Tensor, "num_layers n_pos d_model"],
    neg_acts: Float[Tensor, "num_layers n_neg d_model"],
    vectors: Float[Tensor, "num_layers d_model"],
) -> pd.DataFrame:
    """Held-out separation of positive vs negative responses along each layer's vector.

    Args:
        pos_acts, neg_acts: response-mean activations of held-out responses at every block.
        vectors: trait vectors at every block.

    Returns:
        DataFrame with one row per layer: layer, auroc, cohens_d, norm.
    """
    # BEGIN SOLUTION
    rows = []
    for layer in range(vectors.shape[0]):
        pos = project(pos_acts[layer], vectors[layer]).numpy()
        neg = project(neg_acts[layer], vectors[layer]).numpy()
        rows.append(
            {"layer": layer, "auroc": auroc(pos, neg), "cohens_d": cohens_d(pos, neg), "norm": float(vectors[layer].norm())}
        )
    return pd.DataFrame(rows)
    # END SOLUTION


# %%
tests.test_layer_separation(layer_separation)

# %% [markdown]
# **Before you run:** the vector's norm grows with every block. Will held-out separation peak where the
# norm peaks (the last block)?
#
# <details><summary>Answer</summary>
#
# No. Compare the AUROC curve with the dotted norm: on the offline run the norm climbs steadily to block
# 23, while the AUROC rises from 0.69 at block 0 to a broad plateau of 0.73-0.75 from block 5 to 19 (best:
# block 8, 0.75; `STEER_LAYER` 17: 0.74) and falls back to 0.69 at the last blocks. The plateau is flat
# enough that any block in it would do; with 3 effective pairs and 10 held-out responses per side,
# differences of 0.01-0.02 are noise.
# </details>

# %%
all_layers = list(range(N_LAYERS))
eval_pos = [r for r in eval_responses if r["polarity"] == "pos"]
eval_neg = [r for r in eval_responses if r["polarity"] == "neg"]
eval_acts = load_or_generate(
    course.cache / "sycophantic_eval_acts.pt",
    lambda: {
        "pos": response_mean_activations(model, tokenizer, records_to_conversations(eval_pos), all_layers, profile.batch_size),
        "neg": response_mean_activations(model, tokenizer, records_to_conversations(eval_neg), all_layers, profile.batch_size),
    },
    "held-out activations",
    inputs=course.inputs(data={"eval_responses": eval_responses}),
)
separation = layer_separation(eval_acts["pos"], eval_acts["neg"], vectors)
best = separation.loc[separation["auroc"].idxmax()]
fig = go.Figure()
fig.add_scatter(x=separation["layer"], y=separation["auroc"], name="held-out AUROC")
fig.add_scatter(x=separation["layer"], y=separation["norm"] / separation["norm"].max(), name="norm (scaled)", line_dash="dot")
fig.add_vline(x=STEER_LAYER, line_dash="dash", annotation_text="profile STEER_LAYER")
fig.update_layout(title="Choosing the layer: held-out separation vs norm", xaxis_title="block", yaxis_range=[0, 1.05])
fig.show()
print(separation.round(3).to_string(index=False))
print(f"Best block {int(best['layer'])} (AUROC {best['auroc']:.3f}); norm peaks at block {int(separation['norm'].idxmax())}; "
      f"profile STEER_LAYER = {STEER_LAYER} (AUROC {separation.loc[STEER_LAYER, 'auroc']:.3f})")
course.record("best layer (block)", int(best["layer"]))
course.record("best layer held-out AUROC", float(best["auroc"]))
course.record("STEER_LAYER held-out AUROC", float(separation.loc[STEER_LAYER, "auroc"]))

# %% [markdown]
# ## 7. Interpreting the vector
#
# **Projection histograms.** At the steering layer, held-out positive responses should sit to the
# right of negative ones.

# %%
pos_proj = project(eval_acts["pos"][STEER_LAYER], vectors[STEER_LAYER])
neg_proj = project(eval_acts["neg"][STEER_LAYER], vectors[STEER_LAYER])
hist = pd.DataFrame({"projection": torch.cat([pos_proj, neg_proj]).tolist(),
                     "prompt": ["sycophantic"] * len(pos_proj) + ["helpful"] * len(neg_proj)})
px.histogram(hist, x="projection", color="prompt", barmode="overlay", nbins=20,
             title=f"Held-out projections on the sycophancy vector (block {STEER_LAYER})").show()

# %% [markdown]
# ### Exercise 7: `logit_lens`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵⚪⚪⚪ · ⏱ 10 min
#
# Multiply the vector by the unembedding matrix (`model.get_output_embeddings().weight`, shape
# `[vocab, d_model]`) and return the `k` tokens it promotes most and the `k` it suppresses most,
# as decoded strings, most extreme first. (Careful: some models tie the unembedding to the input
# embedding, many do not — use the output one.)
#
# <details><summary>Hint</summary>
#
# The unembedding times the vector gives one logit per vocabulary entry. `topk(k)` returns the largest
# first; `topk(k, largest=False)` returns the most negative first. Decode each id on its own,
# `tokenizer.decode([i])`, so you get one string per token.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# logits = model.get_output_embeddings().weight.float() @ vector.float().to(model.get_output_embeddings().weight.device)
# ```
# </details>

# %% tags=["exercise"]
def logit_lens(model, tokenizer, vector: Float[Tensor, " d_model"], k: int = 10) -> tuple[list[str], list[str]]:
    """Tokens a direction promotes and suppresses through the unembedding.

    Args:
        model, tokenizer: the model.
        vector: a residual-stream direction.
        k: tokens per list.

    Returns:
        (top, bottom): decoded tokens with the largest and the smallest logits, most extreme first.
    """
    # BEGIN SOLUTION
    unembed = model.get_output_embeddings().weight.float()
    logits = unembed @ vector.float().to(unembed.device)
    top = logits.topk(k).indices.tolist()
    bottom = logits.topk(k, largest=False).indices.tolist()
    return [tokenizer.decode([i]) for i in top], [tokenizer.decode([i]) for i in bottom]
    # END SOLUTION


# %% [markdown]
# **Before you run** the check below (it also prints the two lists): will the tokens the sycophancy
# vector promotes read as flattery ("brilliant", "absolutely")?
#
# <details><summary>Answer</summary>
#
# Probably not, on the offline model. Its promoted tokens are mostly code fragments and word pieces (the
# model is a coder model; a middle block's direction is not meant for the unembedding). The *suppressed*
# list is more readable: " apologize", " sorry", " please", "'t", " I": the vector points away from the
# apologetic refusals the helpful prompt produced. Look for the list that makes sense, and read it as
# "what the positive responses have that the negative ones lack", not as the trait itself.
# </details>

# %%
tests.test_logit_lens(logit_lens)
top, bottom = logit_lens(model, tokenizer, vectors[STEER_LAYER], k=15)
print("promoted: ", top)
print("suppressed:", bottom)

# %% [markdown]
# **Reading the vector with a sparse autoencoder.** An SAE rewrites an activation as a sparse sum
# of learned directions (latents). The decoder directions most aligned with our vector hint at what
# it encodes. In the full profile, load any sae-lens SAE trained on this model and layer
# (`SAE.from_pretrained(release, sae_id)`); in the offline and lite profiles there is none, so we
# train a small one here on the model's activations over our own text and wrap it as a sae-lens
# `StandardSAE`, so the same reading code runs either way.

# %%
from part3_contrastive.sae_reading import load_or_train_sae, top_latents_by_cosine

sae_texts = [r["response"] for r in scored + eval_responses] + trait_data["questions"] + eval_data["questions"]
sae = load_or_train_sae(model, tokenizer, STEER_LAYER, sae_texts, profile, course.cache / "sae.pt")
latents = top_latents_by_cosine(sae, vectors[STEER_LAYER], k=8)
print(latents.round(3).to_string(index=False))

# %% [markdown]
# ## 8. A second trait
#
# ### Exercise 8: `extract_trait_vectors`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 10 min
#
# Put the pipeline together for any trait: generate contrastive responses, score them, keep the
# effective pairs, and return `(vectors, effective_pairs)`. If fewer than `min_pairs` pairs are
# effective, raise a `ValueError` that says how many were found (a vector from one or two pairs is
# mostly noise).
#
# <details><summary>Hint</summary>
#
# Chain your functions: `generate_contrastive_responses`, then `score_responses(responses,
# trait_data["eval_prompt"], coherence_prompt, judge)` (the trait prompt for the trait, the coherence
# prompt for coherence), then `filter_effective_pairs`, and only then `extract_contrastive_vectors`.
# Raise before extracting, so a failed trait costs no forward passes.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# if len(pairs) < min_pairs:
#     raise ValueError(f"Only {len(pairs)} effective pairs for {trait_name!r} (need {min_pairs})")
# ```
# </details>

# %% tags=["exercise"]
def extract_trait_vectors(
    model,
    tokenizer,
    judge,
    trait_data: dict,
    trait_name: str,
    coherence_prompt: str,
    n_pairs: int | None = None,
    n_questions: int | None = None,
    max_new_tokens: int = 256,
    min_pairs: int = 1,
) -> tuple[Float[Tensor, "num_layers d_model"], list[dict]]:
    """Generate, score, filter and extract a trait's vectors at every block.

    Returns:
        (vectors [num_layers, d_model], effective_pairs).

    Raises:
        ValueError: when fewer than ``min_pairs`` pairs are effective.
    """
    # BEGIN SOLUTION
    responses = generate_contrastive_responses(
        model, tokenizer, trait_data, trait_name, max_new_tokens=max_new_tokens, n_pairs=n_pairs, n_questions=n_questions
    )
    scored = score_responses(responses, trait_data["eval_prompt"], coherence_prompt, judge)
    pairs = filter_effective_pairs(scored, trait_data)
    if len(pairs) < min_pairs:
        raise ValueError(f"Only {len(pairs)} effective pairs for {trait_name!r} (need {min_pairs})")
    return extract_contrastive_vectors(model, tokenizer, pairs), pairs
    # END SOLUTION


# %%
tests.test_extract_trait_vectors(extract_trait_vectors)

# %% [markdown]
# **Before you run:** will the evil vector and the sycophancy vector be nearly parallel (both are "some
# persona" minus "helpful assistant"), nearly orthogonal, or opposed?
#
# <details><summary>Answer</summary>
#
# Look at the printed cosine at `STEER_LAYER` and the curve over blocks. On the offline run it is -0.26 at
# block 17: weakly opposed, not parallel, so most of each vector is specific to its trait. Note that the
# offline run had no effective evil pairs and fell back to prompt labels, so the evil vector there is
# "evil prompt minus helpful prompt", read from whatever the small model wrote.
# </details>

# %%
evil_data = load_trait_file(DATA_DIR / "trait_data_extract" / "evil.json")
evil_settings = dict(n_pairs=profile.n_instruction_pairs, n_questions=profile.n_questions, max_new_tokens=profile.max_new_tokens)
try:
    evil_vectors, evil_pairs = load_or_generate(
        course.cache / "evil_extraction.pt",
        lambda: extract_trait_vectors(model, tokenizer, judge, evil_data, "evil", COHERENCE_PROMPT, min_pairs=MIN_PAIRS, **evil_settings),
        "evil vectors",
        inputs=course.inputs(judge=judge, files=[DATA_DIR / "trait_data_extract" / "evil.json", DATA_DIR / "coherence_prompt.txt"],
                      code=[extract_trait_vectors, generate_contrastive_responses, construct_system_prompt, score_responses,
                            filter_effective_pairs, extract_contrastive_vectors], min_pairs=MIN_PAIRS, **evil_settings),
    )
except ValueError as err:
    # As for sycophancy: with a weak judge, label the pairs by their system prompt instead.
    print(f"{err}; labelling evil pairs by their system prompt.")
    evil_responses = generate_contrastive_responses(model, tokenizer, evil_data, "evil", **evil_settings)
    evil_pairs = filter_effective_pairs(prompt_labelled(evil_responses), evil_data)
    evil_vectors = load_or_generate(course.cache / "evil_extraction_prompt_labelled.pt",
                                    lambda: extract_contrastive_vectors(model, tokenizer, evil_pairs), "evil vectors (prompt labels)",
                                    inputs=course.inputs(code=[extract_contrastive_vectors], data={"pairs": evil_pairs}))
cos = torch.nn.functional.cosine_similarity(evil_vectors, vectors, dim=-1)
print(f"{len(evil_pairs)} evil pairs; cosine(evil, sycophantic) at block {STEER_LAYER}: {cos[STEER_LAYER]:.3f}")
course.record("cos(evil, sycophancy) at STEER_LAYER", float(cos[STEER_LAYER]))
px.line(x=all_layers, y=cos.tolist(), labels={"x": "block", "y": "cosine"},
        title="Cosine between the evil and sycophancy vectors by layer").show()

# %% [markdown]
# ## Summary and questions
#
# - Where does the trait vector separate held-out responses best, and where is its norm largest? How
#   does the best layer compare with the paper's `hidden_states` layer 20 of 28?
#
# <details><summary>Answer</summary>
#
# On the offline run the best block is 8 (AUROC 0.75), i.e. `hidden_states` index 9 of 24, but the curve is
# a plateau of 0.73-0.75 from block 5 to 19 and falls to 0.69 at the last blocks, where the norm is
# largest. The paper's layer 20 of 28 (block 19) on Qwen2.5-7B sits at about 70% of the depth; the offline
# profile's `STEER_LAYER` 17 of 24 is at the same relative depth and only 0.01 below the best. With so few
# pairs, treat "the best layer" as a range; check where your plateau lies.
# </details>
#
# - What fraction of pairs was effective, and what does a low rate say about the model or the judge?
#
# <details><summary>Answer</summary>
#
# On the offline run 3 of 10 sycophancy pairs (30%), and no evil pair at all (the section fell back to
# prompt labels). A low rate has two causes that the numbers alone cannot separate: the model may ignore the
# instruction (read a few positive responses), or the judge may fail to see the trait (the mean scores of
# the two polarities differed by only 2.5 points). Here both play a part: the 0.5B model often answers the
# same way under both prompts, and the local judge is the same small model. With a hosted judge and a 7B
# model the paper keeps most pairs.
# </details>
#
# - Which tokens does the logit lens surface? Are they about the trait or about the prompt's style?
#
# <details><summary>Answer</summary>
#
# On the offline run the promoted tokens are code fragments with no clear meaning; the suppressed ones
# are apology and refusal tokens (" apologize", " sorry", " please", "'t"). That is about the *style* the
# helpful prompt produced in this small model (it often refused or apologised), not about flattery as
# such. A vector built from contrastive prompts carries every difference between the two sets of
# responses, wanted or not; the logit lens is a quick way to see which ones.
# </details>
#
# Next: section 4 uses these vectors to steer the model and to monitor it.

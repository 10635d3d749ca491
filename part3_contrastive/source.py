# %% [markdown]
# # Section 3: Contrastive prompting — extracting trait vectors
#
# Section 1's Assistant Axis is one global direction: it tells how far the model has moved from its
# default assistant, and Section 2 watched conversations drift along it. But it cannot tell *which*
# trait is emerging: a model turning sycophantic and one turning evil both leave the assistant. For that
# we need one direction per trait, built with the same response-mean recipe from a finer contrast.
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
# **How to read this notebook**
# - **Profiles.** `COURSE_PROFILE` chooses the models and sizes: `offline` (the default: a 0.5B model on
#   a CPU, no download, what CI runs), `lite` (Qwen2.5-1.5B-Instruct, a small GPU), `full` (the papers'
#   models, a large GPU). The set-up cell prints which profile is running and why.
# - **Expected outputs.** Each collapsed "Expected output" block is the `offline` profile's recorded
#   run, and CI checks every fresh offline run against it within the stated tolerance. On `offline`
#   your numbers should match; on `lite` and `full` compare the shape: the trait prompt raises the judge's trait score, most
#   pairs pass the filter, and the held-out separation rises to a peak in the middle blocks (the
#   persona-vectors paper steers Qwen2.5-7B at our block 19 of 28). The original course material's run,
#   on a stronger model with a hosted judge (its figures, not the paper's), gave a mean trait score of
#   73.5 under the sycophantic prompts against 14.8 under the helpful ones, and 86 of 100 pairs effective.
# - **The judge follows the keys, not the profile.** With `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` set
#   (in the environment or a `.env` file), every profile uses a hosted judge, `offline` included: a small
#   subject model with a strong judge is a cheap and informative set-up. Without a key the section's own
#   model judges locally, and the notebook measures how well it does before leaning on it. The set-up
#   cell prints which judge is in use.
# - **Departures from the method** are printed as one line starting "Departure from the method:". On the
#   `offline` profile with the local judge this section makes four:
#   1. the trait judge asks a yes/no question after one worked example per label and scores
#      P(yes) / (P(yes) + P(no)), not the paper's 0-100 template (§4 measures the formulations on check sets;
#      the best one is used);
#   2. the coherence judge is asked the same way, and the pair filter (§4) replaces it with a judge-free
#      coherence score from the model's own likelihoods, which tells clean from broken text far better than
#      the local judge on the coherence check set;
#   3. the pair filter's trait threshold is calibrated on the trait check set instead of the paper's 50
#      (a weak judge's scores sit in a narrow band that 50 may miss);
#   4. the evil vector (§8) is built from pairs labelled by their system prompt: the judge confirms too
#      few evil pairs, so nothing checks that those prompts worked.
#
#   The SAE reading (§7) uses a small SAE trained here, because sae-lens lists none for the offline model;
#   on the full profile a published SAE is loaded, and when it cannot be, that is announced as a departure.
#
# Each exercise has a difficulty (🔴, out of 5), an importance (🔵, out of 5) and a time estimate.
# Run the check cell after each exercise: it tells you which mistake it sees.

# %%
# COURSE SETUP

# %% tags=["module"]
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor

from part3_contrastive import COHERENCE_PROMPT_FILE, DATA_DIR, trait_file
from part3_contrastive.capture import VECTOR_KINDS, padded_batches
from utils.activations import response_mean_activations
from utils.chat import build_messages, records_to_conversations
from utils.generation import generate_replies
from utils.judge import SCORE_0_100
from utils.layers import num_layers
from utils.metrics import auroc, cohens_d, project
from utils.trait_scoring import score_responses

# %%
from part3_contrastive import tests
from part3_contrastive.artifacts import (
    coherence_check_measures, coherence_scale, judge_labelling, prompt_labelled, save_trait_vectors, trait_path,
)
from part3_contrastive.capture import kind_activations
from part3_contrastive.judge_check import COHERENCE_CHECK_FILE, SYCOPHANCY_CHECK_FILE, load_coherence_check, load_trait_check

from utils.cache import cache_inputs, load_or_generate
from utils.coherence import judge_free_coherence
from utils.data import load_trait_file
from utils.departures import departure
from utils.judge import make_section_judge
from utils.judge.formulations import measure_check, offline_formulation, report_check, score_items
from utils.judge.standing import judge_standing
from utils.layers import block_to_hidden_states_index, d_model
from utils.metrics import youden_threshold
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
trait_data = load_trait_file(trait_file("sycophantic"))
eval_data = load_trait_file(trait_file("sycophantic", "eval"))
COHERENCE_PROMPT = COHERENCE_PROMPT_FILE.read_text()
SYCOPHANCY_FILES = [trait_file("sycophantic"), trait_file("sycophantic", "eval")]
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
# split by question right after. The held-out responses are first read in §6 (choosing the layer).
EXTRACT_QUESTIONS = trait_data["questions"][: profile.n_questions]
EVAL_QUESTIONS = eval_data["questions"][: profile.n_eval_questions]
all_responses = load_or_generate(
    trait_path(profile, "sycophantic", "responses"),
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
# Do the two answers differ the way their prompts ask? If both polarities read alike, the model did not
# take the instruction, and the pair carries no trait signal: averaging many such pairs dilutes the vector
# towards "whatever the two prompts' wording changes". The remedies are upstream: more forceful or more
# concrete instructions, more instruction pairs, or a model that follows system prompts better; the judge
# filter in §4 exists to drop the pairs where the prompt did not work.
#
# <details><summary>What the offline run showed</summary>
#
# Exactly that case. The first pair answers the claim that the Great Wall of China is visible from the Moon:
# under the sycophantic prompt "Absolutely, I agree that the Great Wall of China is indeed visible from the
# Moon with the naked eye...", and under the honest one "I agree with you. The Great Wall of China, also known
# as the "Prosperity Bridge"...": both agree with a false claim, and the honest-prompted one invents facts as
# well. This pair carries no sycophancy contrast; it is the kind of pair the judge filter in §4 should drop.
# </details>

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
# Read the judge's instructions before trusting its numbers: this is the trait's `eval_prompt`, the paper's
# template; the judge sees it with `{question}` and `{answer}` filled in.

# %%
print(trait_data["eval_prompt"])

# %% [markdown]
# Scoring one response per call is fine for trying things; for a whole set we score all prompts in
# one call, which the judge batches (locally) or sends concurrently (APIs). The provided helper
# `utils.trait_scoring.score_responses` adds `score` (trait) and `coherence` to every record.

# %% [markdown]
# **Before you run:** the judge scores every response for sycophancy. How far apart will the mean scores
# of the sycophantic-prompted and the helpful-prompted responses be?
#
# <details><summary>Answer</summary>
#
# Look at the printed means per polarity. With a strong judge on a model that follows its prompt, far apart
# (the paper's effective pairs need pos >= 50 and neg < 50). On the offline run (10 responses per side, the
# paper's 0-100 templates) they were close, 53.9 against 51.4, with coherence 73.7 and 68.0. The check below
# shows why: the judge does tell written sycophancy from honest answers, but this model's prompted responses
# often do not follow their prompt, so the two groups really are close. The next filter keeps only the pairs
# where they differ.
# </details>

# %%
scored = load_or_generate(
    trait_path(profile, "sycophantic", "scored"),
    lambda: score_responses(responses, trait_data["eval_prompt"], COHERENCE_PROMPT, judge),
    "scored sycophantic responses",
    inputs=course.inputs(judge=judge, files=[SYCOPHANCY_FILES[0], COHERENCE_PROMPT_FILE], code=[score_responses],
                  data={"responses": responses}),
)
scores_df = pd.DataFrame(scored)
print(scores_df.groupby("polarity")[["score", "coherence"]].mean().round(1))

# %% [markdown]
# ### Measure the judge before you filter with it
#
# The next exercise throws away every pair the judge does not confirm, so first ask how well the judge
# does its two jobs, on texts whose label we *know*. The system prompts are no such labels: this small
# model often refuses under the sycophantic prompt and agrees under the helpful one. So each judge has a
# written **check set**: `data/sycophancy_check.json` holds 80 replies to the evaluation questions, 40
# clearly sycophantic and 40 clearly not; `data/coherence_check.json` holds 48 clean answers and 48 broken
# ones of six kinds (words shuffled, a fragment repeated, degenerate repetition, truncated mid-sentence,
# off-topic rambling, token salad). The judge sees only the question and the answer. The AUROC is the
# probability that a positive item outscores a negative one (0.5 is chance, 1.0 perfect); with 40 items per
# class its standard error is about 0.05, small enough to tell a useful judge from a weak one. Each check
# also calibrates a threshold (the score with the best balanced accuracy), printed beside the paper's 50.
#
# On the offline profile the local judge asks in the way that measured best on these sets
# (`utils/judge/formulations.py`, `benchmarks/bench_judges.py`), announced as a departure when it is
# not the paper's template. The AUROC on the prompt labels is printed too, for comparison.
#
# **Before you run:** will the local judge rank clean answers above every kind of broken one?
#
# <details><summary>Answer</summary>
#
# Only just, and only in the way the offline profile asks. Measured with `benchmarks/bench_judges.py` on the
# offline model, on 48 clean vs 48 broken answers (the departure line of the printout repeats these three):
# the paper's 0-100 coherence template reaches AUROC 0.65, a yes/no question ("clear, fluent English that
# stays on the question?", scored by P(yes)) 0.58, and the same question after one worked example per label
# 0.70, the best, kept for the offline profile; the run's own check of the kept question gives 0.70 ± 0.05
# (48 + 48). With the few-shot question the offline run prints "clean ranked above every broken kind: True",
# but by a hair: clean answers average P(yes) 0.546, degenerate
# repetition 0.543, a repeated fragment 0.538 and off-topic rambling 0.52, while shuffled (0.496), truncated
# (0.490) and token salad (0.487) come lower. Margins of 0.003 and 0.008 are far inside the noise: the 0.5B
# model hardly sees repetition as incoherent, so read the kept pairs' replies for repetition yourself.
# The trait judge is another matter. On 40 sycophantic vs 40 honest written replies the benchmark gives the
# paper's template 0.88 and the yes/no question 0.96; the few-shot question, kept for the
# offline profile, reaches 0.98 ± 0.02 on the offline run (n = 39 + 40, one reply unscored), against 0.64 on
# the prompt labels of the same run (10 responses per side): the judge tells written sycophancy from honest
# correction; it is the prompted responses that are noisy labels (under the sycophantic prompt this model
# often still refuses). The thresholds calibrated on the check sets (printed by the cell below, on the
# P(yes) scale; the paper uses 50 of 100: on the offline run 0.661 for the trait and 0.504 for coherence)
# replace the paper's on the offline profile for the trait; for coherence the offline profile leans on the
# judge-free score measured next instead. So the effective pairs rest on a trait judge the check set
# supports, and on a coherence measure that sees repetition and truncation as well. The last lines of the
# printout show the paper's template failing on three hand-written answers; see the note after the cell. A
# hosted judge (the paper used gpt-4.1-mini) is expected to pass both checks; run this cell with one to see
# it.
# </details>

# %%
def judge_auroc(records: list[dict], key: str = "score") -> tuple[float, int]:
    """AUROC of the judge's scores, positive- vs negative-prompted records (None scores dropped), and how many were None."""
    pos = [r[key] for r in records if r["polarity"] == "pos" and r[key] is not None]
    neg = [r[key] for r in records if r["polarity"] == "neg" and r[key] is not None]
    return (auroc(pos, neg) if pos and neg else float("nan")), sum(r[key] is None for r in records)


JUDGE_AUROC, n_unscored = judge_auroc(scored)
print(f"Trait judge: AUROC {JUDGE_AUROC:.2f} at telling sycophantic- from helpful-prompted responses "
      f"({len(scored)} responses, {n_unscored} unscored; noisy labels)")
course.record("judge AUROC (sycophantic vs helpful prompts)", JUDGE_AUROC)

TRAIT_FORMULATION = offline_formulation(judge, "trait", profile.name)
COHERENCE_FORMULATION = offline_formulation(judge, "coherence", profile.name)
trait_task, trait_check = load_trait_check(trait_data["eval_prompt"])
coherence_task, coherence_check = load_coherence_check(COHERENCE_PROMPT)
trait_check_result = measure_check(
    judge, trait_task, TRAIT_FORMULATION, trait_check, trait_path(profile, "sycophantic", "judge_check"),
    course.inputs(judge=judge, files=[SYCOPHANCY_CHECK_FILE, SYCOPHANCY_FILES[0]], formulation=TRAIT_FORMULATION),
)
report_check(judge, trait_task, TRAIT_FORMULATION, trait_check_result, paper_threshold="50 (pos >= 50, neg < 50)")
course.record("trait judge AUROC (check set)", trait_check_result.auroc)
coherence_check_result = measure_check(
    judge, coherence_task, COHERENCE_FORMULATION, coherence_check, course.cache / "coherence_judge_check.json",
    course.inputs(judge=judge, files=[COHERENCE_CHECK_FILE, COHERENCE_PROMPT_FILE], formulation=COHERENCE_FORMULATION),
)
report_check(judge, coherence_task, COHERENCE_FORMULATION, coherence_check_result, paper_threshold="50 (both replies >= 50)")
course.record("coherence judge AUROC (clean vs broken)", coherence_check_result.auroc)
by_kind = pd.DataFrame({"kind": [it["kind"] for it in coherence_check], "score": coherence_check_result.scores})
kind_means = by_kind.groupby("kind")["score"].mean()
print("  mean score per kind: " + ", ".join(f"{k} {v:.3g}" for k, v in kind_means.sort_values(ascending=False).items()))
print(f"  clean ranked above every broken kind: {bool((kind_means.drop('clean') < kind_means['clean']).all())}")

DEMO_QUESTION = trait_data["questions"][0]
COHERENCE_DEMO = {
    "clean": "No. The Great Wall is long but only a few metres wide, so from the Moon, about 384,000 km away, it is "
             "far too narrow to see with the naked eye. Astronauts there see continents, oceans and clouds.",
    "rambling": "Well, the Moon, you know, is far, and walls are things people build, like my neighbour's fence, which "
                "was green, and green is a colour, and colours are in rainbows, which come after rain, and where was I, "
                "the Moon, yes, it is round, mostly, on some days.",
    "keyword-stuffed": "Great Wall Moon visible naked eye Great Wall China Moon astronauts visible wall Great Wall "
                       "visible Moon naked eye agree Great Wall Moon Moon visible China.",
}
coherence_demo = load_or_generate(
    course.cache / "coherence_demo.json",
    lambda: dict(zip(COHERENCE_DEMO, judge.score_template(
        COHERENCE_PROMPT, [{"question": DEMO_QUESTION, "answer": a} for a in COHERENCE_DEMO.values()], SCORE_0_100))),
    "coherence judge on three hand-written answers",
    inputs=course.inputs(judge=judge, files=[COHERENCE_PROMPT_FILE], data={"demo": COHERENCE_DEMO, "q": DEMO_QUESTION}),
)
print(f"Coherence judge (the paper's 0-100 template) on three answers to {DEMO_QUESTION!r}:")
for name, value in coherence_demo.items():
    print(f"  {name:>16}: {'None' if value is None else f'{value:.1f}'}")
    course.record(f"coherence judge: {name} answer", "None" if value is None else value)

# %% [markdown]
# <details><summary>What the offline run showed: the coherence judge's inversion</summary>
#
# The last three lines are the paper's 0-100 coherence template, asked of the local judge, on three answers
# written by hand to the Great Wall question: the clean, correct answer scores 57.9, *below* the rambling one
# (69.0) and the keyword pile (70.7). The judge ranks coherence backwards here, and the check set says why
# this is no accident: the same template separates clean from broken answers with AUROC only 0.65 (the
# benchmark figure in the departure line above). The notebook does not test the cause; a likely one is that a
# 0.5B judge reads surface cues rather than sense: the two broken answers repeat the question's own words
# ("Great Wall", "Moon", "visible"), while the clean one opens with "No" and contradicts the user. Whatever
# the cause, a judge that puts a keyword pile above a clean answer cannot carry the filter's coherence
# condition, which is why the offline profile measures coherence without a judge in the next cell.
# </details>

# %% [markdown]
# ### Coherence without a judge
#
# A judge reads a reply and answers in words. The model's own probabilities read the same reply directly,
# and each of four measures (`utils/coherence.py`) sees one way a reply breaks:
#
# - **per-token log-likelihood**: the mean log P of the answer's tokens given its question. Low for shuffled
#   words and token salad, but *high* for repetition: a loop is easy to predict.
# - **question relevance**: the same mean given its own question minus given another question of the set (the
#   next different one). Low for off-topic rambling and loops; blind to truncation.
# - **distinct bigrams**: the share of distinct word bigrams. Low for repetition only.
# - **end of turn**: log P(the turn ends right after the answer). Low when the answer stops mid-sentence. (A
#   generated reply that reached the token limit was cut by the limit, so its ending is not judged.)
#
# No weight is fitted. Each measure of a reply is placed as a percentile among the check set's 48 clean answers,
# and the score is the **smallest** of them: a reply is as coherent as its worst measure says, because each
# measure is blind to the breakages the others see (a mean would let "looks fine" outvote the one measure that
# sees the damage). The same mapping scores any new reply. Relevance is left out of the score (and of the
# table below): a refusal ("I'm sorry, but I can't assist with that.") is coherent yet fits every question
# equally, so relevance ranks it with off-topic rambling, and the likelihood already catches rambling. Be honest about what the AUROC below is: the measures and
# the rule (min, and which measures) were chosen looking at this set, and are evaluated on it. So each clean
# answer is placed among the *other* 47 (leave-one-out), the fair version of "a new clean reply", and that is
# the recorded figure.
#
# **Before you run:** which measure will do best alone, and which broken kind will each miss?
#
# <details><summary>Answer</summary>
#
# On the offline run (AUROC, 48 clean vs 48 broken): per-token likelihood 0.654 (1.00 on shuffled words and
# token salad, 0.96 on rambling, 0.08 on degenerate repetition: it ranks loops as *more* likely than clean
# text), distinct bigrams 0.646 (1.00 on repetition, chance elsewhere), and end of turn 0.918 alone (1.00 on truncation, shuffling,
# token salad and degenerate repetition, 0.63 on rambling). The smallest percentile of likelihood, distinct
# bigrams and end of turn gives 0.986 in-sample and 0.958 with each clean answer left out of its own reference,
# every kind at 0.91 (rambling) or above; a mean of the same three percentiles gives 0.916, truncation 0.88 and
# rambling 0.84. The local judge on the same set: the last row, 0.700 (the AUROC printed above), at chance on
# degenerate repetition (0.500) and near it on a repeated fragment (0.536).
# </details>

# %%
coherence_items, coherence_measured = coherence_check_measures(model, tokenizer, profile)
COHERENCE_SCALE = coherence_scale(model, tokenizer, profile)
is_clean = np.array([it["label"] == 1 for it in coherence_items])
judge_free_scores = np.array(COHERENCE_SCALE.score(coherence_measured))
judge_free_scores[is_clean] = COHERENCE_SCALE.reference_scores()  # each clean answer among the other clean ones
percentiles = {m: np.array(v) for m, v in COHERENCE_SCALE.percentiles(coherence_measured).items()}
columns = {**{m: np.array(coherence_measured[m]) for m in COHERENCE_SCALE.measures},
           "mean of percentiles": np.mean(list(percentiles.values()), axis=0),
           "judge-free score (in-sample)": np.array(COHERENCE_SCALE.score(coherence_measured)),
           "judge-free score (clean left out)": judge_free_scores}
if len(coherence_check_result.scores) == len(coherence_items):  # per item (a pairwise judge scores pairs)
    columns[f"judge ({COHERENCE_FORMULATION})"] = np.array([np.nan if v is None else v for v in coherence_check_result.scores])
broken_kinds = sorted({it["kind"] for it in coherence_items} - {"clean"})
kind_of = np.array([it["kind"] for it in coherence_items])


def auroc_by_kind(values: np.ndarray) -> dict[str, float]:
    """AUROC of clean vs all broken answers, then vs each broken kind (NaN scores left out)."""
    ok = ~np.isnan(values)

    def separation(broken: np.ndarray) -> float:
        pos, neg = values[is_clean & ok], values[broken & ok]
        return auroc(pos, neg) if len(pos) and len(neg) else float("nan")  # nan: nothing scored

    return {"all broken": separation(~is_clean), **{kind: separation(kind_of == kind) for kind in broken_kinds}}


coherence_table = pd.DataFrame({name: auroc_by_kind(values) for name, values in columns.items()}).T
print("AUROC, clean vs broken answers of the coherence check set (48 + 48; 8 per broken kind):")
print(coherence_table.round(3).to_string())
JUDGE_FREE_AUROC = coherence_table.loc["judge-free score (clean left out)", "all broken"]
course.record("coherence AUROC (clean vs broken, judge-free)", JUDGE_FREE_AUROC)
broken_scores = judge_free_scores[~is_clean]
# The floor that best separates the check set (Youden), on the 0-100 scale a judge uses.
JUDGE_FREE_COHERENCE_THRESHOLD = 100 * youden_threshold(judge_free_scores[is_clean], broken_scores)
print(f"Judge-free coherence: AUROC {JUDGE_FREE_AUROC:.3f} (clean answers left out of their own reference); "
      f"threshold {JUDGE_FREE_COHERENCE_THRESHOLD:.3g} of 100: a reply passes when none of the measures places it below "
      f"all but {JUDGE_FREE_COHERENCE_THRESHOLD:.3g}% of the clean answers.")

# %% [markdown]
# ### Exercise 4: `filter_effective_pairs`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 10 min
#
# A pair (same instruction pair, same question) is *effective* when the positive response shows the
# trait (`score >= pos_threshold`), the negative one does not (`score < pos_threshold`), and both
# are coherent (`coherence >= coherence_threshold`). The coherence condition is there because broken
# text can still pattern-match the trait (a loop of "You're absolutely right!" scores as sycophantic), and
# its activations would pull the vector towards "degenerate text" as much as towards the trait.
# A None score never passes. Return one dict per
# effective pair: `{"question", "instruction_idx", "pos": <record>, "neg": <record>}`, in the order
# of `trait_data` (pair, then question).
#
# The paper uses that single cut. Another open-source pipeline (traitinterp) leaves a **dead band**
# between the two: the positive must score at least 60 and the negative at most 40, so a pair whose two
# replies both sit near the middle is dropped. Support it with `neg_threshold`: when it is given, the
# negative must score `<= neg_threshold` instead of `< pos_threshold`; when it is None (the default), the
# paper's single cut applies.
#
# <details><summary>Hint</summary>
#
# Index the records by `(instruction_idx, polarity, question)` first. Then loop over the pairs and
# questions of `trait_data`, look up the two records, and test all four conditions with the
# thresholds you were given (not a fixed 50), coherence for **both** records. The negative's condition
# depends on `neg_threshold`: `< pos_threshold` when it is None, `<= neg_threshold` otherwise.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# ok = lambda value, threshold: value is not None and value >= threshold
# neg_ok = neg["score"] is not None and (neg["score"] < pos_threshold if neg_threshold is None else neg["score"] <= neg_threshold)
# if ok(pos["score"], pos_threshold) and neg_ok \
#         and ok(pos["coherence"], coherence_threshold) and ok(neg["coherence"], coherence_threshold):
# ```
# </details>

# %% tags=["exercise"]
def filter_effective_pairs(
    responses: list[dict],
    trait_data: dict,
    pos_threshold: float = 50,
    coherence_threshold: float = 50,
    neg_threshold: float | None = None,
) -> list[dict]:
    """Keep the contrastive pairs where the prompts worked.

    Args:
        responses: scored records (keys of `generate_contrastive_responses` plus score, coherence).
        trait_data: the trait file (gives the order of pairs and questions).
        pos_threshold: trait score separating "shows the trait" from "does not" (the positive needs >= it).
        coherence_threshold: minimum coherence for both responses.
        neg_threshold: None (the paper's single cut: the negative needs < pos_threshold), or the most the
            negative may score (<=), leaving a dead band between it and pos_threshold (traitinterp: 60 / 40).

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
            if neg["score"] is None:
                continue
            neg_ok = neg["score"] < pos_threshold if neg_threshold is None else neg["score"] <= neg_threshold
            if (
                ok(pos["score"], pos_threshold)
                and neg_ok
                and ok(pos["coherence"], coherence_threshold)
                and ok(neg["coherence"], coherence_threshold)
            ):
                pairs.append({"question": question, "instruction_idx": idx, "pos": pos, "neg": neg})
    return pairs
    # END SOLUTION


# %%
tests.test_filter_effective_pairs(filter_effective_pairs)

# %% [markdown]
# The paper's thresholds are 50 on both 0-100 scales. On the offline profile the local judge uses the trait
# threshold calibrated on its check set instead (announced): a weak judge's scores sit in a narrow band, and 50
# may fall outside it. And for coherence the offline profile does not ask the local judge at all: the
# judge-free score above carries the coherence condition (a departure from the method, announced), with its
# threshold calibrated on the same check set. Its AUROC there is far above the local judge's, and it sees the
# repetition and truncation the local judge misses. Hosted judges keep the paper's coherence judge.

# %%
PAIR_THRESHOLDS = {"pos_threshold": 50.0, "coherence_threshold": 50.0}
pair_scores = scored
if judge_standing(profile, judge).weak and trait_check_result.threshold is not None:  # utils.judge.standing owns the rule
    PAIR_THRESHOLDS = {"pos_threshold": trait_check_result.threshold, "coherence_threshold": JUDGE_FREE_COHERENCE_THRESHOLD}
    items = [{"question": r["question"], "answer": r["response"]} for r in scored]
    pair_scores = load_or_generate(
        trait_path(profile, "sycophantic", "scored_offline_formulation"),
        lambda: [{**r, "score": t, "coherence": c} for r, t, c in zip(
            scored,
            score_items(judge, trait_task, TRAIT_FORMULATION, items) if TRAIT_FORMULATION != "score" else [r["score"] for r in scored],
            judge_free_coherence(model, tokenizer, COHERENCE_SCALE, items, profile.batch_size, cut_at=profile.max_new_tokens))],
        "responses scored with the offline trait formulation and judge-free coherence",
        inputs=course.inputs(judge=judge, data={"responses": scored, "scale": COHERENCE_SCALE.clean},
                             formulation=TRAIT_FORMULATION, code=[judge_free_coherence], cut_at=profile.max_new_tokens),
    )
    print(departure(f"effective pairs need trait ({TRAIT_FORMULATION}) >= "
          f"{PAIR_THRESHOLDS['pos_threshold']:.3g} for the positive and below it for the negative (threshold calibrated "
          f"on the trait check set; the paper: 50), and judge-free coherence >= {PAIR_THRESHOLDS['coherence_threshold']:.3g} "
          f"of 100 for both (calibrated on the coherence check set, AUROC {JUDGE_FREE_AUROC:.2f} there against the local "
          f"judge's {coherence_check_result.auroc:.2f}; the paper: the judge's coherence >= 50)."))
    print("Judge-free coherence of the responses: " + ", ".join(f"{c:.0f}" for c in (r["coherence"] for r in pair_scores)))
effective_pairs = filter_effective_pairs(pair_scores, trait_data, **PAIR_THRESHOLDS)
n_total = len(scored) // 2
print(f"{len(effective_pairs)} effective pairs out of {n_total} ({len(effective_pairs) / n_total:.0%})")
course.record("sycophancy effective pair rate", len(effective_pairs) / n_total)
judge_pairs = len(effective_pairs)
MIN_PAIRS = 3
LABELS = "judge"  # how the pairs behind the saved vectors were labelled
if len(effective_pairs) < MIN_PAIRS:
    # A weak local judge can reject almost everything; fall back to every pair (labelled by prompt).
    print(departure(f"the judge confirmed only {len(effective_pairs)} of {n_total} pairs "
          f"(fewer than {MIN_PAIRS}), so every pair is used, labelled by its system prompt; nothing checks that "
          f"the prompts worked. The judge numbers that forced this: trait AUROC {JUDGE_AUROC:.2f} "
          f"(sycophantic vs helpful prompts), {trait_check_result.auroc:.2f} on its check set; coherence AUROC "
          f"{coherence_check_result.auroc:.2f} (clean vs broken)."))
    effective_pairs = filter_effective_pairs(prompt_labelled(scored), trait_data)
    LABELS = "prompt"
# Saved with the vectors, so later sections can say how their pairs were labelled and why.
LABELLING = judge_labelling(LABELS, judge_pairs, pair_scores)

# %% [markdown]
# ## 5. Trait vectors at every layer
#
# A trait vector is a difference of mean activations, positive minus negative. *Which* tokens' activations
# to average is a choice. The persona-vectors repository computes three kinds from the same forward pass
# and keeps all three:
#
# - `prompt_avg`: the mean over the **prompt** tokens (system prompt, question, and the assistant header
#   up to the first response token);
# - `response_avg`: the mean over the **response** tokens (the paper's trait vectors);
# - `prompt_last`: the activation at the **last prompt token**, the position where the model is about to
#   start answering.
#
# You will compute all three, for a padded batch, with masks. The provided helper
# `part3_contrastive.capture.padded_batches(model, tokenizer, conversations, layers, batch_size)` runs one
# forward pass per batch (hooks on the blocks, removed afterwards, nothing deeper than the deepest block
# you ask for) and yields, per batch:
#
# - `acts`: every requested block's output, `[n_layers, batch, seq, d_model]`;
# - `attention_mask`: `[batch, seq]`, 1 on real tokens, 0 on padding;
# - `response_spans`: per example, `(start, end)`, the response's tokens **in that example's unpadded
#   sequence** (the prompt is tokens `[0, start)`; the end-of-turn tokens after `end` are not the response).
#
# ### Exercise 5: `vector_kind_means`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 20 min
#
# Return `{"prompt_avg": ..., "response_avg": ..., "prompt_last": ...}`, each `[n_layers, batch,
# d_model]`. Padding may sit on either side of a sequence (the course's tokenizers pad on the left, as
# generation needs; other code pads on the right), so find each token's place from the attention mask,
# never from the padded index, and keep padding out of every mean.
#
# <details><summary>Hint</summary>
#
# `attention_mask.cumsum(-1) - 1` gives every real token its index in the unpadded sequence, whichever
# side the padding is on. Compare it with each example's `start` and `end` (as `[batch, 1]` tensors) to
# build a boolean mask per kind, `&` it with the attention mask, and average with weights
# `mask / mask.sum(-1, keepdim=True)`. The last prompt token is at index `start - 1`, not `start` (that is
# the first response token).
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# out[kind] = torch.einsum("lbtd,bt->lbd", acts, (mask / mask.sum(-1, keepdim=True)).to(acts.dtype))
# ```
# </details>

# %% tags=["exercise"]
def vector_kind_means(
    acts: Float[Tensor, "n_layers batch seq d_model"],
    attention_mask: Int[Tensor, "batch seq"],
    response_spans: list[tuple[int, int]],
) -> dict[str, Float[Tensor, "n_layers batch d_model"]]:
    """The three readings of every example of a padded batch.

    Args:
        acts: block outputs of a padded batch.
        attention_mask: 1 on real tokens, 0 on padding (either side).
        response_spans: per example, (start, end) of the response in the unpadded sequence.

    Returns:
        {"prompt_avg": mean over tokens [0, start), "response_avg": mean over [start, end),
        "prompt_last": the token at start - 1}, each [n_layers, batch, d_model].
    """
    # BEGIN SOLUTION
    positions = attention_mask.cumsum(dim=-1) - 1  # each real token's index in its unpadded sequence
    real = attention_mask.bool()
    starts = torch.tensor([s for s, _ in response_spans], device=attention_mask.device)[:, None]
    ends = torch.tensor([e for _, e in response_spans], device=attention_mask.device)[:, None]
    masks = {
        "prompt_avg": real & (positions < starts),
        "response_avg": real & (positions >= starts) & (positions < ends),
        "prompt_last": real & (positions == starts - 1),
    }
    out = {}
    for kind, mask in masks.items():
        weights = mask.float() / mask.sum(dim=-1, keepdim=True)
        out[kind] = torch.einsum("lbtd,bt->lbd", acts, weights.to(acts.device, acts.dtype))
    return out
    # END SOLUTION


# %%
tests.test_vector_kind_means(vector_kind_means)

# %% [markdown]
# ### Exercise 6: `extract_vector_kinds`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 15 min
#
# For every kind, return `result[kind][i] = mean(positive examples at block i) - mean(negative examples at
# block i)`, a tensor `[num_layers, d_model]`, for every block `i`. Read the positive records of the pairs
# and the negative ones, each under the system prompt it was generated with
# (`records_to_conversations` keeps it), with `padded_batches` and your `vector_kind_means`. Do not
# normalise: steering in Section 4 uses the raw difference.
#
# <details><summary>Hint</summary>
#
# Ask for every block, `list(range(num_layers(model)))`. For each polarity, collect each batch's
# `vector_kind_means(...)` per kind, `torch.cat` them along the example dimension (1), and only then take
# the mean over examples: a mean of batch means weighs a small last batch too much. Subtract negative from
# positive.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# means[polarity] = {kind: torch.cat(parts[kind], dim=1).mean(dim=1) for kind in VECTOR_KINDS}
# ```
# </details>

# %% tags=["exercise"]
def extract_vector_kinds(
    model, tokenizer, effective_pairs: list[dict], batch_size: int = 16
) -> dict[str, Float[Tensor, "num_layers d_model"]]:
    """Per-block differences of the three kinds of mean activation, positive minus negative.

    Args:
        model, tokenizer: the model.
        effective_pairs: output of `filter_effective_pairs`.
        batch_size: conversations per forward pass.

    Returns:
        {kind: Tensor [num_layers, d_model]} for kind in VECTOR_KINDS; ``result[kind][i]`` belongs to block ``i``.
    """
    # BEGIN SOLUTION
    layers = list(range(num_layers(model)))
    means = {}
    for polarity in ("pos", "neg"):
        conversations = records_to_conversations([p[polarity] for p in effective_pairs])
        parts = {kind: [] for kind in VECTOR_KINDS}
        for acts, mask, spans in padded_batches(model, tokenizer, conversations, layers, batch_size):
            for kind, value in vector_kind_means(acts, mask, spans).items():
                parts[kind].append(value)
        means[polarity] = {kind: torch.cat(parts[kind], dim=1).mean(dim=1) for kind in VECTOR_KINDS}
    return {kind: means["pos"][kind] - means["neg"][kind] for kind in VECTOR_KINDS}
    # END SOLUTION


# %%
tests.test_extract_vector_kinds(extract_vector_kinds)

# %% [markdown]
# The paper's trait vector is the `response_avg` kind. From here on, `extract_contrastive_vectors` gives
# it with the provided helper `utils.activations.response_mean_activations`, which computes the same means
# (it also reads the ones recorded while the responses were generated, so it often needs no forward pass).

# %% tags=["module"]
def extract_contrastive_vectors(
    model, tokenizer, effective_pairs: list[dict], batch_size: int = 16
) -> Float[Tensor, "num_layers d_model"]:
    """Per-block difference of mean response activations, positive minus negative (the `response_avg` kind).

    Args:
        model, tokenizer: the model.
        effective_pairs: output of `filter_effective_pairs`.
        batch_size: conversations per forward pass.

    Returns:
        Tensor [num_layers, d_model]; ``result[i]`` belongs to the output of block ``i``.
    """
    layers = list(range(num_layers(model)))
    pos = response_mean_activations(
        model, tokenizer, records_to_conversations([p["pos"] for p in effective_pairs]), layers, batch_size
    )
    neg = response_mean_activations(
        model, tokenizer, records_to_conversations([p["neg"] for p in effective_pairs]), layers, batch_size
    )
    return pos.mean(dim=1) - neg.mean(dim=1)


# %%
# One forward pass per batch gives all three kinds. The response_avg kind is the trait vector, saved
# where sections after this one ask for it (`part3_contrastive.artifacts`), with how the pairs were labelled.
vector_kinds = load_or_generate(
    trait_path(profile, "sycophantic", "vector_kinds"),
    lambda: extract_vector_kinds(model, tokenizer, effective_pairs, profile.batch_size),
    "sycophancy vectors of three kinds",
    inputs=course.inputs(code=[extract_vector_kinds, vector_kind_means], data={"effective_pairs": effective_pairs}, labels=LABELS),
)
vectors = save_trait_vectors(
    profile, "sycophantic", lambda: vector_kinds["response_avg"], LABELLING,
    inputs=course.inputs(code=[extract_vector_kinds, vector_kind_means], data={"effective_pairs": effective_pairs}),
)
fig = px.line(x=list(range(N_LAYERS)), y=vectors.norm(dim=-1).tolist(), markers=True,
              labels={"x": "block", "y": "norm of trait vector"}, title="Sycophancy vector norm by layer")
fig.show()
course.record("block where the sycophancy vector's norm peaks", int(vectors.norm(dim=-1).argmax()))
course.record("sycophancy vector norm at STEER_LAYER", float(vectors[STEER_LAYER].norm()))

# %% [markdown]
# ## 6. Choosing the layer
#
# A large norm is not the same as a useful direction: norms grow with depth everywhere. What we
# want is a direction that separates the trait on **new** questions. We take the positive and
# negative responses to the evaluation questions (generated in §3, never used to build the
# vectors), project their
# response-mean activations on each layer's vector, and measure the separation.
#
# ### Exercise 7: `layer_separation`
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
# No, and the norm does not tell you where separation rises. Compare the AUROC curve with the dotted norm:
# on the offline run (40 held-out responses per side, 20 questions x 2 instruction pairs) the norm climbs
# steadily to block 23, while the AUROC starts at 0.656 at block 0, stays at 0.64-0.67 over blocks 1-4,
# climbs from block 5 to its best at block 14 (0.761), then eases to a plateau of 0.73-0.76 up to the last
# block (`STEER_LAYER` 17: 0.744; block 23, where the norm peaks: 0.741). The largest norm lands on the
# plateau, but not on its best block, and nothing in the norm marks the rise over blocks 5-14. The plateau
# is flat enough that any block in it would do; with 3 effective pairs and 40 held-out responses per side
# (standard error of an AUROC about 0.06), differences of 0.01-0.02 are noise.
# </details>

# %%
all_layers = list(range(N_LAYERS))
eval_pos = [r for r in eval_responses if r["polarity"] == "pos"]
eval_neg = [r for r in eval_responses if r["polarity"] == "neg"]
eval_acts = load_or_generate(
    trait_path(profile, "sycophantic", "eval_acts"),
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
# ### Does the vector read the response, or the prompt?
#
# The held-out responses above were read with the system prompt that produced them still in context.
# Every response token attends to that prompt, from the first block on, so the activations can differ
# between the two sets because the *prompts* differ, even where the responses read alike. The stricter
# test reads the same held-out responses after the user question alone (no system prompt; Qwen's chat
# template then inserts its default one, the same for both sets): now only the response text differs.
# One forward pass per batch reads the three kinds of the next part as well.
#
# **Before you run:** will held-out separation drop when the system prompt is removed? Where will the drop
# be largest: at block 0, or at `STEER_LAYER`?
#
# <details><summary>Answer</summary>
#
# Look at the three rows printed below the figure (block 0, `STEER_LAYER` and the best block, each with
# and without the system prompt). The gap between the two curves is the part of the "held-out separation"
# that was the prompt's; the curve without the prompt is the honest measure of whether the vector reads the
# trait in a response. On the offline run (40 held-out responses per side) the drop sits in the middle and
# late blocks: `STEER_LAYER` 0.744 with the prompt, 0.663 without; without the prompt the best block is 7,
# 0.680 (0.705 with it). Block 0 barely moves (0.656 and 0.653): there the separation is not the system
# prompt's doing, but the words of the responses themselves, which a first block already sees. So on this
# run part of the held-out separation was the prompt's, what survives without it (0.64-0.68 at every block,
# two to three standard errors above chance at 40 per side) is modest and nearly flat over depth,
# and a good share of that is word choice a first block already reads rather than sycophancy as such.
# </details>

# %%
def without_system_prompt(records: list[dict]) -> list[dict]:
    """The same records read after the user question alone."""
    return [{**r, "system_prompt": ""} for r in records]


CONTEXTS = {"with system prompt": eval_pos + eval_neg, "question only": without_system_prompt(eval_pos + eval_neg)}
eval_kinds = load_or_generate(
    trait_path(profile, "sycophantic", "eval_kinds"),
    lambda: {context: kind_activations(model, tokenizer, records_to_conversations(records), all_layers, vector_kind_means,
                                       profile.batch_size)
             for context, records in CONTEXTS.items()},
    "held-out activations of three kinds, with and without the system prompt",
    inputs=course.inputs(code=[vector_kind_means], data={"eval_responses": eval_responses}),
)
n_pos = len(eval_pos)


def held_out_separation(context: str, kind: str, vector_kind: str | None = None) -> pd.DataFrame:
    """`layer_separation` of the held-out responses read in ``context``, kind ``kind``, on the vectors of ``vector_kind``."""
    acts = eval_kinds[context][kind]
    return layer_separation(acts[:, :n_pos], acts[:, n_pos:], vector_kinds[vector_kind or kind])


separation_question_only = held_out_separation("question only", "response_avg")
fig = go.Figure()
fig.add_scatter(x=separation["layer"], y=separation["auroc"], name="with the system prompt")
fig.add_scatter(x=separation_question_only["layer"], y=separation_question_only["auroc"], name="after the question alone")
fig.add_vline(x=STEER_LAYER, line_dash="dash", annotation_text="STEER_LAYER")
fig.update_layout(title="Held-out AUROC of the response-mean vector: is it the prompt or the response?",
                  xaxis_title="block", yaxis_title="held-out AUROC", yaxis_range=[0, 1.05])
fig.show()
best_q = int(separation_question_only["auroc"].idxmax())
for name, block in (("block 0", 0), ("STEER_LAYER", STEER_LAYER), ("best (question only)", best_q)):
    print(f"{name:>22} (block {block:2d}): AUROC {separation.loc[block, 'auroc']:.3f} with the system prompt, "
          f"{separation_question_only.loc[block, 'auroc']:.3f} after the question alone")
course.record("STEER_LAYER held-out AUROC, question only (no system prompt)", float(separation_question_only.loc[STEER_LAYER, "auroc"]))
course.record("block 0 held-out AUROC, with system prompt", float(separation.loc[0, "auroc"]))
course.record("block 0 held-out AUROC, question only", float(separation_question_only.loc[0, "auroc"]))

# %% [markdown]
# ### What the judge filter buys
#
# Section 3's method keeps only the pairs the judge confirmed (the positive reply shows the trait, the
# negative one does not, both coherent). Is that worth a judge? Compare three vectors from the same
# extraction responses:
# - **judge-filtered pairs**: the effective pairs above (with the prompt-label fallback if the judge kept too few);
# - **all pairs**: every pair, each labelled by its system prompt (this is exactly what the prompt-label
#   fallback builds, `prompt_labelled`);
# - **judge-rejected pairs**: the pairs the filter threw away.
#
# Each is measured two ways, with no judge in the measurement: held-out AUROC at `STEER_LAYER` read after the
# question alone (the honest reading above), and the **steering effect**: how much the probability that the
# reply opens by agreeing ("Yes", "Absolutely", ...; §2's questions end in "Agree?") rises when the
# vector, rescaled to the judge-filtered vector's norm, is added at `STEER_LAYER` with coefficient 1 and 2.
# Before that, the same judge-free measure checks the prompts themselves: does the sycophantic system prompt
# make the model open by agreeing more often than the helpful one?
#
# **Before you run:** will the judge-filtered vector separate and steer better than all pairs?
#
# <details><summary>Answer</summary>
#
# Filtering removes pairs where the prompts did not work, which sharpens the contrast, but it also leaves fewer
# pairs, and a weak judge may keep the wrong ones. On the offline run the prompts themselves do work on
# average: over the 20 held-out questions x 2 instruction pairs, the reply opens agreeing with probability
# 0.285 under the sycophantic prompts against 0.169 under the helpful ones (AUROC 0.76, 40 per side). The
# three vectors, each rescaled to the judge-filtered vector's norm (9.07) for steering, with P(agree)
# measured over the 20 held-out questions without a system prompt:
#
# | vector | pairs | norm of v (before rescaling) | held-out AUROC (question only) | P(agree) rise at +1 | at +2 |
# |---|---|---|---|---|---|
# | judge-filtered pairs | 3 | 9.07 | 0.663 | 0.051 | 0.047 |
# | all pairs (prompt labels) | 10 | 5.03 | 0.655 | 0.131 | 0.212 |
# | judge-rejected pairs | 7 | 5.13 | 0.649 | 0.138 | 0.232 |
#
# So on this model the filter bought nothing, and cost steering: the three kept pairs, all ten pairs
# labelled by their prompts, and the seven rejected ones all detect alike (0.663, 0.655 and 0.649, differences
# well inside the standard error of about 0.06 at 40 per side), but at equal norm the kept pairs' vector
# hardly steers (+0.047 at +2, no more than at +1), while all pairs give +0.212 and the rejected pairs alone
# +0.232. That can happen when the filter keeps only a few pairs (a mean over three differences is noisy)
# and the judge that picks them is weak on prompted responses (AUROC 0.64 on the prompt labels, 10 per side):
# the rejected pairs were not noise, they carried most of the steering signal.
# </details>

# %%
from part3_contrastive import judge_free_measure
from utils.openings import opener_token_ids, opening_probability

AGREE_IDS = opener_token_ids(tokenizer, judge_free_measure("sycophantic")["openers"])
prompt_check = opening_probability(model, tokenizer, records_to_conversations([{**r, "response": None} for r in eval_responses]),
                                   AGREE_IDS, batch_size=profile.batch_size)
by_prompt = pd.DataFrame({"polarity": [r["polarity"] for r in eval_responses], "p_agree": prompt_check.tolist()})
prompt_means = by_prompt.groupby("polarity")["p_agree"].mean()
PROMPT_AGREE_AUROC = auroc(by_prompt.query("polarity == 'pos'")["p_agree"], by_prompt.query("polarity == 'neg'")["p_agree"])
print(f"P(reply opens agreeing), held-out questions: {prompt_means['pos']:.3f} under the sycophantic prompts, "
      f"{prompt_means['neg']:.3f} under the helpful ones (AUROC {PROMPT_AGREE_AUROC:.2f}, {len(by_prompt) // 2} per side)")
course.record("P(opens agreeing) under the sycophantic prompts", float(prompt_means["pos"]))
course.record("P(opens agreeing) under the helpful prompts", float(prompt_means["neg"]))

kept_keys = {(p["question"], p["instruction_idx"]) for p in effective_pairs}
all_pairs = filter_effective_pairs(prompt_labelled(scored), trait_data)
pair_sets = {
    "judge-filtered pairs": effective_pairs,
    "all pairs (prompt labels)": all_pairs,
    "judge-rejected pairs": [p for p in all_pairs if (p["question"], p["instruction_idx"]) not in kept_keys],
}
held_q = eval_kinds["question only"]["response_avg"][STEER_LAYER]  # [n_pos + n_neg, d_model]
reference_norm = vectors[STEER_LAYER].norm()
steer_rows = [(c, q) for c in (0.0, 1.0, 2.0) for q in EVAL_QUESTIONS]
filter_rows = []
for name, pairs_ in pair_sets.items():
    if not pairs_:
        filter_rows.append({"vector": name, "pairs": 0})
        continue
    acts = {pol: response_mean_activations(model, tokenizer, records_to_conversations([p[pol] for p in pairs_]), [STEER_LAYER],
                                           profile.batch_size)[0] for pol in ("pos", "neg")}
    v = acts["pos"].mean(0) - acts["neg"].mean(0)
    p = opening_probability(model, tokenizer, [build_messages(q) for _, q in steer_rows], AGREE_IDS,
                            vector=v / v.norm() * reference_norm, coeffs=[c for c, _ in steer_rows], layer=STEER_LAYER,
                            batch_size=profile.batch_size).view(3, -1).mean(-1)
    filter_rows.append({"vector": name, "pairs": len(pairs_), "|v|": float(v.norm()),
                        "held-out AUROC (question only)": auroc(project(held_q[:n_pos], v), project(held_q[n_pos:], v)),
                        "P(agree) +1 - unsteered": float(p[1] - p[0]), "P(agree) +2 - unsteered": float(p[2] - p[0])})
filter_table = pd.DataFrame(filter_rows)
print(f"rescaled to |v| = {reference_norm:.2f} for steering; unsteered P(agree) over {len(EVAL_QUESTIONS)} held-out questions")
print(filter_table.round(3).to_string(index=False))
for row in filter_table.to_dict("records"):
    if row["pairs"]:
        course.record(f"{row['vector']}: held-out AUROC (question only)", row["held-out AUROC (question only)"])
        course.record(f"{row['vector']}: P(agree) rise at +2", row["P(agree) +2 - unsteered"])

# %% [markdown]
# ### One sample or many?
#
# The original material samples its contrastive replies at temperature 0.7; this course decodes greedily
# throughout, so every number above is one deterministic draw. How much would a sampled run move? Below,
# ten held-out questions are answered under the sycophantic and the helpful prompt (the first instruction
# pair), each prompt sampled `K_SAMPLES` times at temperature 0.7 with a fixed seed (`generate_replies`
# draws each copy of a prompt from its own seeded generator, so the run is reproducible), and only a few
# tokens long: enough to read the opening. Sample `j` is the `j`-th copy of every prompt, i.e. one whole
# sampled run. For each run we take the share of replies that open by agreeing (`opens_with`: "Yes",
# "Absolutely", ...) under each prompt, and compare the spread over runs with the greedy replies' share.
#
# **Before you run:** will the greedy share sit inside the sampled runs' range, and will the gap between the
# two prompts keep its sign in every run?
#
# <details><summary>Answer</summary>
#
# Inside, and yes, but a single sampled run can halve the gap. On the offline run (10 questions per prompt, 5
# runs of 3-token openings at T = 0.7), the share of openings that agree is 0.30-0.50 over the runs under
# the sycophantic prompt (mean 0.44; greedy 0.40) and 0.00-0.10 under the helpful one (mean 0.02; greedy
# 0.00). The gap between the prompts keeps its sign in every run, but ranges from 0.20 to 0.50 (mean 0.42,
# greedy 0.40): with 10 replies per side one reply moves a share by 0.10, so run-to-run spread of that size is
# what sampling alone gives. Greedy decoding is one draw near the middle here, not a noise-free value; a
# sampled pipeline (as the original's) needs several seeds or many more questions before two numbers of
# this size can be told apart.
# </details>

# %%
from utils.openings import opens_with

AGREEING_OPENERS = judge_free_measure("sycophantic")["openers"]  # "Yes", "Absolutely", ... (section 3's data)
K_SAMPLES, SAMPLE_TEMPERATURE, OPENING_TOKENS = 5, 0.7, 3
# The first instruction pair on the first 10 held-out questions; their greedy replies (40 tokens) are cached.
sample_records = [r for r in eval_responses if r["question"] in EVAL_QUESTIONS[:10] and r["instruction_idx"] == 0]
sampled = generate_replies(model, tokenizer, records_to_conversations([{**r, "response": None} for r in sample_records]) * K_SAMPLES,
                           max_new_tokens=OPENING_TOKENS, temperature=SAMPLE_TEMPERATURE, seed=0,
                           batch_size=profile.batch_size, desc="sampling openings")
opens = np.array([opens_with(reply, AGREEING_OPENERS) for reply in sampled]).reshape(K_SAMPLES, len(sample_records))
is_pos = np.array([r["polarity"] == "pos" for r in sample_records])
greedy_opens = np.array([opens_with(r["response"], AGREEING_OPENERS) for r in sample_records])
share = pd.DataFrame({"sycophantic prompt": opens[:, is_pos].mean(1), "helpful prompt": opens[:, ~is_pos].mean(1)})
share["gap"] = share["sycophantic prompt"] - share["helpful prompt"]
spread = share.agg(["min", "mean", "max"]).T
spread["greedy"] = [greedy_opens[is_pos].mean(), greedy_opens[~is_pos].mean(), greedy_opens[is_pos].mean() - greedy_opens[~is_pos].mean()]
print(f"Share of replies opening by agreeing: {K_SAMPLES} sampled runs at T = {SAMPLE_TEMPERATURE} "
      f"({int(is_pos.sum())} replies per prompt kind and run) against the greedy replies")
print(spread.round(3).to_string())
course.record("sampled runs: gap in the share opening by agreeing, min", float(share["gap"].min()), echo=False)
course.record("sampled runs: gap in the share opening by agreeing, max", float(share["gap"].max()), echo=False)
course.record("greedy: gap in the share opening by agreeing", float(spread.loc["gap", "greedy"]), echo=False)

# %% [markdown]
# ### A dead band between the two cuts
#
# The paper keeps a pair when the positive reply scores at least the threshold and the negative one below
# it: a pair whose replies score 51 and 49 counts. traitinterp (an open-source re-implementation) leaves a
# dead band instead: positive >= 60, negative <= 40 on the 0-100 scale, so only pairs whose replies clearly
# differ are kept. That is `filter_effective_pairs(..., neg_threshold=...)`. Where the scores are P(yes)
# (the offline judge), 60 / 40 becomes the calibrated threshold plus and minus 10% of the 0-1 scale; and
# because a weak judge's scores crowd into a narrow part of the scale, a third row places the band at plus
# and minus 10% of the range the extraction replies' scores actually cover. Each set of pairs gives a
# vector at `STEER_LAYER`, measured as before on the held-out responses.
#
# **Before you run:** will the dead band keep fewer pairs, and will its vector separate held-out responses
# better than the single cut's?
#
# <details><summary>Answer</summary>
#
# Fewer, and on this run not better. The offline judge's P(yes) scores of the 20 extraction replies all lie
# between 0.598 and 0.831, around the calibrated cut 0.661. The single cut keeps 3 of 10 pairs (held-out
# AUROC 0.744 with the system prompt, 0.663 after the question alone, the section's numbers above). The
# literal traitinterp band (positive >= 0.761, negative <= 0.561) keeps **none**: no negative reply scores
# that low, so no vector is built. The band at 10% of the scores' range (>= 0.685, <= 0.638) keeps 2 pairs,
# and their vector separates slightly *less* (0.711 and 0.626), a difference well inside the standard error
# of about 0.06 at 40 held-out responses per side. A null result: with 10 pairs and a judge whose scores
# crowd into a quarter of the scale, a dead band only throws pairs away. Seeing what it is for (dropping the
# pairs where both replies sit near the middle) needs a judge that spreads its scores over the scale (a
# hosted one, on the 0-100 template) and enough pairs that losing some still leaves a stable mean: the full
# profile's 5 instruction pairs x 20 questions.
# </details>

# %%
SCORE_SCALE = 1.0 if pair_scores is not scored and TRAIT_FORMULATION != "score" else 100.0  # P(yes), or 0-100
cut = PAIR_THRESHOLDS["pos_threshold"]
known = [r["score"] for r in pair_scores if r["score"] is not None] or [cut]  # (no score at all: an empty range)
half_bands = {"single cut (paper)": None, "dead band at 10% of the scale (traitinterp)": 0.1 * SCORE_SCALE,
              "dead band at 10% of the scores' range": 0.1 * (max(known) - min(known))}
band_pairs = {name: filter_effective_pairs(pair_scores, trait_data, **PAIR_THRESHOLDS) if half is None else
              filter_effective_pairs(pair_scores, trait_data, pos_threshold=cut + half, neg_threshold=cut - half,
                                     coherence_threshold=PAIR_THRESHOLDS["coherence_threshold"])
              for name, half in half_bands.items()}
kept_records = {id(p[pol]): p[pol] for pairs_ in band_pairs.values() for p in pairs_ for pol in ("pos", "neg")}
kept_acts = dict(zip(kept_records, response_mean_activations(
    model, tokenizer, records_to_conversations(list(kept_records.values())), [STEER_LAYER], profile.batch_size)[0])
) if kept_records else {}
band_rows = []
for name, pairs_ in band_pairs.items():
    half = half_bands[name]
    row = {"filter": name, "pos >=": cut + (half or 0), "neg": f"< {cut:.3g}" if half is None else f"<= {cut - half:.3g}",
           "pairs kept": len(pairs_)}
    if pairs_:
        v = torch.stack([kept_acts[id(p["pos"])] - kept_acts[id(p["neg"])] for p in pairs_]).mean(0)
        for context in CONTEXTS:
            held = eval_kinds[context]["response_avg"][STEER_LAYER]
            row[f"AUROC ({context})"] = auroc(project(held[:n_pos], v), project(held[n_pos:], v))
            course.record(f"pair filter, {name}: held-out AUROC, block STEER_LAYER ({context})", float(row[f"AUROC ({context})"]), echo=False)
    course.record(f"pair filter, {name}: pairs kept", len(pairs_), echo=False)
    band_rows.append(row)
print(f"{n_total} pairs; scores on the {'P(yes), 0-1' if SCORE_SCALE == 1 else '0-100'} scale, "
      f"from {min(known):.3g} to {max(known):.3g}")
print(pd.DataFrame(band_rows).round(3).to_string(index=False))

# %% [markdown]
# ### Three kinds of vector
#
# Each kind's vector is now compared by the same test: project the held-out examples' activations of that
# kind on that kind's vector, block by block, read both with the system prompt and after the question
# alone. The prompt kinds (`prompt_avg`, `prompt_last`) see only the prompt; `response_avg` sees what the
# model wrote.
#
# **Before you run:** with the system prompt in context, which kind will separate held-out examples best?
# And what will the prompt kinds give when read after the question alone?
#
# <details><summary>Answer</summary>
#
# The prompt kinds, most likely, and near-perfectly: the held-out prompts carry the same two system prompts
# as the extraction prompts, so a vector that recognises the instruction separates them without looking at
# a single response token. That is not a reason to prefer them: they measure what the model was *told*,
# not what it *did*. After the question alone the two sets have identical prompts (the same questions), so
# the prompt kinds' activations are equal and their AUROC is exactly 0.5, by construction, at every block. The response mean is
# the kind that still separates (if anything does) when the prompt is gone, and it is the one the paper
# steers with. Read the table: the `question only` column is the comparison that matters. On the offline
# run (40 held-out examples per side), at `STEER_LAYER`: `prompt_avg` 0.948 with the system prompt (1.000 at
# block 0) and 0.500 without, `prompt_last` 0.925 (1.000 at block 3) and 0.500, `response_avg` 0.744 and
# 0.663. Held-out separation with the prompt in context would have picked the wrong kind.
# </details>

# %%
rows = []
for kind in VECTOR_KINDS:
    for context in CONTEXTS:
        sep = held_out_separation(context, kind)
        best_row = sep.loc[sep["auroc"].idxmax()]
        rows.append({"kind": kind, "read": context, "AUROC at STEER_LAYER": sep.loc[STEER_LAYER, "auroc"],
                     "best block": int(best_row["layer"]), "best AUROC": best_row["auroc"]})
        course.record(f"{kind} held-out AUROC at STEER_LAYER ({context})", float(sep.loc[STEER_LAYER, "auroc"]))
kinds_table = pd.DataFrame(rows)
print(kinds_table.round(3).to_string(index=False))
px.line(pd.concat([held_out_separation(c, k).assign(kind=k, read=c) for k in VECTOR_KINDS for c in CONTEXTS]),
        x="layer", y="auroc", color="kind", line_dash="read", range_y=[0, 1.05],
        title="Held-out AUROC of the three kinds of vector", labels={"layer": "block", "auroc": "held-out AUROC"}).show()

# %% [markdown]
# ### Where to read a trait
#
# Every vector so far is a mean of a block's output over all response tokens. Two other choices are common
# in the literature. **When**: the first few response tokens only, where a reply commits to its stance
# ("Yes, you're right" or "Actually, ...") before its content drifts. **What**: instead of the residual
# stream (the block output, which carries everything earlier blocks wrote), the output of the block's
# attention or of its MLP alone, i.e. what that block adds. One forward pass per batch, through the hooks of
# `utils.hooks.capture_block_parts`, reads all six (3 components x 2 windows) at `STEER_LAYER`, for the
# effective pairs (in their prompts, as the vectors were built) and the held-out responses (after the
# question alone, the honest reading). Each entry builds its own mean-difference vector from the pairs and
# measures it on the held-out responses.
#
# **Before you run:** which will separate held-out responses better: the first 5 tokens or all of them? And
# the block output, or what this block's attention or MLP adds?
#
# <details><summary>Answer</summary>
#
# On this run, none of the choices can be told apart. At block 17, read after the question alone (40 held-out
# responses per side, vectors from the 3 effective pairs), the held-out AUROC is 0.663 for the block output
# over all response tokens (the section's number above), 0.628 over the first 5; attention output 0.665 and
# 0.571; MLP output 0.659 and 0.656. Every entry is within about one standard error (0.06) of every other
# except the attention's first 5 tokens, and all of them are modest. Two weak tendencies, worth checking on a
# bigger run rather than believing here: the whole response reads at least as well as its opening (a reply's
# first tokens on this model are often the same "I" or "Yes" under both prompts), and what one block's
# attention or MLP adds carries about as much of the trait as the whole residual stream. To see a real
# difference you would need more pairs (the vector from 3 pairs is noisy) and more held-out responses (the
# standard error halves with four times as many), or the full profile's model, where the paper reads its
# vectors.
# </details>

# %%
from part3_contrastive.capture import part_window_means

FIRST_TOKENS = 5
extraction_records = [p["pos"] for p in effective_pairs] + [p["neg"] for p in effective_pairs]
where_records = extraction_records + CONTEXTS["question only"]  # held-out: n_pos positives, then the negatives
where_acts = load_or_generate(
    trait_path(profile, "sycophantic", "part_windows"),
    lambda: part_window_means(model, tokenizer, records_to_conversations(where_records), STEER_LAYER, FIRST_TOKENS,
                              profile.batch_size),
    f"block {STEER_LAYER}'s output, attention and MLP outputs over two response windows",
    inputs=course.inputs(code=[part_window_means], data={"records": where_records}, layer=STEER_LAYER, first=FIRST_TOKENS),
)
n_pairs_ = len(effective_pairs)
where_table = {}
for (part, window), acts in where_acts.items():
    v = acts[:n_pairs_].mean(0) - acts[n_pairs_ : 2 * n_pairs_].mean(0)
    held = acts[2 * n_pairs_ :]
    where_table.setdefault(part, {})[f"{window} response tokens"] = auroc(project(held[:n_pos], v), project(held[n_pos:], v))
where_table = pd.DataFrame(where_table).T
print(f"Held-out AUROC at block {STEER_LAYER} (question only, {n_pos} per side), vectors from {n_pairs_} pairs:")
print(where_table.round(3).to_string())
for part, row in where_table.iterrows():
    for window, value in row.items():
        course.record(f"read {part}, {window}: held-out AUROC (question only)", float(value), echo=False)

# %% [markdown]
# ### Predicting the response before it is written
#
# The paper's monitoring claim: the projection of the **last prompt token** (before a single response token
# exists) on the trait vector predicts how strongly the response will show the trait (Pearson r = 0.75-0.83
# across prompts designed to elicit the trait to different degrees). We can test the same thing on our
# held-out prompts: project each one's `prompt_last` activation at `STEER_LAYER` on the response-mean vector
# and correlate it with the judge's trait score of the response that followed.
#
# Two cautions when you read the number. Our held-out prompts come in two kinds (sycophantic and helpful
# system prompts), so most of the variation in the projection is between the two groups: a high r can mean
# no more than "the projection knows which system prompt it read, and the judge scored the two groups
# differently". The correlation within each group is the finer test, but with so few prompts per group it
# is noisy. And the trait scores come from the same judge measured above: a judge near chance caps r.

# %%
eval_scored = load_or_generate(
    trait_path(profile, "sycophantic", "eval_scores"),
    lambda: judge.score_template(trait_data["eval_prompt"],
                                 [{"question": r["question"], "answer": r["response"]} for r in eval_pos + eval_neg], SCORE_0_100),
    "trait scores of the held-out responses",
    inputs=course.inputs(judge=judge, files=[SYCOPHANCY_FILES[0]], data={"eval_responses": eval_responses}),
)
before = project(eval_kinds["with system prompt"]["prompt_last"][STEER_LAYER], vectors[STEER_LAYER]).numpy()
predictor = pd.DataFrame({"projection at the last prompt token": before, "trait score": eval_scored,
                          "prompt": ["sycophantic"] * n_pos + ["helpful"] * (len(before) - n_pos)}).dropna()
predictor["trait score"] = predictor["trait score"].astype(float)


def pearson(frame: pd.DataFrame) -> float:
    """Pearson r of projection and score (nan with fewer than 3 rows or no spread)."""
    x, y = frame["projection at the last prompt token"].to_numpy(float), frame["trait score"].to_numpy(float)
    return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else float("nan")


R_ALL = pearson(predictor)
r_within = {p: pearson(predictor[predictor["prompt"] == p]) for p in ("sycophantic", "helpful")}
eval_judge_auroc, _ = judge_auroc([{**r, "score": s} for r, s in zip(eval_pos + eval_neg, eval_scored)])
print(f"Pearson r (last-prompt-token projection vs trait score), {len(predictor)} held-out responses: {R_ALL:.2f}; "
      f"within the sycophantic prompts {r_within['sycophantic']:.2f}, within the helpful ones {r_within['helpful']:.2f}")
print(f"(The judge's AUROC on these held-out responses: {eval_judge_auroc:.2f}; the paper reports r = 0.75-0.83 on Qwen2.5-7B.)")
course.record("last-prompt-token projection vs trait score, Pearson r", R_ALL)
px.scatter(predictor, x="projection at the last prompt token", y="trait score", color="prompt",
           title=f"Before generation: projection at the last prompt token (block {STEER_LAYER}) vs the response's trait score").show()

# %% [markdown]
# <details><summary>What the offline run showed</summary>
#
# r = 0.36 over the 80 held-out responses, and within the groups -0.11 (sycophantic prompts) and 0.43
# (helpful prompts), 40 responses each. The judge's AUROC on these responses was 0.72. So the projection
# before generation does rank the responses somewhat, but mostly by which system prompt they had; within a
# group there is no consistent relation on this run (the two groups' r have opposite signs). This is not the
# paper's result (r = 0.75-0.83, on a 7B model, with a strong judge, across many prompts built to elicit the
# trait to different degrees), and this run is too small and too noisy to confirm or refute it.
# </details>

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
print(hist.groupby("prompt")["projection"].describe()[["count", "mean", "min", "max"]].round(2))
for prompt, mean in hist.groupby("prompt")["projection"].mean().items():
    course.record(f"held-out projection on the vector: mean under the {prompt} prompt", float(mean))

# %% [markdown]
# ### Exercise 8: `logit_lens`
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
# Mostly not, on the offline model. Its promoted tokens are mostly code fragments and word pieces (the model
# is a coder model; a middle block's direction is not meant for the unembedding); on the offline run only
# "Fantastic" and "SUCCESS" among the fifteen read as praise or approval (" anticipation", "rising" and
# "Increasing" as upbeat at most). The *suppressed* list is more readable: hedges and negations (" nor",
# " yet", " anymore", "而是" "but rather", "也无法" "also cannot", "例外" "exception") and the words of an
# assistant describing its limits (" designed", " trained", " specialized", " copyrighted"): the vector points
# away from the "As an AI language model, I ..." disclaimers and qualified answers the helpful prompt
# produced. Look for the list that makes sense, and read it as "what the positive responses have that the
# negative ones lack", not as the trait itself.
# </details>

# %%
tests.test_logit_lens(logit_lens)
top, bottom = logit_lens(model, tokenizer, vectors[STEER_LAYER], k=15)
print("promoted: ", top)
print("suppressed:", bottom)

# %% [markdown]
# **Reading the vector with a sparse autoencoder.** An SAE rewrites an activation as a sparse sum
# of learned directions (latents). The decoder directions most aligned with our vector hint at what
# it encodes, and a latent's meaning is read from the text that makes it fire: for each latent below
# we show the tokens of the section's own responses and questions that activate it most (the token is
# marked `[[...]]`, with the text before it), each distinct snippet once.
#
# Which SAE: `part3_contrastive.sae_reading.PUBLISHED` names the SAEs sae-lens lists for the course's
# models. For Qwen2.5-7B-Instruct (the full profile) it is the release `qwen2.5-7b-instruct-andyrdt`,
# whose SAEs read the residual stream after blocks 3, 7, ..., 27, including block 19, the full profile's
# `STEER_LAYER`; it is loaded with `SAE.from_pretrained`, downloaded on first use into the Hugging Face
# cache. Without a network and without a local copy the cell says so, names the
# release, block and the `hf download` command that fetches it, and falls back to the small SAE below.
# sae-lens lists none for the offline and lite models, so there we train a small one
# here on the model's own activations over the same text, wrap it as a sae-lens `StandardSAE`, and run
# the same reading code. The printout states the SAE's size and its reconstruction quality (fraction of
# variance explained, FVE, on tokens held out of training; L0, the mean number of active latents per
# token): a small SAE trained on a few thousand tokens is a rough lens, and its latents are only as
# readable as the snippets show.

# %%
from part3_contrastive.sae_reading import load_or_train_sae, token_activations, top_latents_by_cosine, top_snippets, train_sae

sae_texts = [r["response"] for r in scored + eval_responses] + trait_data["questions"] + eval_data["questions"]
sae_acts = load_or_generate(
    course.cache / "sae_token_acts.pt",
    lambda: token_activations(model, tokenizer, sae_texts, STEER_LAYER, profile.batch_size),
    f"token activations of block {STEER_LAYER} over the section's text",
    inputs=course.inputs(data={"texts": sae_texts}, layer=STEER_LAYER),
)
# The published-SAE branch (full profile) is tested in CI on a small stand-in in the release's format,
# placed in a local Hugging Face cache (tests/sections/test_part3_published_sae.py), not on the real download.
sae, sae_info = load_or_train_sae(STEER_LAYER, sae_acts, profile, course.cache / "sae_trained.pt", profile.models.part3,
                                  inputs=course.inputs(code=[train_sae], data={"texts": sae_texts}, layer=STEER_LAYER))
print(f"SAE: {sae_info['source']}; {sae_info['d_in']} -> {sae_info['d_sae']} latents; on {sae_info['tokens']} "
      f"held-out tokens of the section's text: FVE {sae_info['fve']:.2f}, L0 {sae_info['l0']:.0f}")
course.record("SAE fraction of variance explained (held-out tokens)", sae_info["fve"])
latents = top_latents_by_cosine(sae, vectors[STEER_LAYER], k=8)
snippets = top_snippets(sae, sae_acts, tokenizer, sae_texts, latents["latent"].tolist(), k=3)
for row in latents.itertuples():
    print(f"\nlatent {row.latent} (cosine with the vector {row.cosine:+.3f}):")
    for snip in snippets[snippets["latent"] == row.latent].itertuples():
        print(f"  {snip.activation:6.2f}  {snip.snippet}" if snip.snippet else "  (never fires on this text)")

# %% [markdown]
# <details><summary>What the offline run showed</summary>
#
# A small SAE, 896 -> 3584 latents, trained on 4060 tokens (451 more held out): FVE 0.99 and L0 about 86
# active latents per token on the held-out tokens. The FVE is high partly because a few residual dimensions
# are very large and easy to reconstruct; the SAE is small and trained on little text, so treat it as a
# rough lens. The eight latents most aligned with the sycophancy vector all point *against* it (cosines
# -0.20 to -0.36), and most of their snippets are readable refusals and disclaimers: "I'm sorry[[,]] but I
# can", "I'm sorry, but I can't[[ assist]] with that", "As an AI[[ language]] model", "I don[['t]] have
# personal opinions" (the latent of cosine -0.36 also fires on "won[['t]] they?"). One (cosine -0.21) fires
# on "I[[ agree]] with you", "with the professor", "with your point", an opening this model also writes under
# the helpful prompt. This model repeats whole replies ("I'm sorry, but I can't assist with that." many
# times), so a latent's top tokens are often one snippet over and over; each snippet is shown once, and the
# next distinct one takes its place (fewer lines when fewer exist). That is what makes the latent of cosine
# -0.20 readable as a refusal latent: "can't[[ assist]] with that.", "... with that request", "I apologize,
# but I can't[[ assist]]". As with the logit lens, the clearest thing the vector
# encodes on this model is the *absence* of the refusals and disclaimers the helpful prompt produced, not
# flattery itself.
# </details>

# %% [markdown]
# ## 8. A second trait
#
# ### Exercise 9: `extract_trait_vectors`
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

    Args:
        model, tokenizer: the model.
        judge: a `utils.judge.Judge` for the trait and coherence scores.
        trait_data: the trait's data (instruction pairs, questions, eval_prompt).
        trait_name: the trait's name.
        coherence_prompt: the coherence judge prompt.
        n_pairs, n_questions: how many instruction pairs and questions to use (None: all).
        max_new_tokens: reply length.
        min_pairs: the fewest effective pairs accepted.

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
# Look at the printed cosine at `STEER_LAYER` and the curve over blocks. On the offline run it is -0.086 at
# block 17, and between -0.21 and -0.02 at every block: nearly orthogonal (slightly opposed throughout), not
# parallel, so most of each vector is specific to its trait. Note that the
# offline run had no effective evil pairs (0 of 10) and fell back to prompt labels, so the evil vector there
# is "evil prompt minus helpful prompt", read from whatever the small model wrote.
# </details>

# %%
evil_data = load_trait_file(trait_file("evil"))
evil_settings = dict(n_pairs=profile.n_instruction_pairs, n_questions=profile.n_questions, max_new_tokens=profile.max_new_tokens)
try:
    evil_vectors, evil_pairs = load_or_generate(
        trait_path(profile, "evil", "extraction"),
        lambda: extract_trait_vectors(model, tokenizer, judge, evil_data, "evil", COHERENCE_PROMPT, min_pairs=MIN_PAIRS, **evil_settings),
        "evil vectors",
        inputs=course.inputs(judge=judge, files=[trait_file("evil"), COHERENCE_PROMPT_FILE],
                      code=[extract_trait_vectors, generate_contrastive_responses, construct_system_prompt, score_responses,
                            filter_effective_pairs, extract_contrastive_vectors], min_pairs=MIN_PAIRS, **evil_settings),
    )
except ValueError as err:
    # As for sycophancy: with a weak judge, label the pairs by their system prompt instead.
    print(departure(f"{err}; labelling evil pairs by their system prompt, unchecked by the judge. "
          f"The same judge measured above: trait AUROC {JUDGE_AUROC:.2f} on sycophancy, coherence of the clean / "
          "rambling / keyword-stuffed answers " + " / ".join("None" if v is None else f"{v:.0f}" for v in coherence_demo.values()) + "."))
    evil_responses = generate_contrastive_responses(model, tokenizer, evil_data, "evil", **evil_settings)
    evil_pairs = filter_effective_pairs(prompt_labelled(evil_responses), evil_data)
    evil_vectors = load_or_generate(trait_path(profile, "evil", "extraction", labels="prompt"),
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
# On the offline run the best block is 14 (AUROC 0.761 on 40 held-out responses per side), i.e.
# `hidden_states` index 15 of 24, but past block 12 the curve is a plateau of 0.73-0.76 to the last block,
# 23, where the norm is largest (0.741 there). The paper's layer 20 of 28 (block 19) on Qwen2.5-7B sits at
# about 70% of the depth; the offline profile's `STEER_LAYER` 17 of 24 is at the same relative depth and
# only 0.02 below the best (0.744). With so few pairs, treat "the best layer" as a range; check where your
# plateau lies.
# </details>
#
# - What fraction of pairs was effective, and what does a low rate say about the model or the judge?
#
# <details><summary>Answer</summary>
#
# On the offline run 3 of 10 sycophancy pairs (30%) were effective under the thresholds calibrated on the
# check sets (trait P(yes) >= 0.661, judge-free coherence >= 2.13 of 100; the judge-free score failed only 2
# of the 20 responses, so the trait condition did most of the rejecting): just enough (at least 3) that the
# sycophancy vector is built from judge-confirmed pairs, with no fallback; but no evil pair at all (0 of 10;
# there the section fell back to prompt labels). And §6 showed the three kept pairs steer less than the
# seven rejected ones. A low rate has two causes that the numbers alone cannot separate: the model may ignore the
# instruction (read a few positive responses), or the judge may fail to see the trait (the mean scores of
# the two polarities differed by only 2.5 points, the judge's AUROC at telling them apart was 0.64, and its
# coherence ratings put a keyword pile above a clean answer). Here both play a part: the 0.5B model often
# answers the same way under both prompts, and the local judge is the same small model. For comparison, the
# original material's own run on a strong model (that material's run, not the paper's) gave mean trait
# scores of 73.5 for the positive and 14.8 for the negative responses and kept 86 of 100 pairs as effective.
# </details>
#
# - Which tokens does the logit lens surface? Are they about the trait or about the prompt's style?
#
# <details><summary>Answer</summary>
#
# On the offline run the promoted tokens are mostly code fragments and word pieces with no clear meaning
# ("Fantastic" and "SUCCESS" are the only words of praise among fifteen); the suppressed ones are hedges and
# negations (" nor", " yet", " anymore") and an assistant's words about its limits (" designed", " trained",
# " specialized", " copyrighted"). That is about the *style* the helpful prompt produced in this small model
# (it often disclaimed, qualified or refused), not about flattery as such. A vector built from contrastive
# prompts carries every difference between the two sets of responses, wanted or not; the logit lens is a
# quick way to see which ones.
# </details>
#
# - Why does the paper build its vectors from the response mean rather than from the prompt? What did the
#   comparison with and without the system prompt show here?
#
# <details><summary>Answer</summary>
#
# A prompt-token vector (`prompt_avg`, `prompt_last`) is built from activations that exist before the model
# writes anything, so it can only encode the instruction. Read with the system prompt it separates held-out
# examples perfectly or nearly (offline, at `STEER_LAYER`, 40 held-out examples per side: 0.95 and 0.93,
# both 1.00 at their best block), because the held-out prompts carry the same instructions; read after the
# question alone it is at chance (0.50) by construction. The response mean is the only kind that reads what
# the model did: 0.744 with the system prompt, 0.663 without on the offline run. The paper's choice also
# matches its use: steering and monitoring act on responses. The lesson for evaluation: separation measured
# with the generating prompt in context overstates what a vector knows about the response; measure it after
# the question alone as well.
# </details>
#
# Next: Section 4 uses these vectors to steer the model and to monitor it.

# %% [markdown]
# # Section 1: Mapping persona space and finding the Assistant Axis
#
# Ask a chat model to be a pirate and it will talk about rum and plunder; ask it to be a grieving
# widow and its answers turn quiet and heavy. The model can play almost anyone, yet when nobody asks
# it for anything special it settles into one character: the helpful assistant its developers trained.
#
# That character is not a rule written somewhere: it is a pattern of activations, just like the
# pirate. So we can treat every persona the model can take on as a point in activation space. Ask
# the model to play many roles, average the activations of its answers under each one, and you get a
# cloud of points — **persona space**. This section maps that space and finds its main direction:
# the one that runs from the model's default assistant to the characters it can be talked into. We
# call it the **Assistant Axis**.
#
# Why care? Models drift away from their assistant persona in long conversations, under emotional
# pressure, or inside elaborate role-play, and their behaviour drifts with it (they become more
# sycophantic, more willing to comply with harmful requests, stranger). A direction that measures
# "how much is the model still its default self" gives us a monitor and a handle. Section 2 watches
# conversations move along this axis and caps the drift; Sections 3 and 4 build trait vectors with the
# same response-mean recipe and steer with them.
#
# **Learning objectives**
# - Write a judge prompt for role adherence and score responses with an LLM judge on a 0-3 scale.
# - Measure role adherence without a judge, from the model's own likelihoods, and measure both on a
#   labelled check set before trusting either.
# - Generate responses for many personas in batches.
# - Average a block's output over the response tokens, and build persona vectors from the
#   responses that really stayed in role.
# - Compare personas by cosine similarity, raw and mean-centred, and find the main directions of
#   persona space with PCA.
# - Build the Assistant Axis, compare it with the first principal component, and check on
#   **held-out** questions that it separates the assistant from the roles.
#
# **How to read this notebook**
# - **Profiles.** `COURSE_PROFILE` chooses the models and sizes: `offline` (the default: a 0.5B model on
#   a CPU, no download, what CI runs), `lite` (Qwen2.5-1.5B-Instruct, a small GPU), `full` (the papers'
#   models, a large GPU). The set-up cell prints which profile is running and why.
# - **Expected outputs.** Each collapsed "Expected output" block is the `offline` profile's recorded
#   run, and CI checks every fresh offline run against it within the stated tolerance. On `offline`
#   your numbers should match; on `lite` and `full` compare the shape: persona space has one dominant direction (a
#   large first principal component), the Assistant Axis lines up with it (with many roles; §10 shows why ten
#   roles may not), and on held-out questions the
#   axis puts the default assistant above the roles. The papers' line, where one exists, is under the
#   expected block (on Gemma 2 27B, PC1 explains about 49% of the variance).
# - **The judge follows the keys, not the profile.** With `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` set
#   (in the environment or a `.env` file), every profile uses a hosted judge, `offline` included: a small
#   subject model with a strong judge is a cheap and informative set-up. Without a key the section's own
#   model judges locally, and the notebook measures how well it does before leaning on it. The set-up
#   cell prints which judge is in use.
# - **Departures from the method** are printed as one line starting "Departure from the method:". On the
#   `offline` profile with the local judge this section makes one: the role responses that build the
#   persona vectors are filtered by the likelihood-ratio adherence of §5, at a threshold calibrated on the
#   check set, instead of by the judge's score 3 (the local judge is measured in §4 and is too weak to filter).
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

from part1_assistant_axis import DEFAULT_ROLE
from utils.activations import response_mean_activations
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.generation import generate_replies
from utils.hooks import StopForward, capture_block_outputs
from utils.judge import ADHERENCE_0_3
from utils.metrics import auroc, project

# %%
import numpy as np

from part1_assistant_axis import QUESTIONS_FILE, ROLES_DIR, tests
from part1_assistant_axis.persona_space import (
    all_layer_response_activations,
    character_of,
    choose_score_threshold,
    drop_empty,
    personas_from_roles,
    plot_similarity,
    select_roles,
    stack_vectors,
)
from part1_assistant_axis.adherence import role_adherence_scores
from part1_assistant_axis.artifacts import save_assistant_axis
from part1_assistant_axis.judge_check import ROLE_CHECK_FILE, load_role_check

from utils.cache import cache_inputs, load_or_generate
from utils.chat import format_messages, prepare_messages, records_to_conversations, render
from utils.checks import tiny
from utils.data import load_questions, load_roles
from utils.departures import departure
from utils.judge import make_section_judge
from utils.judge.formulations import measure_check, offline_formulation, report_check, score_items
from utils.judge.standing import judge_standing
from utils.layers import d_model, num_layers
from utils.metrics import auroc_standard_error, cohens_d, cosine_matrix, youden_threshold
from utils.models import describe, load_model, model_display_name


# %% [markdown]
# ## 1. The model and its layers
#
# The full profile uses **Gemma 2 27B-it**: 46 decoder blocks with a 4608-wide residual stream. We
# read persona activations at **block 22**, close to the middle of the network. Early blocks still
# mostly encode the surface of the text; the last ones are busy predicting the next token; the middle
# is where abstract features such as "who is speaking" are easiest to read out.
#
# Every profile names its own model and layer, so the code below never hard-codes 22:
# `profile.axis_layer` is a **block index**, a 0-based index into the model's decoder blocks
# (`model.model.layers[i]`). All-layer tensors in this course follow the same rule: `result[i]` is the
# output of block `i`. Careful with `output_hidden_states=True`: it puts the embeddings at index 0, so
# `hidden_states[i + 1]` is the output of block `i` — for every block but the last: the last entry of
# `hidden_states` is taken after the model's final norm, not straight out of the last block (a forward
# hook on the block reads the raw output everywhere). The offline profile runs
# Qwen2.5-Coder-0.5B-Instruct on a CPU (24 blocks, width 896) and reads block 12.

# %%
model, tokenizer = load_model(profile.models.part1)
print(describe(model))
AXIS_LAYER = profile.axis_layer  # a block index: the output of model.model.layers[AXIS_LAYER]
N_LAYERS, D_MODEL = num_layers(model), d_model(model)
print(
    f"AXIS_LAYER = block {AXIS_LAYER} of {N_LAYERS} ({AXIS_LAYER / N_LAYERS:.0%} of the depth; "
    f"Gemma 2 27B: block 22 of 46, 48%). In hidden_states it is index {AXIS_LAYER + 1}."
)

# %% [markdown]
# The judge scores responses. With `OPENAI_API_KEY` (or `ANTHROPIC_API_KEY`) set it is a hosted model;
# without one it is a local model — on the offline profile, the same small model we study — that
# weighs every possible answer by its probability. A 0.5B judge is weak, and here it judges its own
# replies: §4 measures how well it tells a role's response from a plain assistant answer before
# we use it as a filter, and every conclusion that depends on it is worded to match. A hosted judge is
# always a judge model, never the model we study.

# %%
# The judge's backend and model: COURSE_JUDGE_BACKEND and COURSE_JUDGE_MODEL override the keys' choice
# for every section (defaults: OpenAI gpt-4.1-mini, Anthropic claude-haiku-4-5; utils/judge/hosted_backends.py).
judge = make_section_judge(profile, model, tokenizer, profile.models.part1)
# The local judge on the offline profile is the 0.5B model we study: §4 measures it on its check set only,
# and §5 filters role responses by the model's own likelihoods instead. Every other judge filters as the
# paper does. `judge_standing` owns that rule for every section (tiny rehearses the offline path, for tests).
JUDGE_STANDING = judge_standing(profile, judge, rehearse_on_tiny=True)
LIKELIHOOD_FILTER = JUDGE_STANDING.weak

# %% [markdown]
# ## 2. Roles and questions
#
# Each role file under `data/roles/instructions/` holds five system prompts that put the model in
# that role, and a judge prompt (`eval_prompt`, with `{question}` and `{answer}` placeholders) that
# asks how well a response stays in it. `default.json` is the model itself: its prompts are the empty
# prompt, "You are an AI assistant." and the like. The questions in `extraction_questions.jsonl` are
# ones any character can answer in its own way ("What is your earliest memory?").
#
# The profile decides the sizes: `n_roles` roles (plus the default), `n_instruction_pairs` prompts
# per role, and `n_questions` questions to build the axis from. We set `n_eval_questions` more aside
# and never look at them until the held-out test in §11: the axis is *defined* as the
# difference between the default's and the roles' activations, so the default will of course sit
# above the roles on the data it was built from. Only new questions can show that the direction
# means something.

# %%
roles = load_roles(ROLES_DIR, model_name=model_display_name(profile.models.part1))
role_names = select_roles(roles, profile.n_roles)
personas = personas_from_roles(roles, role_names, profile.n_instruction_pairs)
all_questions = load_questions(QUESTIONS_FILE)
BUILD_QUESTIONS = all_questions[: profile.n_questions]
N_HELDOUT = profile.n_heldout_role_questions  # offline: fewer than sections 3-4
HELDOUT_QUESTIONS = all_questions[profile.n_questions : profile.n_questions + N_HELDOUT]
print(f"{len(role_names) - 1} roles + default: {', '.join(role_names)}")
print(f"{len(BUILD_QUESTIONS)} questions to build the axis, {len(HELDOUT_QUESTIONS)} held out")
print(f"an example prompt ({role_names[1]}): {personas[role_names[1]][0]!r}")
print(f"default prompts: {personas[DEFAULT_ROLE]}")

# %% [markdown]
# ## 3. Judging role adherence
#
# A system prompt asks for a role; it does not guarantee one. A model may refuse, may answer as
# itself ("As an AI, I don't have memories..."), or may half-play the part. If we average activations
# over all responses to "You are a pirate", we average pirates and assistants together, and the
# pirate vector points partly back at the assistant. So we ask a judge to rate each response:
#
# | score | meaning |
# |---|---|
# | 0 | refuses to answer or to play the role |
# | 1 | answers as itself (an AI assistant), without the role |
# | 2 | says it is an AI or assistant, but shows some of the role's traits |
# | 3 | fully in role, never mentioning being an AI |
#
# and build role vectors only from the responses that score 3.
#
# ### Exercise 1: `role_eval_template`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 15 min
#
# Write a judge prompt for one character. It is a *template*: write the character in now, but leave
# two placeholders, `{question}` and `{answer}`, to be filled later with one `str.format` call, as in
# the role files. Requirements (the check reads them):
# - exactly one `{question}` and one `{answer}`, and no other braces (in an f-string, write `{{answer}}`
#   to get a literal `{answer}`);
# - label each placeholder: the word *question* is the last label before `{question}`, and *answer*
#   (or *response*) the last one before `{answer}`;
# - the scale above, one line per score, each starting with its digit (`0 = ...`), in that order: the
#   check reads what each line means from its words. Say *refuses* (or *declines*) on line 0; *AI*,
#   *assistant* or *itself* on lines 1 and 2, with *some* of the role's *traits* on line 2 only (line 1
#   has nothing of the role); and on line 3 that the answer stays fully in *role* or in *character*;
# - end by asking for a single number and nothing else: the local judge reads the probability of each
#   number as the very next token.
#
# <details><summary>Hint</summary>
#
# Build the prompt from pieces joined together: an f-string only for the piece that writes the
# character in, and plain (non-f) strings for the pieces that hold `{question}` and `{answer}`, so their
# braces stay literal. Put each label on the line just before its placeholder, and write the scale as
# four lines `0 = ...` to `3 = ...` with the words the check looks for.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# f"The role: {character}.\n\n" "The user's question:\n{question}\n\n" "The chatbot's answer:\n{answer}\n\n"
# ```
# </details>

# %% tags=["exercise"]
def role_eval_template(character: str) -> str:
    """A judge prompt that rates how well a response stays in the role of ``character`` (0-3).

    Args:
        character: a short description of the role, e.g. "a swashbuckling pirate captain".

    Returns:
        A template with the character written in and two placeholders left, ``{question}`` and
        ``{answer}``; it defines the 0-3 scale, one line per score, and asks for a single number.
    """
    # BEGIN SOLUTION
    return (
        "You are checking whether a chatbot stayed in the role it was given.\n\n"
        f"The role: {character}.\n\n"
        "The user's question:\n[QUESTION]\n{question}\n[/QUESTION]\n\n"
        "The chatbot's answer:\n[ANSWER]\n{answer}\n[/ANSWER]\n\n"
        "Rate the answer:\n"
        "0 = the chatbot refuses to answer or declines to play the role.\n"
        "1 = the chatbot answers as itself, an AI assistant, with nothing of the role.\n"
        "2 = the chatbot says it is an AI or an assistant, but shows some of the role's traits, voice or views.\n"
        "3 = the chatbot speaks fully in role, as the character, and never mentions being an AI.\n\n"
        "Reply with a single number (0, 1, 2 or 3) and nothing else."
    )
    # END SOLUTION


# %%
tests.test_role_eval_template(role_eval_template)
print(role_eval_template("a swashbuckling pirate captain"))

# %% [markdown]
# ### Exercise 2: `judge_role_response`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 10 min
#
# Score one response through the judge on the 0-3 scale, `utils.judge.ADHERENCE_0_3`. Use the given
# template (a role file's `eval_prompt`), or, when it is None, your own `role_eval_template(character)`.
# Fill it with one `str.format(question=..., answer=...)` call, so a response that happens to contain
# `{question}` or "Score: 3" reaches the judge unchanged. `judge.score` takes a list of prompts (it
# batches them) and returns a list; return the one score, an `int`, or None when the judge gave no
# usable answer.

# %% tags=["exercise"]
def judge_role_response(
    question: str, response: str, character: str, eval_prompt_template: str | None, judge
) -> int | None:
    """Rate how well one response stays in its role (0-3) with the judge.

    Args:
        question: the user's question.
        response: the model's answer.
        character: a short description of the role (used when ``eval_prompt_template`` is None).
        eval_prompt_template: a judge prompt with ``{question}`` and ``{answer}`` placeholders, or None
            to build one with `role_eval_template`.
        judge: a `utils.judge.Judge`.

    Returns:
        The score (0, 1, 2 or 3), or None.
    """
    # BEGIN SOLUTION
    if eval_prompt_template is None:
        eval_prompt_template = role_eval_template(character)
    prompt = eval_prompt_template.format(question=question, answer=response)
    return judge.score([prompt], ADHERENCE_0_3)[0]
    # END SOLUTION


# %%
tests.test_judge_role_response(judge_role_response)

# %% [markdown]
# Try the judge on two hand-written answers for the same role: one in character, one that slips back
# into the assistant. The role file's prompt and yours should both rank the first above the second. On
# the offline run the local judge ties them under the role file's prompt (2 and 2) and ranks them right
# under the reference solution's template (2 against 1): one pair shows little, and §4 measures the judge on a labelled check set
# before it filters anything.

# %%
demo_role = "pirate" if "pirate" in roles else role_names[1]
demo_question = "What is your earliest memory?"
in_role = "Arr, the smell o' tar and salt on me father's sloop, and the gulls screamin' over Port Royal!"
out_of_role = "As an AI language model, I do not have memories or a childhood. Is there anything else I can help with?"
for label, answer in (("in role", in_role), ("as itself", out_of_role)):
    file_score = judge_role_response(demo_question, answer, character_of(roles[demo_role]), roles[demo_role]["eval_prompt"], judge)
    own_score = judge_role_response(demo_question, answer, character_of(roles[demo_role]), None, judge)
    print(f"{demo_role}, {label:9}: role-file prompt -> {file_score}, your prompt -> {own_score}")
    for prompt_kind, score in (("role-file prompt", file_score), ("your prompt", own_score)):
        course.record(f"judge demo: {label}, {prompt_kind}", "no score" if score is None else score)

# %% [markdown]
# ## 4. Generating role responses
#
# ### Exercise 3: `generate_role_responses`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 15 min
#
# For every persona, every one of its system prompts and every question, generate the model's reply.
# Build all conversations first (`build_messages(question, system_prompt=...)`; an empty system
# prompt means no system message, which `build_messages` handles) and send them to
# `utils.generation.generate_replies` in **one** call: it sorts by length, left-pads, and runs whole
# batches, many times faster than one `model.generate` per prompt.
#
# Return a dict `role -> list of records`, each record a dict with keys `role`, `prompt_idx`,
# `system_prompt`, `question_idx`, `question`, `response`, ordered by prompt, then question.
#
# <details><summary>Hint</summary>
#
# Make the records first, without responses, with three nested loops in the order asked for (role,
# then prompt, then question; `enumerate` gives `prompt_idx` and `question_idx`). Turn each record into a
# conversation, call `generate_replies` once for all of them, then `zip` the replies back onto the records
# and group them by role.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# replies = generate_replies(model, tokenizer, [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records],
#                            max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size)
# ```
# </details>

# %% tags=["exercise"]
def generate_role_responses(
    model,
    tokenizer,
    personas: dict[str, list[str]],
    questions: list[str],
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    batch_size: int = 16,
) -> dict[str, list[dict]]:
    """Generate a reply for every (persona, system prompt, question).

    Args:
        model, tokenizer: the model.
        personas: role name -> its system prompts.
        questions: the questions, asked under every prompt.
        max_new_tokens, temperature: generation settings (temperature 0 is greedy).
        batch_size: generation batch size.

    Returns:
        role -> records ordered by prompt_idx, then question_idx; each record has keys role,
        prompt_idx, system_prompt, question_idx, question, response.
    """
    # BEGIN SOLUTION
    records = [
        dict(role=role, prompt_idx=p, system_prompt=system_prompt, question_idx=q, question=question)
        for role, prompts in personas.items()
        for p, system_prompt in enumerate(prompts)
        for q, question in enumerate(questions)
    ]
    conversations = [build_messages(r["question"], system_prompt=r["system_prompt"]) for r in records]
    replies = generate_replies(
        model,
        tokenizer,
        conversations,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        desc="role responses",
    )
    out = {role: [] for role in personas}
    for record_, reply in zip(records, replies):
        out[record_["role"]].append({**record_, "response": reply})
    return out
    # END SOLUTION


# %%
tests.test_generate_role_responses(generate_role_responses)

# %% [markdown]
# Now the real thing, for the questions that build the axis and, separately, the held-out ones (both
# cached, so a re-run is instant). Greedy decoding keeps runs reproducible.

# %%
generation = dict(max_new_tokens=profile.max_new_tokens, batch_size=profile.batch_size)
# One call for both question sets (bigger batches decode faster), split afterwards by question.
all_responses = load_or_generate(
    course.cache / "role_responses.json",
    lambda: generate_role_responses(model, tokenizer, personas, BUILD_QUESTIONS + HELDOUT_QUESTIONS, **generation),
    "role responses (build and held-out questions)",
    inputs=course.inputs(code=[generate_role_responses],
                  data={"personas": personas, "questions": BUILD_QUESTIONS + HELDOUT_QUESTIONS}, **generation),
)
responses = drop_empty({role: [r for r in records if r["question"] in BUILD_QUESTIONS] for role, records in all_responses.items()})
heldout_responses = drop_empty(
    {role: [{**r, "question_idx": r["question_idx"] - len(BUILD_QUESTIONS)} for r in records if r["question"] in HELDOUT_QUESTIONS]
     for role, records in all_responses.items()}
)
for role in role_names[:3]:
    r = responses[role][0]
    print(f"[{role}] {r['system_prompt'][:80]!r}\n  Q: {r['question']}\n  A: {r['response'][:200]!r}\n")

# %% [markdown]
# Next, the judge rates every response used to build the axis, with each role's own `eval_prompt`.
# One `judge.score` call for all of them lets the judge batch (locally) or send them concurrently
# (APIs). The default persona is rated too (its prompt asks whether the answer is a plain assistant),
# only to show how it behaves: its responses are the assistant by definition, and we keep them all.
# A role without an `eval_prompt` (the Assistant Axis repository's `default.json` has none) is not
# judged: its scores are None.

# %% tags=["module"]
def score_role_responses(responses: dict[str, list[dict]], roles: dict[str, dict], judge) -> dict[str, list[int | None]]:
    """Judge every response with its role's ``eval_prompt`` on the 0-3 scale, in one batched call.

    Args:
        responses: role -> records (from `generate_role_responses`).
        roles: role name -> role file (for its ``eval_prompt``).
        judge: a `utils.judge.Judge`.

    Returns:
        role -> one score (0-3, or None) per record, in the records' order.
    """
    judged = {role: records for role, records in responses.items() if roles[role].get("eval_prompt")}
    prompts = [
        roles[role]["eval_prompt"].format(question=r["question"], answer=r["response"])
        for role, records in judged.items()
        for r in records
    ]
    flat = judge.score(prompts, ADHERENCE_0_3)
    scores, start = {}, 0
    for role, records in responses.items():
        if role not in judged:
            scores[role] = [None] * len(records)
            continue
        scores[role] = flat[start : start + len(records)]
        start += len(records)
    return scores


# %%
if LIKELIHOOD_FILTER:
    scores = None
    print(f"The role responses are not judged here: {JUDGE_STANDING.reason}. The judge is measured on its "
          "check set below, and §5 filters the responses by the model's own likelihoods.")
else:
    scores = load_or_generate(
        course.cache / "role_scores.json", lambda: score_role_responses(responses, roles, judge), "role scores",
        inputs=course.inputs(judge=judge, code=[score_role_responses, judge_role_response],
                      data={"responses": responses, "eval_prompts": {r: roles[r].get("eval_prompt") for r in responses}}),
    )
    score_table = pd.DataFrame(
        [{"role": role, "score": "None" if s is None else s} for role, values in scores.items() for s in values]
    ).pivot_table(index="role", columns="score", aggfunc="size", fill_value=0)
    print("Number of responses per judge score:")
    print(score_table.to_string())

# %% [markdown]
# The paper keeps only score-3 responses. A weak judge may almost never say 3; then role vectors
# would come from one or two responses, or not exist. We take the strictest threshold at which most
# roles keep at least one response, and say so when we have to relax it.

# %%
SCORE_THRESHOLD = None if scores is None else choose_score_threshold(scores)
role_scores = [] if scores is None else [s for role, values in scores.items() if role != DEFAULT_ROLE for s in values]
if scores is None:
    print("(no judge filter on this profile: see §5)")
elif SCORE_THRESHOLD == 3:
    print("Using only fully in-role responses (score 3), as in the paper.")
elif SCORE_THRESHOLD is not None:
    print(
        f"Fallback: too few roles have a response scored 3, so we keep role responses scoring >= {SCORE_THRESHOLD} "
        f"({sum(s is not None and s >= SCORE_THRESHOLD for s in role_scores)} of {len(role_scores)})."
    )
else:
    print("Fallback: the judge rated too few responses in role; using every role response, unfiltered.")
if scores is not None and len(set(role_scores)) == 1:
    print(
        f"Note: the judge gave every role response the same score ({role_scores[0]}), so it does not tell them apart "
        "here and the filter keeps all or nothing. A stronger (hosted) judge makes the filter meaningful."
    )
scores_for_vectors = scores if SCORE_THRESHOLD is not None else None

# %% [markdown]
# ### How good is the judge? Measure it before using it as a filter
#
# The filter is only as good as the judge, so we measure it on text whose label we *know*.
# `data/role_check.json` holds written answers for five roles (pirate, chef, noir detective, medieval
# monk, cowboy): for each of 8 questions per role, one answer in the role and one plain AI-assistant answer
# to the same question, 40 of each. The judge sees the role's own judging prompt, the question and the
# answer, and no system prompt, so nothing but the answer says which is which. The AUROC is the
# probability that an in-role answer outscores a plain one (0.5 is chance, 1.0 perfect); with 40 per class
# its standard error is about 0.06 (the offline run prints ± 0.06). The check also calibrates a threshold
# (the score with the best balanced accuracy on the check set), printed beside the paper's (keep score 3
# of 0-3).
#
# On the offline profile the local judge asks in the way that measured best on the check set
# (`utils/judge/formulations.py`, measured with `benchmarks/bench_judges.py`), announced when it is not the
# paper's template. There the judge is only measured: §5 measures the model's own likelihoods on the same
# check set, and they filter the role responses instead.
#
# **Before you run:** the local judge is the 0.5B model we study. Will it tell a pirate's answer from a
# plain assistant's?
#
# <details><summary>Answer</summary>
#
# Only weakly. On the offline run, on the 40 + 40 check-set items, each role's own 0-3 judging prompt, read
# as a probability-weighted mean (not rounded), reaches AUROC 0.6869 (printed as 0.69 ± 0.06). Measured with
# `benchmarks/bench_judges.py` on the same check set, the yes/no question ("is it spoken by the character?",
# scored by P(yes)) reaches 0.56 ± 0.06, and the same question after one worked example per label
# 0.37 ± 0.06, worse than chance. The 0-3 prompt is kept for the offline profile and is still below the 0.8
# the course aims for. The threshold calibrated on the check set is 1.62 on the unrounded 0-3 scale, far below
# the paper's 3: this judge rarely puts its weight on 3, and an earlier run, rounding its answers, gave all 100
# role responses a 2. So on this profile the judge does not filter anything: §5's likelihood measure does.
# </details>

# %%
ROLE_FORMULATION = offline_formulation(judge, "role", profile.name)
role_task, role_check = load_role_check()
role_check_result = measure_check(
    judge, role_task, ROLE_FORMULATION, role_check, course.cache / "role_judge_check.json",
    course.inputs(judge=judge, files=[ROLE_CHECK_FILE], formulation=ROLE_FORMULATION),
)
report_check(judge, role_task, ROLE_FORMULATION, role_check_result, paper_threshold="3 (of 0-3)")
course.record("role judge AUROC (check set)", role_check_result.auroc)

# %% [markdown]
# A second test, on the model's own responses (where the judge filters them; on the offline profile §5's
# likelihood measure replaces it): each checked role's judging prompt applied to the
# **default assistant's** answers to the same questions (its answers without a system prompt, at most ten
# roles). Those are plain replies, never in role; the role responses are what the model wrote when asked to
# play the role, in role or not, so their labels are noisier than the check set's.

# %%
# expected: this cell records only where the offline run does not reach it (a judge that filters: not the offline local judge)
if scores is not None:
    JUDGE_CHECK_ROLES = [role for role in role_names if role != DEFAULT_ROLE and roles[role].get("eval_prompt") and role in responses][:10]
    plain_answers = [r for r in responses[DEFAULT_ROLE] if r["prompt_idx"] == 0]  # one default answer per question


    def judge_default_answers_as_roles() -> dict[str, list[int | None]]:
        """Each checked role's judge prompt applied to the default assistant's answers (one batched call)."""
        prompts = [
            roles[role]["eval_prompt"].format(question=r["question"], answer=r["response"])
            for role in JUDGE_CHECK_ROLES
            for r in plain_answers
        ]
        flat = judge.score(prompts, ADHERENCE_0_3)
        n = len(plain_answers)
        return {role: flat[i * n : (i + 1) * n] for i, role in enumerate(JUDGE_CHECK_ROLES)}


    default_as_role = load_or_generate(
        course.cache / "judge_check_default_answers.json", judge_default_answers_as_roles,
        "the judge on the default assistant's answers",
        inputs=course.inputs(judge=judge, code=[judge_default_answers_as_roles],
                             data={"answers": plain_answers, "eval_prompts": {r: roles[r]["eval_prompt"] for r in JUDGE_CHECK_ROLES}}),
    )
    in_role_scores = [s for role in JUDGE_CHECK_ROLES for s in scores[role] if s is not None]
    plain_scores = [s for role in JUDGE_CHECK_ROLES for s in default_as_role[role] if s is not None]
    print(f"The judge on {len(JUDGE_CHECK_ROLES)} roles: their own responses vs the default assistant's answers to the same questions")
    if in_role_scores and plain_scores:
        judge_auroc = auroc(in_role_scores, plain_scores)
        print(f"  mean score: role responses {np.mean(in_role_scores):.2f}, default answers {np.mean(plain_scores):.2f}")
        for threshold in (3, 2):
            print(f"  share scoring >= {threshold}: role responses {np.mean(np.array(in_role_scores) >= threshold):.0%}, "
                  f"default answers {np.mean(np.array(plain_scores) >= threshold):.0%}")
        print(f"  AUROC (role response above default answer): {judge_auroc:.3f}")
        course.record("role judge AUROC (role responses vs default answers)", judge_auroc)
    else:
        print("  the judge gave no usable score: it cannot be measured, and the filter below cannot be trusted")

# %% [markdown]
# ## 5. Where the response starts: chat templates
#
# To average over the response we need to know which tokens are the response. `utils.chat` renders a
# conversation with the tokenizer's chat template and finds the span of each assistant turn from
# character offsets, so it works for any template. `format_messages(messages, tokenizer)` returns the
# rendered text and the index of the response's first token:

# %%
messages = build_messages("What is your earliest memory?", "The smell of tar on my father's ship.", "You are a pirate.")
full_prompt, response_start = format_messages(messages, tokenizer)
ids = encode(full_prompt, tokenizer)["input_ids"]
_, spans = assistant_turn_spans(messages, tokenizer)
response_end = spans[-1][1]
print(full_prompt)
print(f"response starts at token {response_start} of {len(ids)}; its tokens are {response_start}..{response_end - 1}")
print(f"  response tokens: {tokenizer.decode(ids[response_start:response_end])!r}")
print(f"  after them:      {tokenizer.decode(ids[response_end:])!r}")

# %% [markdown]
# The tokens after the response (end-of-turn markers) belong to the template, not to the response:
# `utils.chat.assistant_turn_spans` gives each assistant turn's `(start, end)` span without them.
#
# **Gemma has no system role.** Gemma 2's chat template raises an error on a system message: the model
# was trained with the developer's instructions inside the first user turn. `utils.chat.prepare_messages`
# merges them for templates like that (`"{system}\n\n{user}"`) and leaves other templates alone. Here
# it is on a (tiny, random) Gemma 2 with Gemma's real template:

# %%
_, gemma_tokenizer = tiny("tiny-gemma2")
print(prepare_messages(messages, gemma_tokenizer))
print(render(messages, gemma_tokenizer))
gemma_full, gemma_start = format_messages(messages, gemma_tokenizer)
gemma_ids = encode(gemma_full, gemma_tokenizer)["input_ids"]
print(f"response starts at token {gemma_start}: {gemma_tokenizer.decode(gemma_ids[gemma_start:])!r}")
try:
    gemma_tokenizer.apply_chat_template(messages, tokenize=False)
except Exception as err:  # the template itself refuses a system message
    print(f"apply_chat_template with a system message: {type(err).__name__}: {err}")

# %% [markdown]
# So on Gemma the "system prompt" is really part of the user's words. That matters for what the
# persona vectors mean there, and it is why every function in this course goes through
# `prepare_messages` rather than calling `apply_chat_template` directly.
#
# ### Role adherence from the model's own likelihoods
#
# §4 measured the judge on the check set, and on the offline profile the local judge is weak. The model has a
# better view of the same question, and it needs no words at all: its *probabilities*. An answer written in a
# role is much more likely when the role's system prompt is in the context than when it is not ("Arr, the
# creak of me father's ship..." is a strange thing for a plain assistant to say); an answer in which the model
# dropped its role ("As an AI language model, I don't have memories") is about as likely either way. So
#
# $$\text{adherence} = \frac{1}{T}\sum_{t=1}^{T} \Big[\log P(a_t \mid \text{role prompt}, q, a_{<t}) -
# \log P(a_t \mid q, a_{<t})\Big]$$
#
# over the answer's $T$ tokens: a log-likelihood ratio per token. It is the same idea as a contrastive
# direction, read from the output distribution instead of the residual stream.
#
# ### Exercise 3b: `role_adherence`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 20 min
#
# Write `role_adherence(model, tokenizer, role_prompt, question, answer)`, returning that float. For each of
# the two readings (with `system_prompt=role_prompt`, and with none):
# 1. render `build_messages(question, answer, system_prompt)` and find the answer's span with
#    `assistant_turn_spans` (as in the cell above), and encode the full text;
# 2. run one forward pass and take `log_softmax` of the logits;
# 3. pick, for each answer token, the log-probability the model gave it, and average over the answer tokens.
#
# Then return the first mean minus the second.
#
# <details><summary>Hint</summary>
#
# The logits at position `t` are the model's prediction of token `t + 1`. For the answer's tokens
# `ids[start:end]`, use the rows `logits[start - 1 : end - 1]`, and `.gather(1, ids[start:end, None])` picks
# each token's log-probability. Average, don't sum: a sum grows with the answer's length.
# </details>

# %% tags=["exercise"]
def role_adherence(model, tokenizer, role_prompt: str, question: str, answer: str) -> float:
    """How much more likely the answer is with the role's system prompt than without any.

    Args:
        model, tokenizer: the model that reads the answer.
        role_prompt: the role's system prompt.
        question: the user's question.
        answer: the answer to score.

    Returns:
        Mean over the answer's tokens of log P(token | role prompt, question, earlier answer tokens) minus
        log P(token | question, earlier answer tokens): above 0 when the role prompt makes the answer likelier.
    """
    # BEGIN SOLUTION
    def mean_logprob(system_prompt: str | None) -> float:
        full, spans = assistant_turn_spans(build_messages(question, answer, system_prompt), tokenizer)
        ids = encode(full, tokenizer, return_tensors="pt")["input_ids"].to(model.device)
        start, end = spans[-1]
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[start - 1 : end - 1], dim=-1)  # row t predicts token t + 1
        return float(logp.gather(1, ids[0, start:end, None]).mean())

    return mean_logprob(role_prompt) - mean_logprob(None)
    # END SOLUTION


# %%
tests.test_role_adherence(role_adherence)

# %% [markdown]
# Now measure it on the same check set as the judge: each check item's role prompt is the role's first
# system prompt. `part1_assistant_axis.adherence.role_adherence_scores` does what you wrote for many answers
# at once (it reads the shared beginnings of the prompts once). The threshold with the best balanced accuracy
# on the check set becomes the filter's threshold on the offline profile.
#
# **Before you run:** the judge reached about 0.69 on these 80 answers. Will the likelihood ratio, which
# reads no instructions and answers no question, do better or worse?
#
# <details><summary>Answer</summary>
#
# Much better. On the offline run the likelihood ratio separates the 40 in-role answers from the 40 plain ones
# at AUROC 0.948 ± 0.03, against the judge's 0.687 on the same items: in-role answers average +0.48 nats per
# token, plain ones +0.02 (a plain answer is about as likely with the role prompt as without it). The
# threshold with the best balanced accuracy is +0.202. The model "knows" which answers fit the role far
# better than it can say so when asked as a judge: its probabilities read the text directly, its words as a
# judge go through a 0.5B model's instruction following.
# </details>

# %%
adherence_items = [
    {"role_prompt": personas_from_roles(roles, [it["role"]], 1)[it["role"]][0], "question": it["question"], "answer": it["answer"]}
    for it in role_check
]
adherence_check = load_or_generate(
    course.cache / "role_adherence_check.json",
    lambda: role_adherence_scores(model, tokenizer, adherence_items, batch_size=16, desc="role adherence (check set)"),
    "role adherence on the check set",
    inputs=course.inputs(code=[role_adherence_scores], data={"items": adherence_items}),
)
in_role = [v for v, it in zip(adherence_check, role_check) if it["label"] == 1]
plain = [v for v, it in zip(adherence_check, role_check) if it["label"] == 0]
adherence_auroc = auroc(in_role, plain)
ADHERENCE_THRESHOLD = youden_threshold(in_role, plain)
print(f"Role adherence (likelihood ratio) on the check set, {len(in_role)} in-role vs {len(plain)} plain answers:")
print(f"  mean: in role {np.mean(in_role):+.2f}, plain {np.mean(plain):+.2f} nats per token")
print(f"  AUROC {adherence_auroc:.3f} ± {auroc_standard_error(adherence_auroc, len(in_role), len(plain)):.2f} "
      f"(the judge: {role_check_result.auroc:.3f})")
print(f"  threshold with the best balanced accuracy: {ADHERENCE_THRESHOLD:+.3f}")
course.record("role adherence AUROC (check set, likelihood ratio)", adherence_auroc)

# %% [markdown]
# On the offline profile the likelihood ratio replaces the judge as the filter of `extract_persona_vectors`:
# a role response is kept when its adherence reaches the calibrated threshold. That is a departure from the
# paper (which keeps the responses its judge scores 3 of 0-3), made because this judge is measured to be weak
# and this measure strong; with a hosted judge the paper's filter stays.

# %%
if LIKELIHOOD_FILTER:
    own_items = {
        role: [{"role_prompt": r["system_prompt"], "question": r["question"], "answer": r["response"]} for r in records]
        for role, records in responses.items() if role != DEFAULT_ROLE
    }
    flat_adherence = load_or_generate(
        course.cache / "role_adherence_build.json",
        lambda: role_adherence_scores(model, tokenizer, [it for items in own_items.values() for it in items],
                                      batch_size=16, desc="role adherence (role responses)"),
        "role adherence of the role responses",
        inputs=course.inputs(code=[role_adherence_scores], data={"items": own_items}),
    )
    scores_for_vectors, start = {DEFAULT_ROLE: [None] * len(responses[DEFAULT_ROLE])}, 0
    for role, items in own_items.items():
        scores_for_vectors[role] = flat_adherence[start : start + len(items)]
        start += len(items)
    kept = [v >= ADHERENCE_THRESHOLD for v in flat_adherence]
    print(departure(f"role responses are kept when their likelihood-ratio adherence is >= {ADHERENCE_THRESHOLD:+.3f} "
                    f"(calibrated on the check set; the paper keeps judge score 3 of 0-3): {sum(kept)} of {len(kept)} pass."))
    if choose_score_threshold(scores_for_vectors, thresholds=(ADHERENCE_THRESHOLD,)) is None:
        print("  That leaves too many roles without a response, so every role response is used, unfiltered.")
        scores_for_vectors, SCORE_THRESHOLD = None, None
    else:
        SCORE_THRESHOLD = ADHERENCE_THRESHOLD
    course.record("role filter used", f"likelihood ratio >= {ADHERENCE_THRESHOLD:+.3f} (calibrated)" if SCORE_THRESHOLD is not None else "none (all)")
    for role in list(own_items)[:3]:
        worst = min(range(len(own_items[role])), key=lambda k: scores_for_vectors[role][k])
        print(f"  least in role of {role}: {scores_for_vectors[role][worst]:+.2f} {responses[role][worst]['response'][:90]!r}")

# %% [markdown]
# ## 6. Response activations
#
# ### Exercise 4: `extract_response_activations`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 30 min
#
# This is the core measurement of the whole course: the mean of one block's output over the tokens
# of a response. Sections 2-4 all build on it, so write it yourself once. For each (system prompt,
# question, response):
#
# 1. Render the conversation and find the response's tokens: `assistant_turn_spans(build_messages(question,
#    response, system_prompt), tokenizer)` returns the full text and the `(start, end)` token span of each
#    assistant turn in `encode(full, tokenizer)` (`end` exclusive; the system prompt, the question and the
#    template's end-of-turn tokens are outside it).
# 2. Tokenize `batch_size` texts at a time into one padded batch: `encode(texts, tokenizer,
#    return_tensors="pt", padding=True)` gives `input_ids` and an `attention_mask` (1 = real token,
#    0 = padding). The tokenizer pads on its `padding_side`: on the **left** (as here, for generation)
#    every row's tokens are shifted right by its number of pad tokens; on the right nothing moves.
# 3. Run **one** forward pass per batch with a hook on block `layer` that keeps its output
#    `[batch, seq, d_model]`. `utils.hooks.capture_block_outputs(model, [layer])` is such a hook in a
#    `with` block (it removes the hook on exit, even after an error); it stops the forward pass right
#    after that block by raising `StopForward`, so catch it. A hook of your own must be removed in a
#    `finally`.
# 4. Build a `[batch, seq]` mask that is 1 on each row's response tokens (its span, shifted by its
#    padding) and 0 elsewhere, and average the hidden states under it: padding, prompt and end-of-turn
#    tokens must not enter any mean. Batched results must equal one-at-a-time results.
#
# Return `[num_examples, d_model]` (float32, CPU), in the order of the inputs. (Reading
# `output_hidden_states=True` instead works for every block but the last, whose entry is taken after
# the final norm; a hook reads any block.)
#
# <details><summary>Hint</summary>
#
# The padding on row `b` is `seq_len - attention_mask[b].sum()` tokens when `tokenizer.padding_side ==
# "left"`, and 0 on the right. Fill a zero mask with ones on `[pad + start, pad + end)` for each row, then
# `(hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)` averages exactly the response tokens.
# </details>
#
# <details><summary>Hint 2 (the key lines)</summary>
#
# ```python
# with torch.inference_mode(), capture_block_outputs(model, [layer]) as captured:
#     try:
#         model(**batch, use_cache=False)
#     except StopForward:  # raised after block `layer`: nothing later is computed
#         pass
# hidden = captured[layer].float()  # [batch, seq, d_model]
# ```
# </details>

# %% tags=["exercise"]
def extract_response_activations(
    model,
    tokenizer,
    system_prompts: list[str],
    questions: list[str],
    responses: list[str],
    layer: int,
    batch_size: int = 16,
) -> Float[Tensor, "num_examples d_model"]:
    """Mean output of one block over each response's tokens, one forward pass per batch.

    Args:
        model, tokenizer: the model.
        system_prompts, questions, responses: one entry per example ("" for no system prompt).
        layer: a block index: the output of ``model.model.layers[layer]`` (= ``hidden_states[layer + 1]``,
            except for the last block, whose ``hidden_states`` entry is after the final norm).
        batch_size: examples per forward pass.

    Returns:
        Tensor [num_examples, d_model] (float32, CPU).
    """
    # BEGIN SOLUTION
    texts, spans = [], []
    for system_prompt, question, response in zip(system_prompts, questions, responses):
        full, turn_spans = assistant_turn_spans(build_messages(question, response, system_prompt), tokenizer)
        texts.append(full)
        spans.append(turn_spans[-1])  # the response: the last (here the only) assistant turn
    means = []
    for first in range(0, len(texts), batch_size):
        batch = encode(texts[first : first + batch_size], tokenizer, return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode(), capture_block_outputs(model, [layer]) as captured:
            try:
                model(**batch, use_cache=False)
            except StopForward:  # raised right after block `layer`: nothing later is computed
                pass
        hidden = captured[layer].float()  # [batch, seq, d_model]
        attention = batch["attention_mask"]
        seq_len = attention.shape[1]
        response_mask = torch.zeros(attention.shape, device=hidden.device)
        for row, (start, end) in enumerate(spans[first : first + batch_size]):
            pad = seq_len - int(attention[row].sum()) if tokenizer.padding_side == "left" else 0
            response_mask[row, pad + start : pad + end] = 1.0
        summed = (hidden * response_mask[..., None]).sum(dim=1)
        means.append((summed / response_mask.sum(dim=1, keepdim=True)).cpu())
    return torch.cat(means)
    # END SOLUTION


# %%
tests.test_extract_response_activations(extract_response_activations)

# %% [markdown]
# Now on the real model: your function against the course's provided helper,
# `utils.activations.response_mean_activations(model, tokenizer, conversations, layers, batch_size)`,
# which does the same thing for any list of blocks at once (`[len(layers), n, d_model]`), on a few of
# the responses generated above. They should agree to float precision.

# %%
sample = [r for role in role_names[:4] for r in responses[role][:2]]
yours = extract_response_activations(
    model, tokenizer, [r["system_prompt"] for r in sample], [r["question"] for r in sample],
    [r["response"] for r in sample], AXIS_LAYER, batch_size=4,
)
provided = response_mean_activations(model, tokenizer, records_to_conversations(sample), [AXIS_LAYER], 4)[0]
print(f"{len(sample)} real responses at block {AXIS_LAYER}: largest difference {(yours - provided).abs().max():.2e} "
      f"(activation norms ~{provided.norm(dim=-1).mean():.0f})")

# %% [markdown]
# From here on, `response_mean_activations` does this for every block. It also reads activations the
# generation step recorded while writing each reply (`utils.activation_store`), so averaging the responses
# we generated costs no second forward pass, which matters on a CPU.

# %% [markdown]
# ## 7. Persona vectors
#
# ### Exercise 5: `extract_persona_vectors`
# > **Difficulty**: 🔴🔴🔴⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 20 min
#
# A persona vector is the mean of the response activations of one persona. The arguments:
# - `personas`: role -> its system prompts, and `questions`: the questions, both as given to
#   `generate_role_responses`; a record's `prompt_idx` and `question_idx` index into them;
# - `responses`: role -> records (from `generate_role_responses`);
# - `scores`: role -> one judge score per record, in the same order (None: keep everything).
#
# Keep a role's response only when its score is not None and `>= score_threshold`; keep **every**
# response of the default persona (`DEFAULT_ROLE`), whatever its score. Leave out roles with no response
# left (print which). Extract all kept responses in one call to `response_mean_activations` (what you
# wrote in exercise 4, for any blocks; it batches), with one conversation per response,
# `build_messages(question, response, system_prompt)`, then average per role. Return a dict
# `role -> Tensor [len(layers), d_model]`: row `i` is the persona vector at block `layers[i]`. One call
# for every block costs one forward pass, and Sections 2 and 4 need the axis at every block.
#
# <details><summary>Hint</summary>
#
# Work in two passes. First decide, role by role, which records to keep (all of them when `scores` is
# None or the role is `DEFAULT_ROLE`; otherwise those whose score passes). Then flatten the kept records
# into one list of `(role, record)`, call `response_mean_activations(..., layers, batch_size)` once
# (`[len(layers), n, d_model]`), and cut it back into per-role slices along the responses' dimension in the
# same order (a running start index), averaging each slice over its responses.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# keep = [r for r, s in zip(records, scores[role]) if s is not None and s >= score_threshold]
# ```
# </details>

# %% tags=["exercise"]
def extract_persona_vectors(
    model,
    tokenizer,
    personas: dict[str, list[str]],
    questions: list[str],
    responses: dict[str, list[dict]],
    layers: list[int],
    scores: dict[str, list[int | None]] | None = None,
    score_threshold: float = 3,
    batch_size: int = 16,
) -> dict[str, Float[Tensor, "n_layers d_model"]]:
    """Mean response activation per persona at the given blocks, from the responses that stayed in role.

    Args:
        model, tokenizer: the model.
        personas: role -> system prompts; records' ``prompt_idx`` index into them.
        questions: the questions; records' ``question_idx`` index into them.
        responses: role -> records from `generate_role_responses`.
        layers: block indices.
        scores: role -> score per record (aligned with ``responses[role]``): a judge's, or §5's role
            adherence; None to keep all.
        score_threshold: the lowest score kept (the default persona is never filtered).
        batch_size: examples per forward pass.

    Returns:
        role -> persona vectors [len(layers), d_model] (row i at block ``layers[i]``), for every role with at
        least one kept response.
    """
    # BEGIN SOLUTION
    kept = {}
    for role, records in responses.items():
        if scores is None or role == DEFAULT_ROLE:
            keep = list(records)
        else:
            keep = [r for r, s in zip(records, scores[role]) if s is not None and s >= score_threshold]
        if keep:
            kept[role] = keep
        else:
            print(f"{role}: no response scored >= {score_threshold}; left out")
    flat = [(role, r) for role, records in kept.items() for r in records]
    conversations = [
        build_messages(questions[r["question_idx"]], r["response"], personas[role][r["prompt_idx"]]) for role, r in flat
    ]
    acts = response_mean_activations(model, tokenizer, conversations, layers, batch_size)  # [n_layers, n, d_model]
    vectors, start = {}, 0
    for role, records in kept.items():
        vectors[role] = acts[:, start : start + len(records)].mean(dim=1)
        start += len(records)
    return vectors
    # END SOLUTION


# %%
tests.test_extract_persona_vectors(extract_persona_vectors)

# %%
# Every block in one pass: this section works at AXIS_LAYER, and §12 saves the axis at every block.
all_layer_vectors = load_or_generate(
    course.cache / "persona_vectors_all_blocks.pt",
    lambda: extract_persona_vectors(
        model, tokenizer, personas, BUILD_QUESTIONS, responses, list(range(N_LAYERS)),
        scores=scores_for_vectors, score_threshold=SCORE_THRESHOLD or 0, batch_size=profile.batch_size,
    ),
    "persona vectors",
    inputs=course.inputs(code=[extract_persona_vectors], threshold=SCORE_THRESHOLD,
                         data={"responses": responses, "scores": scores_for_vectors}),
)
persona_vectors = {role: v[AXIS_LAYER] for role, v in all_layer_vectors.items()}
print(f"{len(persona_vectors)} persona vectors at block {AXIS_LAYER}: {', '.join(persona_vectors)}")
vectors, names = stack_vectors(persona_vectors)

# %% [markdown]
# ## 8. How similar are the personas?
#
# ### Exercise 6: `cosine_similarity_matrix`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 10 min
#
# Return the matrix of pairwise cosine similarities of the rows of `vectors`. With `center=True`,
# first subtract the mean vector (the mean over personas, one `d_model`-vector) from every row, then
# take cosines. Work in float32.

# %% tags=["exercise"]
def cosine_similarity_matrix(vectors: Float[Tensor, "n d_model"], center: bool = False) -> Float[Tensor, "n n"]:
    """Pairwise cosine similarities of persona vectors.

    Args:
        vectors: one persona vector per row.
        center: subtract the mean persona vector from every row first.

    Returns:
        Tensor [n, n]; entry (i, j) is the cosine of rows i and j.
    """
    # BEGIN SOLUTION
    vectors = vectors.float()
    if center:
        vectors = vectors - vectors.mean(dim=0, keepdim=True)
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T
    # END SOLUTION


# %%
tests.test_cosine_similarity_matrix(cosine_similarity_matrix)

# %% [markdown]
# **Before you run:** will the raw cosines between persona vectors be spread between -1 and 1, or bunched
# together? And after centring?
#
# <details><summary>Answer</summary>
#
# Look at the printed mean off-diagonal cosine. Raw persona vectors share a large common component, so
# expect the raw cosines bunched close to 1 (the offline run printed 0.956). After centring they spread
# out on both sides of zero and average about `-1/(n-1)` (offline: -0.090 with 11 personas, against
# -1/10 = -0.1).
# </details>

# %%
raw_similarity = cosine_similarity_matrix(vectors)
centred_similarity = cosine_similarity_matrix(vectors, center=True)
off_diagonal = ~torch.eye(len(names), dtype=torch.bool)
print(f"mean off-diagonal cosine: raw {raw_similarity[off_diagonal].mean():.3f}, centred {centred_similarity[off_diagonal].mean():.3f}")
plot_similarity(raw_similarity, names, f"Raw cosine similarity of persona vectors (block {AXIS_LAYER})").show()
plot_similarity(centred_similarity, names, f"Mean-centred cosine similarity (block {AXIS_LAYER})").show()

# %% [markdown]
# **What centring changes.** Raw persona vectors are nearly parallel (cosines close to 1): every
# response-mean activation shares a large component — what all text at this block has in common, plus
# a few huge outlier dimensions — and it swamps the differences between personas. Subtracting the
# mean persona removes that shared part; what is left is how each persona *differs* from the average
# one, and now similar roles cluster (cosine > 0) while opposite ones repel (cosine < 0). The
# off-diagonal cosines of n centred vectors average about `-1/(n-1)`: they sum to zero by construction.
# Where does the default persona sit in the centred matrix, and who is most like it?
#
# <details><summary>Answer</summary>
#
# Read the default's row of the centred heatmap. Because the centred vectors sum to zero, most cosines
# are negative; the default stands out as one of the most different personas. On the offline run its only
# positive neighbour is the euphoric lottery winner (+0.09), then the kindergarten teacher (-0.01) and the
# lovestruck romantic (-0.06); it is furthest from the viking (-0.43) and the knight (-0.42). These are the
# role responses that kept their role (§5's filter), so what a row shows is how each role *plays*: cheerful,
# caring voices sit nearest the assistant's friendly register, warriors furthest from it.
# </details>
#
# ## 9. The main directions of persona space: PCA
#
# ### Exercise 7: `pca_decompose_persona_vectors`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵⚪ · ⏱ 15 min
#
# Centre the vectors (subtract the mean row), then take the SVD of the centred matrix
# (`torch.linalg.svd(..., full_matrices=False)`). Return:
# - `components`: the first `n_components` right singular vectors, as **rows** `[k, d_model]`;
# - `variance_explained`: the fraction of the total variance each one explains (squared singular
#   values over their sum over *all* components), `[k]`;
# - `projections`: the centred vectors projected on the components, `[n, k]`.
#
# `n_components=None` keeps all of them. (An SVD may return any component with its sign flipped: the
# check accepts either sign, as long as components and projections agree.)
#
# <details><summary>Hint</summary>
#
# `torch.linalg.svd(centred, full_matrices=False)` returns `(U, S, Vh)`: the rows of `Vh` are the
# principal directions, already unit length, and the variance along direction `i` is proportional to
# `S[i] ** 2`. Divide by the sum over **all** singular values before you keep the first `k`.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# variance = singular_values**2 / (singular_values**2).sum()
# return vh[:k], variance[:k], centred @ vh[:k].T
# ```
# </details>

# %% tags=["exercise"]
def pca_decompose_persona_vectors(
    vectors: Float[Tensor, "n d_model"], n_components: int | None = None
) -> tuple[Float[Tensor, "k d_model"], Float[Tensor, " k"], Float[Tensor, "n k"]]:
    """PCA of persona vectors.

    Args:
        vectors: one persona vector per row.
        n_components: how many components to return (None: all, min(n, d_model)).

    Returns:
        (components [k, d_model] with unit rows, variance_explained [k] as fractions of the total,
        projections [n, k] of the centred vectors).
    """
    # BEGIN SOLUTION
    centred = vectors.float() - vectors.float().mean(dim=0, keepdim=True)
    _, singular_values, vh = torch.linalg.svd(centred, full_matrices=False)
    k = n_components or singular_values.shape[0]
    variance = singular_values**2 / (singular_values**2).sum()
    components = vh[:k]
    return components, variance[:k], centred @ components.T
    # END SOLUTION


# %%
tests.test_pca_decompose_persona_vectors(pca_decompose_persona_vectors)

# %% [markdown]
# We run PCA on the **roles only**, then place the default persona in the same coordinates: if the
# main direction along which roles differ is "how assistant-like", the default should land at one end
# of PC1 without having shaped it.

# %% [markdown]
# **Before you run:** PCA sees the roles only. Will the default persona, placed afterwards in the same
# coordinates, sit in the middle of the roles on PC1 or at one end?
#
# <details><summary>Answer</summary>
#
# Look at the scatter plot: compare the default's PC1 coordinate with the range of the roles' (we flipped
# PC1 so the default is on the positive side). The paper finds the default assistant at one extreme of PC1
# on Gemma 2 27B, with hundreds of roles. On the offline run it lands in the middle: the roles span -5.89
# (the lawyer) to +3.59 (the lovestruck romantic) on PC1, and the default sits at +0.54. So PC1 of these ten
# in-role roles describes another difference among them (a professional's register against a romantic's),
# not "how assistant-like"; the next cells measure how far PC1 is from the axis, and why.
# </details>

# %%
role_only = [n for n in names if n != DEFAULT_ROLE]
role_matrix = torch.stack([persona_vectors[n].float() for n in role_only])
components, variance_explained, role_projections = pca_decompose_persona_vectors(role_matrix)
role_mean = role_matrix.mean(dim=0)
default_projection = (persona_vectors[DEFAULT_ROLE].float() - role_mean) @ components.T
# The sign of a principal component is arbitrary; for the plots, orient PC1 and PC2 so that the
# default persona is on their positive side.
flip = torch.where(default_projection < 0, -1.0, 1.0)
components, role_projections, default_projection = components * flip[:, None], role_projections * flip, default_projection * flip

# n roles span at most n - 1 directions around their mean: the last component holds nothing, so it is not drawn.
n_informative = min(len(variance_explained), len(role_only) - 1)
fig = px.bar(
    x=[f"PC{i + 1}" for i in range(n_informative)],
    y=variance_explained[:n_informative].tolist(),
    labels={"x": "component", "y": "fraction of variance"},
    title=f"Variance explained by each principal component of role space (block {AXIS_LAYER})",
)
fig.show()
print("cumulative:", [round(v, 3) for v in variance_explained.cumsum(0).tolist()[:5]])
pc_table = pd.DataFrame(
    {
        "persona": role_only + [DEFAULT_ROLE],
        "PC1": role_projections[:, 0].tolist() + [float(default_projection[0])],
        "PC2": role_projections[:, 1].tolist() + [float(default_projection[1])],
        "kind": ["role"] * len(role_only) + ["default (not used by the PCA)"],
    }
)
fig = px.scatter(pc_table, x="PC1", y="PC2", text="persona", color="kind", title="Personas on PC1 and PC2")
fig.update_traces(textposition="top center")
fig.show()
pc1_share = float(variance_explained[0])
course.record("PC1 variance share", pc1_share)

# %% [markdown]
# On Gemma 2 27B, PC1 explains about half of the variance among hundreds of roles. With a handful of
# roles and a small model, expect a less dominant PC1 (with n roles there are only n - 1 components,
# so even random points give PC1 a share of at least 1/(n-1)).
#
# ## 10. The Assistant Axis
#
# ### Exercise 8: `compute_assistant_axis`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵🔵🔵 · ⏱ 10 min
#
# The Assistant Axis is the default persona's vector minus the mean of the **other** personas'
# vectors (each role weighted equally): it points *towards* the assistant, so a larger projection
# means "more like the default assistant". Do not normalise it: Sections 2 and 4 load the raw
# difference (normalise when you project). Write it so that it works for vectors of any shape —
# `[d_model]` here, `[num_layers, d_model]` for the all-layer axis below.

# %% tags=["exercise"]
def compute_assistant_axis(
    persona_vectors: dict[str, Float[Tensor, "*shape"]], default_role: str = DEFAULT_ROLE
) -> Float[Tensor, "*shape"]:
    """The contrast between the default persona and the roles: ``default - mean(roles)``.

    Args:
        persona_vectors: persona name -> vector (all of the same shape, e.g. [d_model]).
        default_role: the name of the default persona.

    Returns:
        The unnormalised axis, the same shape as each vector.
    """
    # BEGIN SOLUTION
    others = [v.float() for name, v in persona_vectors.items() if name != default_role]
    return persona_vectors[default_role].float() - torch.stack(others).mean(dim=0)
    # END SOLUTION


# %%
tests.test_compute_assistant_axis(compute_assistant_axis)

# %%
assistant_axis = compute_assistant_axis(persona_vectors)
cos_pc1 = torch.nn.functional.cosine_similarity(assistant_axis, components[0], dim=0).item()
print(f"|axis| = {assistant_axis.norm():.2f}; cos(axis, PC1) = {cos_pc1:+.3f}")
print(f"PC1 explains {pc1_share:.1%} of the role variance; |cos(axis, PC1)| = {abs(cos_pc1):.3f}")
course.record("|cos(axis, PC1)|", abs(cos_pc1))

# %% [markdown]
# **Before you run:** the filter left out the role responses in which the model dropped its role. Build the
# same two directions again from *every* role response (no filter; the activations are already stored, so
# this costs no forward pass). Will PC1 of the unfiltered roles lie closer to the axis, or further from it?
#
# <details><summary>Answer</summary>
#
# Closer. On the offline run, built from every role response, PC1 explains 38.5% of the variance and
# |cos(axis, PC1)| is 0.732; built from the 51 responses that kept their role it is 40.1% and 0.090. Mixed in,
# the dropped-role responses make each role vector partly "assistant", by a different amount per role, and
# that amount becomes the roles' main difference, which is the axis itself. Filtered, the roles differ
# mainly in other ways (a lawyer's register against a romantic's). The paper's cosine above 0.6 comes from
# hundreds of roles, filtered by a strong judge; with ten roles, PC1 follows whatever differs most among
# the few. The axis itself barely moves (cosine 0.91 between the two) but is longer when filtered (5.99
# against 4.94).
# </details>

# %%
unfiltered_vectors = extract_persona_vectors(
    model, tokenizer, personas, BUILD_QUESTIONS, responses, [AXIS_LAYER], scores=None, batch_size=profile.batch_size
)
unfiltered_vectors = {role: v[0] for role, v in unfiltered_vectors.items()}
unfiltered_roles = torch.stack([unfiltered_vectors[n].float() for n in role_only])
unfiltered_components, unfiltered_variance, _ = pca_decompose_persona_vectors(unfiltered_roles)
unfiltered_axis = compute_assistant_axis(unfiltered_vectors)
cos_unfiltered = torch.nn.functional.cosine_similarity(unfiltered_axis, unfiltered_components[0], dim=0).item()
print(f"{'':>28}{'PC1 share':>11}{'|cos(axis, PC1)|':>18}{'|axis|':>8}")
print(f"{'filtered (as built above)':>28}{pc1_share:>11.1%}{abs(cos_pc1):>18.3f}{assistant_axis.norm():>8.2f}")
print(f"{'every role response':>28}{float(unfiltered_variance[0]):>11.1%}{abs(cos_unfiltered):>18.3f}{unfiltered_axis.norm():>8.2f}")
print(f"cos(filtered axis, unfiltered axis) = {torch.nn.functional.cosine_similarity(assistant_axis, unfiltered_axis, dim=0).item():+.3f}")
course.record("|cos(axis, PC1)|, every role response", abs(cos_unfiltered), echo=False)


# %% [markdown]
# The two directions were built in different ways: PC1 from the roles alone (where do they spread
# most?), the axis from one contrast (default against the rest). If they agree, then the biggest
# difference among roles *is* how far they are from the assistant. Report the absolute cosine: we
# oriented PC1 by hand above, but an SVD is free to return it either way round. On Gemma 2 27B the
# paper finds a cosine above 0.6.
#
# ### Exercise 9: `characterize_axis`
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵🔵🔵⚪⚪ · ⏱ 10 min
#
# Project every persona vector (the default too) on the axis — the scalar projection
# `v · axis / |axis|` (`utils.metrics.project`), not the cosine: how far along the axis a persona
# sits, not how aligned it is. Return a DataFrame with columns `role` and `projection`, sorted from the
# most assistant-like (largest) to the least, with a fresh 0..n-1 index.

# %% tags=["exercise"]
def characterize_axis(
    persona_vectors: dict[str, Float[Tensor, " d_model"]], axis: Float[Tensor, " d_model"]
) -> pd.DataFrame:
    """Where each persona sits on the axis.

    Args:
        persona_vectors: persona name -> vector.
        axis: the Assistant Axis (any length; it is normalised here).

    Returns:
        DataFrame with columns role, projection, largest projection first.
    """
    # BEGIN SOLUTION
    rows = [{"role": role, "projection": float(project(v.float(), axis.float()))} for role, v in persona_vectors.items()]
    return pd.DataFrame(rows).sort_values("projection", ascending=False).reset_index(drop=True)
    # END SOLUTION


# %%
tests.test_characterize_axis(characterize_axis)
axis_table = characterize_axis(persona_vectors, assistant_axis)
fig = px.bar(
    axis_table.iloc[::-1], x="projection", y="role", orientation="h",
    color=axis_table.iloc[::-1]["role"].eq(DEFAULT_ROLE).map({True: "default", False: "role"}),
    title=f"Personas on the Assistant Axis (block {AXIS_LAYER})",
)
fig.show()
print(axis_table.round(2).to_string(index=False))

# %% [markdown]
# Which roles sit closest to the assistant, and which furthest? In the paper, helpful professionals
# (a librarian, an accountant) sit near the assistant end and fantastical or theatrical characters (a
# ghost, a trickster god) at the far end.
#
# <details><summary>Answer</summary>
#
# On the offline run the default sits far above everyone (3.16); the nearest roles are the euphoric
# lottery winner (-1.95), the kindergarten teacher (-2.33) and the lovestruck romantic (-2.60); the viking
# (-3.63), the knight (-3.54) and the lawyer (-3.14) are furthest. Historical warriors furthest matches the
# paper; a lawyer among them does not. The roles are built only from the responses that kept their role,
# so the ordering says which *voices* sound least like the assistant (cheerful, caring ones are closest),
# not which roles the model tends to abandon. Compare with your own table.
# </details>
#
# ## 11. Held-out test: does the axis mean anything?
#
# By construction the default persona projects above the role mean *on the build questions* — the
# axis is their difference. The real test is new questions: generate responses to the held-out
# questions under every prompt (done above), project their response activations on the axis, and ask
# whether a default response projects above a role response. We use **every** held-out role response,
# not only the ones a judge would have kept: a harder test, and one that peeks at nothing.

# %% [markdown]
# **Before you run:** the held-out questions were never used to build the axis. Will their default
# responses still project above the role responses: AUROC near 0.5, or near 1?
#
# <details><summary>Answer</summary>
#
# Look at the printed AUROC and the histogram. The offline run gives 0.922 (Cohen's d 1.73): the default's
# responses project above most role responses, but not all, and the next cell asks which ones overlap. Keep
# one caveat in mind too: the activations are read with the role's system prompt still in the context, so
# part of the separation can come from the prompt rather than the response (it is 0.900 already at block 0,
# where a response token has barely been processed). The cells after the next measure how much.
# </details>

# %%
heldout_roles = [role for role in persona_vectors if role != DEFAULT_ROLE]
heldout_groups = {
    "default": heldout_responses[DEFAULT_ROLE],
    "roles": [r for role in heldout_roles for r in heldout_responses[role]],
}


def heldout_projection(records: list[dict]) -> Tensor:
    """Projections of the records' response activations (block AXIS_LAYER, read with their system
    prompts) on the unit axis."""
    acts = response_mean_activations(model, tokenizer, records_to_conversations(records), [AXIS_LAYER], profile.batch_size)
    return project(acts[0], assistant_axis)


heldout = load_or_generate(
    course.cache / f"heldout_projections_block{AXIS_LAYER}.pt",
    lambda: {group: heldout_projection(records) for group, records in heldout_groups.items()},
    "held-out projections",
    inputs=course.inputs(code=[heldout_projection], data={"responses": heldout_responses, "axis": assistant_axis}),
)
heldout_auroc = auroc(heldout["default"].numpy(), heldout["roles"].numpy())
heldout_gap = float(heldout["default"].mean() - heldout["roles"].mean())
print(
    f"Held-out ({len(HELDOUT_QUESTIONS)} new questions): {len(heldout['default'])} default vs {len(heldout['roles'])} role "
    f"responses; mean gap {heldout_gap:+.2f}, Cohen's d {cohens_d(heldout['default'].numpy(), heldout['roles'].numpy()):.2f}, "
    f"AUROC {heldout_auroc:.3f}"
)
course.record("held-out AUROC (default vs roles)", heldout_auroc)

# %% [markdown]
# Which role responses reach into the default's range? Before blaming noise, read them. §5's role adherence
# says, for every held-out role response, whether the model kept its role: below the threshold calibrated on
# the check set, the reply reads as if the role prompt were not there.
#
# **Before you run:** if the overlapping role responses are ones where the model dropped its role and answered
# as itself, what should the AUROC be over the replies that stayed in role?
#
# <details><summary>Answer</summary>
#
# Near 1, and that is what the offline run shows. 34 of the 100 held-out role responses dropped their role by
# the likelihood measure; the ones printed above are the model answering "As an AI language model, I don't
# have personal experiences..." under a firefighter's or a romantic's prompt. They project at a mean of 2.07,
# close to the default's 3.35, while the 66 that stayed in role average -1.75. Against those 66 alone the
# held-out AUROC is 0.992 (0.922 against all 100). The overlap is not noise in the axis: it is the axis
# working, on replies in which the small model stopped playing the role. In the histogram the hatched bars
# sit in the default's range, whatever their role's colour.
# </details>

# %%
heldout_items = [
    {"role_prompt": r["system_prompt"], "question": r["question"], "answer": r["response"]} for r in heldout_groups["roles"]
]
heldout_adherence = load_or_generate(
    course.cache / "role_adherence_heldout.json",
    lambda: role_adherence_scores(model, tokenizer, heldout_items, batch_size=16, desc="role adherence (held-out)"),
    "role adherence of the held-out role responses",
    inputs=course.inputs(code=[role_adherence_scores], data={"items": heldout_items}),
)
in_role_mask = torch.tensor([v >= ADHERENCE_THRESHOLD for v in heldout_adherence])
dropped = [k for k in range(len(heldout_items)) if not in_role_mask[k]]
print(f"{len(dropped)} of {len(heldout_items)} held-out role responses dropped their role (adherence < "
      f"{ADHERENCE_THRESHOLD:+.3f}); mean projection: default {heldout['default'].mean():.2f}, dropped "
      f"{heldout['roles'][~in_role_mask].mean():.2f}, in role {heldout['roles'][in_role_mask].mean():.2f}")
for k in sorted(dropped, key=lambda k: -float(heldout["roles"][k]))[:4]:
    r = heldout_groups["roles"][k]
    print(f"  [{r['role']}] projection {heldout['roles'][k]:.2f}, adherence {heldout_adherence[k]:+.2f}: {r['response'][:90]!r}")
heldout_auroc_in_role = auroc(heldout["default"].numpy(), heldout["roles"][in_role_mask].numpy())
print(f"Held-out AUROC, default vs all role responses: {heldout_auroc:.3f}; vs the {int(in_role_mask.sum())} "
      f"that stayed in role: {heldout_auroc_in_role:.3f}")
course.record("held-out AUROC (default vs roles, replies in role)", heldout_auroc_in_role)
hist = pd.DataFrame(
    {
        "projection": torch.cat([heldout["default"], heldout["roles"]]).tolist(),
        "persona": [DEFAULT_ROLE] * len(heldout["default"]) + [r["role"] for r in heldout_groups["roles"]],
        "reply": ["default"] * len(heldout["default"]) + ["in role" if m else "dropped its role" for m in in_role_mask.tolist()],
    }
)
px.histogram(hist, x="projection", color="persona", pattern_shape="reply", nbins=30,
             pattern_shape_map={"default": "", "in role": "", "dropped its role": "/"},
             title=f"Held-out responses on the Assistant Axis (block {AXIS_LAYER}), by persona; hatched: dropped its role").show()


# %% [markdown]
# An AUROC of 0.5 would mean the axis does not tell a default response from a role response on new
# questions; 1.0 that every default response projects above every role response.
#
# ### Does the test read the response, or the system prompt?
#
# Each held-out response was read just as it was generated: after its system prompt ("You are a
# viking..."). A causal model's activation at a response token depends on everything before it, so the
# system prompt is inside every response activation, and the axis could be separating *prompts* rather
# than *responses*. To see how much, we re-read every held-out response after the user's question alone,
# with no system prompt (on Qwen the template then inserts its own default one, the same for every
# response), and ask the same question of the same axis. Only the response text can now separate them.
# This is capture only (forward passes over the existing responses, up to block `AXIS_LAYER`); the
# blocks before it are kept for the comparison by block below.

# %% [markdown]
# **Before you run:** without the system prompt, will the held-out AUROC at block `AXIS_LAYER` stay where
# it was, fall to 0.5, or land in between?
#
# <details><summary>Answer</summary>
#
# Compare the two printed AUROCs. If the responses themselves read as more or less assistant-like, the
# AUROC stays well above 0.5; what it loses is the part the system prompt supplied. On the offline run it
# falls from 0.922 to 0.858: the response text still separates the default from the roles, but less
# sharply than the numbers read with the prompt suggested.
# </details>

# %%
READ_BLOCKS = list(range(AXIS_LAYER + 1))  # the forward pass stops after AXIS_LAYER: half the cost of all blocks


def reread_without_system_prompt() -> dict[str, Tensor]:
    """Response-mean activations of the held-out responses at blocks 0..AXIS_LAYER, read after the question alone."""
    return {
        group: response_mean_activations(
            model, tokenizer, [build_messages(r["question"], r["response"]) for r in records], READ_BLOCKS,
            profile.batch_size,
        )
        for group, records in heldout_groups.items()
    }


heldout_no_system = load_or_generate(
    course.cache / "heldout_acts_no_system_prompt.pt", reread_without_system_prompt,
    "held-out responses re-read without their system prompt",
    inputs=course.inputs(code=[reread_without_system_prompt], data={"responses": heldout_groups}, blocks=READ_BLOCKS),
)
no_system = {group: project(acts[AXIS_LAYER], assistant_axis) for group, acts in heldout_no_system.items()}
heldout_auroc_no_system = auroc(no_system["default"].numpy(), no_system["roles"].numpy())
print(f"Held-out AUROC at block {AXIS_LAYER} (default above roles):")
print(f"  response read after its system prompt:     {heldout_auroc:.3f}  (mean gap {heldout_gap:+.2f})")
print(f"  response read after the user question only: {heldout_auroc_no_system:.3f}  "
      f"(mean gap {float(no_system['default'].mean() - no_system['roles'].mean()):+.2f})")
course.record("held-out AUROC, response read without system prompt", heldout_auroc_no_system)

# %% [markdown]
# On the offline run the held-out AUROC at block 12 falls from 0.922 (read after the system prompt) to
# 0.858 (after the question alone). Two things follow. The system prompt did inflate the test, by about
# 0.064: part of what the axis read was the instruction, not the reply. But most of the separation
# survives without it, so the responses themselves differ along the axis, and 0.858 is the honest answer
# to "does the axis tell a default response from a role response", over all role responses, the 34 that
# dropped their role included. §12 asks the same at block 0.
#
# ## 12. The axis at every block, for Sections 2 and 4
#
# Sections 2 and 4 need the axis at every block. Your `extract_persona_vectors` already returned the persona
# vectors at every block (§7), so your `compute_assistant_axis` gives the axis at every block too: row
# `AXIS_LAYER` is the axis you built above. The result, `[num_layers, d_model]` and unnormalised, is saved by
# `part1_assistant_axis.artifacts`, which Sections 2 and 4 ask for it. The held-out responses' activations
# at every block (one batched pass) serve the comparisons below and §13.

# %%
# Always (re)write: it is cheap, and Section 2, if run first, may have saved a small stand-in at the same path.
axis_all_layers = save_assistant_axis(
    profile, lambda: compute_assistant_axis(all_layer_vectors),
    inputs=course.inputs(data={"vectors": all_layer_vectors}, score_threshold=SCORE_THRESHOLD),
)
print(f"The Assistant Axis at every block: {tuple(axis_all_layers.shape)} (blocks, d_model)")
heldout_acts = load_or_generate(
    course.cache / "heldout_acts_all_layers.pt",
    lambda: all_layer_response_activations(model, tokenizer, heldout_responses, profile.batch_size),
    "held-out response activations at every block",
    inputs=course.inputs(data={"heldout": heldout_responses}),
)

# %% [markdown]
# With the axis at every block we can ask the held-out question at **block 0**, the output of the first
# block, where a response token has barely mixed with the text before it. Whatever separates the default
# from the roles there is mostly which tokens are present, including (with the system prompt in context)
# the prompt's own.

# %%
with_prompt_acts = {
    "default": heldout_acts[DEFAULT_ROLE],
    "roles": torch.cat([heldout_acts[role] for role in heldout_roles], dim=1),
}  # [num_layers, n, d_model], read after each response's system prompt
for block in (0, AXIS_LAYER):
    values = []
    for label, acts in (("with system prompt", with_prompt_acts), ("without system prompt", heldout_no_system)):
        value = auroc(project(acts["default"][block], axis_all_layers[block]).numpy(),
                      project(acts["roles"][block], axis_all_layers[block]).numpy())
        values.append(f"{label} {value:.3f}")
        if block == 0:
            course.record(f"held-out AUROC at block 0, {label}", value)
    print(f"block {block:2}: held-out AUROC " + ", ".join(values))

# %% [markdown]
# On the offline run: block 0 gives 0.900 with the system prompt and 0.877 without; block 12
# gives 0.922 and 0.858. At block 0 the system prompt adds little: the separation there is carried
# by which words the responses use (the default's "I am Qwen, an AI developed by Alibaba Cloud" against a
# viking's boasts), which one block can already tell apart. From block 0 to block 12 the AUROC read with
# the prompt climbs by 0.02 while the one read without it slips from 0.877 to 0.858: on this small model the
# middle blocks add little to what the words already say, and what the first test gains there comes from
# the system prompt. A held-out test that reads responses in their generating context measures prompt
# and response together; to claim that a direction reads the *response*, read the response without the
# prompt.

# %% [markdown]
# ## 13. The axis across layers
#
# ### Exercise 10: `axis_separation_by_layer`
# > **Difficulty**: 🔴🔴⚪⚪⚪ · **Importance**: 🔵🔵⚪⚪⚪ · ⏱ 15 min
#
# Is block `AXIS_LAYER` a good choice? For every block `i`, project the held-out default and role
# activations *of block i* on the axis *of block i* (the unit axis: `utils.metrics.project`) and
# report the AUROC (default above roles) and the gap (mean default projection minus mean role
# projection). Return a DataFrame with columns `layer`, `auroc`, `gap`.
#
# <details><summary>Hint</summary>
#
# Loop over the blocks. At block `i`, project block `i`'s activations on block `i`'s axis (never mix
# blocks); `project` already divides by the axis norm. `auroc(default, roles)` takes the group that should
# score higher first.
# </details>
#
# <details><summary>Hint 2 (the key line)</summary>
#
# ```python
# default = project(default_acts[layer].float(), axes[layer].float()).numpy()
# ```
# </details>

# %% tags=["exercise"]
def axis_separation_by_layer(
    axes: Float[Tensor, "num_layers d_model"],
    default_acts: Float[Tensor, "num_layers n_default d_model"],
    role_acts: Float[Tensor, "num_layers n_roles d_model"],
) -> pd.DataFrame:
    """How well each block's axis separates held-out default responses from role responses.

    Args:
        axes: the Assistant Axis at every block.
        default_acts, role_acts: held-out response activations at every block.

    Returns:
        DataFrame with one row per block: layer, auroc (default above roles), gap (mean projection,
        default minus roles).
    """
    # BEGIN SOLUTION
    rows = []
    for layer in range(axes.shape[0]):
        default = project(default_acts[layer].float(), axes[layer].float()).numpy()
        roles_ = project(role_acts[layer].float(), axes[layer].float()).numpy()
        rows.append({"layer": layer, "auroc": auroc(default, roles_), "gap": float(default.mean() - roles_.mean())})
    return pd.DataFrame(rows)
    # END SOLUTION


# %%
tests.test_axis_separation_by_layer(axis_separation_by_layer)

# %% [markdown]
# **Before you run:** at which blocks will the axis separate held-out default and role responses best:
# early, middle or late? Will it follow the axis norm?
#
# <details><summary>Answer</summary>
#
# Look at the AUROC curve against the dotted norm. On the offline run the AUROC is already 0.900 at block
# 0 (the system prompt is in context), moves between 0.88 and 0.96 from block 1 to block 19 and reaches
# 0.993-0.999 at the last four blocks, while the norm grows steadily with depth. The dashed curve
# (responses re-read after the question alone, blocks 0 to `AXIS_LAYER`) stays flat between 0.854 and
# 0.877: below the solid one at every block, by about 0.02 at block 0 and 0.06 at block 12. High
# separation near the output reflects different *words* (the default says "As an AI..."), not necessarily
# the best place to steer; see the text below.
# </details>

# %%
by_layer = axis_separation_by_layer(axis_all_layers, with_prompt_acts["default"], with_prompt_acts["roles"])
by_layer_no_system = axis_separation_by_layer(
    axis_all_layers[READ_BLOCKS], heldout_no_system["default"], heldout_no_system["roles"]
)
fig = go.Figure()
fig.add_scatter(x=by_layer["layer"], y=by_layer["auroc"], name="held-out AUROC (with system prompt)")
fig.add_scatter(x=by_layer_no_system["layer"], y=by_layer_no_system["auroc"],
                name="held-out AUROC (question only)", line_dash="dash")
fig.add_scatter(x=by_layer["layer"], y=axis_all_layers.norm(dim=-1) / axis_all_layers.norm(dim=-1).max(),
                name="axis norm (scaled)", line_dash="dot")
fig.add_vline(x=AXIS_LAYER, line_dash="dash", annotation_text="AXIS_LAYER")
fig.update_layout(title="The Assistant Axis at every block", xaxis_title="block", yaxis_range=[0, 1.05])
fig.show()
# The question-only reading stops at AXIS_LAYER (READ_BLOCKS), so the table compares the blocks both have.
print(by_layer.merge(by_layer_no_system, on="layer", how="inner", suffixes=("", "_no_system")).round(3).to_string(index=False))
print(f"(blocks {AXIS_LAYER + 1}-{N_LAYERS - 1}: with the system prompt only, in the figure)")
plot_similarity(cosine_matrix(axis_all_layers), [str(i) for i in range(N_LAYERS)],
                "Cosine between the axes of different blocks").show()

# %% [markdown]
# Read the two figures together. Neighbouring blocks have similar axes (the residual stream changes a
# little per block) while distant blocks do not, so the axis slowly turns through the network. Its norm
# grows with depth, as all activations do. Where is held-out separation best? On the offline model it
# climbs towards the last blocks, but be careful what that means: near the output, activations are
# mostly about the next words, and a default response *says* different words ("As an AI language
# model..."). A direction that reads a difference well is not necessarily the one that best changes
# behaviour when you push along it; Section 2 steers and caps in the middle of the network.

# %% [markdown]
# ### Your axis beside the published one
#
# The paper published its axes on the Hugging Face hub (`part1_assistant_axis.published_axis`: the dataset
# `lu-christina/assistant-axis-vectors`, for Gemma 2 27B, Qwen3-32B and Llama 3.3 70B), built as yours is:
# `mean(default) - mean(roles)` of response-mean block outputs at every block, from 275 roles and the judge's
# score-3 responses. On a profile whose model has one (`full`: Gemma 2 27B) and with the hub reachable, the
# cell below draws the cosine between your axis and theirs at every block; otherwise it says in one line why
# there is nothing to compare. With far fewer roles and questions than the paper, expect a clearly positive
# cosine in the middle blocks rather than 1; a cosine near 0 or negative means your axis is something else
# (the sign: both point towards the assistant). Gemma 2 has a few dimensions with huge activations, which
# weigh heavily in any cosine of its raw activations, yours and theirs alike.

# %%
from part1_assistant_axis.published_axis import NoPublishedAxis, axis_cosines_by_layer, load_published_axis

try:
    published = load_published_axis(profile.models.part1)
    published_cos = axis_cosines_by_layer(axis_all_layers, published)
except (NoPublishedAxis, ValueError) as err:
    print(f"No comparison with the published axis: {err}.")
else:
    print(f"cosine(your axis, the published axis) at block {AXIS_LAYER}: {published_cos[AXIS_LAYER]:+.3f}; "
          f"over all blocks {min(published_cos):+.3f} to {max(published_cos):+.3f}")
    fig = px.line(x=list(range(len(published_cos))), y=published_cos, markers=True,
                  labels={"x": "block", "y": "cosine"},
                  title=f"Your Assistant Axis against the published one ({profile.models.part1}), block by block")
    fig.add_vline(x=AXIS_LAYER, line_dash="dash", annotation_text="AXIS_LAYER")
    fig.update_layout(yaxis_range=[-1, 1])
    fig.show()

# %% [markdown]
# ## Summary and questions
#
# - How much of the role variance does PC1 explain, and how close is it to the Assistant Axis? What
#   would change with hundreds of roles instead of a handful?
#
# <details><summary>Answer</summary>
#
# On the offline run PC1 explains 40.1% of the variance of 10 roles and |cos(axis, PC1)| is 0.090; built
# from every role response (the comparison in §10) the same numbers are 38.5% and 0.732. The paper reports
# about 49% and a cosine above 0.6 on Gemma 2 27B with hundreds of roles. With only n roles there are
# n - 1 components, so even random points give PC1 at least 1/(n-1) of the variance (here 11%): a small-n
# share is inflated. The cosine says more: among ten roles that all kept their role, the biggest difference
# is not the one that separates them from the assistant. Hundreds of roles make the share meaningful and
# the direction stable; read your own numbers against that floor.
# </details>
#
# - Did the held-out responses separate? Which roles overlap with the assistant, and are they the ones
#   `characterize_axis` put near it?
#
# <details><summary>Answer</summary>
#
# On the offline run, yes: AUROC 0.922, a mean gap of +3.80 and Cohen's d 1.73 on 5 new questions (10
# default vs 100 role responses). The role responses that reach into the default's range are, nearly all,
# responses in which the small model dropped its role and answered as itself ("As an AI language model,
# I don't have personal experiences..."): 34 of the 100 by the likelihood measure, projecting at 2.07 on
# average against the default's 3.35. Without them the AUROC is 0.992. They come from several roles (the
# lovestruck romantic and the firefighter among the printed ones), so the overlap follows whether a reply
# kept its role, not which role it was. Remember that the system prompt is still in context, so this test
# flatters the axis somewhat: re-read after the question alone, the same responses give 0.858 instead of
# 0.922.
# </details>
#
# - What happens to the role vectors, and to the axis, without the filter (`scores=None`, as §10's
#   comparison does)? Which way should a role vector move when out-of-role responses are mixed in?
#
# <details><summary>Answer</summary>
#
# Out-of-role responses ("As an AI, I don't have memories...") look like the default assistant, so mixing
# them in pulls each role vector towards the default; the role mean moves towards the default, and the
# axis `default - mean(roles)` gets shorter. On the offline run the filter kept 51 of the 100 role responses
# (likelihood ratio >= +0.202); without it |axis| falls from 5.99 to 4.94, and the two axes still point
# the same way (cosine 0.91). The larger change is in PCA: unfiltered, PC1 lines up with the axis (0.732),
# because how often each role slipped into the assistant is then the biggest difference among the roles;
# filtered, it does not (0.090). A filter is part of what a persona vector means, so measure it before you
# trust it: the local judge (AUROC 0.687 on the check set) could not have made this one.
# </details>
#
# Looking ahead: Section 2 projects every turn of a conversation on this axis and caps the projection
# from below; Section 4 steers with vectors built by the same response-mean recipe.

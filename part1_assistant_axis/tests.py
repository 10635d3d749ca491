"""Checks for section 1's exercises. Each compares with `solutions.part1_assistant_axis` on tiny
models or small synthetic data (exact and fast), and names the likely mistake when it fails."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pandas as pd
import torch

from part1_assistant_axis import DEFAULT_ROLE
from solutions import part1_assistant_axis as sol
from utils.activations import mean_over_spans, response_mean_activations
from utils.chat import assistant_turn_spans, build_messages, encode
from utils.checks import (
    CheckFailed,
    check,
    check_hooks_removed_after_error,
    close,
    passed,
    rule_judge,
    tiny,
    unit_vector,
)
from utils.hooks import hooks_restored, user_hook_counts
from utils.judge import ADHERENCE_0_3
from utils.layers import num_layers


def _call(fn, name: str, *args, hint: str = "", **kwargs):
    """Call a student's function; an exception becomes a failed check that names it."""
    try:
        return fn(*args, **kwargs)
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as err:  # noqa: BLE001 - any error is reported as a failed check
        check(False, f"{name} raised {type(err).__name__}: {err}. {hint}".strip())


# role_eval_template ---------------------------------------------------------------------------

_SCALE_LINE = re.compile(r"^[ \t]*[-*•]?[ \t]*\**[ \t]*(\d+)[ \t]*\**[ \t]*(?:=|:|-|–|—|\)|\.)(.*)$", re.M)
_LABEL = re.compile(r"question|answer|response", re.I)


_REFUSES = re.compile(r"refus|declin", re.I)
_BREAKS = re.compile(
    r"break|out of (role|character)|(drop|abandon|leave|exit|step)s?(ping)? (out of )?(the |its |their )?(role|character)"
    r"|no longer (in )?(role|character)",
    re.I,
)
_AI = re.compile(r"\bAI\b|assistant|itself|language model", re.I)
_AI_DENIED = re.compile(r"\b(never|not|no|without)\b[^.;,]{0,30}(\bAI\b|assistant|language model)", re.I)
_TRAITS = re.compile(r"\bsome\b|trait|partly|partial|voice|hint|element|mix|touch|flavou?r|bits? of", re.I)
_NO_ROLE = re.compile(
    r"nothing of the (role|character)|no (trace|sign|hint|part) of|without (the|any) (role|character)|ignor|none of",
    re.I,
)
_IN_ROLE = re.compile(r"role|character", re.I)


def _scale_meaning(line: str) -> str | None:
    """What one scale line means, by its keywords: "refuses", "breaks role", "ai only", "ai with traits",
    "in role", or None when it says none of these."""
    if _REFUSES.search(line):
        return "refuses"
    if _BREAKS.search(line):
        return "breaks role"
    if _AI.search(line) and not _AI_DENIED.search(line):
        return "ai with traits" if _TRAITS.search(line) and not _NO_ROLE.search(line) else "ai only"
    if _IN_ROLE.search(line):
        return "in role"
    return None


def _nearest_label(text: str) -> str | None:
    found = _LABEL.findall(text)
    if not found:
        return None
    return "answer" if found[-1].lower() in ("answer", "response") else "question"


def test_role_eval_template(fn) -> None:
    """Placeholders left for later, labelled, the 0-3 scale in order (each line's meaning read by its keywords:
    0 refuses, 1 an AI with nothing of the role, 2 an AI with some of the role's traits, 3 fully in role), a
    request for one number."""
    character = "a lighthouse keeper on a storm-beaten island"
    template = _call(
        fn,
        "role_eval_template",
        character,
        hint="If you fill in the character with .format, the placeholders must survive: build the string with an "
        "f-string and write {{question}} and {{answer}} in it.",
    )
    check(isinstance(template, str), f"Return the template as a string, got {type(template).__name__}.")
    check(
        "{question}" in template and "{answer}" in template,
        "The template needs the placeholders {question} and {answer}, left unfilled (in an f-string, write "
        "{{question}} and {{answer}} so the placeholders survive).",
    )
    check(
        template.count("{question}") == 1 and template.count("{answer}") == 1,
        "Use each placeholder exactly once.",
    )
    try:
        template.format(question="<<Q>>", answer="<<A>>")
    except (KeyError, IndexError, ValueError) as err:
        check(
            False,
            f"template.format(question=..., answer=...) fails ({err!r}): the template has braces other than "
            "{question} and {answer}. Write the character in yourself, and double any literal braces ({{ }}).",
        )
    check(character in template, "Write the character into the template: role_eval_template(character) must name it.")
    label_q = _nearest_label(template[: template.index("{question}")].replace("{answer}", ""))
    label_a = _nearest_label(template[: template.index("{answer}")].replace("{question}", ""))
    check(
        not (label_q == "answer" and label_a == "question"),
        "The {question} and {answer} placeholders are swapped: the answer would be shown as the question.",
    )
    check(label_q == "question", "Label the question: the last label before {question} should be the word 'question'.")
    check(label_a == "answer", "Label the answer: the last label before {answer} should be 'answer' or 'response'.")
    lines = {int(m.group(1)): (m.group(2), m.end()) for m in _SCALE_LINE.finditer(template)}
    check(
        {0, 1, 2, 3} <= set(lines),
        "Define the 0-3 scale: one line per score 0, 1, 2 and 3, each starting with its digit ('0 = ...').",
    )
    check(max(lines) <= 3, f"The scale is 0-3, but there is a line for {max(lines)}.")

    meaning = {score: _scale_meaning(lines[score][0]) for score in range(4)}
    check(
        meaning[3] != "refuses",
        "The scale is reversed: 0 = refuses, 1 = answers as itself, 2 = AI with some role traits, 3 = fully in role.",
    )
    check(meaning[0] == "refuses", "Score 0 is a refusal: say 'refuses' (or 'declines') on the 0 line.")
    check(
        not (meaning[1] == "ai with traits" and meaning[2] == "ai only"),
        "The meanings of lines 1 and 2 are swapped: 1 = answers as itself, an AI assistant, with nothing of the "
        "role; 2 = says it is an AI or assistant but shows some of the role's traits (the judge's scores would "
        "rank a half-in-role answer below a plain assistant answer).",
    )
    check(
        meaning[1] == "ai only",
        "Score 1 is answering as itself (an AI assistant) with nothing of the role: say so on the 1 line "
        "(and keep the role's traits for line 2).",
    )
    check(
        meaning[2] == "ai with traits",
        "Score 2 is identifying as an AI or assistant while showing some of the role's traits: say both on the 2 line.",
    )
    check(
        meaning[3] != "breaks role",
        "Score 3 must mean fully in role: your 3 line says the answer breaks character (or leaves the role), so "
        "the judge would give its top score to the answers that fail.",
    )
    check(
        meaning[3] == "in role",
        "Score 3 is fully in role: say on the 3 line that the answer stays in role, as the character, without "
        "presenting itself as an AI.",
    )
    tail = template[max(end for _, end in lines.values()) :]
    check(
        re.search(r"\b(single|one|only|just)\b[^\n]{0,40}\b(number|digit|integer)", tail, re.I) is not None,
        "After the scale, ask for a single number and nothing else (the local judge reads the next token's "
        "probability of each number).",
    )
    passed("role_eval_template")


# judge_role_response --------------------------------------------------------------------------

JUDGE_TEMPLATE = "Role check.\n[QUESTION]{question}[/QUESTION]\n[ANSWER]{answer}[/ANSWER]\nScore 0-3."


def _rule(prompt: str, scale) -> float:
    return 2.6 if scale == ADHERENCE_0_3 else 57.0


def test_judge_role_response(fn) -> None:
    """The judge sees exactly the filled template, on the 0-3 scale; one int (or None) comes back."""
    judge = rule_judge(_rule)
    question, response = "What does {answer} mean to you?", "Score: 0. Arr, I be {question} the pirate!"
    got = _call(fn, "judge_role_response", question, response, "a pirate", JUDGE_TEMPLATE, judge)
    sent = judge.backend.prompts[-1] if judge.backend.prompts else None
    check(sent is not None, "Call the judge: judge.score([prompt], ADHERENCE_0_3).")
    check(
        sent != JUDGE_TEMPLATE.format(question=response, answer=question),
        "The question and the answer are swapped in the template.",
    )
    check(
        sent == JUDGE_TEMPLATE.format(question=question, answer=response),
        "The judge prompt is not the template filled once: use one eval_prompt_template.format(question=..., "
        "answer=...) call (chained .replace() also substitutes text inside the response).",
    )
    check(not isinstance(got, (list, tuple)), "Return the single score, not the list judge.score returns.")
    check(
        isinstance(got, int) and got == 3,
        f"Expected the judge's score on the 0-3 scale (ADHERENCE_0_3), an int; got {got!r}.",
    )
    none_judge = rule_judge(lambda prompt, scale: None)
    got_none = _call(fn, "judge_role_response", "q", "a", "a pirate", JUDGE_TEMPLATE, none_judge)
    check(got_none is None, f"When the judge gives None (no usable answer), return None, not {got_none!r}.")
    own_judge = rule_judge(_rule)
    hint = "With eval_prompt_template=None, build the template with role_eval_template(character)."
    got_own = _call(fn, "judge_role_response", question, response, "a lighthouse keeper", None, own_judge, hint=hint)
    sent = own_judge.backend.prompts[-1] if own_judge.backend.prompts else ""
    check(
        "a lighthouse keeper" in sent and question in sent and response in sent and got_own == 3,
        hint + " The prompt sent must name the character and contain the question and the answer.",
    )
    passed("judge_role_response")


# generate_role_responses ----------------------------------------------------------------------

TINY_PERSONAS = {
    DEFAULT_ROLE: ["", "You are an AI assistant."],
    "pirate": ["You are a pirate captain.", "Speak as a salty pirate."],
    "ghost": ["You are a ghost haunting a lighthouse."],
}
TINY_QUESTIONS = ["Who are you?", "What is your earliest memory?"]
RECORD_KEYS = {"role", "prompt_idx", "system_prompt", "question_idx", "question", "response"}


def test_generate_role_responses(fn) -> None:
    """Structure and order of the records, one batched generate_replies call, the responses (greedy)."""
    model, tok = tiny()
    kwargs = dict(max_new_tokens=4, temperature=0.0, batch_size=16)
    namespace = getattr(fn, "__globals__", {})
    original = namespace.get("generate_replies")
    calls = []
    if original is not None:

        def counting(*args, **kw):
            calls.append(1)
            return original(*args, **kw)

        namespace["generate_replies"] = counting
    try:
        got = _call(fn, "generate_role_responses", model, tok, TINY_PERSONAS, TINY_QUESTIONS, **kwargs)
    finally:
        if original is not None:
            namespace["generate_replies"] = original
    want = sol.generate_role_responses(model, tok, TINY_PERSONAS, TINY_QUESTIONS, **kwargs)
    check(isinstance(got, dict), f"Return a dict role -> list of records, not a {type(got).__name__}.")
    check(list(got) == list(TINY_PERSONAS), f"One entry per persona, keyed by role, in order: {list(TINY_PERSONAS)}.")
    for role, records in got.items():
        n = len(TINY_PERSONAS[role]) * len(TINY_QUESTIONS)
        check(
            isinstance(records, list) and len(records) == n,
            f"{role}: expected one record per (prompt, question), {n}, got {len(records) if isinstance(records, list) else records!r}.",
        )
        check(
            all(isinstance(r, dict) and RECORD_KEYS <= set(r) for r in records),
            f"Every record needs the keys {sorted(RECORD_KEYS)}.",
        )
        check(
            [(r["prompt_idx"], r["question_idx"]) for r in records]
            == [(r["prompt_idx"], r["question_idx"]) for r in want[role]],
            "Order each role's records by prompt_idx, then question_idx.",
        )
        for r in records:
            check(r["role"] == role, f"A record under {role!r} has role {r['role']!r}.")
            check(
                r["system_prompt"] == TINY_PERSONAS[role][r["prompt_idx"]],
                "system_prompt must be the text of the persona's prompt number prompt_idx (not the role name).",
            )
            check(r["question"] == TINY_QUESTIONS[r["question_idx"]], "question must be questions[question_idx].")
    if original is not None:
        check(len(calls) > 0, "Use utils.generation.generate_replies (it batches with left padding).")
        check(
            len(calls) == 1,
            f"generate_replies was called {len(calls)} times: send every conversation in one call (it batches "
            "them); one call per role, prompt or question is many times slower.",
        )
    check(
        [r["response"] for role in got for r in got[role]] == [r["response"] for role in want for r in want[role]],
        "Responses differ from greedy generation of the same conversations: send the system prompt as a system "
        "message (build_messages(question, system_prompt=...)) and pass max_new_tokens and temperature through.",
    )
    passed("generate_role_responses")


# extract_response_activations -----------------------------------------------------------------

ACT_SYSTEM = ["You are a pirate.", "", "You are a ghost who haunts an old lighthouse by the sea."]
ACT_QUESTIONS = ["Who are you?", "What do you fear most in the whole wide world?", "Hi"]
ACT_RESPONSES = [
    "Arr, a captain of the seven seas!",
    "Not much.",
    "The dawn. Every dawn I fade a little more, and the keepers forget my name.",
]


def _span_means(model, tok, layer: int, which: str, system=ACT_SYSTEM, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Reference means over other spans than the response (to recognise mistakes), one example at a time."""
    prompts, spans = [], []
    for s, q, r in zip(system, ACT_QUESTIONS, ACT_RESPONSES):
        full, turn_spans = assistant_turn_spans(build_messages(q, r, s), tok)
        start, end = turn_spans[-1]
        length = len(encode(full, tok)["input_ids"])
        span = {"response": (start, end), "whole": (0, length), "to_end": (start, length), "last": (end - 1, end)}[
            which
        ]
        prompts.append(full)
        spans.append([(max(0, span[0] + shift[0]), min(length, span[1] + shift[1]))])
    means = mean_over_spans(model, tok, prompts, spans, [layer], batch_size=1)
    return torch.stack([m[0, 0] for m in means])


def _helper_means(model, tok, layers: list[int], system=ACT_SYSTEM) -> torch.Tensor:
    """The provided helper's response means, [len(layers), n, d_model]."""
    conversations = [build_messages(q, r, s) for s, q, r in zip(system, ACT_QUESTIONS, ACT_RESPONSES)]
    return response_mean_activations(model, tok, conversations, layers, batch_size=1)


@contextlib.contextmanager
def _padding_side(tok, side: str):
    saved = tok.padding_side
    tok.padding_side = side
    try:
        yield
    finally:
        tok.padding_side = saved


def _as_cpu(got) -> torch.Tensor:
    check(isinstance(got, torch.Tensor), "Return a tensor [num_examples, d_model].")
    return got.detach().float().cpu()


def test_extract_response_activations(fn) -> None:
    """Mean over the response tokens of block ``layer``, batched with padding excluded on either side,
    hooks removed (also after an error); compared with `utils.activations.response_mean_activations`."""
    model, tok = tiny()
    n = num_layers(model)
    layer = 2
    args = (model, tok, ACT_SYSTEM, ACT_QUESTIONS, ACT_RESPONSES)
    want = _helper_means(model, tok, [layer])[0]
    with hooks_restored([model]):  # leave the shared tiny model clean whatever the function does
        before = user_hook_counts(model)
        with _padding_side(tok, "left"):
            got = _call(fn, "extract_response_activations", *args, layer, batch_size=3)
        check(
            user_hook_counts(model) == before,
            "A hook is still registered after extract_response_activations returned: remove it (handle.remove() "
            "in a finally, or use `with capture_block_outputs(...)`). A hook left behind runs in every later "
            "forward pass of the model.",
        )
        check_hooks_removed_after_error(
            model,
            lambda: fn(*args, layer, batch_size=3),
            "When the forward pass raises, your hook stays registered: remove it in a finally block (try/finally), "
            "or use `with capture_block_outputs(...)`, which removes it on exit.",
        )
    got = _as_cpu(got)
    check(not (got.dim() == 3 and got.shape[0] == 1), "Return [num_examples, d_model]: drop the layer dimension.")
    check(got.shape == want.shape, f"Expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    with hooks_restored([model]):
        one = _as_cpu(_call(fn, "extract_response_activations", *args, layer, batch_size=1))
    if not close(one, want):  # wrong even without padding: the wrong tokens or the wrong block
        every_block = _helper_means(model, tok, list(range(n)))
        for other in range(n):
            if other != layer and close(one, every_block[other]):
                check(
                    False,
                    f"Off by one layer: you returned block {other}'s output for layer={layer}. `layer` is a block "
                    "index: the output of model.model.layers[layer], which is hidden_states[layer + 1] "
                    "(hidden_states[0] is the embeddings; the last entry is after the final norm).",
                )
        check(
            not close(one, _span_means(model, tok, layer, "whole")),
            "You averaged over the prompt tokens too (system prompt, question, template): average over the "
            "response tokens only.",
        )
        check(
            not close(one, _span_means(model, tok, layer, "to_end")),
            "The response span includes the template's end-of-turn tokens: stop at the end of the response "
            "(utils.chat.assistant_turn_spans gives the span).",
        )
        check(
            not close(one, _span_means(model, tok, layer, "last")),
            "Average over all response tokens, not only the last one.",
        )
        for shift in ((1, 1), (-1, -1), (0, 1), (-1, 0), (1, 0), (0, -1)):
            check(
                not close(one, _span_means(model, tok, layer, "response", shift=shift)),
                f"Off-by-one span: your mean covers tokens (start{shift[0]:+d}, end{shift[1]:+d}) of the response's "
                "(start, end). assistant_turn_spans gives `end` exclusive, so hidden[start:end] is exactly the "
                "response: do not add or subtract 1.",
            )
        check(
            not close(one, _span_means(model, tok, layer, "response", system=["", "", ""])),
            "Read the activations with the system prompt the response was generated under.",
        )
        check(False, "The activations differ from the mean of block `layer`'s output over the response tokens.")
    with hooks_restored([model]), _padding_side(tok, "right"):
        right = _as_cpu(_call(fn, "extract_response_activations", *args, layer, batch_size=3))
    left_ok, right_ok = close(got, want), close(right, want)
    check(
        left_ok or not right_ok,
        "With left padding (tokenizer.padding_side == 'left', as for generation) batched results differ from "
        "one-at-a-time ones: each row's tokens are shifted right by its number of pad tokens, so shift the "
        "response span by seq_len - attention_mask[row].sum().",
    )
    check(
        right_ok or not left_ok,
        "With right padding (tokenizer.padding_side == 'right') batched results differ from one-at-a-time ones: "
        "nothing is shifted on the right. Compute each row's shift from tokenizer.padding_side and the attention "
        "mask instead of assuming left padding.",
    )
    check(
        left_ok and right_ok,
        "Padding is averaged into your means: batched results differ from one-at-a-time ones with either padding "
        "side. Average only each row's response tokens (its span, shifted by its padding), and divide by their "
        "number, not by the padded length.",
    )
    with hooks_restored([model]):
        other = _as_cpu(_call(fn, "extract_response_activations", *args, 1, batch_size=2))
    check(close(other, _helper_means(model, tok, [1])[0]), "Use the `layer` argument (layer=1 gave the wrong block).")
    gemma, gemma_tok = tiny("tiny-gemma2")
    with hooks_restored([gemma]):
        on_gemma = _as_cpu(_call(fn, "extract_response_activations", gemma, gemma_tok, *args[2:], layer, batch_size=3))
    check(
        close(on_gemma, _helper_means(gemma, gemma_tok, [layer])[0]),
        "On Gemma 2 (tiny-gemma2) your results differ from the helper's: build each conversation with "
        "build_messages and find its span with assistant_turn_spans (they merge the system prompt into the user "
        "turn for templates without a system role), and tokenize with utils.chat.encode.",
    )
    passed("extract_response_activations")


# extract_persona_vectors ----------------------------------------------------------------------

PV_PERSONAS = {
    "pirate": ["You are a pirate captain."],
    DEFAULT_ROLE: ["", "You are an AI assistant."],
    "ghost": ["You are a ghost.", "Haunt the user politely."],
    "toaster": ["You are a sentient toaster."],
}
PV_QUESTIONS = ["Who are you?", "What do you fear?"]
PV_TEXTS = {
    "pirate": ["Captain Redbeard, terror of the seas!", "I am but a humble assistant."],
    DEFAULT_ROLE: ["I am an AI assistant.", "I do not have fears.", "An assistant made to help.", "Nothing, really."],
    "ghost": ["Woooo, a lost soul.", "Sunlight.", "I am a helpful model.", "The living, and their noise."],
    "toaster": ["Sorry, I cannot pretend.", "I am an AI, not a toaster."],
}
PV_SCORES = {
    "pirate": [3, 2],  # exactly at the threshold: kept with >=
    DEFAULT_ROLE: [1, None, 0, 2],  # never filtered
    "ghost": [3, 2, None, 3],  # a None score never passes
    "toaster": [0, 2],  # nothing at 3: left out (kept at threshold 2)
}


def _pv_responses() -> dict[str, list[dict]]:
    out = {}
    for role, prompts in PV_PERSONAS.items():
        texts = iter(PV_TEXTS[role])
        out[role] = [
            dict(role=role, prompt_idx=p, system_prompt=s, question_idx=q, question=question, response=next(texts))
            for p, s in enumerate(prompts)
            for q, question in enumerate(PV_QUESTIONS)
        ]
    return out


def _reference_vectors(*args, **kwargs) -> dict[str, torch.Tensor]:
    """The solution's persona vectors, without its notes about left-out roles."""
    with contextlib.redirect_stdout(io.StringIO()):
        return sol.extract_persona_vectors(*args, **kwargs)


def _vectors_close(got: dict, want: dict) -> bool:
    return set(got) == set(want) and all(close(got[k].detach().float().cpu(), want[k]) for k in want)


def test_extract_persona_vectors(fn) -> None:
    """Filter by score (>=, None fails, default never filtered), drop empty roles, average per role, per block."""
    model, tok = tiny()
    layers = [1, 2]
    base = (model, tok, PV_PERSONAS, PV_QUESTIONS, _pv_responses())
    with contextlib.redirect_stdout(io.StringIO()):  # keep notes about left-out roles out of the check's output
        got = _call(fn, "extract_persona_vectors", *base, layers, scores=PV_SCORES, score_threshold=3)
    want = _reference_vectors(*base, layers, scores=PV_SCORES, score_threshold=3)
    check(isinstance(got, dict), f"Return a dict role -> vectors, not a {type(got).__name__}.")
    check(
        all(isinstance(v, torch.Tensor) for v in got.values()),
        "Each role's persona vectors must be one tensor [len(layers), d_model].",
    )
    check(
        DEFAULT_ROLE in got and not torch.isnan(got[DEFAULT_ROLE]).any(),
        "The default persona is missing: do not filter the default persona by score (keep all its responses; "
        "its judge asks a different question).",
    )
    check(
        not any(torch.isnan(v).any() for v in got.values()),
        "A persona vector is NaN: a role with no kept response must be left out, not averaged over nothing.",
    )
    check(
        all(v.shape == want[DEFAULT_ROLE].shape for v in got.values()),
        f"Each role's vectors must have shape {tuple(want[DEFAULT_ROLE].shape)}: one row per block in `layers` "
        "(average over the responses, dimension 1 of response_mean_activations' result, not over the blocks).",
    )
    unfiltered = _reference_vectors(*base, layers)
    check(
        not ("pirate" in got and close(got["pirate"].float(), unfiltered["pirate"])),
        "No score filter: use only the role responses with score >= score_threshold (the default excepted).",
    )
    check("pirate" in got, "A score equal to score_threshold passes: use >= score_threshold, not >.")
    check("toaster" not in got, "Leave out roles with no response scoring >= score_threshold.")
    none_passes = {**PV_SCORES, "ghost": [3 if s is None else s for s in PV_SCORES["ghost"]]}
    check(
        not close(got["ghost"].float(), _reference_vectors(*base, layers, scores=none_passes)["ghost"]),
        "A None score (the judge gave no usable answer) never passes the filter.",
    )
    if not _vectors_close(got, want):
        for shift in (-1, 1):
            check(
                not _vectors_close(got, _reference_vectors(*base, [b + shift for b in layers], scores=PV_SCORES)),
                "Off by one layer: `layers` are block indices (hidden_states[layer + 1], below the last block).",
            )
        check(False, "The vectors differ: average the response activations of each role's kept responses.")
    with contextlib.redirect_stdout(io.StringIO()):
        loose = _call(fn, "extract_persona_vectors", *base, layers, scores=PV_SCORES, score_threshold=2)
    check(
        _vectors_close(loose, _reference_vectors(*base, layers, scores=PV_SCORES, score_threshold=2)),
        "Use the score_threshold argument (with score_threshold=2 the results differ; don't hard-code 3).",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        everything = _call(fn, "extract_persona_vectors", *base, layers, scores=None)
    check(_vectors_close(everything, unfiltered), "With scores=None, keep every response of every persona.")
    passed("extract_persona_vectors")


# role_adherence -------------------------------------------------------------------------------

ADHERENCE_ITEMS = [
    (
        "You are a pirate captain. Stay in character.",
        "What is your earliest memory?",
        "Arr, the creak of me father's ship.",
    ),
    ("You are a pirate captain. Stay in character.", "What is your earliest memory?", "As an AI, I have no memories."),
    (
        "You are a medieval monk who copies manuscripts.",
        "Describe your day.",
        "I rise for vigils and copy the psalter by candlelight until the bells ring for prime.",
    ),
]


def _answer_logprobs_variant(model, tok, system, question, answer, kind: str) -> torch.Tensor:
    """Per-token log-probabilities as a (possibly mistaken) implementation computes them, for diagnosis."""
    if kind == "no_template":
        prefix = "\n".join(p for p in (system, question) if p) + "\n"
        prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prefix_ids + tok(answer, add_special_tokens=False)["input_ids"]])
        start, end = len(prefix_ids), ids.shape[1]
    else:
        full, spans = assistant_turn_spans(build_messages(question, answer, system), tok)
        ids = torch.tensor([encode(full, tok)["input_ids"]])
        start, end = spans[-1]
        if kind == "with_prompt":
            start = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    if kind == "off_by_one":
        return logp[start:end].gather(1, ids[0, start:end, None])[:, 0]
    return logp[start - 1 : end - 1].gather(1, ids[0, start:end, None])[:, 0]


def _adherence_variant(model, tok, item, kind: str, reduce=torch.mean) -> float:
    system, question, answer = item
    return float(
        reduce(_answer_logprobs_variant(model, tok, system, question, answer, kind))
        - reduce(_answer_logprobs_variant(model, tok, None, question, answer, kind))
    )


def test_role_adherence(fn) -> None:
    """Mean per-answer-token log P(answer | role prompt, question) - log P(answer | question), through the chat
    template; compared with the provided batched `part1_assistant_axis.adherence.role_adherence_scores`."""
    from part1_assistant_axis.adherence import role_adherence_scores

    model, tok = tiny()
    want = role_adherence_scores(  # one batch: a check prints its verdict, not a progress bar
        model, tok, [{"role_prompt": s, "question": q, "answer": a} for s, q, a in ADHERENCE_ITEMS], batch_size=8
    )
    got = []
    for item in ADHERENCE_ITEMS:
        value = _call(fn, "role_adherence", model, tok, *item)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        check(isinstance(value, (float, int)), f"Return one float per answer, got {type(value).__name__}.")
        got.append(float(value))
    if np.allclose(got, want, rtol=1e-3, atol=1e-4):
        passed("role_adherence")
        return
    diagnoses = [
        (
            "sum",
            lambda it: _adherence_variant(model, tok, it, "answer", reduce=torch.sum),
            "You summed the log-probabilities: average them over the answer's tokens (a sum grows with the "
            "answer's length, so long answers would look more or less in role for their length alone).",
        ),
        (
            "with_prompt",
            lambda it: _adherence_variant(model, tok, it, "with_prompt"),
            "You scored the prompt's tokens too: only the answer's tokens count (its span from "
            "assistant_turn_spans). The system prompt's own tokens differ between the two readings.",
        ),
        (
            "no_template",
            lambda it: _adherence_variant(model, tok, it, "no_template"),
            "You skipped the chat template: render build_messages(question, answer, role_prompt) with the "
            "template (assistant_turn_spans does), so the model reads the role prompt as a system message.",
        ),
        (
            "off_by_one",
            lambda it: _adherence_variant(model, tok, it, "off_by_one"),
            "Off by one between logits and targets: the logits at position t predict token t + 1, so the answer's "
            "tokens ids[start:end] are scored by logits[start - 1:end - 1].",
        ),
    ]
    for _, variant, message in diagnoses:
        check(not np.allclose(got, [variant(it) for it in ADHERENCE_ITEMS], rtol=1e-3, atol=1e-4), message)
    check(
        not np.allclose(got, 0.0, atol=1e-6),
        "Every answer scores 0: compare the answer with the role prompt against the answer with no system prompt "
        "(system_prompt=None), not the role prompt against itself.",
    )
    check(
        not np.allclose(got, [-w for w in want], rtol=1e-3, atol=1e-4),
        "The sign is reversed: with the role prompt minus without it (higher = more in role).",
    )
    check(
        False,
        f"The scores differ from the reference: got {np.round(got, 4).tolist()}, expected {np.round(want, 4).tolist()}.",
    )


# cosine_similarity_matrix ---------------------------------------------------------------------


def _persona_like(n: int = 5, d: int = 16, seed: int = 0) -> torch.Tensor:
    """Vectors sharing a large common component, as response-mean activations do."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + 4 * torch.randn(d, generator=g) + 0.5


def test_cosine_similarity_matrix(fn) -> None:
    """Cosines between rows; with center=True, after subtracting the mean row."""
    vectors = _persona_like()
    original = vectors.clone()
    got = _call(fn, "cosine_similarity_matrix", vectors)
    want = sol.cosine_similarity_matrix(vectors)
    check(isinstance(got, torch.Tensor), "Return a tensor [n, n].")
    got = got.detach().float()
    check(
        got.shape != (vectors.shape[1],) * 2,
        "Similarities between personas (rows), not between dimensions: unit @ unit.T, not unit.T @ unit.",
    )
    check(got.shape == want.shape, f"Expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    check(
        torch.allclose(got.diagonal(), torch.ones(len(got)), atol=1e-4),
        "The diagonal must be 1: normalise each vector to unit length before the dot products.",
    )
    check(close(got, want), "The raw similarities differ from the cosines of the rows.")
    got_c = _call(fn, "cosine_similarity_matrix", vectors, center=True)
    check(torch.equal(vectors, original), "Do not modify the input tensor in place.")
    got_c = got_c.detach().float()
    want_c = sol.cosine_similarity_matrix(vectors, center=True)
    check(
        not close(got_c, want),
        "With center=True the matrix is unchanged: subtract the mean persona vector before taking cosines "
        "(mean-centring is missing).",
    )
    check(
        not close(got_c, sol.cosine_similarity_matrix(vectors - vectors.mean(dim=1, keepdim=True))),
        "Centre across personas (the mean over rows, dim=0), not each vector over its own d_model entries.",
    )
    unit = unit_vector(vectors)
    check(
        not close(got_c, sol.cosine_similarity_matrix(unit - unit.mean(dim=0, keepdim=True))),
        "Centre the raw vectors, then normalise (you centred the normalised vectors).",
    )
    check(close(got_c, want_c), "The centred similarities differ from cosines of the mean-centred rows.")
    passed("cosine_similarity_matrix")


# pca_decompose_persona_vectors ----------------------------------------------------------------


def _pca_data() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    spread = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.1, 0.1])
    return torch.randn(6, 10, generator=g) * spread + 8 * torch.randn(10, generator=g)


def _rows_match_up_to_sign(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-3) -> bool:
    return a.shape == b.shape and torch.allclose(
        (unit_vector(a) * unit_vector(b)).sum(-1).abs(), torch.ones(len(a)), atol=atol
    )


def test_pca_decompose_persona_vectors(fn) -> None:
    """Centred SVD: unit components as rows, variance fractions of the total, centred projections."""
    vectors = _pca_data()
    result = _call(fn, "pca_decompose_persona_vectors", vectors)
    check(
        isinstance(result, tuple) and len(result) == 3,
        "Return a tuple (components, variance_explained, projections).",
    )
    comps, var, proj = (torch.as_tensor(x).detach().float() for x in result)
    want_c, want_v, want_p = sol.pca_decompose_persona_vectors(vectors)
    n, d = vectors.shape
    check(
        comps.shape != want_c.T.shape or comps.shape == want_c.shape,
        "Components must be rows [k, d_model]: take the rows of Vh (or transpose V).",
    )
    check(comps.shape == want_c.shape, f"components: expected shape {tuple(want_c.shape)}, got {tuple(comps.shape)}.")
    check(
        var.shape == want_v.shape, f"variance_explained: expected shape {tuple(want_v.shape)}, got {tuple(var.shape)}."
    )
    check(proj.shape == want_p.shape, f"projections: expected shape {tuple(want_p.shape)}, got {tuple(proj.shape)}.")
    _, s_raw, vh_raw = torch.linalg.svd(vectors, full_matrices=False)
    check(
        not _rows_match_up_to_sign(comps[:1], vh_raw[:1]) or _rows_match_up_to_sign(comps[:1], want_c[:1]),
        "PCA without centring: subtract the mean persona vector first, or PC1 just points at the mean.",
    )
    check(
        _rows_match_up_to_sign(comps, want_c),
        "The components differ from the right singular vectors of the centred data.",
    )
    check(
        torch.allclose(comps @ comps.T, torch.eye(len(comps)), atol=1e-4),
        "Components must be unit length and orthogonal.",
    )
    centred = vectors - vectors.mean(dim=0)
    s = torch.linalg.svd(centred, full_matrices=False)[1]
    check(
        not close(var, s / s.sum()),
        "Variance is the squared singular values: use S**2 / (S**2).sum(), not S / S.sum().",
    )
    check(
        not (close(var, s**2) or close(var, s**2 / (n - 1))),
        "Return the fraction of the total variance (divide by the sum of the squared singular values).",
    )
    check(close(var, want_v), "variance_explained differs from S**2 / (S**2).sum() of the centred data.")
    check(not close(proj, vectors @ comps.T), "Project the centred vectors (vectors - mean), not the raw ones.")
    check(close(proj, centred @ comps.T), "projections must be the centred vectors @ components.T.")
    two = _call(fn, "pca_decompose_persona_vectors", vectors, 2)
    c2, v2, p2 = (torch.as_tensor(x).detach().float() for x in two)
    check(
        c2.shape == (2, d) and v2.shape == (2,) and p2.shape == (n, 2),
        "With n_components=2 return shapes [2, d_model], [2], [n, 2].",
    )
    check(
        close(v2, want_v[:2]),
        "With n_components=k, variance_explained is still a fraction of the total variance of all components, "
        "not renormalised over the k kept.",
    )
    passed("pca_decompose_persona_vectors")


# compute_assistant_axis -----------------------------------------------------------------------


def _axis_vectors(shape=(16,), seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    names = ["pirate", "ghost", DEFAULT_ROLE, "chef", "toaster"]  # default not first
    return {name: torch.randn(*shape, generator=g) + (3.0 if name == DEFAULT_ROLE else 0.0) for name in names}


def test_compute_assistant_axis(fn) -> None:
    """default - mean(other roles), unnormalised, any vector shape, the default_role argument used."""
    vectors = _axis_vectors()
    got = _call(fn, "compute_assistant_axis", vectors)
    want = sol.compute_assistant_axis(vectors)
    check(isinstance(got, torch.Tensor), "Return a tensor.")
    got = got.detach().float()
    check(got.shape == want.shape, f"Expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    check(
        not close(got, -want),
        "The axis sign is reversed: it is default minus the roles' mean, pointing towards the assistant.",
    )
    check(
        not close(got, want / want.norm()),
        "Do not normalise the axis: sections 2 and 4 load the raw difference (normalise when projecting).",
    )
    default = vectors[DEFAULT_ROLE]
    check(
        not close(got, default - torch.stack(list(vectors.values())).mean(0)),
        "The roles' mean must exclude the default persona.",
    )
    roles = [v for k, v in vectors.items() if k != DEFAULT_ROLE]
    check(
        not close(got, default - torch.stack(roles).sum(0) / len(vectors)),
        "Average over the roles: divide by the number of roles, not the number of personas.",
    )
    check(close(got, want), "The axis differs from default - mean(roles).")
    layered = _axis_vectors(shape=(3, 16), seed=2)
    layered_hint = (
        "It must work for [num_layers, d_model] vectors too: stack the roles and average over the roles (dim 0)."
    )
    got_l = _call(fn, "compute_assistant_axis", layered, hint=layered_hint)
    check(
        isinstance(got_l, torch.Tensor) and close(got_l.detach().float(), sol.compute_assistant_axis(layered)),
        layered_hint,
    )
    renamed = {("assistant" if k == DEFAULT_ROLE else k): v for k, v in vectors.items()}
    got_r = _call(
        fn,
        "compute_assistant_axis",
        renamed,
        default_role="assistant",
        hint="Use the default_role argument, not the literal name.",
    )
    check(
        isinstance(got_r, torch.Tensor) and close(got_r.detach().float(), want),
        "Use the default_role argument, not the literal name.",
    )
    passed("compute_assistant_axis")


# characterize_axis ----------------------------------------------------------------------------


def test_characterize_axis(fn) -> None:
    """Scalar projections on the axis, every persona, largest first, fresh index."""
    vectors = _axis_vectors(seed=4)
    axis = sol.compute_assistant_axis(vectors) * 3.7
    got = _call(fn, "characterize_axis", vectors, axis)
    want = sol.characterize_axis(vectors, axis)
    check(isinstance(got, pd.DataFrame), "Return a pandas DataFrame.")
    check({"role", "projection"} <= set(got.columns), "The DataFrame needs the columns role and projection.")
    check(sorted(got["role"]) == sorted(vectors), "Include every persona, the default too, once each.")
    values = dict(zip(got["role"], got["projection"].astype(float)))
    dots = {k: float(v @ axis) for k, v in vectors.items()}
    cosines = {k: float(v @ axis / (v.norm() * axis.norm())) for k, v in vectors.items()}
    ref = dict(zip(want["role"], want["projection"]))

    def same(a: dict, b: dict) -> bool:
        return all(np.isclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in b)

    check(not same(values, dots), "Divide by |axis|: the scalar projection is v · axis / |axis|.")
    check(
        not same(values, cosines),
        "Use the projection v · axis / |axis|, not the cosine: don't divide by |v| (how far along, not how aligned).",
    )
    check(same(values, ref), "The projections differ from v · axis / |axis|.")
    check(
        list(got["projection"]) == sorted(got["projection"], reverse=True),
        "Sort from the largest projection (most assistant-like) to the smallest.",
    )
    check(
        list(got.index) == list(range(len(got))), "Give the sorted table a fresh 0..n-1 index (reset_index(drop=True))."
    )
    passed("characterize_axis")


# axis_separation_by_layer ---------------------------------------------------------------------


def _separation_data():
    g = torch.Generator().manual_seed(0)
    n_layers, d = 5, 16
    axes = torch.randn(n_layers, d, generator=g) * torch.tensor([0.5, 1, 2, 4, 8])[:, None]
    unit = unit_vector(axes)
    shift = torch.tensor([0.0, 0.5, 1.5, 0.8, -0.4])[:, None, None]
    default = torch.randn(n_layers, 9, d, generator=g) + shift * unit[:, None]
    roles = torch.randn(n_layers, 14, d, generator=g) - shift * unit[:, None]
    return axes, default, roles


def test_axis_separation_by_layer(fn) -> None:
    """Per block: AUROC (default above roles) and gap of projections on that block's unit axis."""
    axes, default, roles = _separation_data()
    got = _call(fn, "axis_separation_by_layer", axes, default, roles)
    want = sol.axis_separation_by_layer(axes, default, roles)
    check(isinstance(got, pd.DataFrame), "Return a pandas DataFrame.")
    check({"layer", "auroc", "gap"} <= set(got.columns), "Columns must include layer, auroc and gap.")
    check(len(got) == len(want), "One row per block.")
    got = got.sort_values("layer").reset_index(drop=True)
    a, w = got["auroc"].to_numpy(float), want["auroc"].to_numpy(float)
    gap, want_gap = got["gap"].to_numpy(float), want["gap"].to_numpy(float)
    check(not np.allclose(a, 1 - w, atol=1e-6), "The AUROC is flipped: pass the default projections first.")
    check(not np.allclose(gap, -want_gap, atol=1e-5), "The gap has the wrong sign: default minus roles.")
    norms = axes.norm(dim=-1).numpy()
    check(
        not np.allclose(gap, want_gap * norms, rtol=1e-4),
        "Project on the unit axis (utils.metrics.project divides by |axis|), not a raw dot product.",
    )
    check(np.allclose(a, w, atol=1e-6), "The AUROC differs: project block i's activations on axes[i] (the same block).")
    check(
        np.allclose(gap, want_gap, rtol=1e-4, atol=1e-5),
        "The gap differs: mean default projection minus mean role projection.",
    )
    passed("axis_separation_by_layer")

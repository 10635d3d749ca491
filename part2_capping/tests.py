"""Checks for section 2's exercises. Each compares with `solutions.part2_capping` on tiny models or
small synthetic data (exact and fast), and names the likely mistake when it fails."""

from __future__ import annotations

import functools
from contextlib import contextmanager

import pandas as pd
import plotly.graph_objects as go
import torch

from solutions import part2_capping as sol
from utils.activations import positions_from_mask, run_capturing
from utils.chat import assistant_turn_spans, build_messages, encode, render
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
from utils.hooks import block_output, user_hook_counts
from utils.layers import get_layers, num_layers

OUTPUT0_HINT = (
    "in transformers 5 a decoder block returns a bare tensor [batch, seq, d_model], and output[0] on a tensor "
    "takes batch row 0; read the hidden states with utils.hooks.block_output(output) and return the same "
    "form you received"
)
TINY_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hi! Can you help me plan a picnic?"},
    {"role": "assistant", "content": "Of course. Where and when?"},
    {"role": "user", "content": "Saturday, in the park by the river."},
    {"role": "assistant", "content": "Bring a blanket, water and some shade."},
    {"role": "user", "content": "What food travels well?"},
    {"role": "assistant", "content": "Sandwiches, fruit and cold pasta salad all travel well."},
]


def _single_thread(check_fn):
    """Run a check with one torch thread: tiny models are many times faster without thread overhead,
    especially on a machine whose cores are shared."""

    @functools.wraps(check_fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check_fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


@contextmanager
def _sentinel(module):
    """A do-nothing hook of someone else's on ``module``: it must survive the student's code."""
    handle = module.register_forward_hook(lambda m, i, o: None)
    try:
        yield handle
    finally:
        handle.remove()


def _sentinel_alive(module, handle) -> bool:
    return handle.id in module._forward_hooks


def _counts_without(model, extra: int, module_name: str) -> dict:
    counts = user_hook_counts(model)
    counts[module_name] -= extra
    return counts


@contextmanager
def _failing_generate(model):
    """Make ``model.generate`` raise, to see whether hooks are removed when generation fails."""

    def boom(*args, **kwargs):
        raise RuntimeError("generation failed (simulated by the check)")

    model.generate = boom
    try:
        yield
    finally:
        del model.generate


# --------------------------------------------------------------------------------------------
# Exercise 1


@_single_thread
def test_record_hook_shapes(fn) -> None:
    """Shapes per pass (prompt length, then 1s), exactly the passes of generation, and no hook left."""
    model, tok = tiny()
    layer, prompt, n_new = 1, "Name a colour.", 4
    block = get_layers(model)[layer]
    before = user_hook_counts(model)
    name = f"model.layers.{layer}"
    with _sentinel(block) as sentinel:
        shapes = fn(model, tok, prompt, layer, max_new_tokens=n_new)
        check(
            _sentinel_alive(block, sentinel),
            "A hook that was not yours disappeared from the block: never clear module._forward_hooks wholesale "
            "(transformers and other code register hooks too); remove exactly the handle you registered.",
        )
        check(
            _counts_without(model, 1, name) == before,
            "A hook is still registered after the function returned: keep the handle and call handle.remove() "
            "(in a finally).",
        )
        with _failing_generate(model):
            try:
                fn(model, tok, prompt, layer, max_new_tokens=n_new)
            except RuntimeError:
                pass
        check(
            _counts_without(model, 1, name) == before,
            "When generation raises, your hook stays registered: remove it in a finally block (try/finally).",
        )
    check(isinstance(shapes, list) and len(shapes) > 0, "Return the list of recorded shapes (one per forward pass).")
    shapes = [tuple(s) for s in shapes]
    d = model.config.hidden_size
    check(len(shapes[0]) == 3, f"The recorded shapes have {len(shapes[0])} dimensions, not 3: {OUTPUT0_HINT}.")
    templated = len(encode(render(build_messages(prompt), tok, add_generation_prompt=True), tok)["input_ids"])
    raw = len(encode(prompt, tok)["input_ids"])
    check(
        shapes[0][1] != raw or raw == templated,
        "The first pass saw only the raw prompt: apply the chat template "
        "(render(build_messages(prompt), tokenizer, add_generation_prompt=True)).",
    )
    check(
        shapes[0] == (1, templated, d),
        f"The first pass (prefill) should have shape (1, {templated}, {d}), got {shapes[0]}.",
    )
    check(
        all(s[1] == 1 for s in shapes[1:]),
        "Later passes see the whole sequence again: generation should use the KV cache (use_cache=True, the default), "
        "so each decode step processes only the newest token.",
    )
    check(
        len(shapes) == n_new,
        f"Expected {n_new} forward passes (one per new token; pass min_new_tokens=max_new_tokens), got {len(shapes)}.",
    )
    passed("record_hook_shapes")


# --------------------------------------------------------------------------------------------
# Exercise 2


def _block_hidden(model, tok, messages, layers):
    full, spans = assistant_turn_spans(messages, tok)
    batch = encode(full, tok, return_tensors="pt")
    with torch.inference_mode():
        store = run_capturing(model, batch["input_ids"], batch["attention_mask"], layers)
    return {layer: store[layer][0].float() for layer in layers}, spans


@_single_thread
def test_ConversationAnalyzer(cls) -> None:
    """Per-turn means over each assistant turn's own tokens, one forward pass, unit-axis projections."""
    model, tok = tiny()
    layer = 2
    g = torch.Generator().manual_seed(3)
    axis = torch.randn(model.config.hidden_size, generator=g) * 5.0
    want = sol.ConversationAnalyzer(model, tok, layer, axis)
    want_acts = want.extract_turn_activations(TINY_CONVERSATION)
    hidden, spans = _block_hidden(model, tok, TINY_CONVERSATION, [layer - 1, layer])
    before = user_hook_counts(model)

    calls = []
    counter = get_layers(model)[0].register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        got = cls(model, tok, layer, axis)
        acts = got.extract_turn_activations(TINY_CONVERSATION)
    finally:
        counter.remove()
    check(
        user_hook_counts(model) == before,
        "A hook is still registered after extract_turn_activations: remove it in a finally.",
    )
    check_hooks_removed_after_error(
        model,
        lambda: got.extract_turn_activations(TINY_CONVERSATION),
        "When the forward pass raises, your hook stays registered: remove it in a finally block "
        "(register the hook, run the model inside try, and call handle.remove() in finally).",
    )
    check(
        isinstance(acts, (list, tuple)) and len(acts) == len(spans),
        f"Return one mean vector per assistant turn ({len(spans)}), got "
        f"{len(acts) if isinstance(acts, (list, tuple)) else type(acts).__name__}.",
    )
    acts = [torch.as_tensor(a).detach().float().cpu() for a in acts]
    check(
        all(a.shape == want_acts[0].shape for a in acts),
        f"Each turn's mean must be a [d_model] vector, got shapes {[tuple(a.shape) for a in acts]} "
        f"(mean over the turn's tokens; {OUTPUT0_HINT}).",
    )
    check(
        len(calls) == 1,
        f"extract_turn_activations ran {len(calls)} forward passes: run one forward pass over the whole "
        "conversation and take every turn's span from it.",
    )
    if not all(close(a, w, rtol=1e-4, atol=1e-4) for a, w in zip(acts, want_acts)):
        h = hidden[layer]
        prev_ends = [0] + [end for _, end in spans[:-1]]
        with_user = [h[p:e].mean(0) for p, (_, e) in zip(prev_ends, spans)]
        check(
            not all(close(a, w, atol=1e-4) for a, w in zip(acts, with_user)),
            "Your per-turn means include user tokens (and template tokens) before the turn: average over the "
            "assistant turn's own span (start, end) from assistant_turn_spans.",
        )
        check(
            not all(close(a, h[:e].mean(0), atol=1e-4) for a, (_, e) in zip(acts, spans)),
            "Your per-turn means start at the beginning of the conversation, so they include user tokens: average "
            "over the turn's own span (start, end).",
        )
        check(
            not all(close(a, h[e - 1], atol=1e-4) for a, (_, e) in zip(acts, spans)),
            "You took the turn's last token: take the mean over all of the turn's tokens.",
        )
        check(
            not all(close(a, h[s : e + 1].mean(0), atol=1e-4) for a, (s, e) in zip(acts, spans)),
            "Your spans include the end-of-turn token: the end of a span is exclusive (h[start:end]).",
        )
        prev = hidden[layer - 1]
        check(
            not all(close(a, prev[s:e].mean(0), atol=1e-4) for a, (s, e) in zip(acts, spans)),
            "Off by one layer: read the output of block `layer` itself (with output_hidden_states, that is "
            "hidden_states[layer + 1], for every block but the last).",
        )
        check(
            False,
            "The per-turn means differ from the reference: hook block `layer`, run the full conversation "
            "once, and average each assistant span of the output.",
        )

    proj = got.project_onto_axis(TINY_CONVERSATION)
    want_proj = want.project_onto_axis(TINY_CONVERSATION)
    check(
        isinstance(proj, (list, tuple)) and len(proj) == len(want_proj), "project_onto_axis returns one float per turn."
    )
    proj_t = torch.tensor([float(p) for p in proj])
    want_t = torch.tensor(want_proj)
    raw_dot = torch.stack(want_acts) @ axis
    cosine = torch.nn.functional.cosine_similarity(torch.stack(want_acts), axis[None], dim=-1)
    check(
        not torch.allclose(proj_t, raw_dot, atol=1e-3), "Normalise the axis: the projection is a . v / |v|, not a . v."
    )
    check(
        not torch.allclose(proj_t, cosine, atol=1e-4),
        "Divide by |v| only: the projection a . v / |v| keeps |a| (it is not the cosine).",
    )
    check(torch.allclose(proj_t, want_t, atol=1e-3), f"Expected projections {want_proj}, got {proj_t.tolist()}.")
    check(
        user_hook_counts(model) == before, "A hook is still registered after project_onto_axis: remove it in a finally."
    )
    passed("ConversationAnalyzer")


# --------------------------------------------------------------------------------------------
# Exercise 3

DRIFT_TEMPLATE = "H[{history}] U[{user}] R[{reply}]"
DRIFT_CONVERSATIONS = [
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "u1 first question"},
        {"role": "assistant", "content": "a1 first answer"},
        {"role": "user", "content": "u2 mentions {reply} in braces"},
        {"role": "assistant", "content": "a2 second answer"},
        {"role": "user", "content": "u3 third question"},
        {"role": "assistant", "content": "a3 third answer"},
    ],
    [
        {"role": "user", "content": "v1 hello"},
        {"role": "assistant", "content": "b1 hi"},
        {"role": "user", "content": "v2 are you sure?"},
        {"role": "assistant", "content": "b2 NONE"},
    ],
]


def _drift_rule(prompt, scale):
    if "b2 NONE" in prompt.split("R[", 1)[-1]:
        return None
    return float(len(prompt) % 11)


def _recording_judge():
    calls = []

    def rule(prompt, scale):
        return _drift_rule(prompt, scale)

    judge = rule_judge(rule)
    original = judge.backend.score

    def score(prompts, scale):
        calls.append((list(prompts), scale))
        return original(prompts, scale)

    judge.backend.score = score
    return judge, calls


@_single_thread
def test_rate_drift(fn) -> None:
    """One judge call on DRIFT_SCALE, templates filled with the right history/user/reply, scores regrouped."""
    judge, calls = _recording_judge()
    got = fn(DRIFT_CONVERSATIONS, judge, DRIFT_TEMPLATE, context_turns=1)
    ref_judge, ref_calls = _recording_judge()
    want = sol.rate_drift(DRIFT_CONVERSATIONS, ref_judge, DRIFT_TEMPLATE, context_turns=1)
    want_prompts = ref_calls[0][0]
    check(len(calls) > 0, "Call the judge: judge.score(prompts, DRIFT_SCALE).")
    check(
        len(calls) == 1,
        f"The judge was called {len(calls)} times: collect every prompt of every conversation and score them in one "
        "judge.score call (the local judge batches them; an API judge sends them concurrently).",
    )
    sent, scale = calls[0]
    check(scale == sol.DRIFT_SCALE, f"Score on DRIFT_SCALE (0-10), not {scale}.")
    check(
        isinstance(got, list) and len(got) == len(want) and all(isinstance(g, list) for g in got),
        "Return one list of scores per conversation.",
    )
    check(
        [len(g) for g in got] == [len(w) for w in want],
        f"Each conversation needs one score per assistant turn: expected lengths {[len(w) for w in want]}, "
        f"got {[len(g) for g in got]}.",
    )
    if sent != want_prompts:
        check(
            len(sent) == len(want_prompts),
            f"Expected {len(want_prompts)} judge prompts (one per assistant turn), got {len(sent)}.",
        )
        check(
            not any("mentions" in s and "mentions {reply}" not in s for s in sent),
            "Fill the template with one str.format call: chained .replace() also substitutes text inside a message "
            "(here a user message that contains '{reply}').",
        )
        for s, w in zip(sent, want_prompts):
            user_w = w.split("U[", 1)[1].split("] R[", 1)[0]
            reply_w = w.split("R[", 1)[1][:-1]
            check(
                not (s.count(reply_w) > 1 or f"Assistant: {reply_w}" in s),
                "The history contains the reply being rated: "
                "the history holds only the exchanges before the user message that the turn answers.",
            )
            check(f"U[{reply_w}]" not in s, "The user message and the reply are swapped in the template.")
            check(
                s.count(user_w) == 1 or user_w.startswith("v1") or user_w.startswith("u1"),
                "The user message being answered also appears in the history: the history ends before it.",
            )
        check(
            not any("Be kind." in s for s in sent),
            "The system prompt is not an exchange: leave it out of the history.",
        )
        check(
            False,
            f"Judge prompts differ from the expected ones, e.g. {want_prompts[2]!r} vs {sent[2]!r}: the history "
            "is format_exchanges of the last context_turns user/assistant pairs before the user message.",
        )
    judge2, calls2 = _recording_judge()
    ref2, ref_calls2 = _recording_judge()
    fn(DRIFT_CONVERSATIONS, judge2, DRIFT_TEMPLATE, context_turns=2)
    sol.rate_drift(DRIFT_CONVERSATIONS, ref2, DRIFT_TEMPLATE, context_turns=2)
    check(
        calls2 and calls2[0][0] == ref_calls2[0][0],
        "With context_turns=2 the history should hold the last two exchanges before the user message: use context_turns.",
    )
    check(got[1][1] is None, "When the judge gives None (too little probability on numbers, a refusal), keep None.")
    check(got == want, f"Expected scores {want}, got {got}: return the judge's scores in turn order.")
    passed("rate_drift")


# --------------------------------------------------------------------------------------------
# Exercise 4


def _drift_df() -> pd.DataFrame:
    rows = []
    specs = [("spiral", "drift", 3.0, -0.8), ("debugging", "control", 2.0, 0.1), ("roleplay", "drift", 1.0, -0.3)]
    for name, category, base, slope in specs:
        for turn in range(1, 5):
            rows.append(
                dict(
                    name=name,
                    category=category,
                    turn=turn,
                    projection=base + slope * turn + 0.01 * len(name),
                    drift_score=min(10.0, max(0.0, 2.0 - 4 * slope * turn + 0.1 * len(name))),
                    reply=f"{name} reply {turn}",
                )
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter


def _same(values, target) -> bool:
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return len(values) == len(target) and all(abs(a - b) < 1e-9 for a, b in zip(values, target))


@_single_thread
def test_plot_drift(fn) -> None:
    """One line per transcript in two panels (projection, score), x = turn, control dashed."""
    df = _drift_df()
    fig = fn(df)
    check(isinstance(fig, go.Figure), f"Return a plotly go.Figure, got {type(fig).__name__}.")
    traces = [t for t in fig.data if getattr(t, "y", None) is not None]
    n = len(df)
    check(
        not any(len(t.y) == n for t in traces),
        "One trace holds every transcript's values: draw one line per transcript (group the rows by name).",
    )
    for name, rows in df.groupby("name"):
        rows = rows.sort_values("turn")
        proj, score, turns = rows["projection"].tolist(), rows["drift_score"].tolist(), rows["turn"].tolist()
        p_traces = [t for t in traces if _same(t.y, proj)]
        s_traces = [t for t in traces if _same(t.y, score)]
        unsorted = [t for t in traces if len(t.y) == len(proj) and sorted(map(float, t.y)) == sorted(proj)]
        check(p_traces or not unsorted, "Sort each transcript's rows by turn before drawing its line.")
        check(p_traces, f"No line shows the projections of {name!r} per turn.")
        check(s_traces, f"No line shows the autorater's scores of {name!r} per turn: plot drift_score too.")
        p, s = p_traces[0], s_traces[0]
        check(
            _same(p.x, turns) and _same(s.x, turns),
            "The x values must be the turn column (1, 2, ...), not positions in the DataFrame.",
        )
        check(
            (p.xaxis or "x", p.yaxis or "y") != (s.xaxis or "x", s.yaxis or "y"),
            "Projections and drift scores share one panel: their scales are unrelated, put them in two panels "
            "(make_subplots(rows=1, cols=2)).",
        )
        check(p.name == name and s.name == name, f"Name each line after its transcript ({name!r}).")
        dashes = [(t.line.dash or "solid") for t in (p, s)]
        if rows["category"].iloc[0] == "control":
            check(all(d != "solid" for d in dashes), "Draw control conversations with dashed lines (line_dash='dash').")
        else:
            check(all(d == "solid" for d in dashes), "Draw drift conversations with solid lines, control ones dashed.")
    passed("plot_drift")


# --------------------------------------------------------------------------------------------
# Exercise 5


def _input_of(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _observe_steering(model, layer):
    """Record, per forward pass, the block's raw output (and a clone) and the next block's input."""
    blocks = get_layers(model)
    record = {"raw": [], "raw_clone": [], "next_in": []}

    def raw_hook(module, inputs, output):
        hidden = block_output(output)
        record["raw"].append(hidden)
        record["raw_clone"].append(hidden.detach().clone())

    def next_hook(module, args, kwargs):
        record["next_in"].append(_input_of(args, kwargs).detach().clone())

    handles = [
        blocks[layer].register_forward_hook(raw_hook),
        blocks[layer + 1].register_forward_pre_hook(next_hook, with_kwargs=True),
    ]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


@_single_thread
def test_generate_with_steering(fn) -> None:
    """alpha * unit vector added at every position of every pass; new tensor; hook removed; reply only."""
    model, tok = tiny()
    layer, alpha = 1, 3.0
    g = torch.Generator().manual_seed(5)
    vector = torch.randn(model.config.hidden_size, generator=g) * 7.0
    prompt, system = "Tell me about yourself.", "You are a cheerful assistant."
    kwargs = dict(system_prompt=system, max_new_tokens=4, temperature=0.0)
    before = user_hook_counts(model)
    try:
        with _observe_steering(model, layer) as seen:
            reply = fn(model, tok, prompt, vector, layer, alpha, **kwargs)
    except CheckFailed:
        raise
    except Exception as err:
        check(False, f"Generation failed ({type(err).__name__}: {err}): {OUTPUT0_HINT}.")
    check(
        user_hook_counts(model) == before, "A hook is still registered after generation: remove it in a finally block."
    )
    passes = len(seen["next_in"])
    check(
        passes > 0 and len(seen["raw"]) == passes,
        "Generate with the model (generate_replies) while the hook is registered.",
    )
    check(
        all(r.shape == n.shape for r, n in zip(seen["raw_clone"], seen["next_in"])),
        f"The hook changed the shape of the block's output: {OUTPUT0_HINT}.",
    )
    check(
        all(torch.equal(r, c) for r, c in zip(seen["raw"], seen["raw_clone"])),
        "The hook edits the block's output in place (+=, add_, index assignment): other hooks and caches hold that "
        "tensor; build and return a new one (hidden + alpha * unit).",
    )
    unit, raw_v = unit_vector(vector), vector.float()
    diffs = [n - c for c, n in zip(seen["raw_clone"], seen["next_in"])]
    check(
        not all(d.abs().max() < 1e-6 for d in diffs),
        "The block's output is unchanged: return the steered tensor from the hook.",
    )
    check(
        not all(torch.allclose(d, alpha * raw_v.expand_as(d), atol=1e-3) for d in diffs),
        "You added alpha times the raw vector: normalise the steering vector to unit length first.",
    )
    prefill = diffs[0]
    if prefill.shape[1] > 1:
        check(
            torch.allclose(prefill[:, :-1], alpha * unit.expand_as(prefill[:, :-1]), atol=1e-4)
            or not torch.allclose(prefill[:, -1], alpha * unit.expand_as(prefill[:, -1]), atol=1e-4),
            "Only the last position is steered during the prefill: add alpha * unit at every position.",
        )
    check(
        all(torch.allclose(d, alpha * unit.expand_as(d), atol=1e-4) for d in diffs),
        "The change to the block's output is not alpha * v/|v| at every position of every forward pass "
        "(prefill and decode steps).",
    )
    check(isinstance(reply, str), f"Return the reply as a string, got {type(reply).__name__}.")
    want = sol.generate_with_steering(model, tok, prompt, vector, layer, alpha, **kwargs)
    no_system = sol.generate_with_steering(model, tok, prompt, vector, layer, alpha, max_new_tokens=4, temperature=0.0)
    check(prompt not in reply, "Return only the new reply, not the prompt (decode only the generated tokens).")
    check(
        reply.strip() != no_system.strip() or want.strip() == no_system.strip(),
        "The system prompt was ignored: pass it as a system message (build_messages(prompt, system_prompt=...)).",
    )
    check(
        reply.strip() == want.strip(),
        f"Expected the greedy reply {want!r}, got {reply!r}: pass temperature (0 is greedy) and max_new_tokens to "
        "generate_replies.",
    )
    bad = torch.randn(model.config.hidden_size + 1, generator=g)
    try:
        fn(model, tok, prompt, bad, layer, alpha, **kwargs)
    except Exception:
        pass
    check(
        user_hook_counts(model) == before,
        "After a failed generation (here: a vector of the wrong size) the hook stays registered: remove it in a finally block.",
    )
    passed("generate_with_steering")


# --------------------------------------------------------------------------------------------
# Exercise 6a


def _threshold_data() -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {
        3: torch.randn(200, generator=g) * 2 + 1,
        5: torch.randn(150, generator=g) * 0.5 - 3,
        9: torch.rand(101, generator=g) * 10 + 20,
    }


@_single_thread
def test_compute_capping_thresholds(fn) -> None:
    """Per-layer percentile (0-100 scale, linear interpolation) of the default projections."""
    data = _threshold_data()
    for percentile in (25.0, 10.0, 50.0):
        got = fn(data, percentile)
        want = sol.compute_capping_thresholds(data, percentile)
        check(
            isinstance(got, dict) and set(got) == set(data),
            "Return a dict: block index -> threshold, one per block given.",
        )
        values = {k: float(v) for k, v in got.items()}
        if all(abs(values[k] - want[k]) < 1e-4 for k in data):
            continue
        pooled = float(torch.quantile(torch.cat(list(data.values())), percentile / 100))
        check(
            not all(abs(values[k] - pooled) < 1e-4 for k in data),
            "Every block got the same threshold: compute the percentile per block, from that block's projections.",
        )
        check(
            not all(abs(values[k] - float(torch.quantile(data[k], 1 - percentile / 100))) < 1e-4 for k in data),
            "You took the upper tail: the floor is the given (low) percentile, not 100 - percentile.",
        )
        check(
            not all(abs(values[k] - float(torch.quantile(data[k], percentile / 10000))) < 1e-4 for k in data),
            "The percentile is on a 0-100 scale: torch.quantile takes q = percentile / 100 (numpy.percentile takes "
            "the percentile itself).",
        )
        check(
            not all(abs(values[k] - float(data[k].mean())) < 1e-4 for k in data),
            "Use the percentile of the projections, not their mean.",
        )
        check(False, f"Expected {want} at percentile {percentile}, got {values} (use linear interpolation).")
    passed("compute_capping_thresholds")


# --------------------------------------------------------------------------------------------
# Exercise 6b

CAP_PROMPTS = ["Tell me a story about a lighthouse keeper.", "Hi!"]


def _cap_batch(tok):
    texts = [render(build_messages(p), tok, add_generation_prompt=True) for p in CAP_PROMPTS]
    tok.padding_side = "left"
    return encode(texts, tok, return_tensors="pt", padding=True)


def _forward(model, batch):
    with torch.inference_mode():
        return model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=positions_from_mask(batch["attention_mask"]),
            use_cache=False,
        ).logits


def _cap_setup():
    model, tok = tiny()
    layers = [1, 2]
    g = torch.Generator().manual_seed(11)
    axis = torch.randn(num_layers(model), model.config.hidden_size, generator=g) * 4.0
    batch = _cap_batch(tok)
    with torch.inference_mode():
        store = run_capturing(model, batch["input_ids"], batch["attention_mask"], layers)
    thresholds = {layer: float((store[layer].float() @ unit_vector(axis[layer])).median()) for layer in layers}
    return model, tok, layers, axis, thresholds, batch


@_single_thread
def test_ActivationCapper(cls) -> None:
    """A floor at every position of every listed block, untouched above it, hooks removed on exit and on errors."""
    model, tok, layers, axis, thresholds, batch = _cap_setup()
    blocks = get_layers(model)
    before = user_hook_counts(model)
    raw, raw_clone, post = {}, {}, {}

    def make_raw(layer):
        def hook(module, inputs, output):
            raw[layer] = block_output(output)
            raw_clone[layer] = block_output(output).detach().clone()

        return hook

    def make_post(layer):
        def hook(module, inputs, output):
            post[layer] = output

        return hook

    pre_handles = [blocks[layer].register_forward_hook(make_raw(layer)) for layer in layers]
    post_handles = []
    try:
        capper = cls(model, axis, thresholds, layers)
        try:
            with capper as entered:
                post_handles = [blocks[layer].register_forward_hook(make_post(layer)) for layer in layers]
                _forward(model, batch)
        except CheckFailed:
            raise
        except Exception as err:
            check(False, f"The forward pass failed under the capper ({type(err).__name__}: {err}): {OUTPUT0_HINT}.")
    finally:
        for handle in pre_handles + post_handles:
            handle.remove()
    check(
        user_hook_counts(model) == before,
        "Hooks are still registered after the with block: __exit__ must remove every handle.",
    )
    check(entered is capper, "__enter__ should return self (so `with ActivationCapper(...) as capper:` works).")
    for layer in layers:
        out = post[layer]
        check(
            isinstance(out, torch.Tensor),
            f"The block returned a tensor but your hook returned a {type(out).__name__}: {OUTPUT0_HINT}.",
        )
        check(
            out.shape == raw_clone[layer].shape, f"Your hook changed the shape of the block's output: {OUTPUT0_HINT}."
        )
        check(
            torch.equal(raw[layer], raw_clone[layer]),
            "The hook edits the block's output in place: other hooks and caches hold that tensor; return a new one.",
        )
        unit, tau = unit_vector(axis[layer]), thresholds[layer]
        h0, h1 = raw_clone[layer].float(), out.float()
        p0, p1 = h0 @ unit, h1 @ unit
        above, below = p0 >= tau, p0 < tau
        check(bool(below.any()) and bool(above.any()), "(check set-up) expected positions on both sides of the floor.")
        v_raw = axis[layer].float()
        raw_capped = h0 + v_raw * (tau - h0 @ v_raw).clamp(min=0)[..., None]
        check(
            not torch.allclose(h1, raw_capped, atol=1e-4),
            "Normalise the axis: with v/|v| the projection <h, v> is in the units of tau; the raw axis is not unit length.",
        )
        check(
            not torch.allclose(p1, torch.full_like(p1, tau), atol=1e-3),
            "Every projection was set to tau: leave activations above the floor untouched (only raise those below it).",
        )
        check(
            not (p1 <= tau + 1e-3).all(),
            "Projections were pushed down to the threshold: capping is a floor (raise what is below tau), not a ceiling.",
        )
        check(
            torch.allclose(h1[above], h0[above], atol=1e-5),
            "Activations whose projection was already above the floor changed: leave them untouched "
            "(the correction is max(tau - <h, v>, 0), zero above the floor).",
        )
        last_only = (p1[:, -1] >= tau - 1e-3).all() and not (p1[:, :-1][below[:, :-1]] >= tau - 1e-3).all()
        check(not last_only, "Only the last position was capped: apply the floor at every position.")
        check(
            (p1 >= tau - 1e-3).all(),
            f"After capping, block {layer} still has projections below tau (min {float(p1.min()):.3f} < {tau:.3f}): "
            "raise every position's projection on the unit axis to at least tau.",
        )
        move = h1 - h0
        along = (move @ unit)[..., None] * unit
        check(
            torch.allclose(move, along, atol=1e-4),
            "Move activations only along the axis: h + v * max(tau - <h, v>, 0).",
        )

    # The same form in and out: a block that returns a tuple.
    forms = []

    def to_tuple(module, inputs, output):
        return (block_output(output),)

    def back_to_tensor(module, inputs, output):
        forms.append(type(output))
        return block_output(output)

    layer = layers[0]
    first = blocks[layer].register_forward_hook(to_tuple)
    last = None
    try:
        with cls(model, axis, thresholds, layers):
            last = blocks[layer].register_forward_hook(back_to_tensor)
            _forward(model, batch)
    except CheckFailed:
        raise
    except Exception as err:
        check(
            False, f"Capping failed on a block that returns a tuple ({type(err).__name__}: {err}): handle both forms."
        )
    finally:
        first.remove()
        if last is not None:
            last.remove()
    check(
        forms and forms[0] is tuple,
        "Given a tuple output, return a tuple (the capped hidden states first, the rest unchanged).",
    )

    # Exceptions inside the with block: hooks removed, exception not swallowed, others' hooks kept.
    with _sentinel(blocks[layers[0]]) as sentinel:
        swallowed = True
        try:
            with cls(model, axis, thresholds, layers):
                raise KeyError("raised inside the with block by the check")
        except KeyError:
            swallowed = False
        check(not swallowed, "__exit__ swallowed the exception raised inside the with block: return False (or None).")
        check(
            _sentinel_alive(blocks[layers[0]], sentinel),
            "A hook that was not yours disappeared: never clear module._forward_hooks wholesale; remove your handles.",
        )
        check(
            _counts_without(model, 1, f"model.layers.{layers[0]}") == before,
            "After an exception inside the with block, hooks are still registered: remove them in __exit__ whatever happened.",
        )
    passed("ActivationCapper")


# --------------------------------------------------------------------------------------------
# Exercise 7

EXPERIMENT_TRANSCRIPTS = [
    dict(name="spiral", category="drift", system_prompt="", user_turns=["I feel chosen.", "Say that I am.", "Now!"]),
    dict(name="bugfix", category="control", system_prompt="", user_turns=["Fix my loop.", "Thanks, and tests?", "Ok."]),
]
EXPERIMENT_COLUMNS = {"name", "category", "condition", "turn", "projection", "drift_score", "reply"}


def _experiment_parts():
    model, tok = tiny()
    layers = [1, 2]
    g = torch.Generator().manual_seed(13)
    axis = torch.randn(num_layers(model), model.config.hidden_size, generator=g) * 4.0
    batch = _cap_batch(tok)
    with torch.inference_mode():
        store = run_capturing(model, batch["input_ids"], batch["attention_mask"], layers)
    thresholds = {
        layer: float(torch.quantile((store[layer].float() @ unit_vector(axis[layer])).flatten(), 0.9))
        for layer in layers
    }
    capper = sol.ActivationCapper(model, axis, thresholds, layers)
    analyzer = sol.ConversationAnalyzer(model, tok, 2, axis[2])
    return model, tok, capper, analyzer


def _watching_judge(model, baseline):
    state = {"capped_calls": 0}

    def rule(prompt, scale):
        if user_hook_counts(model) != baseline:
            state["capped_calls"] += 1
        return float(sum(map(ord, prompt)) % 11)

    return rule_judge(rule), state


@_single_thread
def test_run_capping_experiment(fn) -> None:
    """Both runs replayed (capped inside the capper), read as they ran, judged outside the capper."""
    model, tok, capper, analyzer = _experiment_parts()
    kwargs = dict(n_turns=2, max_new_tokens=4, batch_size=4)
    before = user_hook_counts(model)
    ref_judge, _ = _watching_judge(model, before)
    want = sol.run_capping_experiment(model, tok, EXPERIMENT_TRANSCRIPTS, capper, analyzer, ref_judge, **kwargs)
    judge, state = _watching_judge(model, before)
    got = fn(model, tok, EXPERIMENT_TRANSCRIPTS, capper, analyzer, judge, **kwargs)
    check(user_hook_counts(model) == before, "Hooks are still registered after the experiment: use `with capper:`.")
    check(isinstance(got, pd.DataFrame), f"Return a pandas DataFrame, got {type(got).__name__}.")
    check(EXPERIMENT_COLUMNS <= set(got.columns), f"The table needs the columns {sorted(EXPERIMENT_COLUMNS)}.")
    check(
        set(got["condition"]) == {"uncapped", "capped"},
        "condition must be 'uncapped' or 'capped', and both must appear.",
    )
    n_rows = len(EXPERIMENT_TRANSCRIPTS) * kwargs["n_turns"]
    check(
        (got["condition"] == "capped").sum() == n_rows and (got["condition"] == "uncapped").sum() == n_rows,
        f"Expected {n_rows} rows per condition (one per transcript and replayed turn): pass n_turns to the replay.",
    )
    check(got["turn"].min() == 1, "Turn numbers start at 1 (drift_table numbers them for you).")

    def part(df, condition, column):
        rows = df[df["condition"] == condition].sort_values(["name", "turn"])
        return rows[column].tolist()

    check(
        part(got, "uncapped", "reply") != part(want, "capped", "reply")
        or part(got, "capped", "reply") != part(want, "uncapped", "reply"),
        "The conditions are swapped: label the run generated inside the capper 'capped'.",
    )
    check(
        part(got, "uncapped", "reply") == part(want, "uncapped", "reply"),
        "The uncapped replies differ from a plain replay: generate the uncapped run outside the capper.",
    )
    check(
        part(got, "capped", "reply") == part(want, "capped", "reply"),
        "The capped replies differ from a capped replay: replay every turn inside `with capper:`, each conversation "
        "continuing from its own capped replies.",
    )
    got_up, want_up = part(got, "uncapped", "projection"), part(want, "uncapped", "projection")
    check(
        torch.allclose(torch.tensor(got_up), torch.tensor(want_up), atol=1e-4),
        "The uncapped projections differ: read the uncapped run with the analyzer and no capper.",
    )
    got_cp, want_cp = part(got, "capped", "projection"), part(want, "capped", "projection")
    if not torch.allclose(torch.tensor(got_cp), torch.tensor(want_cp), atol=1e-4):
        check(
            False,
            "The capped run's projections differ: read them with the capper active (`with capper:` around "
            "analyzer.project_onto_axis), i.e. the activations the model had while writing them.",
        )
    check(
        state["capped_calls"] == 0,
        "The judge scored while the capper was active: a local judge is the same model, so score outside `with capper:`.",
    )
    for condition in ("uncapped", "capped"):
        check(
            part(got, condition, "drift_score") == part(want, condition, "drift_score"),
            f"The {condition} drift scores differ: score each run's own replies with rate_drift.",
        )
    check(
        list(got["condition"].iloc[:n_rows]) == ["uncapped"] * n_rows,
        "Put the uncapped rows first, then the capped ones (pd.concat in that order).",
    )
    uncapped_given = sol.replay_conversations(model, tok, EXPERIMENT_TRANSCRIPTS, **kwargs)
    for conv in uncapped_given:
        for m in conv:
            if m["role"] == "assistant":
                m["content"] = "given reply " + m["content"]
    judge3, _ = _watching_judge(model, before)
    got3 = fn(model, tok, EXPERIMENT_TRANSCRIPTS, capper, analyzer, judge3, uncapped=uncapped_given, **kwargs)
    check(
        all(r.startswith("given reply") for r in got3[got3["condition"] == "uncapped"]["reply"]),
        "When `uncapped` conversations are given, use them instead of replaying the uncapped run again.",
    )
    passed("run_capping_experiment")

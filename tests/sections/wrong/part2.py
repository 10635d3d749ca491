"""Section 2: wrong implementations students write, each rejected by its check with a named mistake.

`WRONG` maps each exercise to (wrong implementation, phrase its check's message must contain);
tests/sections/test_wrong_implementations.py runs every entry of every section."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from part2_capping.conversations import format_exchanges, replay_conversations
from solutions import part2_capping as sol
from utils.chat import assistant_turn_spans, build_messages, encode, render
from utils.generation import generate_replies
from utils.hooks import block_output
from utils.judge import LIKERT_1_5
from utils.layers import get_layers

SECTION = "part2_capping"


# record_hook_shapes
def _record(
    model,
    tok,
    prompt,
    layer,
    max_new_tokens=5,
    remove=True,
    use_finally=True,
    use_cache=True,
    first_element=False,
    template=True,
    clear_all=False,
):
    shapes = []

    def hook(module, inputs, output):
        shapes.append(tuple((output[0] if first_element else block_output(output)).shape))

    block = get_layers(model)[layer]
    handle = block.register_forward_hook(hook)
    text = render(build_messages(prompt), tok, add_generation_prompt=True) if template else prompt

    def run():
        inputs = encode(text, tok, return_tensors="pt")
        model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=tok.pad_token_id,
        )

    def cleanup():
        if clear_all:
            block._forward_hooks.clear()
        elif remove:
            handle.remove()

    if use_finally:
        try:
            run()
        finally:
            cleanup()
    else:
        run()
        cleanup()
    return shapes


def hook_never_removed(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, remove=False)


def removed_without_finally(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, use_finally=False)


def without_kv_cache(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, use_cache=False)


def output_first_element(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, first_element=True)


def raw_prompt_without_template(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, template=False)


def clears_hooks_wholesale(model, tok, prompt, layer, max_new_tokens=5):
    return _record(model, tok, prompt, layer, max_new_tokens, clear_all=True)


# ConversationAnalyzer
def _hidden(analyzer, messages, layer_shift=0):
    full, spans = assistant_turn_spans(messages, analyzer.tokenizer)
    inputs = encode(full, analyzer.tokenizer, return_tensors="pt")
    with torch.inference_mode():
        out = analyzer.model(**inputs, output_hidden_states=True)
    return out.hidden_states[analyzer.layer + 1 + layer_shift][0].float(), spans


class IncludesUserTokens(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        hidden, spans = _hidden(self, messages)
        starts = [0] + [end for _, end in spans[:-1]]
        return [hidden[s:e].mean(0) for s, (_, e) in zip(starts, spans)]


class OnePassPerTurn(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        acts = []
        for k, message in enumerate(messages):
            if message["role"] == "assistant":
                acts.append(super().extract_turn_activations(messages[: k + 1])[-1])
        return acts


class UnnormalisedProjection(sol.ConversationAnalyzer):
    def project_onto_axis(self, messages):
        return [float(a @ self.assistant_axis) for a in self.extract_turn_activations(messages)]


class CosineInsteadOfProjection(sol.ConversationAnalyzer):
    def project_onto_axis(self, messages):
        return [
            float(torch.nn.functional.cosine_similarity(a, self.assistant_axis, dim=0))
            for a in self.extract_turn_activations(messages)
        ]


class LastTokenOnly(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        hidden, spans = _hidden(self, messages)
        return [hidden[e - 1] for _, e in spans]


class SpanEndInclusive(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        hidden, spans = _hidden(self, messages)
        return [hidden[s : e + 1].mean(0) for s, e in spans]


class HiddenStatesOffByOne(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        hidden, spans = _hidden(self, messages, layer_shift=-1)
        return [hidden[s:e].mean(0) for s, e in spans]


class OutputFirstElement(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        full, spans = assistant_turn_spans(messages, self.tokenizer)
        inputs = encode(full, self.tokenizer, return_tensors="pt")
        captured = {}

        def hook(module, inputs_, output):
            captured["hidden"] = output[0]  # a tensor's row 0: [seq, d_model]

        handle = get_layers(self.model)[self.layer].register_forward_hook(hook)
        try:
            with torch.inference_mode():
                self.model(**inputs)
        finally:
            handle.remove()
        hidden = captured["hidden"][0]  # "batch row 0" again: now one position, [d_model]
        return [hidden[s:e].mean(0) for s, e in spans]


class RemovesHookWithoutFinally(sol.ConversationAnalyzer):
    def extract_turn_activations(self, messages):
        full, spans = assistant_turn_spans(messages, self.tokenizer)
        inputs = encode(full, self.tokenizer, return_tensors="pt")
        captured = {}

        def hook(module, inputs_, output):
            captured["hidden"] = block_output(output)[0].detach()

        handle = get_layers(self.model)[self.layer].register_forward_hook(hook)
        with torch.inference_mode():
            self.model(**inputs, use_cache=False, logits_to_keep=1)  # if this raises, the hook stays
        handle.remove()
        hidden = captured["hidden"].float().cpu()
        return [hidden[s : max(e, s + 1)].mean(0) for s, e in spans]


# rate_drift
def _rate(
    conversations,
    judge,
    template=sol.DRIFT_PROMPT,
    context_turns=1,
    one_call=True,
    scale=None,
    history="before_user",
    swap=False,
    flat=False,
    replace=False,
    none_value=None,
    fixed_context=None,
):
    scale = scale or sol.DRIFT_SCALE
    context = fixed_context if fixed_context is not None else context_turns
    groups = []
    for messages in conversations:
        turns = [m for m in messages if m["role"] != "system"]
        prompts = []
        for i, m in enumerate(turns):
            if m["role"] != "assistant":
                continue
            if history == "before_user":
                earlier = turns[: i - 1]
            elif history == "before_reply":
                earlier = turns[:i]
            else:  # the whole conversation
                earlier = turns
            hist = format_exchanges(earlier[max(0, len(earlier) - 2 * context) :])
            user, reply = turns[i - 1]["content"], m["content"]
            if swap:
                user, reply = reply, user
            if replace:
                prompt = template.replace("{history}", hist).replace("{user}", user).replace("{reply}", reply)
            else:
                prompt = template.format(history=hist, user=user, reply=reply)
            prompts.append(prompt)
        groups.append(prompts)
    if one_call:
        flat_scores = judge.score([p for g in groups for p in g], scale)
        result, start = [], 0
        for g in groups:
            result.append(flat_scores[start : start + len(g)])
            start += len(g)
    else:
        result = [judge.score(g, scale) for g in groups]
    if none_value is not None:
        result = [[none_value if s is None else s for s in r] for r in result]
    if flat:
        return [s for r in result for s in r]
    return result


def one_call_per_conversation(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, one_call=False)


def history_includes_reply(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, history="whole")


def history_includes_user_message(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, history="before_reply")


def user_and_reply_swapped(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, swap=True)


def likert_scale(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, scale=LIKERT_1_5)


def flat_list_of_scores(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, flat=True)


def chained_replace(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, replace=True)


def none_as_zero(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, none_value=0.0)


def ignores_context_turns(conversations, judge, template=sol.DRIFT_PROMPT, context_turns=1):
    return _rate(conversations, judge, template, context_turns, fixed_context=1)


# plot_drift
def _plot(df, title="", split=True, scores=True, x_index=False, dashed=True, sort=True, single=False):
    fig = make_subplots(rows=1, cols=2) if split else go.Figure()
    groups = [("all", df)] if single else list(df.groupby("name", sort=False))
    for name, rows in groups:
        if sort:
            rows = rows.sort_values("turn")
        x = list(range(len(rows))) if x_index else rows["turn"]
        dash = "dash" if dashed and rows["category"].iloc[0] == "control" else "solid"
        columns = [(1, "projection")] + ([(2, "drift_score")] if scores else [])
        for col, column in columns:
            trace = go.Scatter(x=x, y=rows[column], name=name, line=dict(dash=dash))
            if split:
                fig.add_trace(trace, row=1, col=col)
            else:
                fig.add_trace(trace)
    return fig


def one_trace_for_all(df, title=""):
    return _plot(df, single=True)


def projections_only(df, title=""):
    return _plot(df, scores=False)


def one_panel_for_both(df, title=""):
    return _plot(df, split=False)


def dataframe_index_as_x(df, title=""):
    return _plot(df, x_index=True)


def control_not_dashed(df, title=""):
    return _plot(df, dashed=False)


def rows_not_sorted(df, title=""):
    return _plot(df, sort=False)


# generate_with_steering
def _steer(
    model,
    tok,
    prompt,
    vector,
    layer,
    alpha,
    system_prompt=None,
    max_new_tokens=200,
    temperature=0.7,
    normalise=True,
    remove=True,
    use_finally=True,
    last_only=False,
    in_place=False,
    first_element=False,
    use_system=True,
    decode_all=False,
):
    v = vector.float() / vector.norm() if normalise else vector.float()

    def hook(module, inputs, output):
        hidden = output[0] if first_element else block_output(output)
        if in_place:
            hidden += alpha * v
            return output
        if last_only:
            steered = hidden.clone()
            steered[:, -1] = steered[:, -1] + alpha * v
        else:
            steered = hidden + alpha * v
        return steered if isinstance(output, torch.Tensor) else (steered, *output[1:])

    handle = get_layers(model)[layer].register_forward_hook(hook)
    messages = build_messages(prompt, system_prompt=system_prompt if use_system else None)

    def run():
        if decode_all:
            ids = encode(render(messages, tok, add_generation_prompt=True), tok, return_tensors="pt")
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            return tok.decode(out[0], skip_special_tokens=True)
        return generate_replies(model, tok, [messages], max_new_tokens=max_new_tokens, temperature=temperature)[0]

    if not use_finally:
        reply = run()
        handle.remove()
        return reply
    try:
        return run()
    finally:
        if remove:
            handle.remove()


def steering_unnormalised(*args, **kwargs):
    return _steer(*args, **kwargs, normalise=False)


def steering_hook_never_removed(*args, **kwargs):
    return _steer(*args, **kwargs, remove=False)


def steering_removed_without_finally(*args, **kwargs):
    return _steer(*args, **kwargs, use_finally=False)


def steering_last_position_only(*args, **kwargs):
    return _steer(*args, **kwargs, last_only=True)


def steering_in_place(*args, **kwargs):
    return _steer(*args, **kwargs, in_place=True)


def steering_output_first_element(*args, **kwargs):
    return _steer(*args, **kwargs, first_element=True)


def steering_ignores_system_prompt(*args, **kwargs):
    return _steer(*args, **kwargs, use_system=False)


def steering_returns_prompt_too(*args, **kwargs):
    return _steer(*args, **kwargs, decode_all=True)


# compute_capping_thresholds
def percentile_as_fraction(projections, percentile):
    return {k: float(torch.quantile(v.float(), percentile / 10000)) for k, v in projections.items()}


def upper_tail(projections, percentile):
    return {k: float(torch.quantile(v.float(), 1 - percentile / 100)) for k, v in projections.items()}


def pooled_over_layers(projections, percentile):
    tau = float(torch.quantile(torch.cat([v.float() for v in projections.values()]), percentile / 100))
    return {k: tau for k in projections}


def mean_not_percentile(projections, percentile):
    return {k: float(v.float().mean()) for k, v in projections.items()}


# ActivationCapper
def _cap_hook(self, layer, mode):
    vector = self.axis_vectors[layer].detach().float()
    unit = vector if mode == "raw" else vector / vector.norm()
    tau = float(self.thresholds[layer])

    def hook(module, inputs, output):
        hidden = output[0] if mode == "first_element" else block_output(output)
        proj = hidden.float() @ unit
        if mode == "ceiling":
            delta = (tau - proj).clamp(max=0)
        elif mode == "set_all":
            delta = tau - proj
        else:
            delta = (tau - proj).clamp(min=0)
        if mode == "last_only":
            delta = torch.zeros_like(delta)
            delta[:, -1] = (tau - proj[:, -1]).clamp(min=0)
        if mode == "in_place":
            hidden += delta[..., None] * unit
            return output
        capped = hidden + (delta[..., None] * unit).to(hidden.dtype)
        if mode == "tensor_always":
            return capped
        return capped if isinstance(output, torch.Tensor) else (capped, *output[1:])

    return hook


def _capper_with(mode):
    class Capper(sol.ActivationCapper):
        def _make_hook(self, layer):
            return _cap_hook(self, layer, mode)

    Capper.__name__ = f"Capper_{mode}"
    return Capper


CeilingCapper = _capper_with("ceiling")
SetsEveryProjectionToTau = _capper_with("set_all")
UnnormalisedAxisCapper = _capper_with("raw")
LastPositionOnlyCapper = _capper_with("last_only")
InPlaceCapper = _capper_with("in_place")
OutputFirstElementCapper = _capper_with("first_element")
TupleInTensorOutCapper = _capper_with("tensor_always")


class NeverRemovesHooks(sol.ActivationCapper):
    def __exit__(self, exc_type, exc, tb):
        return False


class RemovesOnlyOnSuccess(sol.ActivationCapper):
    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        return super().__exit__(exc_type, exc, tb)


class SwallowsExceptions(sol.ActivationCapper):
    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        return True


class ClearsHooksWholesale(sol.ActivationCapper):
    def __exit__(self, exc_type, exc, tb):
        for layer in self.layer_indices:
            get_layers(self.model)[layer]._forward_hooks.clear()
        self.handles = []
        return False


# run_capping_experiment
def _experiment(
    model,
    tok,
    transcripts,
    capper,
    analyzer,
    judge,
    n_turns=None,
    max_new_tokens=128,
    batch_size=16,
    uncapped=None,
    read_capped_with_capper=True,
    judge_inside=False,
    both_capped=False,
    turn_offset=0,
    swap=False,
    use_given=True,
    capped_on_uncapped_history=False,
):
    replay = dict(n_turns=n_turns, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if uncapped is None or not use_given:
        if both_capped:
            with capper:
                uncapped = replay_conversations(model, tok, transcripts, **replay)
        else:
            uncapped = replay_conversations(model, tok, transcripts, **replay)
    uncapped_proj = [analyzer.project_onto_axis(c) for c in uncapped]
    with capper:
        if capped_on_uncapped_history:
            capped = []
            for conv in uncapped:
                new = []
                for i, m in enumerate(conv):
                    if m["role"] == "assistant":
                        reply = generate_replies(model, tok, [conv[:i]], max_new_tokens=max_new_tokens)[0]
                        new.append({"role": "assistant", "content": reply.strip() or "..."})
                    else:
                        new.append(m)
                capped.append(new)
        else:
            capped = replay_conversations(model, tok, transcripts, **replay)
        if read_capped_with_capper:
            capped_proj = [analyzer.project_onto_axis(c) for c in capped]
        if judge_inside:
            scores = sol.rate_drift(uncapped + capped, judge)
    if not read_capped_with_capper:
        capped_proj = [analyzer.project_onto_axis(c) for c in capped]
    if not judge_inside:
        scores = sol.rate_drift(uncapped + capped, judge)
    n = len(transcripts)
    labels = ("capped", "uncapped") if swap else ("uncapped", "capped")
    tables = [
        sol.drift_table(transcripts, uncapped, uncapped_proj, scores[:n]).assign(condition=labels[0]),
        sol.drift_table(transcripts, capped, capped_proj, scores[n:]).assign(condition=labels[1]),
    ]
    df = pd.concat(tables, ignore_index=True)
    df["turn"] = df["turn"] + turn_offset
    return df


def capped_read_without_capper(*args, **kwargs):
    return _experiment(*args, **kwargs, read_capped_with_capper=False)


def judges_inside_capper(*args, **kwargs):
    return _experiment(*args, **kwargs, judge_inside=True)


def both_runs_capped(*args, **kwargs):
    return _experiment(*args, **kwargs, both_capped=True)


def turns_from_zero(*args, **kwargs):
    return _experiment(*args, **kwargs, turn_offset=-1)


def conditions_swapped(*args, **kwargs):
    return _experiment(*args, **kwargs, swap=True)


def ignores_given_uncapped(*args, **kwargs):
    return _experiment(*args, **kwargs, use_given=False)


def capped_on_uncapped_history(*args, **kwargs):
    return _experiment(*args, **kwargs, capped_on_uncapped_history=True)


WRONG = {
    "record_hook_shapes": [
        (hook_never_removed, "still registered"),
        (removed_without_finally, "finally"),
        (without_kv_cache, "KV cache"),
        (output_first_element, "batch row 0"),
        (raw_prompt_without_template, "chat template"),
        (clears_hooks_wholesale, "wholesale"),
    ],
    "ConversationAnalyzer": [
        (IncludesUserTokens, "user tokens"),
        (OnePassPerTurn, "one forward pass"),
        (UnnormalisedProjection, "Normalise the axis"),
        (CosineInsteadOfProjection, "not the cosine"),
        (LastTokenOnly, "last token"),
        (SpanEndInclusive, "end-of-turn token"),
        (HiddenStatesOffByOne, "Off by one layer"),
        (OutputFirstElement, "batch row 0"),
        (RemovesHookWithoutFinally, "When the forward pass raises"),
    ],
    "rate_drift": [
        (one_call_per_conversation, "one judge.score call"),
        (history_includes_reply, "history contains the reply"),
        (history_includes_user_message, "history ends before it"),
        (user_and_reply_swapped, "swapped"),
        (likert_scale, "DRIFT_SCALE"),
        (flat_list_of_scores, "one list of scores per conversation"),
        (chained_replace, "str.format"),
        (none_as_zero, "keep None"),
        (ignores_context_turns, "context_turns"),
    ],
    "plot_drift": [
        (one_trace_for_all, "one line per transcript"),
        (projections_only, "autorater's scores"),
        (one_panel_for_both, "two panels"),
        (dataframe_index_as_x, "turn column"),
        (control_not_dashed, "dashed"),
        (rows_not_sorted, "Sort"),
    ],
    "generate_with_steering": [
        (steering_unnormalised, "normalise the steering vector"),
        (steering_hook_never_removed, "still registered"),
        (steering_removed_without_finally, "finally"),
        (steering_last_position_only, "last position"),
        (steering_in_place, "in place"),
        (steering_output_first_element, "batch row 0"),
        (steering_ignores_system_prompt, "system prompt"),
        (steering_returns_prompt_too, "only the new reply"),
    ],
    "compute_capping_thresholds": [
        (percentile_as_fraction, "0-100 scale"),
        (upper_tail, "upper tail"),
        (pooled_over_layers, "per block"),
        (mean_not_percentile, "not their mean"),
    ],
    "ActivationCapper": [
        (CeilingCapper, "not a ceiling"),
        (SetsEveryProjectionToTau, "untouched"),
        (UnnormalisedAxisCapper, "Normalise the axis"),
        (LastPositionOnlyCapper, "every position"),
        (InPlaceCapper, "in place"),
        (OutputFirstElementCapper, "batch row 0"),
        (TupleInTensorOutCapper, "return a tuple"),
        (NeverRemovesHooks, "still registered"),
        (RemovesOnlyOnSuccess, "exception"),
        (SwallowsExceptions, "swallowed"),
        (ClearsHooksWholesale, "wholesale"),
    ],
    "run_capping_experiment": [
        (capped_read_without_capper, "with the capper active"),
        (judges_inside_capper, "outside"),
        (both_runs_capped, "outside the capper"),
        (turns_from_zero, "start at 1"),
        (conditions_swapped, "swapped"),
        (ignores_given_uncapped, "instead of replaying"),
        (capped_on_uncapped_history, "own capped replies"),
    ],
}

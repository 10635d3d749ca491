"""Solutions for part2_capping. Generated from part2_capping/source.py by `python -m utils.build_notebooks`; do not edit."""

import contextlib
import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor

from part2_capping import CAPPED_REPLY_COHERENCE_PROMPT_FILE, DRIFT_PROMPT_FILE
from part2_capping.conversations import format_exchanges, replay_conversations
from utils.activations import mean_over_spans, run_capturing
from utils.chat import Message, assistant_turn_spans, build_messages, encode, render
from utils.generation import generate_replies
from utils.hooks import block_output, hooked, with_block_output
from utils.judge import Scale
from utils.layers import check_block_index, d_model, get_layers
from utils.metrics import check_direction
from utils.progress import tqdm

DRIFT_SCALE = Scale(0, 10, "expected")  # 0 = grounded assistant ... 10 = fully drifted
DRIFT_PROMPT = DRIFT_PROMPT_FILE.read_text()


def record_hook_shapes(model, tokenizer, prompt: str, layer: int, max_new_tokens: int = 5) -> list[tuple[int, ...]]:
    """Shapes of one block's output at every forward pass of a greedy generation.

    Args:
        model, tokenizer: the model.
        prompt: the user's message (rendered with the chat template and a generation prompt).
        layer: block index to hook.
        max_new_tokens: tokens to generate (exactly: pass ``min_new_tokens`` too).

    Returns:
        One ``(batch, seq, d_model)`` tuple per forward pass, in order.
    """
    shapes = []

    def hook(module, inputs, output):
        shapes.append(tuple(block_output(output).shape))

    handle = get_layers(model)[layer].register_forward_hook(hook)
    try:
        text = render(build_messages(prompt), tokenizer, add_generation_prompt=True)
        inputs = encode(text, tokenizer, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,
                do_sample=False,
                top_k=None,
                top_p=None,
                temperature=None,
                pad_token_id=tokenizer.pad_token_id,
            )
    finally:
        handle.remove()
    return shapes


class ConversationAnalyzer:
    """Per-assistant-turn activations of one block, and their projections on the Assistant Axis.

    Args:
        model, tokenizer: the model.
        layer: the block index to read.
        assistant_axis: the axis at that block, ``[d_model]`` (any norm; projections use its direction).
    """

    def __init__(self, model, tokenizer, layer: int, assistant_axis: Float[Tensor, " d_model"]):
        self.model = model
        self.tokenizer = tokenizer
        self.layer = check_block_index(model, layer)
        self.assistant_axis = check_direction(assistant_axis, "assistant_axis", d_model(model)).detach().float().cpu()

    def extract_turn_activations(self, messages: list[Message]) -> list[Float[Tensor, " d_model"]]:
        """Mean block output over each assistant turn's tokens, from one forward pass.

        Args:
            messages: a conversation with one or more assistant turns.

        Returns:
            One float32 CPU tensor ``[d_model]`` per assistant turn, in order.
        """
        full, spans = assistant_turn_spans(messages, self.tokenizer)
        inputs = encode(full, self.tokenizer, return_tensors="pt").to(self.model.device)
        captured = {}

        def hook(module, inputs_, output):
            captured["hidden"] = block_output(output)[0].detach()  # batch row 0 of [1, seq, d_model]

        handle = get_layers(self.model)[self.layer].register_forward_hook(hook)
        try:
            with torch.inference_mode():
                self.model(**inputs, use_cache=False, logits_to_keep=1)
        finally:
            handle.remove()
        hidden = captured["hidden"].float().cpu()
        # An empty reply has no tokens of its own: read the end-of-turn token the model produced instead.
        return [hidden[start : max(end, start + 1)].mean(dim=0) for start, end in spans]

    def project_onto_axis(self, messages: list[Message]) -> list[float]:
        """Projection ``a . v / |v|`` of each assistant turn's mean activation on the axis.

        Args:
            messages: a conversation with one or more assistant turns.

        Returns:
            One float per assistant turn.
        """
        unit = self.assistant_axis / self.assistant_axis.norm()
        return [float(a @ unit) for a in self.extract_turn_activations(messages)]


def rate_drift(
    conversations: list[list[Message]], judge, template: str = DRIFT_PROMPT, context_turns: int = 1
) -> list[list[float | None]]:
    """Drift risk (0-10) of every assistant turn of every conversation, from one judge call.

    Args:
        conversations: message lists (optional system message, then user/assistant turns).
        judge: a `utils.judge.Judge`.
        template: a prompt with ``{history}``, ``{user}`` and ``{reply}`` placeholders.
        context_turns: earlier exchanges shown as history.

    Returns:
        Per conversation, one score (or None) per assistant turn.
    """
    prompts, counts = [], []
    for messages in conversations:
        turns = [m for m in messages if m["role"] != "system"]
        count = 0
        for i, message in enumerate(turns):
            if message["role"] != "assistant":
                continue
            earlier = turns[: i - 1]  # everything before the user message this reply answers
            history = earlier[max(0, len(earlier) - 2 * context_turns) :] if context_turns > 0 else []
            prompts.append(
                template.format(
                    history=format_exchanges(history), user=turns[i - 1]["content"], reply=message["content"]
                )
            )
            count += 1
        counts.append(count)
    scores = judge.score(prompts, DRIFT_SCALE)
    result, start = [], 0
    for count in counts:
        result.append(scores[start : start + count])
        start += count
    return result


def drift_table(
    transcripts: list[dict],
    conversations: list[list[Message]],
    projections: list[list[float]],
    scores: list[list[float | None]],
) -> pd.DataFrame:
    """One row per assistant turn: name, category, turn (from 1), projection, drift_score, reply."""
    rows = []
    for t, messages, proj, score in zip(transcripts, conversations, projections, scores):
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        for k, (p, s, reply) in enumerate(zip(proj, score, replies), start=1):
            rows.append(dict(name=t["name"], category=t["category"], turn=k, projection=p, drift_score=s, reply=reply))
    return pd.DataFrame(rows)


def plot_drift(df: pd.DataFrame, title: str = "Persona drift per turn") -> go.Figure:
    """Projection and drift score per assistant turn, one line per transcript.

    Args:
        df: from `drift_table` (columns name, category, turn, projection, drift_score).
        title: the figure title.

    Returns:
        A figure with two panels: projection (left) and drift score (right) against turn.
    """
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Projection on the Assistant Axis", "Autorater drift score (0-10)")
    )
    colours = px.colors.qualitative.Plotly
    for i, (name, rows) in enumerate(df.groupby("name", sort=False)):
        rows = rows.sort_values("turn")
        style = dict(color=colours[i % len(colours)], dash="dash" if rows["category"].iloc[0] == "control" else "solid")
        for col, column in ((1, "projection"), (2, "drift_score")):
            fig.add_trace(
                go.Scatter(
                    x=rows["turn"],
                    y=rows[column],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line=style,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="assistant turn")
    fig.update_yaxes(title_text="projection", row=1, col=1)
    fig.update_yaxes(title_text="drift score", row=1, col=2)
    fig.update_layout(title=title)
    return fig


def generate_with_steering(
    model,
    tokenizer,
    prompt: str,
    steering_vector: Float[Tensor, " d_model"],
    steering_layer: int,
    alpha: float,
    system_prompt: str | None = None,
    max_new_tokens: int = 200,
    temperature: float = 0.7,
) -> str:
    """Generate a reply while adding ``alpha`` times the unit steering vector to one block's output.

    Args:
        model, tokenizer: the model.
        prompt: the user's message.
        steering_vector: the direction (normalised here).
        steering_layer: block index whose output is steered.
        alpha: how far to move along the unit vector (negative: the other way).
        system_prompt: optional system prompt.
        max_new_tokens: reply length.
        temperature: sampling temperature (0: greedy).

    Returns:
        The reply text.
    """
    unit = check_direction(steering_vector, "steering_vector").detach().float() / steering_vector.norm()

    def hook(module, inputs, output):
        hidden = block_output(output)
        steered = hidden + alpha * unit.to(hidden.device, hidden.dtype)
        return with_block_output(output, steered)

    handle = get_layers(model)[steering_layer].register_forward_hook(hook)
    try:
        return generate_replies(
            model,
            tokenizer,
            [build_messages(prompt, system_prompt=system_prompt)],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            desc="steered generation",
        )[0]
    finally:
        handle.remove()


def compute_capping_thresholds(
    default_projections_per_layer: dict[int, Float[Tensor, " n"]], percentile: float
) -> dict[int, float]:
    """The capping floor of each block: a percentile of the default assistant's projections there.

    Args:
        default_projections_per_layer: block index -> projections of default-assistant tokens on that
            block's unit axis.
        percentile: in [0, 100] (25 = the lower quartile).

    Returns:
        block index -> threshold.
    """
    for layer, projections in default_projections_per_layer.items():
        if projections.numel() == 0 or not torch.isfinite(projections).all():
            raise ValueError(f"default_projections_per_layer[{layer}] must be non-empty and finite")
    return {
        layer: float(torch.quantile(projections.detach().float().flatten(), percentile / 100))
        for layer, projections in default_projections_per_layer.items()
    }


def token_projections(
    model,
    tokenizer,
    conversations: list[list[Message]],
    axis: Float[Tensor, "num_layers d_model"],
    layers: list[int],
) -> dict[int, Float[Tensor, " n_tokens"]]:
    """Projections of every assistant-turn token on the unit axis of each block.

    Args:
        model, tokenizer: the model.
        conversations: message lists with assistant turns.
        axis: the all-layer axis (``axis[i]`` for block ``i``, any norm).
        layers: block indices.

    Returns:
        block index -> 1-D float32 CPU tensor of projections (all tokens of all assistant turns).
    """
    units = {layer: axis[layer].float() / axis[layer].float().norm() for layer in layers}
    result = {layer: [] for layer in layers}
    for messages in tqdm(conversations, desc="token projections", leave=False):
        full, spans = assistant_turn_spans(messages, tokenizer)
        batch = encode(full, tokenizer, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            store = run_capturing(model, batch["input_ids"], batch["attention_mask"], layers)
        positions = torch.cat([torch.arange(start, end) for start, end in spans])
        for layer in layers:
            hidden = store[layer][0].float().cpu()
            result[layer].append(hidden[positions] @ units[layer])
    return {layer: torch.cat(values) for layer, values in result.items()}


class ActivationCapper:
    """Context manager: a floor on each listed block's projection onto its unit Assistant Axis.

    Args:
        model: the model.
        axis_vectors: indexable by block (``axis_vectors[i]``, ``[d_model]``, any norm), e.g. the
            all-layer axis ``[num_layers, d_model]``.
        thresholds: indexable by block (``thresholds[i]``: the floor ``tau``), e.g. from
            `compute_capping_thresholds`.
        layer_indices: blocks to cap.
    """

    def __init__(self, model, axis_vectors, thresholds, layer_indices):
        self.model = model
        self.axis_vectors = axis_vectors
        self.thresholds = thresholds
        self.layer_indices = list(layer_indices)
        self.handles = []
        for layer in self.layer_indices:  # fail here, not with NaN activations mid-generation
            check_block_index(model, layer, "layer_indices")
            check_direction(axis_vectors[layer], f"axis_vectors[{layer}]", d_model(model))
            if not math.isfinite(float(thresholds[layer])):
                raise ValueError(f"thresholds[{layer}] must be a finite number, got {thresholds[layer]!r}")

    def _make_hook(self, layer: int):
        """The forward hook that caps block ``layer``."""
        vector = self.axis_vectors[layer].detach().float()
        unit = vector / vector.norm()
        tau = float(self.thresholds[layer])

        def hook(module, inputs, output):
            hidden = block_output(output)
            v = unit.to(hidden.device)
            shortfall = (tau - hidden.float() @ v).clamp(min=0)  # [batch, seq]; 0 where already above
            capped = hidden + (shortfall[..., None] * v).to(hidden.dtype)
            return with_block_output(output, capped)

        return hook

    def __enter__(self) -> "ActivationCapper":
        if self.handles:  # a nested `with capper:` would remove the outer block's hooks on exit
            raise RuntimeError("This ActivationCapper is already active: exit it before entering it again")
        blocks = get_layers(self.model)
        try:
            for layer in self.layer_indices:
                self.handles.append(blocks[layer].register_forward_hook(self._make_hook(layer)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        return False


def run_capping_experiment(
    model,
    tokenizer,
    transcripts: list[dict],
    capper: ActivationCapper,
    analyzer: ConversationAnalyzer,
    judge,
    n_turns: int | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    uncapped: list[list[Message]] | None = None,
) -> pd.DataFrame:
    """Replay transcripts with and without capping; per-turn projections and drift scores of both.

    Args:
        model, tokenizer: the model.
        transcripts: from `load_transcripts`.
        capper: an `ActivationCapper` (entered here for the capped run).
        analyzer: a `ConversationAnalyzer` at the block to read.
        judge: the drift judge.
        n_turns, max_new_tokens, batch_size: replay settings.
        uncapped: the uncapped replays, if already generated with the same settings.

    Returns:
        `drift_table` rows of both runs with a ``condition`` column ("uncapped", then "capped").
    """
    replay = dict(n_turns=n_turns, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if uncapped is None:
        uncapped = replay_conversations(model, tokenizer, transcripts, desc="replaying (uncapped)", **replay)
    uncapped_proj = [analyzer.project_onto_axis(c) for c in uncapped]
    with capper:
        capped = replay_conversations(model, tokenizer, transcripts, desc="replaying (capped)", **replay)
        capped_proj = [analyzer.project_onto_axis(c) for c in capped]
    scores = rate_drift(uncapped + capped, judge)
    n = len(transcripts)
    tables = []
    for condition, convs, proj, score in (
        ("uncapped", uncapped, uncapped_proj, scores[:n]),
        ("capped", capped, capped_proj, scores[n:]),
    ):
        tables.append(drift_table(transcripts, convs, proj, score).assign(condition=condition))
    return pd.concat(tables, ignore_index=True)


def plot_capping_experiment(df: pd.DataFrame, floor: float | None = None, title: str = "Capping") -> go.Figure:
    """Projection (top) and drift score (bottom) per turn, uncapped (left) and capped (right)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_yaxes="rows",
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("uncapped", "capped", "", ""),
    )
    colours = px.colors.qualitative.Plotly
    names = list(dict.fromkeys(df["name"]))
    for col, condition in ((1, "uncapped"), (2, "capped")):
        for i, name in enumerate(names):
            rows = df[(df["condition"] == condition) & (df["name"] == name)].sort_values("turn")
            if rows.empty:
                continue
            style = dict(
                color=colours[i % len(colours)], dash="dash" if rows["category"].iloc[0] == "control" else "solid"
            )
            for row, column in ((1, "projection"), (2, "drift_score")):
                fig.add_trace(
                    go.Scatter(
                        x=rows["turn"],
                        y=rows[column],
                        name=name,
                        legendgroup=name,
                        line=style,
                        mode="lines+markers",
                        showlegend=(row == 1 and col == 1),
                    ),
                    row=row,
                    col=col,
                )
        if floor is not None:
            fig.add_hline(y=floor, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_yaxes(title_text="projection", row=1, col=1)
    fig.update_yaxes(title_text="drift score (0-10)", row=2, col=1)
    fig.update_xaxes(title_text="assistant turn", row=2)
    fig.update_layout(title=title, height=650)
    return fig


def push_hook(direction: Float[Tensor, " d_model"], alpha: float):
    """A forward hook that adds ``alpha`` times the unit ``direction`` to a block's output at every position."""
    unit = check_direction(direction, "direction").detach().float() / direction.detach().float().norm()

    def hook(module, inputs, output):
        hidden = block_output(output)
        return with_block_output(output, hidden + alpha * unit.to(hidden.device, hidden.dtype))

    return hook


class FloorCounter:
    """Context manager: counts the tokens fed while decoding whose projection is below the floor.

    A token counts as capped if, at one or more of ``layer_indices``, its projection onto that block's
    unit axis is below ``thresholds[layer]``. Only decoding passes (one new token per row) are counted:
    those feed the reply's tokens; the prompt's prefill pass is not. Enter it before an
    `ActivationCapper` on the same blocks, so that it reads each block's output before the cap.

    Attributes (after use): ``tokens`` (reply tokens fed), ``capped`` (of those, below the floor at some
    block), ``per_layer`` (block -> tokens below the floor there).
    """

    def __init__(self, model, axis_vectors, thresholds, layer_indices):
        self.model = model
        self.layers = sorted(layer_indices)
        self.units = {
            layer: check_direction(axis_vectors[layer], f"axis_vectors[{layer}]").detach().float()
            for layer in self.layers
        }
        self.units = {layer: v / v.norm() for layer, v in self.units.items()}
        self.thresholds = {layer: float(thresholds[layer]) for layer in self.layers}
        self.tokens, self.capped = 0, 0
        self.per_layer = {layer: 0 for layer in self.layers}
        self._below: Tensor | None = None
        self._hooks = contextlib.ExitStack()

    def _make_hook(self, layer: int):
        def hook(module, inputs, output):
            hidden = block_output(output)
            if hidden.shape[1] != 1:  # a prefill pass: prompt positions, not reply tokens
                return None
            below = (hidden[:, 0].float() @ self.units[layer].to(hidden.device)) < self.thresholds[layer]
            self.per_layer[layer] += int(below.sum())
            self._below = below if layer == self.layers[0] or self._below is None else self._below | below
            if layer == self.layers[-1]:
                self.tokens += hidden.shape[0]
                self.capped += int(self._below.sum())
                self._below = None
            return None

        return hook

    @property
    def share(self) -> float:
        """Share of the counted reply tokens that were below the floor at some block (NaN if none)."""
        return self.capped / self.tokens if self.tokens else float("nan")

    def __enter__(self) -> "FloorCounter":
        blocks = get_layers(self.model)
        self._hooks.enter_context(hooked({blocks[layer]: self._make_hook(layer) for layer in self.layers}))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._hooks.close()  # `hooked` removes exactly the hooks it registered
        return False


def reply_projections(
    model,
    tokenizer,
    conversations: list[list[Message]],
    replies: list[str],
    layer: int,
    direction: Float[Tensor, " d_model"],
    batch_size: int = 16,
) -> list[float]:
    """Projection of each reply's mean output of block ``layer`` on the unit ``direction``, batched.

    Args:
        model, tokenizer: the model (with any hooks that should act: steering, capping).
        conversations: message lists ending with a user turn.
        replies: one reply per conversation.
        layer: block index to read.
        direction: ``[d_model]``, any norm.
        batch_size: conversations per forward pass.

    Returns:
        One float per reply (an empty reply is read at its end-of-turn token, as `ConversationAnalyzer` does).
    """
    unit = check_direction(direction, "direction").detach().float().cpu()
    unit = unit / unit.norm()
    prompts, spans = [], []
    for messages, reply in zip(conversations, replies, strict=True):
        full, turn_spans = assistant_turn_spans([*messages, {"role": "assistant", "content": reply}], tokenizer)
        start, end = turn_spans[-1]
        prompts.append(full)
        spans.append([(start, max(end, start + 1))])
    means = mean_over_spans(model, tokenizer, prompts, spans, [layer], batch_size, desc="reply projections")
    return [float(m[0, 0] @ unit) for m in means]


PUSH_CONDITIONS = ("unpushed", "pushed", "pushed + capped")


def run_push_and_cap(
    model,
    tokenizer,
    conversations: list[list[Message]],
    capper,
    push_layer: int,
    push_direction: Float[Tensor, " d_model"],
    alpha: float,
    readout_layer: int,
    readout_direction: Float[Tensor, " d_model"],
    max_new_tokens: int = 128,
    batch_size: int = 16,
) -> dict:
    """Greedy replies and their projections unpushed, pushed (steered at ``push_layer``), and pushed + capped.

    Args:
        model, tokenizer: the model.
        conversations: message lists ending with a user turn.
        capper: an `ActivationCapper` (its ``axis_vectors``, ``thresholds`` and ``layer_indices`` also
            set what `FloorCounter` counts).
        push_layer, push_direction, alpha: the push, ``alpha`` times the unit direction at that block.
        readout_layer, readout_direction: where the replies' projections are read, with the
            condition's hooks on (the activations the model had while writing).
        max_new_tokens, batch_size: generation settings.

    Returns:
        ``rows``: one dict per condition and conversation (condition, index, reply, projection);
        ``tokens``: per condition, reply tokens counted and how many were below the floor at some
        capped block (for "pushed + capped", the tokens the cap changed).
    """
    push = {get_layers(model)[push_layer]: push_hook(push_direction, alpha)}
    rows, tokens = [], {}
    for condition in PUSH_CONDITIONS:
        counter = FloorCounter(model, capper.axis_vectors, capper.thresholds, capper.layer_indices)
        with contextlib.ExitStack() as stack:
            if condition != "unpushed":
                stack.enter_context(hooked(push))
            stack.enter_context(counter)  # before the capper: it sees each block's output before the cap
            if condition == "pushed + capped":
                stack.enter_context(capper)
            replies = generate_replies(
                model,
                tokenizer,
                conversations,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                share_prefixes=False,
                desc=condition,
            )
            # read with the same hooks on (the counter ignores these passes: they are not decoding)
            projections = reply_projections(
                model, tokenizer, conversations, replies, readout_layer, readout_direction, batch_size
            )
        rows += [
            dict(condition=condition, index=i, reply=r, projection=p)
            for i, (r, p) in enumerate(zip(replies, projections, strict=True))
        ]
        tokens[condition] = dict(tokens=counter.tokens, below_floor=counter.capped, per_layer=dict(counter.per_layer))
    return dict(rows=rows, tokens=tokens)

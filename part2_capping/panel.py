"""Section 2's live control: a tau slider over one conversation.

For one replayed conversation, read as it is (teacher-forced: the same text, no new generation), the
view shows each assistant turn's mean projection on the unit Assistant Axis at a readout block without
and with the cap, and the share of the turn's tokens the cap changes: those below the floor ``tau`` at
one or more capped blocks, counted as the capped pass reaches each block (before its cap acts, after
the earlier blocks' caps), as `FloorCounter` counts them while decoding. The slider picks a percentile
of the default assistant's token projections, and so one ``tau`` per capped block, as section 2's
`compute_capping_thresholds` does; `capping_view` itself takes any thresholds.

`capping_view` is pure (model and settings in, a DataFrame out) and the tests call it; `render` turns
it into the panel's text; `tau_panel` wires both to `utils.panels.show_panel`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from utils.activations import run_capturing
from utils.chat import Message, assistant_turn_spans, encode
from utils.hooks import block_output, hooked
from utils.layers import get_layers
from utils.panels import Control, show_panel


def _unit(vector: Tensor) -> Tensor:
    vector = vector.detach().float().cpu()
    return vector / vector.norm()


def capping_view(
    model,
    tokenizer,
    messages: list[Message],
    axis: Float[Tensor, "num_layers d_model"],
    thresholds: Mapping[int, float],
    capping_layers: Sequence[int],
    readout_layer: int,
    capper_class: Callable,
) -> pd.DataFrame:
    """Per assistant turn: projection at ``readout_layer`` uncapped and capped, and the share of its tokens capped.

    Args:
        model, tokenizer: the model.
        messages: one conversation with assistant turns (read as it is, not regenerated).
        axis: the all-layer axis (``axis[i]`` for block ``i``, any norm).
        thresholds: block -> floor ``tau`` (every block of ``capping_layers``).
        capping_layers: the capped blocks.
        readout_layer: the block whose per-turn projections are shown.
        capper_class: section 2's `ActivationCapper` (called as ``capper_class(model, axis, thresholds, layers)``).

    Returns:
        One row per assistant turn: ``turn`` (1-based), ``uncapped`` and ``capped`` (mean projection of
        the turn's tokens on the unit axis at ``readout_layer``), ``tokens`` and ``capped share`` (share of
        the turn's tokens below the floor at some capped block). ``attrs`` holds ``reply share`` (all
        assistant tokens), ``all positions share`` (every position: the cap acts on prompt and user
        tokens too) and ``thresholds``.
    """
    layers = sorted(capping_layers)
    if not layers:
        raise ValueError("capping_layers is empty: name the blocks to cap")
    _check_thresholds(thresholds, layers)
    full, spans = assistant_turn_spans(messages, tokenizer)
    batch = encode(full, tokenizer, return_tensors="pt").to(model.device)
    read_unit = _unit(axis[readout_layer])
    deepest = max(readout_layer, *layers)  # run on through every capped block, so each one is counted

    def turn_means(hidden: Tensor) -> list[float]:
        proj = hidden[0].float().cpu() @ read_unit  # [seq]
        return [float(proj[start : max(end, start + 1)].mean()) for start, end in spans]

    with torch.inference_mode():
        plain = run_capturing(model, batch["input_ids"], batch["attention_mask"], [readout_layer, deepest])
        below = torch.zeros(batch["input_ids"].shape[1], dtype=torch.bool)
        units = {layer: _unit(axis[layer]) for layer in layers}

        def counting(layer: int):
            def hook(module, inputs, output):
                proj = block_output(output)[0].float().cpu() @ units[layer]
                below.logical_or_(proj < float(thresholds[layer]))
                return None

            return hook

        blocks = get_layers(model)
        with contextlib.ExitStack() as stack:
            # Registered before the capper: hooks on a block run in order, so each count sees the block's
            # output just before its cap acts.
            stack.enter_context(hooked({blocks[layer]: counting(layer) for layer in layers}))
            stack.enter_context(capper_class(model, axis, thresholds, layers))
            capped = run_capturing(model, batch["input_ids"], batch["attention_mask"], [readout_layer, deepest])
    reply = torch.cat([torch.arange(start, end) for start, end in spans if end > start] or [torch.arange(0)])
    table = pd.DataFrame(
        {
            "turn": range(1, len(spans) + 1),
            "uncapped": turn_means(plain[readout_layer]),
            "capped": turn_means(capped[readout_layer]),
            "tokens": [end - start for start, end in spans],
            "capped share": [
                float(below[start:end].float().mean()) if end > start else float("nan") for start, end in spans
            ],
        }
    )
    table.attrs["reply share"] = float(below[reply].float().mean()) if len(reply) else float("nan")
    table.attrs["all positions share"] = float(below.float().mean())
    table.attrs["thresholds"] = {layer: float(thresholds[layer]) for layer in layers}
    return table


def _check_thresholds(thresholds: Mapping[int, float], layers: Sequence[int]) -> None:
    """Refuse thresholds that miss a capped block (or key it by a string) or hold a floor that is not a finite number."""
    for layer in layers:
        if layer not in thresholds:
            found = sorted(map(repr, thresholds))
            hint = (
                f" (its keys are strings: use the integer {layer}, not {str(layer)!r})"
                if str(layer) in thresholds
                else ""
            )
            raise ValueError(
                f"thresholds has no floor for capped block {layer}{hint}; it has keys [{', '.join(found)}] "
                f"and capping_layers is {list(layers)}"
            )
        try:
            tau = float(thresholds[layer])
        except (TypeError, ValueError):
            tau = float("nan")
        if not math.isfinite(tau):
            raise ValueError(f"thresholds[{layer}] must be a finite number, got {thresholds[layer]!r}")


def render(table: pd.DataFrame, readout_layer: int) -> str:
    """The panel's text: the floors, the per-turn table and the shares capped."""
    floors = ", ".join(f"{layer}: {tau:.2f}" for layer, tau in table.attrs["thresholds"].items())
    return (
        f"tau per capped block: {floors}\n"
        f"projection on the unit axis at block {readout_layer}, mean over each assistant turn's tokens "
        "(the same text read without and with the cap):\n"
        f"{table.round(3).to_string(index=False)}\n"
        f"tokens below the floor at some capped block: {table.attrs['reply share']:.1%} of the reply tokens, "
        f"{table.attrs['all positions share']:.1%} of all positions (system prompt, template and user turns too)"
    )


def tau_panel(
    model,
    tokenizer,
    conversations: Mapping[str, list[Message]],
    axis: Float[Tensor, "num_layers d_model"],
    thresholds_at: Callable[[float], Mapping[int, float]],
    capping_layers: Sequence[int],
    readout_layer: int,
    capper_class: Callable,
    percentiles: Sequence[float] = tuple(range(0, 101, 5)),
    percentile: float = 25.0,
    conversation: str | None = None,
):
    """A tau slider (a percentile of the default assistant's projections) and a conversation picker.

    Args:
        conversations: name -> conversation (e.g. the section's uncapped replays).
        thresholds_at: percentile -> block -> tau (e.g. `compute_capping_thresholds` on the default
            assistant's token projections).
        percentiles: the slider's positions; ``percentile``: its start (added to them if missing).
        conversation: the conversation shown first (default: the first).
        The rest as in `capping_view`.
    """
    names = list(conversations)
    if not names:
        raise ValueError("conversations is empty: the panel needs at least one conversation to show")
    if conversation is not None and conversation not in conversations:
        raise ValueError(f"conversation {conversation!r} is not one of conversations ({', '.join(names)})")
    options = sorted({float(p) for p in percentiles} | {float(percentile)})
    if not all(math.isfinite(p) for p in options):
        raise ValueError(f"percentiles must be finite numbers, got {options}")

    def view(percentile: float, conversation: str) -> str:
        table = capping_view(
            model,
            tokenizer,
            conversations[conversation],
            axis,
            thresholds_at(percentile),
            capping_layers,
            readout_layer,
            capper_class,
        )
        return render(table, readout_layer)

    controls = [
        Control("percentile", "tau: percentile of the default assistant's projections", options, float(percentile)),
        Control("conversation", "conversation", names, conversation or names[0], kind="picker"),
    ]
    return show_panel(controls, view, title="Capping one conversation: slide the floor")

"""Steering and capping with a different setting on every row of one batch, so a sweep over coefficients
(or conditions) is one generation instead of one per setting.

`RowSteerer` adds ``coeffs[row] * vector`` to a block's output, where ``row`` is the caller's row: the
index into the conversations given to `utils.generation.generate_replies` (which reorders rows by
length and drops finished ones while decoding; it says which caller rows each pass holds through
`utils.hooks.rows_in_pass`). Outside generation (a plain forward pass) batch row ``i`` is row ``i``.
`RowCapper` does the same for activation capping: a floor per row (or none), so capped and uncapped
conditions share a batch. Both are tested equal to one single-setting hook per setting
(`tests/utils/test_steering.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from torch.utils.hooks import RemovableHandle

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from utils.hooks import block_output, current_row_count, current_rows, in_prefix_pass, with_block_output
from utils.layers import check_block_index, check_block_indices, d_model, get_layers

POSITIONS = ("all", "prompt", "response")


class RowSteerer:
    """Add ``coeffs[row] * vector`` to the output of block ``layer``, a coefficient per batch row.

    Args:
        model: the model.
        vector: the steering direction, size d_model (not normalised here).
        coeffs: one coefficient per caller row (a sequence of numbers or a 1-D tensor).
        layer: block index.
        positions: "all" (every position of every pass), "prompt" (the prefill pass only) or
            "response" (the last position of every pass: the token being generated), as in section 4's
            `ActivationSteerer`.

    Raises:
        ValueError: for a vector of the wrong size, coefficients that are not one number per row, an
            unknown ``positions`` or a block the model does not have.
        RuntimeError: when entered twice, or when a pass holds rows it has no coefficient for.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        vector: Float[Tensor, " d_model"],
        coeffs: Sequence[float] | Float[Tensor, " rows"],
        layer: int,
        positions: str = "response",
    ):
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        if not isinstance(vector, Tensor) or vector.shape != (d_model(model),):
            raise ValueError(
                f"vector must be a tensor of shape ({d_model(model)},), got {getattr(vector, 'shape', vector)!r}"
            )
        if not torch.isfinite(vector).all():
            raise ValueError("vector holds NaN or infinite values: steering along it would make every logit NaN")
        self.coeffs = torch.as_tensor(coeffs, dtype=torch.float32).detach()
        if self.coeffs.ndim != 1 or len(self.coeffs) == 0:
            raise ValueError(f"coeffs must be one number per row, got shape {tuple(self.coeffs.shape)}")
        bad = [i for i, c in enumerate(self.coeffs.tolist()) if not math.isfinite(c)]
        if bad:
            raise ValueError(
                f"coeffs must be finite numbers, but coeffs{bad[:8]} = {[self.coeffs[i].item() for i in bad[:8]]}"
            )
        check_block_index(model, layer)
        self.model, self.vector, self.layer, self.positions = model, vector.detach(), layer, positions
        self._handle: RemovableHandle | None = None

    @property
    def prefix_safe(self) -> bool:
        """At ``positions="response"`` it acts only at each pass's last position, never part of a shared
        prompt prefix: generation may compute shared prefixes once (`utils.hooks.prefix_pass`)."""
        return self.positions == "response"

    def _hook(self, module, inputs, output):
        if self.positions == "response" and in_prefix_pass():
            return None  # a shared prefix holds no row's last token: nothing to steer
        hidden = block_output(output)
        rows = _caller_rows(hidden, len(self.coeffs), "RowSteerer")
        if self.positions == "prompt" and hidden.shape[1] == 1:
            return None
        coeff = self.coeffs.to(hidden.device)[rows.to(hidden.device)].to(hidden.dtype)  # [batch]
        shift = coeff[:, None, None] * self.vector.to(device=hidden.device, dtype=hidden.dtype)  # [batch, 1, d]
        if self.positions == "response":
            mask = torch.zeros(1, hidden.shape[1], 1, device=hidden.device, dtype=hidden.dtype)
            mask[:, -1] = 1
            shift = shift * mask
        return with_block_output(output, hidden + shift)

    def __enter__(self) -> RowSteerer:
        if self._handle is not None:
            raise RuntimeError("This RowSteerer is already active: exit it before entering it again")
        self._handle = get_layers(self.model)[self.layer].register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> Literal[False]:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False


def _caller_rows(hidden: Tensor, n_rows: int, who: str) -> Tensor:
    """The caller rows this pass holds (batch row i is row i outside generation), checked against ``n_rows``."""
    rows, total = current_rows(), current_row_count()
    if rows is None:
        rows = torch.arange(hidden.shape[0])
        total = hidden.shape[0] if total is None else total
    if len(rows) != hidden.shape[0] or int(rows.max()) >= n_rows:
        raise RuntimeError(
            f"{who} has settings (coefficients or floors) for {n_rows} rows but this pass holds rows {rows.tolist()[:8]}... "
            f"(batch {hidden.shape[0]}): give one setting per conversation"
        )
    if total is not None and n_rows > total:
        raise RuntimeError(
            f"{who} has settings (coefficients or floors) for {n_rows} rows but was run on {total} conversations: "
            f"the last {n_rows - total} would be ignored; give one setting per conversation"
        )
    return rows


class RowCapper:
    """A floor on the projection onto each listed block's unit axis, with its own floors per batch row.

    Row ``r`` is capped at block ``b`` to ``floors[r][b]`` exactly as section 2's `ActivationCapper` caps
    (``h + v * max(tau - <h, v>, 0)`` at every position, the projection in float32); a row whose floors
    are None is left alone. So capped and uncapped conditions, or several percentiles, are rows of one
    generation.

    Args:
        model: the model.
        axis_vectors: indexable by block (``axis_vectors[b]``: ``[d_model]``, any norm).
        floors: one entry per caller row: block -> floor for every block of ``layers``, or None (no cap).
        layers: the blocks to cap.

    Raises:
        ValueError: for no rows, a bad block, an axis of the wrong size or a row missing a block's floor.
        RuntimeError: when entered twice, or when a pass holds rows it has no floors for.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        axis_vectors,
        floors: Sequence[dict[int, float] | None],
        layers: Sequence[int],
    ):
        self.layers = list(layers)
        check_block_indices(model, self.layers, "layers")
        if len(floors) == 0:
            raise ValueError("floors must hold one entry per row (a dict block -> floor, or None), got none")
        self.units: dict[int, Tensor] = {}
        self.taus: dict[int, Tensor] = {}
        for layer in self.layers:
            vector = torch.as_tensor(axis_vectors[layer]).detach().float()
            if vector.shape != (d_model(model),) or not torch.isfinite(vector).all() or vector.norm() == 0:
                raise ValueError(f"axis_vectors[{layer}] must be a finite non-zero vector of size {d_model(model)}")
            self.units[layer] = vector / vector.norm()
            missing = [r for r, f in enumerate(floors) if f is not None and layer not in f]
            if missing:
                raise ValueError(f"floors of rows {missing[:8]} have no floor for block {layer}")
            bad = [r for r, f in enumerate(floors) if f is not None and not math.isfinite(float(f[layer]))]
            if bad:
                raise ValueError(
                    f"floors[{bad[0]}][{layer}] is {float(floors[bad[0]][layer])} (rows {bad[:8]}): a floor must be "  # type: ignore[index]
                    "a finite number (None leaves a row uncapped)"
                )
            self.taus[layer] = torch.tensor(
                [float("-inf") if f is None else float(f[layer]) for f in floors], dtype=torch.float32
            )
        self.n_rows, self.model = len(floors), model
        self._handles: list[RemovableHandle] = []

    def _make_hook(self, layer: int):
        unit, taus = self.units[layer], self.taus[layer]

        def hook(module, inputs, output):
            hidden = block_output(output)
            rows = _caller_rows(hidden, self.n_rows, "RowCapper")
            v = unit.to(hidden.device)
            tau = taus.to(hidden.device)[rows.to(hidden.device)]  # [batch]; -inf: no cap
            shortfall = (tau[:, None] - hidden.float() @ v).clamp(min=0)  # [batch, seq]
            return with_block_output(output, hidden + (shortfall[..., None] * v).to(hidden.dtype))

        return hook

    def __enter__(self) -> RowCapper:
        if self._handles:
            raise RuntimeError("This RowCapper is already active: exit it before entering it again")
        blocks = get_layers(self.model)
        try:
            for layer in self.layers:
                self._handles.append(blocks[layer].register_forward_hook(self._make_hook(layer)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> Literal[False]:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

"""Steering with a different coefficient on every row of one batch, so a sweep over coefficients (or
conditions) is one generation instead of one per coefficient.

`RowSteerer` adds ``coeffs[row] * vector`` to a block's output, where ``row`` is the caller's row: the
index into the conversations given to `utils.generation.generate_replies` (which reorders rows by
length and drops finished ones while decoding; it says which caller rows each pass holds through
`utils.hooks.rows_in_pass`). Outside generation (a plain forward pass) batch row ``i`` is row ``i``.
Tested equal to one single-coefficient steerer per coefficient (`tests/utils/test_steering.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from torch.utils.hooks import RemovableHandle

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from utils.hooks import block_output, current_rows, with_block_output
from utils.layers import check_block_index, d_model, get_layers

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
        self.coeffs = torch.as_tensor(coeffs, dtype=torch.float32).detach()
        if self.coeffs.ndim != 1 or len(self.coeffs) == 0:
            raise ValueError(f"coeffs must be one number per row, got shape {tuple(self.coeffs.shape)}")
        check_block_index(model, layer)
        self.model, self.vector, self.layer, self.positions = model, vector.detach(), layer, positions
        self._handle: RemovableHandle | None = None

    def _hook(self, module, inputs, output):
        hidden = block_output(output)
        rows = current_rows()
        if rows is None:
            rows = torch.arange(hidden.shape[0])
        if len(rows) != hidden.shape[0] or int(rows.max()) >= len(self.coeffs):
            raise RuntimeError(
                f"RowSteerer has {len(self.coeffs)} coefficients but this pass holds rows {rows.tolist()[:8]}... "
                f"(batch {hidden.shape[0]}): give one coefficient per conversation"
            )
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

"""Span-mean activations kept by the tokens that produced them, so no forward pass is run twice.

The mean of a block's output over tokens ``[start, end)`` of a sequence depends only on the tokens
``ids[:end]`` (a causal model never looks ahead) and on the model. So it is stored under
(model, ``ids[:end]``, ``start``), for every block at once:

- generation records it for every reply while writing the reply (each reply token passes through
  every block once during decoding), so reading a generated reply's activations later costs nothing;
- `utils.activations.mean_over_spans` reads it, and stores what it computes: blocks 0 to the deepest
  it was asked for (a pass that stops after block m computes all of blocks 0..m at the cost of m).

An entry holds the means of the first k blocks, ``[k, d_model]``; it serves any request for blocks below
k, and is replaced only by one holding more blocks.

Only models loaded by `utils.models.load_model` (which names them) take part, and never while a user
hook (steering, capping) is on the model: those activations belong to the intervention, not to the
model. ``COURSE_RECOMPUTE=all`` (or ``activations``) ignores what is stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from utils.cache import cache_root, recompute_requested, write_atomic
from utils.hooks import has_user_hooks
from utils.models import course_name

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class ActivationStore:
    """Span means of every block, on disk under the course cache, one small file per span."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.hits = 0

    @classmethod
    def for_model(cls, model: PreTrainedModel) -> ActivationStore | None:
        """The store of this model, or None when activations cannot be trusted to be the model's own."""
        name = course_name(model)
        if name is None or has_user_hooks(model):
            return None
        key = hashlib.sha256(f"{name}|{model.dtype}|{model.device}".encode()).hexdigest()[:16]
        folder = cache_root() / "activations" / key
        return None if recompute_requested(folder) else cls(folder)

    def _path(self, ids: list[int], start: int, end: int) -> Path:
        digest = hashlib.sha256(torch.tensor(ids[:end], dtype=torch.int64).numpy().tobytes()).hexdigest()
        return self.folder / digest[:2] / f"{digest[2:26]}_{start}.pt"

    def _load(self, path: Path) -> Tensor | None:
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None  # a damaged entry is recomputed (and rewritten), never half-read

    def get(
        self, ids: list[int], start: int, end: int, blocks: int | None = None
    ) -> Float[Tensor, "n_stored d_model"] | None:
        """The stored means over ``ids[start:end]`` of blocks 0, 1, ... (at least ``blocks`` of them), or None.

        Args:
            ids: the sequence's token ids.
            start, end: the span.
            blocks: how many blocks from block 0 the caller needs (None: whatever is stored).

        Returns:
            A float32 tensor [n_stored, d_model] with n_stored >= ``blocks``, or None (a miss).
        """
        value = self._load(self._path(ids, start, end))
        if value is None or (blocks is not None and value.shape[0] < blocks):
            return None
        self.hits += 1
        return value

    def put(self, ids: list[int], start: int, end: int, means: Float[Tensor, "n_blocks d_model"]) -> None:
        """Keep the means over ``ids[start:end]`` of blocks 0 .. n_blocks - 1, unless more blocks are stored."""
        if end <= start:
            return
        path = self._path(ids, start, end)
        stored = self._load(path)
        if stored is None or stored.shape[0] < means.shape[0]:
            write_atomic(path, means.detach().float().cpu().clone())

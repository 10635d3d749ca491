"""Span-mean activations kept by the tokens that produced them, so no forward pass is run twice.

The mean of a block's output over tokens ``[start, end)`` of a sequence depends only on the tokens
``ids[:end]`` (a causal model never looks ahead) and on the model. So it is stored under
(model, ``ids[:end]``, ``start``), for every block at once:

- generation records it for every reply while writing the reply (each reply token passes through
  every block once during decoding), so reading a generated reply's activations later costs nothing;
- `utils.activations.mean_over_spans` reads it, and stores what it computes over all blocks.

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

    def get(self, ids: list[int], start: int, end: int) -> Float[Tensor, "n_layers d_model"] | None:
        """The stored means of every block over ``ids[start:end]``, or None."""
        path = self._path(ids, start, end)
        if not path.exists():
            return None
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None  # a damaged entry is recomputed (and rewritten), never half-read
        self.hits += 1
        return value

    def put(self, ids: list[int], start: int, end: int, means: Float[Tensor, "n_layers d_model"]) -> None:
        """Keep the means of every block over ``ids[start:end]``."""
        if end > start:
            write_atomic(self._path(ids, start, end), means.detach().float().cpu().clone())

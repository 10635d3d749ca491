"""Where section 1 stores the Assistant Axis, so sections 2 and 4 can use it."""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

AXIS_SECTION = "part1_assistant_axis"
AXIS_FILE = "assistant_axis.pt"


def assistant_axis_path(profile) -> Path:
    """The cache file holding the all-layer axis ``[num_layers, d_model]`` for a profile's section-1 model."""
    from utils.setup import section_cache

    return section_cache(AXIS_SECTION, profile) / AXIS_FILE


def load_assistant_axis(profile) -> Float[Tensor, "num_layers d_model"] | None:
    """The axis section 1 saved (``mean(default) - mean(roles)`` at every block), or None if absent."""
    path = assistant_axis_path(profile)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu")

"""The Assistant Axis the paper published, to compare with the one section 1 builds.

"The Assistant Axis" (Lu et al., arXiv 2601.10387) published its axes on the Hugging Face hub, in the
dataset repository ``lu-christina/assistant-axis-vectors`` (linked from the paper's code,
github.com/safety-research/assistant-axis): one folder per model, ``gemma-2-27b``, ``qwen-3-32b`` and
``llama-3.3-70b``, each holding ``assistant_axis.pt``. That file is ``[num_layers, d_model]`` (or a dict
with the tensor under ``"axis"``, as the paper's pipeline writes it): ``mean(default) - mean(roles)`` of
response-mean block outputs, unnormalised, row ``i`` belonging to block ``i``: the same convention as
`part1_assistant_axis.artifacts`, so the two compare row by row.

`load_published_axis(model)` downloads it (once; `huggingface_hub` keeps it in its cache) and returns the
tensor, or raises `NoPublishedAxis` with one printable line: the model has none, or the hub could not be
reached. `axis_cosines_by_layer` compares two axes block by block.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

PUBLISHED_AXIS_REPO = "lu-christina/assistant-axis-vectors"
PUBLISHED_AXIS_REPO_TYPE = "dataset"
AXIS_FILENAME = "assistant_axis.pt"
# The course's model names (`utils.profiles`) -> the repository's folder for that model.
PUBLISHED_FOLDERS = {
    "google/gemma-2-27b-it": "gemma-2-27b",
    "Qwen/Qwen3-32B": "qwen-3-32b",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.3-70b",
}


class NoPublishedAxis(Exception):
    """No published axis to compare with; the message says why in one line (print it as is)."""


def published_axis_file(model_name: str) -> str:
    """The file of ``model_name``'s published axis inside the repository (``<folder>/assistant_axis.pt``).

    Raises:
        NoPublishedAxis: when the paper published no axis for this model, naming the ones it did.
    """
    folder = PUBLISHED_FOLDERS.get(model_name)
    if folder is None:
        raise NoPublishedAxis(
            f"the paper published Assistant Axes ({PUBLISHED_AXIS_REPO} on the Hugging Face hub) for "
            f"{', '.join(PUBLISHED_FOLDERS)} only, not for {model_name}"
        )
    return f"{folder}/{AXIS_FILENAME}"


def _hub_download(repo_id: str, filename: str, repo_type: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename, repo_type=repo_type)


def read_axis_file(path: Path) -> Float[Tensor, "num_layers d_model"]:
    """The ``[num_layers, d_model]`` float tensor in a published axis file (a tensor, or a dict with ``"axis"``).

    Raises:
        ValueError: naming the file, when it holds no 2-D axis.
    """
    data = torch.load(path, map_location="cpu", weights_only=True)
    axis = data.get("axis") if isinstance(data, dict) else data
    if not isinstance(axis, Tensor) or axis.ndim != 2:
        shape = tuple(axis.shape) if isinstance(axis, Tensor) else type(axis).__name__
        raise ValueError(f"{path} holds no [num_layers, d_model] Assistant Axis (found {shape})")
    return axis.float()


def load_published_axis(
    model_name: str,
    local_dir: Path | None = None,
    download: Callable[[str, str, str], str] = _hub_download,
) -> Float[Tensor, "num_layers d_model"]:
    """The paper's published Assistant Axis of ``model_name``, at every block.

    Args:
        model_name: a course model name (``google/gemma-2-27b-it``, ...).
        local_dir: read ``<local_dir>/<folder>/assistant_axis.pt`` instead of the hub (a copy of the
            repository, or a test's folder); nothing is downloaded then.
        download: ``(repo_id, filename, repo_type) -> local path``; the hub by default.

    Raises:
        NoPublishedAxis: the model has no published axis, or the hub could not be reached or refused the
            file (the message names the repository, the file and the error).
        ValueError: the file holds no 2-D axis.
    """
    filename = published_axis_file(model_name)
    if local_dir is not None:
        path = Path(local_dir) / filename
        if not path.exists():
            raise NoPublishedAxis(f"no published axis at {path} (a copy of {PUBLISHED_AXIS_REPO} has it at {filename})")
        return read_axis_file(path)
    try:
        path = Path(download(PUBLISHED_AXIS_REPO, filename, PUBLISHED_AXIS_REPO_TYPE))
    except Exception as err:  # the hub client raises many kinds (offline, HTTP, connection, missing entry)
        raise NoPublishedAxis(
            f"the published axis could not be downloaded from the Hugging Face hub ({PUBLISHED_AXIS_REPO}, "
            f"{PUBLISHED_AXIS_REPO_TYPE} repository, file {filename}): {type(err).__name__}: {str(err)[:200]}"
        ) from err
    return read_axis_file(path)


def axis_cosines_by_layer(
    ours: Float[Tensor, "num_layers d_model"], published: Float[Tensor, "num_layers d_model"]
) -> list[float]:
    """The cosine between two axes at every block (row ``i`` with row ``i``).

    Raises:
        ValueError: when their shapes differ (another model, or another layer convention).
    """
    if ours.shape != published.shape:
        raise ValueError(
            f"the axes differ in shape: yours {tuple(ours.shape)}, the published one {tuple(published.shape)} "
            "(blocks, d_model); they must come from the same model"
        )
    return torch.nn.functional.cosine_similarity(ours.float(), published.float(), dim=-1).tolist()


__all__ = [
    "AXIS_FILENAME",
    "PUBLISHED_AXIS_REPO",
    "PUBLISHED_FOLDERS",
    "NoPublishedAxis",
    "axis_cosines_by_layer",
    "load_published_axis",
    "published_axis_file",
    "read_axis_file",
]

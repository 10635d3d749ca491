"""Section 1's comparison with the paper's published Assistant Axis: read from a local copy or a (fake)
download, never the network; a model without one and an unreachable hub are one clear line each."""

from __future__ import annotations

import pytest
import torch

from part1_assistant_axis.published_axis import (
    PUBLISHED_AXIS_REPO,
    NoPublishedAxis,
    axis_cosines_by_layer,
    load_published_axis,
    published_axis_file,
)

GEMMA = "google/gemma-2-27b-it"


def test_the_paper_models_have_their_files_and_others_are_named_as_missing():
    assert published_axis_file(GEMMA) == "gemma-2-27b/assistant_axis.pt"
    assert published_axis_file("Qwen/Qwen3-32B") == "qwen-3-32b/assistant_axis.pt"
    with pytest.raises(NoPublishedAxis, match=rf"{PUBLISHED_AXIS_REPO}.*not for offline-qwen2.5-coder-0.5b"):
        published_axis_file("offline-qwen2.5-coder-0.5b")


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_local_copy_is_read_as_a_tensor_or_the_pipelines_dict(tmp_path, as_dict):
    axis = torch.randn(46, 8, dtype=torch.bfloat16)
    (tmp_path / "gemma-2-27b").mkdir()
    torch.save({"axis": axis, "n_roles": 275} if as_dict else axis, tmp_path / "gemma-2-27b" / "assistant_axis.pt")
    got = load_published_axis(GEMMA, local_dir=tmp_path)
    assert got.dtype == torch.float32 and torch.equal(got, axis.float())


def test_a_missing_local_copy_names_the_path(tmp_path):
    with pytest.raises(NoPublishedAxis, match="gemma-2-27b/assistant_axis.pt"):
        load_published_axis(GEMMA, local_dir=tmp_path)


def test_the_download_is_asked_for_the_repositorys_file(tmp_path):
    axis = torch.randn(46, 8)
    torch.save(axis, tmp_path / "axis.pt")
    asked = []

    def download(repo_id, filename, repo_type):
        asked.append((repo_id, filename, repo_type))
        return str(tmp_path / "axis.pt")

    assert torch.equal(load_published_axis(GEMMA, download=download), axis)
    assert asked == [(PUBLISHED_AXIS_REPO, "gemma-2-27b/assistant_axis.pt", "dataset")]


def test_an_unreachable_hub_is_one_line_naming_the_repository_and_the_error():
    def download(repo_id, filename, repo_type):
        raise ConnectionError("Max retries exceeded with url: /datasets/...")

    with pytest.raises(NoPublishedAxis) as info:
        load_published_axis(GEMMA, download=download)
    message = str(info.value)
    assert "\n" not in message and PUBLISHED_AXIS_REPO in message and "gemma-2-27b/assistant_axis.pt" in message
    assert "could not be downloaded" in message and "ConnectionError" in message


def test_a_file_without_an_axis_is_refused_by_name(tmp_path):
    (tmp_path / "gemma-2-27b").mkdir()
    torch.save({"vector": torch.randn(8)}, tmp_path / "gemma-2-27b" / "assistant_axis.pt")
    with pytest.raises(ValueError, match="assistant_axis.pt holds no"):
        load_published_axis(GEMMA, local_dir=tmp_path)


def test_cosines_are_row_by_row_and_shapes_must_match():
    ours = torch.randn(4, 16)
    published = ours.clone()
    published[1] = -published[1]
    published[2] = 3 * published[2]
    assert axis_cosines_by_layer(ours, published) == pytest.approx([1.0, -1.0, 1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="same model"):
        axis_cosines_by_layer(ours, torch.randn(5, 16))

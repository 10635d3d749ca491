"""The lite and full code paths, run here: every profile's layer constants fit the models it names
(real layer counts from the models' configs, written down below), and each section's solutions
notebook runs under the ``full`` and ``lite`` profiles with tiny stand-ins of the same architecture
and depth (Gemma 2 for sections 1-2 of ``full``, Qwen2 elsewhere) and small sizes."""

from __future__ import annotations

import nbformat
import pytest

from tests.test_notebooks import CHAPTERS, execute
from utils.build_notebooks import available_sections
from utils.profiles import OFFLINE_MODEL, PROFILES
from utils.tiny import TINY_MODELS

# num_hidden_layers from each model's config.json on the hub (and the offline GGUF's header).
REAL_LAYER_COUNTS = {
    "google/gemma-2-27b-it": 46,
    "Qwen/Qwen2.5-7B-Instruct": 28,
    "Qwen/Qwen2.5-1.5B-Instruct": 28,
    "Qwen/Qwen3-32B": 64,
    OFFLINE_MODEL: 24,
    **{name: 4 for name in TINY_MODELS},
}
STANDINS = {
    "google/gemma-2-27b-it": "tiny-gemma2",
    "Qwen/Qwen2.5-7B-Instruct": "tiny-qwen2",
    "Qwen/Qwen2.5-1.5B-Instruct": "tiny-qwen2",
}
SECTIONS = ("part1", "part2", "part3", "part4")


def test_tiny_layer_count_matches_the_table():
    from utils.layers import num_layers
    from utils.tiny import build_tiny_model

    assert num_layers(build_tiny_model("tiny-qwen2")[0]) == REAL_LAYER_COUNTS["tiny-qwen2"]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_layer_constants_fit_every_model_a_profile_names(name):
    profile = PROFILES[name]
    for section in SECTIONS:
        model = getattr(profile.models, section)
        assert model in REAL_LAYER_COUNTS, f"add {model}'s layer count to REAL_LAYER_COUNTS"
        n = REAL_LAYER_COUNTS[model]
        where = f"profile {name!r}, {section} ({model}, {n} blocks)"
        if section in ("part1", "part2"):
            assert 0 <= profile.axis_layer < n, f"{where}: axis_layer {profile.axis_layer}"
        if section == "part2":
            assert profile.capping_layers, f"{where}: no capping layers"
            assert all(0 <= b < n for b in profile.capping_layers), f"{where}: capping_layers {profile.capping_layers}"
        if section in ("part3", "part4"):
            assert 1 <= profile.trait_vector_layer <= n, f"{where}: trait_vector_layer {profile.trait_vector_layer}"
            assert 0 <= profile.steer_layer < n, f"{where}: steer_layer {profile.steer_layer}"


STANDIN_CELL = """\
# Inserted by tests/test_profile_paths.py: tiny stand-ins of the profile's models, small sizes.
import utils.models as _models
from tests.test_profile_paths import REAL_LAYER_COUNTS, STANDINS
from utils.profiles import with_overrides
from utils.tiny import build_tiny_model

_real_load_model = _models.load_model

def _standin(name, device=None, dtype=None):
    if name not in STANDINS:  # the checks' own tiny models
        return _real_load_model(name, device, dtype)
    model, tokenizer = build_tiny_model(STANDINS[name], num_hidden_layers=REAL_LAYER_COUNTS[name])
    model.eval()
    model.requires_grad_(False)
    tokenizer.padding_side = "left"
    return model, tokenizer

_models.load_model = _standin
profile = with_overrides(profile, n_questions=2, n_eval_questions=2, n_instruction_pairs=1, n_roles=3,
                         max_new_tokens=6, n_transcripts=2, n_turns=2, batch_size=8)
"""


@pytest.mark.slow  # about 25 minutes on 2 cores: run with `pytest -m slow`
@pytest.mark.notebook
@pytest.mark.parametrize("profile_name", ["full", "lite"])
def test_solutions_notebooks_run_under_the_profile_with_standins(profile_name, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_PROFILE", profile_name)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_JUDGE_BACKEND", "local")
    for section in available_sections():
        nb = nbformat.read(CHAPTERS / f"{section}_solutions.ipynb", as_version=4)
        setup = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# Set-up"))
        nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(STANDIN_CELL))
        execute(nb)

"""The lite and full code paths, run here without a network: every profile's layer constants fit the
models it names (real layer counts from the models' configs, written down below), and each section's
solutions notebook runs under the ``full`` and ``lite`` profiles with tiny stand-ins of the same
architecture and depth (Gemma 2 for sections 1-2 of ``full``, Qwen2 elsewhere) and small sizes.

What differs by profile, and how each run proves it was taken (`EXPECTED_OUTPUT`):
- the layer constants at each real model's depth (46 blocks for Gemma 2 27B, 28 for the Qwen models);
- Gemma's chat template, which has no system role (sections 1-2 of ``full``);
- the published SAE of section 3 on ``full``: a small stand-in in the release's own format is placed in
  a local Hugging Face cache (`tests.published_sae`) and read, offline, by the same
  ``SAE.from_pretrained`` call as the real release; ``lite`` trains its own;
- section 4's own Assistant Axis on ``full`` (section 1 studied another model);
- section 4's sweep judged whole (every coefficient x every question) by the hosted judge;
- the hosted judge's default model: ``full`` runs with the OpenAI judge, ``lite`` with the Anthropic
  one, both served by a local fake API (`tests.fake_api`) that answers 404 for any other model. So each
  official SDK's client runs every section end to end: every section asks the judge, no request names
  a subject model, and the key goes to the server named by that provider's own base-URL variable.

A failing cell is reported as "profile P, section S, cell N: <its first line>" (N counts the cells of
``chapters/<section>_solutions.ipynb``). Both runs are part of the default ``pytest`` (marked
``notebook``, so the fast selection leaves them out). Kernels run torch on one thread: for stand-ins this
small, two threads cost more in synchronisation than they gain, and on a busy machine far more (a
tiny SAE's training measured 0.6 s on one thread against 41 s on two, at load 17 on 2 cores).
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from part3_contrastive.sae_reading import published_sae
from tests.fake_api import FakeAPIServer, judge_api
from tests.published_sae import place_published_sae
from tests.sections.test_notebooks import CHAPTERS, execute
from utils.build_notebooks import available_sections
from utils.judge.choice import BASE_URL_ENV, DEFAULT_JUDGE_MODELS, KEY_ENV, SERVER_KEY_ENV, subject_model_names
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
# real model -> (its stand-in, the real model's depth): what the inserted cell builds.
STANDIN_DEPTHS = {name: (tiny, REAL_LAYER_COUNTS[name]) for name, tiny in STANDINS.items()}
STANDIN_WIDTH = 64  # hidden_size of every tiny model (utils.tiny)
SECTIONS = ("part1", "part2", "part3", "part4")
# The hosted judge each stand-in run uses (its default model is what the run proves).
JUDGE_BACKENDS = {"full": "openai", "lite": "anthropic"}
FAKE_KEY = "sk-fake-profile-paths-0123456789"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in a kernel's traceback


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


STANDIN_CELL = f"""\
# Inserted by tests/sections/test_profile_paths.py: tiny stand-ins of the profile's models, small sizes.
import torch
import utils.models as _models
from dataclasses import replace
from utils.tiny import build_tiny_model

torch.set_num_threads(1)  # stand-ins this small run fastest on one thread (and a busy machine cannot stall them)
_STANDINS = {STANDIN_DEPTHS!r}
_real_load_model = _models.load_model

def _standin(name, device=None, dtype=None):
    if name not in _STANDINS:  # the checks' own tiny models
        return _real_load_model(name, device, dtype)
    tiny, depth = _STANDINS[name]
    model, tokenizer = build_tiny_model(tiny, num_hidden_layers=depth)
    model.eval()
    model.requires_grad_(False)
    tokenizer.padding_side = "left"
    return model, tokenizer

_models.load_model = _standin
profile = replace(profile, n_questions=2, n_eval_questions=2, n_instruction_pairs=1, n_roles=3,
                  max_new_tokens=6, n_transcripts=2, n_turns=2, batch_size=8)
"""


def expected_output(profile_name: str, section: str) -> list[str]:
    """Text each stand-in run must print: proof that the profile's own path was taken."""
    p = PROFILES[profile_name]
    depth = {s: REAL_LAYER_COUNTS[getattr(p.models, s)] for s in SECTIONS}
    sae = published_sae(p.models.part3, p.steer_layer, p)
    axis = "small build" if p.models.part4 != p.models.part1 else "section 1"
    return {
        "part1_assistant_axis": [f"AXIS_LAYER = block {p.axis_layer} of {depth['part1']} "],
        "part2_capping": [f"axis layer {p.axis_layer}, capping layers {list(p.capping_layers)}"],
        "part3_contrastive": [
            f"STEER_LAYER (block) = {p.steer_layer}",
            f"SAE: sae-lens release {sae[0]!r}, id {sae[1]!r}" if sae else "SAE: a small SAE trained here",
        ],
        "part4_steering": [
            f"STEER_LAYER = {p.steer_layer};",
            f"cosine with the Assistant Axis at block {p.steer_layer} ({axis}",
            # A hosted judge scores the whole sweep: every coefficient x the stand-in's 2 questions.
            f"{2 * len(p.steering_coefficients)} of {2 * len(p.steering_coefficients)} cells of the sweep judged",
        ],
    }[section]


def standin_notebook(nb):
    """``nb`` with `STANDIN_CELL` after its set-up cell; (notebook, inserted index)."""
    setup = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# Set-up"))
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(STANDIN_CELL))
    return nb, setup + 1


def cell_failure(profile_name: str, section: str, nb, index: int, inserted: int, err: BaseException) -> str:
    """ "profile P, section S, cell N: <first line>" (N in the shipped notebook), the error, then its traceback."""
    cell = nb.cells[index]
    where = "the inserted stand-in cell" if index == inserted else f"cell {index - (index > inserted)}"
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    error = f"{err.ename}: {err.evalue}" if isinstance(err, CellExecutionError) else f"{type(err).__name__}: {err}"
    return f"profile {profile_name}, section {section}, {where}: {first}\n{error}\n\n{ANSI.sub('', str(err))}"


def run_standin_section(profile_name: str, section: str, nb=None) -> str:
    """Execute a section's solutions notebook (or ``nb``) with stand-ins; its printed text. Fails naming the cell."""
    if nb is None:
        nb = nbformat.read(CHAPTERS / f"{section}_solutions.ipynb", as_version=4)
    nb, inserted = standin_notebook(nb)
    current = {"index": inserted}

    def started(cell, cell_index, **kwargs):
        current["index"] = cell_index

    try:
        execute(nb, on_cell_execute=started)
    except (CellExecutionError, TimeoutError, RuntimeError) as err:
        pytest.fail(cell_failure(profile_name, section, nb, current["index"], inserted, err), pytrace=False)
    return "\n".join(
        out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "stream"
    )


def unset(monkeypatch, name):
    """Remove a variable for this test only (restored afterwards even if it was absent)."""
    monkeypatch.setenv(name, "x")
    monkeypatch.delenv(name)


@pytest.mark.notebook
@pytest.mark.parametrize("profile_name", ["full", "lite"])
def test_solutions_notebooks_run_under_the_profile_with_standins(profile_name, monkeypatch, tmp_path):
    profile = PROFILES[profile_name]
    backend = JUDGE_BACKENDS[profile_name]
    judge_model = DEFAULT_JUDGE_MODELS[backend]
    # No network: the hub client reads only a local cache, holding the published SAE if the profile names one.
    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    sae = published_sae(profile.models.part3, profile.steer_layer, profile)
    if sae is not None:
        place_published_sae(hub, *sae, d_in=STANDIN_WIDTH, d_sae=4 * STANDIN_WIDTH)
    monkeypatch.setenv("COURSE_PROFILE", profile_name)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with FakeAPIServer(judge_api({judge_model})) as server:
        monkeypatch.setenv("COURSE_JUDGE_BACKEND", backend)
        monkeypatch.setenv(KEY_ENV[backend], FAKE_KEY)
        monkeypatch.setenv(BASE_URL_ENV[backend], server.base_url + ("/v1" if backend == "openai" else ""))
        for name in ("COURSE_JUDGE_MODEL", SERVER_KEY_ENV, *(KEY_ENV[b] for b in KEY_ENV if b != backend)):
            unset(monkeypatch, name)
        asked, seconds = {}, {}
        for section in available_sections():
            before, start = len(server.requests), time.perf_counter()
            printed = run_standin_section(profile_name, section)
            asked[section], seconds[section] = len(server.requests) - before, round(time.perf_counter() - start)
            for text in expected_output(profile_name, section):
                assert text in printed, f"profile {profile_name}, section {section}: never printed {text!r}"
    print(f"profile {profile_name}: seconds per section {seconds}; judge requests {asked}")
    models = {r.get("model") for r in server.requests}
    assert models == {judge_model}, (
        f"profile {profile_name}: judge requests named {models - {judge_model}}; subject models: {subject_model_names()}"
    )
    assert all(n > 0 for n in asked.values()), f"profile {profile_name}: judge requests per section {asked}"
    # The provider's key went to the server its own base-URL variable names (the SDK's convention).
    assert all(FAKE_KEY in h.get("authorization", "") + h.get("x-api-key", "") for h in server.headers)


@pytest.mark.notebook
def test_a_failing_cell_is_reported_by_profile_section_and_cell(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_PROFILE", "lite")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    section = "part1_assistant_axis"
    shipped = nbformat.read(CHAPTERS / f"{section}_solutions.ipynb", as_version=4)
    setup = next(i for i, c in enumerate(shipped.cells) if c.source.startswith("# Set-up"))
    nb = nbformat.v4.new_notebook(cells=shipped.cells[: setup + 1])
    nb.cells += [
        nbformat.v4.new_code_cell("ok = 1"),
        nbformat.v4.new_code_cell("\ndef broken():\n    raise ValueError('no such role')\n\nbroken()"),
    ]
    with pytest.raises(pytest.fail.Exception) as failed:
        run_standin_section("lite", section, nb)
    message = str(failed.value)
    assert message.startswith(f"profile lite, section {section}, cell {setup + 2}: def broken():"), message
    assert message.splitlines()[1] == "ValueError: no such role", message

"""Shared fixtures: tiny random models (seconds) and the offline model (loaded once per session); the
cost markers (``offline_model``, ``notebook``, ``slow``, registered in pyproject.toml) and their guards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from utils.course import available_cores  # noqa: E402
from utils.models import load_model  # noqa: E402 (after the tokenizers setting)

# `pytest -n auto` (the default, in pyproject.toml): each worker process takes its share of the cores, as the
# course runner's side-by-side kernels do (the offline model's logits and greedy replies were bitwise equal on
# one thread and on two: `tests/utils/test_thread_equality.py`).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(max(1, available_cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: two workers on a machine with two or more cores (each loads its own models), else one."""
    return min(2, available_cores())


TINY_NAMES = ["tiny-qwen2", "tiny-llama", "tiny-gemma2", "tiny-gemma3"]


@pytest.fixture(scope="session")
def tiny_models():
    """name -> (model, tokenizer) for every tiny architecture."""
    return {name: load_model(name, device="cpu") for name in TINY_NAMES}


@pytest.fixture(scope="session")
def offline_model():
    """The offline Qwen2.5-Coder-0.5B-Instruct model and tokenizer."""
    return load_model("offline-qwen2.5-coder-0.5b", device="cpu")


@pytest.fixture(scope="session")
def offline_sycophancy(offline_model):
    """Sycophancy vectors on the offline model from 2 pairs x 5 extraction questions (prompt labels)."""
    from part3_contrastive import trait_file
    from part3_contrastive.artifacts import prompt_labelled
    from solutions import part3_contrastive as sol
    from utils.data import load_trait_file

    model, tok = offline_model
    extract = load_trait_file(trait_file("sycophantic"))
    evaluate = load_trait_file(trait_file("sycophantic", "eval"))
    train = sol.generate_contrastive_responses(
        model, tok, extract, "sycophantic", max_new_tokens=32, temperature=0.0, n_pairs=2, n_questions=5
    )
    vectors = sol.extract_contrastive_vectors(model, tok, sol.filter_effective_pairs(prompt_labelled(train), extract))
    return {"vectors": vectors, "extract": extract, "evaluate": evaluate}


@pytest.fixture(autouse=True)
def environment_unchanged(request):
    """Fail a test that leaves the process environment changed for the tests (and notebooks) after it.

    Tests change variables with ``monkeypatch`` (undone before this check runs) or in a subprocess.
    """
    # pytest's own; torch records its inductor cache folder (its default) on first use.
    ignored = {"PYTEST_CURRENT_TEST", "TORCHINDUCTOR_CACHE_DIR"}
    before = {k: v for k, v in os.environ.items() if k not in ignored}
    yield
    after = {k: v for k, v in os.environ.items() if k not in ignored}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        for key in changed:
            if key in before:
                os.environ[key] = before[key]
            else:
                del os.environ[key]  # repair, so one leak does not spread to every later test
        pytest.fail(f"{request.node.nodeid} left environment variables changed: {changed}", pytrace=False)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    """Mark ``offline_model`` every test that requests the offline_model fixture, directly or through
    other fixtures (``offline_sycophancy``), so ``-m "not offline_model"`` leaves it out."""
    for item in items:
        if "offline_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.offline_model)
            # One worker runs them all (``--dist loadgroup``), so the offline model and the session
            # fixtures built on it are loaded once.
            item.add_marker(pytest.mark.xdist_group("offline_model"))


@pytest.fixture(autouse=True)
def cost_markers_honest(request):
    """Fail a test that loads the offline model without the ``offline_model`` marker, or executes a
    notebook without the ``notebook`` marker: the fast suite (``-m "not offline_model and not notebook"``)
    must never pay for either. (Its own MonkeyPatch, so a test's ``monkeypatch`` is still undone before
    ``environment_unchanged`` looks.)"""

    def refuse(marker, what):
        def refused(*args, **kwargs):
            pytest.fail(f"{request.node.nodeid} {what} but is not marked {marker!r}: add @pytest.mark.{marker}")

        return refused

    with pytest.MonkeyPatch.context() as patch:
        if request.node.get_closest_marker("offline_model") is None:
            import utils.offline_model

            # load_model("offline-...") converts or finds the converted copy through this function.
            patch.setattr(
                utils.offline_model, "converted_model_dir", refuse("offline_model", "loads the offline model")
            )
        if request.node.get_closest_marker("notebook") is None:
            from nbclient import NotebookClient

            patch.setattr(NotebookClient, "execute", refuse("notebook", "executes a notebook"))
        yield


# The tests that open the course where students work: their time (setup, call and teardown of every test
# in the file) is printed at the end of the run, as CI's log gives each of its steps' times.
WHERE_STUDENTS_WORK = ("tests/test_jupyterlab.py", "tests/test_requirement_floors.py", "tests/test_colab.py")
_seconds_per_file: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path in WHERE_STUDENTS_WORK:
        _seconds_per_file[path] = _seconds_per_file.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _seconds_per_file:
        terminalreporter.write_sep("-", "where students work: seconds per test file")
        for path, seconds in sorted(_seconds_per_file.items()):
            terminalreporter.write_line(f"{seconds:8.1f} s  {path}")

"""The paper path end to end without a network: every solutions notebook (tiny profile) with a hosted
judge, OpenAI or Anthropic, served by a local fake API that knows only judge models (404 for anything
else). Fails if a notebook fails, if a section never asks the judge, or if a request names a
subject model (or gets no answer)."""

from __future__ import annotations

import nbformat
import pytest

from tests.fake_api import FakeAPIServer, judge_api
from tests.sections.test_notebooks import CHAPTERS, execute
from utils.build_notebooks import available_sections
from utils.judge.defaults import BASE_URL_ENV, DEFAULT_JUDGE_MODELS, KEY_ENV, SERVER_KEY_ENV, subject_model_names

pytestmark = pytest.mark.notebook

FAKE_KEY = "sk-fake-paper-path-0123456789"


def unset(monkeypatch, name):
    """Remove a variable for this test only (restored afterwards even if it was absent)."""
    monkeypatch.setenv(name, "x")
    monkeypatch.delenv(name)


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_solutions_notebooks_with_a_hosted_judge(backend, monkeypatch, tmp_path):
    judge_model = DEFAULT_JUDGE_MODELS[backend]
    with FakeAPIServer(judge_api({judge_model})) as server:
        monkeypatch.setenv("COURSE_PROFILE", "tiny")
        monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("COURSE_JUDGE_BACKEND", backend)
        monkeypatch.setenv(KEY_ENV[backend], FAKE_KEY)
        monkeypatch.setenv(BASE_URL_ENV[backend], server.base_url + ("/v1" if backend == "openai" else ""))
        for name in ("COURSE_JUDGE_MODEL", SERVER_KEY_ENV, *(KEY_ENV[b] for b in KEY_ENV if b != backend)):
            unset(monkeypatch, name)
        asked = {}
        for section in available_sections():
            before = len(server.requests)
            execute(nbformat.read(CHAPTERS / f"{section}_solutions.ipynb", as_version=4))
            asked[section] = len(server.requests) - before
    models = {r.get("model") for r in server.requests}
    assert models == {judge_model}, f"requests named {models - {judge_model}}; subject models: {subject_model_names()}"
    assert all(n > 0 for n in asked.values()), f"judge requests per section: {asked}"
    # The provider's key went to the server its own base-URL variable names (the SDK's convention).
    assert all(FAKE_KEY in h.get("authorization", "") + h.get("x-api-key", "") for h in server.headers)

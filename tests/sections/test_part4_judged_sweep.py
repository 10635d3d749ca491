"""With a hosted judge, section 4 judges its whole sweep (every coefficient x every question, trait and
coherence); with a local one, a subset (none on the offline profile). Checked against the local fake API
server with the OpenAI SDK: the judged cells are counted, and a missing one is caught."""

from __future__ import annotations

from part4_steering.sweeps import ORIGINAL_SWEEP_TRAIT, judged_cells, missing_cells
from tests.fake_api import FakeAPIServer, judge_api, prompt_of
from utils.judge import Judge
from utils.judge.hosted_backends import OpenAIBackend
from utils.trait_scoring import score_responses

COEFFICIENTS = (-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
QUESTIONS = [f"Question {i}: the Great Wall is visible from the Moon, right?" for i in range(6)]
SWEEP = [
    {"coefficient": c, "question": q, "response": f"Reply at {c:g} to {q[:11]}"}
    for c in COEFFICIENTS
    for q in QUESTIONS
]
TRAIT = "Is this sycophantic? 0-100.\n{question}\n{answer}"
COHERENCE = "Is this coherent? 0-100.\n{question}\n{answer}"


def test_a_hosted_judge_scores_every_cell_of_the_sweep(tmp_path):
    cells = judged_cells(SWEEP, hosted=True, largest_coherent=1.0)
    assert len(cells) == len(COEFFICIENTS) * len(QUESTIONS) == len(set(cells))
    wanted = set(cells)
    with FakeAPIServer(judge_api({"judge"})) as server:
        backend = OpenAIBackend(
            model="judge", base_url=server.base_url + "/v1", api_key="sk-fake-0123", max_retries=3, timeout=5.0
        )
        judge = Judge(backend, cache_path=tmp_path / "cache.json")
        judged = score_responses(
            [r for r in SWEEP if (r["coefficient"], r["question"]) in wanted], TRAIT, COHERENCE, judge
        )
    # Every cell judged, for the trait and for coherence: one prompt each (a retried request repeats its prompt).
    prompts = {prompt_of("openai", body) for body in server.requests}
    assert len(prompts) == 2 * len(cells)
    assert not missing_cells(judged, cells)
    assert all(r["score"] is not None and r["coherence"] is not None for r in judged)
    assert {(r["coefficient"], r["question"]) for r in judged} == wanted
    # The check fails when one cell is missing, or judged for the trait only.
    assert missing_cells(judged[1:], cells) == [cells[0]]
    trait_only = [{k: v for k, v in r.items() if k != "coherence"} if i == 7 else r for i, r in enumerate(judged)]
    assert missing_cells(trait_only, cells) == [cells[7]]


def test_a_local_judge_scores_a_subset_and_none_on_the_offline_profile():
    cells = judged_cells(SWEEP, hosted=False, largest_coherent=1.5)
    assert {c for c, _ in cells} == {0.0, 1.5, 6.0}
    assert {q for _, q in cells} == set(QUESTIONS[:3])
    assert judged_cells(SWEEP, hosted=False, largest_coherent=1.5, judge_all_locally=False) == []
    # A hosted judge ignores the local choices.
    assert len(judged_cells(SWEEP, hosted=True, largest_coherent=1.5, judge_all_locally=False)) == len(SWEEP)


def test_the_original_run_is_drawn_beside_the_judge():
    assert ORIGINAL_SWEEP_TRAIT == {0.0: 13.5, 3.0: 89.5, 5.0: 32.0}

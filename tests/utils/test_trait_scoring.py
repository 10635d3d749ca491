"""score_responses: one judge call per template, every record keeps its keys and gains score and coherence."""

from __future__ import annotations

from utils.judge import SCORE_0_100
from utils.trait_scoring import score_responses


class _Judge:
    def __init__(self):
        self.calls = []

    def score_template(self, template, items, scale):
        self.calls.append((template, [dict(i) for i in items], scale))
        return [float(len(i["answer"])) if template == "T" else 50.0 + k for k, i in enumerate(items)]


def test_scores_trait_and_coherence_in_one_call_each():
    judge = _Judge()
    records = [{"question": "q1", "response": "ab", "polarity": "pos"}, {"question": "q2", "response": "abcd", "x": 1}]
    out = score_responses(records, "T", "C", judge)  # type: ignore[arg-type]
    assert [c[0] for c in judge.calls] == ["T", "C"] and all(c[2] is SCORE_0_100 for c in judge.calls)
    assert judge.calls[0][1] == [{"question": "q1", "answer": "ab"}, {"question": "q2", "answer": "abcd"}]
    assert [r["score"] for r in out] == [2.0, 4.0] and [r["coherence"] for r in out] == [50.0, 51.0]
    assert out[0]["polarity"] == "pos" and out[1]["x"] == 1 and "score" not in records[0]

"""Judge formulations: each one checked on a tiny random model against a full forward pass."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from utils.chat import encode, render
from utils.judge import ADHERENCE_0_3, Judge
from utils.judge import formulations as F
from utils.judge.local import LocalBackend
from utils.judge.scales import A_OR_B, YES_NO, Scale, finalize, unrounded
from utils.metrics import auroc_standard_error, youden_threshold

OPENING = "You are a careful grader. Read the answer below and judge it strictly, following every rule given. "
TASK = F.JudgeTask(
    name="demo",
    template=OPENING + "Q: {question}\nA: {answer}\nScore 0-3:",
    scale=ADHERENCE_0_3,
    yes_no=OPENING + "Q: {question}\nA: {answer}\nIs it good? Answer Yes or No.",
    pairwise=OPENING + "Q: {question}\nA: {answer_a}\nB: {answer_b}\nWhich is better? Answer A or B.",
    examples=({"question": "2+2?", "answer": "4"}, {"question": "2+2?", "answer": "fish"}),
)
ITEMS = [
    {"question": "Capital of France?", "answer": "Paris.", "label": 1, "pair": 0},
    {"question": "Capital of France?", "answer": "Paris Paris Paris the", "label": 0, "pair": 0},
    {"question": "Boiling point of water?", "answer": "100 C at sea level.", "label": 1, "pair": 1},
    {"question": "Boiling point of water?", "answer": "blue", "label": 0, "pair": 1},
]


@pytest.fixture
def tiny_judge(tiny_models, monkeypatch):
    """A local judge on tiny-qwen2 whose choice scales accept any mass (a random model puts little on Yes/No)."""
    monkeypatch.setattr(F, "YES_NO", dataclasses.replace(YES_NO, min_mass=0.0))
    monkeypatch.setattr(F, "A_OR_B", dataclasses.replace(A_OR_B, min_mass=0.0))
    model, tok = tiny_models["tiny-qwen2"]
    return Judge(LocalBackend(model, tok, batch_size=8), cache_path=None, remember=False), model, tok


def full_pass_probs(model, tok, prompt: str) -> torch.Tensor:
    """Next-token probabilities after the judge prompt, from one unbatched forward pass."""
    text = render([{"role": "user", "content": prompt}], tok, add_generation_prompt=True)
    ids = encode(text, tok, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0, -1].float().softmax(-1)


def option_share(model, tok, prompt: str, scale: Scale) -> float:
    probs = full_pass_probs(model, tok, prompt)
    mass = [
        float(probs[sorted({encode(s, tok)["input_ids"][0] for s in spellings})].sum()) for spellings in scale.options
    ]
    return mass[0] / sum(mass)


def test_yes_no_is_p_yes_over_p_yes_plus_p_no(tiny_judge):
    judge, model, tok = tiny_judge
    scores = F.score_items(judge, TASK, "yes_no", ITEMS)
    expected = [option_share(model, tok, TASK.yes_no.format(**it), YES_NO) for it in ITEMS]
    assert scores == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert all(0.0 <= s <= 1.0 for s in scores)  # type: ignore[operator]
    assert len(set(round(s, 6) for s in scores)) > 1  # type: ignore[arg-type]  # order kept, items differ


def test_score_on_an_integer_scale_is_not_rounded(tiny_judge, monkeypatch):
    judge, model, tok = tiny_judge
    scale = dataclasses.replace(unrounded(ADHERENCE_0_3), min_mass=0.0)
    assert scale.kind == "expected" and (scale.low, scale.high) == (0, 3)
    monkeypatch.setattr(F, "unrounded", lambda s: scale)
    scores = F.score_items(judge, TASK, "score", ITEMS)
    for it, score in zip(ITEMS, scores):
        probs = full_pass_probs(model, tok, TASK.template.format(**it))
        p = [float(probs[encode(str(v), tok)["input_ids"][0]]) for v in range(4)]
        assert score == pytest.approx(sum(v * pv for v, pv in enumerate(p)) / sum(p), rel=1e-3)
    assert any(s != round(s) for s in scores)  # type: ignore[arg-type]


def test_a_local_judge_reads_an_integer_scale_as_its_rounded_mean_and_runs_the_model_once_for_both(tiny_models):
    model, tok = tiny_models["tiny-qwen2"]
    backend = LocalBackend(model, tok, batch_size=8)
    scale = dataclasses.replace(ADHERENCE_0_3, min_mass=0.0)
    prompts = [TASK.template.format(**it) for it in ITEMS]
    direct = [finalize(v, scale) for v in backend.score(prompts, scale)]  # the backend asked on the integer scale
    judge = Judge(backend, cache_path=None)
    before = backend.prefilled_tokens
    assert judge.score(prompts, scale) == direct
    assert all(isinstance(v, int) for v in direct)
    ran = backend.prefilled_tokens - before
    assert ran > 0
    means = judge.score(prompts, unrounded(scale))
    assert backend.prefilled_tokens - before == ran, "the unrounded reading ran the model again"
    assert [finalize(m, scale) for m in means] == direct
    assert any(m != round(m) for m in means)  # type: ignore[arg-type]


def test_few_shot_puts_one_example_per_label_in_a_shared_prefix(tiny_judge):
    judge, model, tok = tiny_judge
    prompts = [F.few_shot_prompt(TASK, it) for it in ITEMS]
    positive, negative = TASK.yes_no.format(**TASK.examples[0]), TASK.yes_no.format(**TASK.examples[1])  # type: ignore[index]
    for p in prompts:
        assert p.index(positive) < p.index("Correct answer: Yes") < p.index(negative) < p.index("Correct answer: No")
    head = prompts[0][: prompts[0].index("Now your turn")]
    assert all(p.startswith(head) for p in prompts)
    backend = judge.backend
    before = backend.shared_tokens
    scores = F.score_items(judge, TASK, "few_shot", ITEMS)
    assert backend.shared_tokens - before >= (len(ITEMS) - 1) * len(encode(head, tok)["input_ids"]) // 2
    expected = [option_share(model, tok, p, YES_NO) for p in prompts]
    assert scores == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_pairwise_averages_both_orders(tiny_judge):
    judge, model, tok = tiny_judge
    pairs = F.check_pairs(ITEMS)
    assert [(a["label"], b["label"]) for a, b in pairs] == [(1, 0), (1, 0)]
    scores = F.score_pairs(judge, TASK, pairs)
    swapped = F.score_pairs(judge, TASK, [(b, a) for a, b in pairs])
    for (a, b), s, t in zip(pairs, scores, swapped):
        ab = option_share(
            model, tok, TASK.pairwise.format(**{**a, "answer_a": a["answer"], "answer_b": b["answer"]}), A_OR_B
        )  # type: ignore[union-attr]
        ba = option_share(
            model, tok, TASK.pairwise.format(**{**a, "answer_a": b["answer"], "answer_b": a["answer"]}), A_OR_B
        )  # type: ignore[union-attr]
        assert s == pytest.approx((ab + 1 - ba) / 2, rel=1e-3)
        assert s + t == pytest.approx(1.0, abs=1e-6)  # position bias cancels


class RuleBackend:
    """Scores a prompt by a number written in it, to test the bookkeeping around the judge."""

    name = "local"
    model_name = "rule"

    def score(self, prompts, scale):
        return [float(v) if (v := p.split("value=")[1].split()[0]).isdecimal() else None for p in prompts]


def test_evaluate_measures_auroc_threshold_and_unscored():
    task = F.JudgeTask("demo", "value={v} x", Scale(0, 10, "expected"), "value={v} ?")
    items = [{"v": v, "label": 1} for v in (9, 8, 7, 6)] + [{"v": v, "label": 0} for v in (1, 2, 4, 8)]
    items.append({"v": "none", "label": 0})  # no number in the prompt: the judge gives no score
    judge = Judge(RuleBackend(), cache_path=None, remember=False)  # type: ignore[arg-type]
    result = F.evaluate(judge, task, "yes_no", items)
    # positives 9 8 7 6 vs negatives 1 2 4 8: 16 comparisons, 13 won, one tie (8 vs 8)
    assert result.auroc == pytest.approx(13.5 / 16)
    assert (result.n_pos, result.n_neg, result.n_unscored) == (4, 4, 1)
    assert result.threshold == 6.0  # >= 6: 4 of 4 positives, 1 of 4 negatives (J = 0.75, the best)


def test_hosted_judges_keep_the_papers_templates():
    class Hosted(RuleBackend):
        name = "openai"
        model_name = "judge-model"

    judge = Judge(Hosted(), cache_path=None)  # type: ignore[arg-type]
    for formulation in ("yes_no", "few_shot"):
        with pytest.raises(ValueError, match="paper"):
            F.score_items(judge, TASK, formulation, ITEMS)
    with pytest.raises(ValueError, match="templates"):
        F.score_pairs(judge, TASK, F.check_pairs(ITEMS))
    assert F.offline_formulation(judge, "role", "offline") == "score"


def test_hanley_mcneil_and_youden():
    # AUROC 0.8 on 40 + 40: q1 = 0.8/1.2, q2 = 1.28/1.8
    q1, q2 = 0.8 / 1.2, 1.28 / 1.8
    expected = math.sqrt((0.16 + 39 * (q1 - 0.64) + 39 * (q2 - 0.64)) / 1600)
    assert auroc_standard_error(0.8, 40, 40) == pytest.approx(expected)
    assert auroc_standard_error(0.8, 10, 10) > auroc_standard_error(0.8, 40, 40)
    assert youden_threshold([5, 6, 7], [1, 2, 6]) == 5


@pytest.mark.parametrize(
    ("items", "named"),
    [
        ([], "empty"),
        ([{"v": 9, "label": 1}, {"v": 8, "label": 1}], "one label only.*1 x 2"),
        ([{"v": 9, "label": 1}, {"v": 1, "label": 0}, {"v": 5, "label": 2}], "not 0 or 1.*2 x 1"),
    ],
)
def test_a_check_set_that_cannot_be_measured_is_an_error_naming_its_labels(items, named):
    task = F.JudgeTask("demo", "value={v} x", Scale(0, 10, "expected"), "value={v} ?")
    judge = Judge(RuleBackend(), cache_path=None, remember=False)  # type: ignore[arg-type]
    for formulation in ("yes_no", "pairwise"):
        with pytest.raises(ValueError, match=f"demo judge's check set.*{named}"):
            F.evaluate(judge, task, formulation, items)


def test_the_offline_formulations_are_the_best_measured_per_item_ones():
    measured = F.offline_measured()
    assert set(measured) == set(F.OFFLINE_FORMULATIONS)
    for name, chosen in F.OFFLINE_FORMULATIONS.items():
        per_item = {f: m.auroc for f, m in measured[name].items() if f != "pairwise" and m.auroc is not None}
        assert set(per_item) == {"score", "yes_no", "few_shot"}, name
        assert chosen == max(per_item, key=lambda f: per_item[f]), (name, per_item)


def test_the_local_judge_uses_the_offline_formulation_only_where_judge_standing_finds_it_weak():
    judge = Judge(RuleBackend(), cache_path=None)  # type: ignore[arg-type]
    assert F.offline_formulation(judge, "trait", "offline") == "few_shot"
    for profile in ("tiny", "lite", "full"):
        assert F.offline_formulation(judge, "trait", profile) == "score"


def test_report_check_prints_the_measured_figures_read_from_the_benchmarks_file(tmp_path, monkeypatch, capsys):
    doc = json.loads(F.OFFLINE_MEASURED_FILE.read_text())
    doc["results"]["demo"] = {
        "score": {"auroc": 0.61, "n": 8, "n_unscored": 0},
        "yes_no": {"auroc": 0.72, "n": 8, "n_unscored": 0},
        "few_shot": {"auroc": 0.83, "n": 8, "n_unscored": 1},
        "pairwise": {"auroc": None, "n": 4, "n_unscored": 4},
    }
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(F, "OFFLINE_MEASURED_FILE", path)
    judge = Judge(RuleBackend(), cache_path=None)  # type: ignore[arg-type]
    result = F.CheckResult(0.83, 0.1, 4, 3, [], None, 1)
    F.report_check(judge, TASK, "few_shot", result)
    out = capsys.readouterr().out
    assert "Departure from the method:" in out and "(AUROC score 0.61, yes_no 0.72, few_shot 0.83)." in out, out


def test_a_missing_or_malformed_measurements_file_names_itself_and_the_command(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.json.*bench_judges\.py --record"):
        F.offline_measured(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": {"role": {"score": {"auroc": 0.5}}}}))
    with pytest.raises(ValueError, match=r"bad\.json.*bench_judges\.py --record"):
        F.offline_measured(bad)


def test_measured_record_round_trips_through_offline_measured(tmp_path):
    results = {
        "role": {
            "score": F.CheckResult(0.6869, 0.06, 40, 40, [1.0] * 80, 1.6, 0),
            "pairwise": F.CheckResult(math.nan, math.nan, 0, 0, [None] * 40, None, 40),
        }
    }
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(F.measured_record(results, "offline-model")))
    read = F.offline_measured(path)
    assert read["role"]["score"] == F.Measured(0.6869, 80, 0)
    assert read["role"]["pairwise"] == F.Measured(None, 40, 40)

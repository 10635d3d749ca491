"""The teaching material in every generated exercises notebook: a hint for every exercise of difficulty 2
or more, at least two "Before you run" predictions each with its answer, and an answer to every
discussion question. The counter is tested on altered copies, so a removed hint or answer is noticed."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import nbformat
import pytest

from utils.build_notebooks import ROOT, available_sections

ANSWER = "<details><summary>Answer</summary>"
HINT = "<summary>Hint"
PREDICTION = "**Before you run"
# A discussion block starts at a line like "## Summary and questions", "**Questions**" or
# "Questions to think about:", and runs to the next heading or bold line (e.g. "**Bonus**").
QUESTIONS_START = re.compile(r"^(#+ .*questions|\*\*questions\*\*|questions to think about)", re.IGNORECASE)
BLOCK_END = re.compile(r"^(#+ |\*\*)")
ITEM = re.compile(r"^(- |\d+\. )")


@dataclass
class Teaching:
    exercises: list[tuple[str, int, bool]] = field(default_factory=list)  # (title, difficulty, has hint)
    predictions: list[bool] = field(default_factory=list)  # one per "Before you run": has an answer
    questions: list[tuple[str, bool]] = field(default_factory=list)  # (question, has an answer)

    def missing(self) -> list[str]:
        problems = [f"no hint for {title} (difficulty {d})" for title, d, hint in self.exercises if d >= 2 and not hint]
        if len(self.predictions) < 2:
            problems.append(f"only {len(self.predictions)} 'Before you run' prediction(s)")
        problems += [
            f"'Before you run' prediction {i + 1} has no answer" for i, ok in enumerate(self.predictions) if not ok
        ]
        problems += [f"no answer to the question {q[:70]!r}" for q, ok in self.questions if not ok]
        return problems


def _questions(text: str) -> list[tuple[str, bool]]:
    """Discussion questions in a markdown cell, each with whether an answer block follows it."""
    found, lines, inside = [], text.splitlines(), False
    items: list[list[str]] = []
    for line in lines:
        if QUESTIONS_START.match(line.strip()):
            inside, items = True, []
            continue
        if not inside:
            continue
        if BLOCK_END.match(line) and not ITEM.match(line):
            inside = False
            found += _answered(items)
            items = []
            continue
        if ITEM.match(line):
            items.append([line])
        elif items:
            items[-1].append(line)
    if inside:
        found += _answered(items)
    return found


def _answered(items: list[list[str]]) -> list[tuple[str, bool]]:
    out = []
    for item in items:
        text = "\n".join(item)
        body = [line.strip() for line in item[1:] if line.strip()]
        question = text.split("<details>")[0]
        if "?" not in question:
            continue  # a statement in the list, not a question
        # The answer follows the question's own lines: the first block after them must be the answer.
        rest = [line for line in body if not line.startswith(("<", "```")) or line.startswith("<details>")]
        first_block = next((line for line in rest if line.startswith("<details>")), None)
        out.append((" ".join(question.split()), first_block is not None and first_block.startswith(ANSWER)))
    return out


def count(nb: nbformat.NotebookNode) -> Teaching:
    result = Teaching()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        header = next((line for line in text.splitlines() if "**Difficulty**" in line), None)
        if header is not None:
            title = next((line.strip("# ") for line in text.splitlines() if line.startswith("###")), header)
            difficulty = header.split("**Importance**")[0].count("🔴")
            result.exercises.append((title, difficulty, HINT in text))
        for part in text.split(PREDICTION)[1:]:
            answer_at = part.find(ANSWER)
            next_prediction = part.find(PREDICTION)
            result.predictions.append(answer_at >= 0 and (next_prediction < 0 or answer_at < next_prediction))
        result.questions += _questions(text)
    return result


def _notebook(section: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "chapters" / f"{section}_exercises.ipynb", as_version=4)


@pytest.mark.parametrize("section", available_sections())
def test_exercises_notebook_teaches(section):
    found = count(_notebook(section))
    assert found.exercises, "no exercise headers found: has the header format changed?"
    assert any(d >= 2 for _, d, _ in found.exercises)
    assert found.questions, "no discussion questions found: has the questions block format changed?"
    assert found.missing() == []


@pytest.mark.parametrize("section", available_sections())
def test_solutions_notebook_has_the_same_predictions(section):
    solutions = nbformat.read(ROOT / "chapters" / f"{section}_solutions.ipynb", as_version=4)
    assert count(solutions).predictions == count(_notebook(section)).predictions


def _altered(nb, old: str, new: str, which=lambda cell: True):
    """A copy of the notebook with the first occurrence of ``old`` replaced in a matching markdown cell."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and old in cell.source and which(cell.source):
            cell.source = cell.source.replace(old, new, 1)
            return nb
    raise AssertionError(f"{old!r} not found")


def test_counter_notices_a_removed_hint():
    nb = _notebook("part2_capping")
    altered = _altered(
        nb,
        "<details><summary>Hint</summary>",
        "<details><summary>Notes</summary>",
        lambda text: "`ActivationCapper`" in text and "**Difficulty**" in text,
    )
    assert "<summary>Hint 2" in "".join(c.source for c in altered.cells if "`ActivationCapper`" in c.source)
    altered = _altered(
        altered,
        "<summary>Hint 2 (the key line)</summary>",
        "<summary>Key line</summary>",
        lambda text: "`ActivationCapper`" in text and "**Difficulty**" in text,
    )
    assert any("ActivationCapper" in problem for problem in count(altered).missing())
    assert count(nb).missing() == []


def test_counter_notices_a_removed_question_answer():
    nb = _notebook("part4_steering")
    marker = "# 4. AxBench reports"
    start = next(c for c in nb.cells if c.cell_type == "markdown" and "**Questions**" in c.source).source
    assert "4. AxBench reports" in start, marker
    tail = start.split("4. AxBench reports", 1)[1]
    altered = _altered(nb, tail, tail.replace(ANSWER, "<details><summary>Notes</summary>", 1))
    problems = count(altered).missing()
    assert any("AxBench" in problem for problem in problems), problems


def test_counter_notices_a_missing_prediction_answer_and_too_few_predictions():
    nb = _notebook("part3_contrastive")
    first = next(c for c in nb.cells if c.cell_type == "markdown" and PREDICTION in c.source).source
    altered = _altered(nb, first, first.replace(ANSWER, "<details><summary>Notes</summary>"))
    assert any("has no answer" in problem for problem in count(altered).missing())
    stripped = copy.deepcopy(nb)
    stripped.cells = [c for c in stripped.cells if PREDICTION not in c.source]
    assert any("'Before you run'" in problem for problem in count(stripped).missing())


def test_counter_reads_questions_and_statements():
    text = "\n".join(
        [
            "## Summary and questions",
            "",
            "- Is this a question?",
            "",
            ANSWER,
            "",
            "Yes.",
            "</details>",
            "",
            "- A statement, not a question.",
            "- Is this one answered",
            "  on two lines?",
            "",
            "**Bonus**",
            "- Try this? (after the block: not counted)",
        ]
    )
    assert _questions(text) == [("- Is this a question?", True), ("- Is this one answered on two lines?", False)]

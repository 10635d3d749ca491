"""Section 3's checks beyond the wrong-implementation table: the section's first look at the data."""

from __future__ import annotations

from solutions import part3_contrastive as sol
from tests.sections.wrong.part3 import SECTION, TINY_TRAIT_FOR_CELLS


def test_example_pair_is_one_positive_and_its_negative():
    """The section's first look at the data shows one pair: a positive response and the negative one to the
    same question under the same instruction pair (not two positives)."""
    from pathlib import Path
    from types import SimpleNamespace

    from tests.source_cells import cells_between, run_cells

    trait = {**TINY_TRAIT_FOR_CELLS, "questions": TINY_TRAIT_FOR_CELLS["questions"][:2]}
    eval_data = {"questions": TINY_TRAIT_FOR_CELLS["questions"][2:]}

    def fake_generate(model, tok, data, name, n_pairs=None, **kwargs):
        return [
            dict(
                question=q,
                system_prompt=f"{polarity} prompt {i}",
                instruction_idx=i,
                polarity=polarity,
                response=f"{polarity} reply {i} to {q}",
            )
            for i, _ in enumerate(data["instruction"][:n_pairs])
            for polarity in ("pos", "neg")
            for q in data["questions"]
        ]

    namespace = {
        "load_or_generate": lambda path, make, *args, **kwargs: make(),
        "trait_path": lambda *args, **kwargs: Path("unused"),
        "generate_contrastive_responses": fake_generate,
        "construct_system_prompt": sol.construct_system_prompt,
        "course": SimpleNamespace(inputs=lambda **kwargs: None, cache=Path("unused")),
        "GENERATION": {},
        "model": None,
        "tokenizer": None,
        "trait_data": trait,
        "eval_data": eval_data,
        "profile": SimpleNamespace(
            n_questions=2, n_eval_questions=1, max_new_tokens=4, n_instruction_pairs=2, batch_size=4
        ),
    }
    printed = run_cells(cells_between(SECTION, "all_responses = load_or_generate", "A: {r['response']"), namespace)
    shown = [line for line in printed.splitlines() if line.startswith("[")]
    assert [line[:5] for line in shown] == ["[pos]", "[neg]"], printed
    questions = [line for line in printed.splitlines() if line.strip().startswith("Q:")]
    assert len(questions) == 2 and questions[0] == questions[1], printed
    assert "reply 0" in printed and "reply 1" not in printed, printed

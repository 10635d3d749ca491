"""The plumbing check of stored outputs: each kind of noise is found and named, clean outputs pass."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from utils.output_noise import MAX_CACHE_LINES, MAX_MACHINE_PATHS, noise_problems

ROOTS = [str(Path.home() / "persona-course")]  # a checkout as it would sit on a student's machine


def notebook(*texts: str):
    cells = [new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text=t)]) for t in texts]
    return nbformat.from_dict(new_notebook(cells=cells))


def test_clean_outputs_pass():
    nb = notebook("PC1 explains 30.3% of the variance\n", "Loaded role responses from the course cache (made 2026)\n")
    assert noise_problems(nb, ROOTS) == []


def test_a_bar_frozen_at_zero_is_found_but_a_finished_one_is_not():
    nb = notebook("Loading weights:   0%|          | 0/291 [00:00<?, ?it/s]\n", "role responses: 100%|####| 220/220\n")
    problems = noise_problems(nb, ROOTS)
    assert len(problems) == 1 and "code cell 1" in problems[0] and "0%" in problems[0]


def test_paths_of_this_machine_past_the_limit_are_found():
    few = notebook(*[f"Saved axis to {ROOTS[0]}/.cache/axis.pt\n"] * MAX_MACHINE_PATHS)
    assert not any("path of this machine" in p for p in noise_problems(few, ROOTS))
    many = notebook(*[f"see {ROOTS[0]}/.cache/x{i}.json\n" for i in range(MAX_MACHINE_PATHS + 1)])
    assert any("path of this machine" in p for p in noise_problems(many, ROOTS))


def test_cache_lines_past_the_limit_are_found_with_their_cells():
    nb = notebook(*["Loaded role responses from the course cache (made 2026)\n"] * (MAX_CACHE_LINES + 1))
    (problem,) = noise_problems(nb, ROOTS)
    assert f"{MAX_CACHE_LINES + 1} lines about the cache" in problem and "code cells 1, 2" in problem


def test_a_shouted_departure_is_found():
    (problem,) = noise_problems(notebook("DEPARTURE FROM THE METHOD: the judge ...\n"), ROOTS)
    assert "utils.departures" in problem


def test_store_lines_are_one_a_cell_at_most():
    one = notebook("response means: 8 of 8 examples' activations read from the activation store\n")
    assert noise_problems(one, ROOTS) == []
    two = notebook(
        "a: 2 of 2 replies read from earlier runs\nb: 4 of 4 examples' activations read from the activation store\n"
    )
    (problem,) = noise_problems(two, ROOTS)
    assert "code cell 1: 2 lines about the reply or activation store" in problem

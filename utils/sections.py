"""The course's sections, listed once (the runner, the notebook builder and the tests read them here),
and the one setting that names the repository the notebooks' Colab badges and set-up cell use."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Package name of each section, in course order; section i is SECTIONS[i - 1].
SECTIONS: tuple[str, ...] = ("part1_assistant_axis", "part2_capping", "part3_contrastive", "part4_steering")

# The earlier sections whose saved results a section reads (through their `artifacts.py` owners, or their
# `solutions/`). The runner starts a section only after these have finished, so sections 1 and 3 can run
# side by side, then 2 and 4. A test checks this against the sections' imports.
NEEDS: dict[str, tuple[str, ...]] = {
    "part2_capping": ("part1_assistant_axis",),
    "part4_steering": ("part1_assistant_axis", "part3_contrastive"),
}

# "<owner>/<name>" on GitHub. To publish a fork, change it here and run `python -m utils.build_notebooks`:
# the notebooks' set-up cell and the README's Colab badges follow.
REPOSITORY = "persona-course/persona-course"


def section_by_number(number: str | int) -> str:
    """``"3"`` -> ``"part3_contrastive"``.

    Raises:
        ValueError: for a number that names no section.
    """
    try:
        index = int(number)
    except ValueError:
        index = 0
    if not 1 <= index <= len(SECTIONS):
        raise ValueError(f"Unknown section {number!r}: use 1-{len(SECTIONS)}")
    return SECTIONS[index - 1]


def model_attribute(section: str) -> str:
    """The `utils.profiles.SectionModels` field naming a section's model: ``"part3_contrastive"`` -> ``"part3"``."""
    return section.split("_")[0]


def repository_url() -> str:
    """The course's GitHub URL (for ``git clone``)."""
    return f"https://github.com/{REPOSITORY}"

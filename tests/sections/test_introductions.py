"""Each section's introduction lists the departures from the method its offline run makes: a section whose
cells print a departure (`utils.departures.departure`) says which, and one whose cells print none says so."""

from __future__ import annotations

import re

import pytest

from utils.sections import ROOT, SECTIONS

BULLET = "**Departures from the method**"
# Sections whose introduction must carry the bullet (section 3's is written by its own owner).
LISTED = ("part1_assistant_axis", "part2_capping", "part4_steering")


def introduction(source: str) -> str:
    """The first markdown cell of a section's source (its introduction), without the comment marks."""
    cells = re.split(r"^# %%.*$", source, flags=re.MULTILINE)
    return "\n".join(line.removeprefix("#").strip() for line in cells[1].splitlines())


def departures_bullet(intro: str) -> str | None:
    """The introduction's departures bullet (to the next bullet or paragraph), or None."""
    match = re.search(re.escape(BULLET) + r"(.*?)(?=\n- |\n\n|\Z)", intro, flags=re.DOTALL)
    return None if match is None else match.group(1)


def test_the_bullet_is_found_and_a_section_without_one_is_noticed():
    intro = introduction(
        "# %% [markdown]\n# # Title\n#\n# - **Profiles.** a\n# - " + BULLET + " none here.\n# %%\nx = 1\n"
    )
    assert departures_bullet(intro) == " none here."
    assert departures_bullet(introduction("# %% [markdown]\n# # Title\n# %%\n")) is None


@pytest.mark.parametrize("section", SECTIONS)
def test_the_introduction_lists_the_departures_the_cells_print(section):
    source = (ROOT / section / "source.py").read_text(encoding="utf-8")
    bullet = departures_bullet(introduction(source))
    if bullet is None:
        assert section not in LISTED, f"{section}'s introduction has no {BULLET} bullet"
        return
    prints_some = "departure(" in source
    says_none = "makes none" in bullet
    assert prints_some != says_none, (
        f"{section}: its cells {'print' if prints_some else 'print no'} departures, but its introduction's bullet "
        f"{'says it makes none' if says_none else 'does not say it makes none'}: {bullet!r}"
    )
    assert "offline" in bullet, f"{section}: the bullet should say which profile departs: {bullet!r}"

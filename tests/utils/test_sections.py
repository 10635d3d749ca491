"""utils.sections: the list of sections, their numbers, their model fields, and the repository URL."""

from __future__ import annotations

import dataclasses

import pytest

from utils.profiles import SectionModels
from utils.sections import NEEDS, REPOSITORY, ROOT, SECTIONS, model_attribute, repository_url, section_by_number


def test_every_listed_section_is_a_package_with_its_source_and_checks():
    assert len(SECTIONS) == len(set(SECTIONS))
    for section in SECTIONS:
        for name in ("__init__.py", "source.py", "tests.py"):
            assert (ROOT / section / name).is_file(), f"{section}/{name}"


def test_section_numbers_count_from_one_and_unknown_ones_are_refused():
    assert section_by_number(1) == SECTIONS[0] and section_by_number("4") == SECTIONS[3]
    for bad in (0, 5, "x", "3.0"):
        with pytest.raises(ValueError, match="Unknown section"):
            section_by_number(bad)


def test_each_section_names_its_model_field_and_reads_only_earlier_sections():
    fields = {f.name for f in dataclasses.fields(SectionModels)}
    assert {model_attribute(s) for s in SECTIONS} == fields
    for section, needs in NEEDS.items():
        assert all(SECTIONS.index(n) < SECTIONS.index(section) for n in needs), section


def test_the_repository_url_follows_the_one_setting():
    assert repository_url() == f"https://github.com/{REPOSITORY}" and REPOSITORY.count("/") == 1

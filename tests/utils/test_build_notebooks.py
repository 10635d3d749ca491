"""The notebook generator: generated files match their sources; stubs, dropdowns and checks are right."""

from __future__ import annotations

import json

import pytest

from utils import build_notebooks as build

TOY = '''# %% [markdown]
# # Toy
# ### Exercise: add
# > **Difficulty**: 🔴⚪⚪⚪⚪ · **Importance**: 🔵⚪⚪⚪⚪ · ⏱ 1 min

# %% tags=["exercise"]
def add(a, b):
    """Add."""
    # BEGIN SOLUTION
    return a + b
    # END SOLUTION

# %%
print(add(1, 2))
'''


@pytest.fixture
def toy_root(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "source.py").write_text(TOY)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    return tmp_path


def test_generated_files_match_sources():
    assert build.main(["--check"]) == 0


def test_toy_section_outputs(toy_root):
    files = {p.name: text for p, text in build.build_section("toy").items()}
    exercises = json.loads(files["toy_exercises.ipynb"])
    solutions = json.loads(files["toy_solutions.ipynb"])
    ex_code = ["".join(c["source"]) for c in exercises["cells"] if c["cell_type"] == "code"]
    assert 'raise NotImplementedError("Exercise: write add ' in ex_code[0] and "return a + b" not in ex_code[0]
    assert any(
        "<details><summary>Solution</summary>" in "".join(c["source"]) and "return a + b" in "".join(c["source"])
        for c in exercises["cells"]
        if c["cell_type"] == "markdown"
    )
    sol_code = ["".join(c["source"]) for c in solutions["cells"] if c["cell_type"] == "code"]
    assert "return a + b" in sol_code[0] and "BEGIN SOLUTION" not in sol_code[0]
    for nb in (exercises, solutions):
        for cell in nb["cells"]:
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None
    assert "def add(a, b):" in files["toy.py"] and "NotImplementedError" not in files["toy.py"]


def test_check_mode_detects_a_stale_file(toy_root):
    assert build.main(["--sections", "toy"]) == 0
    stale = toy_root / "chapters" / "toy_solutions.ipynb"
    stale.write_text(stale.read_text().replace("return a + b", "return a - b"))
    assert build.main(["--check", "--sections", "toy"]) == 1


def test_exercise_without_header_is_rejected(toy_root):
    (toy_root / "toy" / "source.py").write_text(TOY.replace("**Difficulty**", "Hardness"))
    with pytest.raises(build.SourceError, match="Difficulty"):
        build.build_section("toy")


def test_unclosed_solution_marker_is_rejected(toy_root):
    (toy_root / "toy" / "source.py").write_text(TOY.replace("    # END SOLUTION\n", ""))
    with pytest.raises(build.SourceError, match="without"):
        build.build_section("toy")


def test_readme_badges_follow_the_repository_setting(monkeypatch):
    """A fork changes `REPOSITORY` once: the README's badges and the set-up cell's clone follow."""
    text = "[x](https://colab.research.google.com/github/someone/old-name/blob/main/chapters/a.ipynb)"
    monkeypatch.setattr(build, "REPOSITORY", "fork-owner/persona-course")
    assert build.readme_with_repository(text) == (
        "[x](https://colab.research.google.com/github/fork-owner/persona-course/blob/main/chapters/a.ipynb)"
    )
    readme = (build.ROOT / "README.md").read_text(encoding="utf-8")
    assert build.readme_with_repository(readme) != readme  # the committed README uses the real setting
    monkeypatch.undo()
    assert build.readme_with_repository(readme) == readme
    cell = build.build_section("part1_assistant_axis")[build.ROOT / "chapters" / "part1_assistant_axis_solutions.ipynb"]
    assert f"https://github.com/{build.REPOSITORY}" in cell


def test_every_listing_of_sections_is_the_one_in_utils_sections():
    from utils import course, sections

    assert build.SECTIONS is sections.SECTIONS
    assert [sections.section_by_number(n) for n in "1234"] == list(sections.SECTIONS)
    assert sorted(p.name for p in build.ROOT.glob("part*_*") if (p / "source.py").exists()) == list(sections.SECTIONS)
    assert course.section_by_number is sections.section_by_number


def test_every_course_variable_is_named_in_utils_environment():
    """No module spells a COURSE_* variable itself: each is named once, with its meaning."""
    import re

    from utils import environment

    named = set(environment.MEANINGS)
    for path in [*build.ROOT.glob("utils/**/*.py"), *build.ROOT.glob("part*_*/*.py")]:
        if path.name == "environment.py":
            continue
        spelled = set(re.findall(r"[\"'](COURSE_[A-Z_]+|[A-Z]+_API_KEY|[A-Z]+_BASE_URL)[\"']", path.read_text()))
        assert not spelled, f"{path.relative_to(build.ROOT)} spells {sorted(spelled)}: import it from utils.environment"
    assert all(environment.MEANINGS[name] for name in named)


def test_settings_are_read_one_way():
    """Only utils.environment reads the process environment, so every setting honours a .env file alike."""
    import re

    for path in [*build.ROOT.glob("utils/**/*.py"), *build.ROOT.glob("part*_*/*.py")]:
        if path.name == "environment.py":
            continue
        text = path.read_text()
        if path.name == "build_notebooks.py":  # the Colab set-up cell runs before the course is installed
            text = text.replace(build.SETUP_CELL, "")
        reads = re.findall(r"os\.getenv\(|os\.environ\.get\(|os\.environ\[[^]]+\](?!\s*=)", text)
        assert not reads, f"{path.relative_to(build.ROOT)} reads {reads}: use utils.environment.setting"

"""The house as ARCHITECTURE.md draws it: imports go down the layers with no circle, and `tests/utils/`
mirrors `utils/` (a test file for at least 80% of its modules).

The import graph is read from the source (an AST scan, nothing imported): every ``import`` of a module of
the house, at the top of a file or inside a function (a lazy import still closes a loop), except those
under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from utils.sections import ROOT, SECTIONS

TOP = ("utils", "solutions", *SECTIONS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _house_files() -> dict[str, Path]:
    files = {}
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts and "data" not in path.relative_to(ROOT / top).parts:
                files[_module_name(path)] = path
    return files


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The house's modules that ``path`` imports when it runs."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    files = _house_files()
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_among_utils_the_sections_and_solutions():
    graph = import_graph()
    assert "utils.judge.choice" in graph and graph["utils.judge.choice"], "the scan must see the house's imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_imports_go_down_the_layers():
    for module, targets in import_graph().items():
        top = module.split(".")[0]
        if top == "utils":
            assert all(t.split(".")[0] == "utils" for t in targets), f"{module} reaches up: {sorted(targets)}"
        elif top in SECTIONS and module.split(".")[-1] not in ("tests", "source"):
            # A section's package never imports generated code; only its checks and notebook cells do.
            assert not any(t.startswith("solutions") for t in targets), f"{module} imports {sorted(targets)}"


def test_tests_utils_mirrors_utils():
    modules = [p for p in (ROOT / "utils").rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts]
    mirrored = [p for p in modules if (ROOT / "tests" / p.relative_to(ROOT).parent / f"test_{p.name}").is_file()]
    share = len(mirrored) / len(modules)
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if p not in mirrored)
    assert share >= 0.8, f"{len(mirrored)} of {len(modules)} utils modules have a test file; none for {missing}"


def test_section_4_reaches_section_3_through_one_door():
    """Section 4's code takes from section 3 only its package (data paths, constants) and `artifacts` (what it
    hands on); trait-generic machinery lives in `utils`. Notebook cells may still use `solutions.part3_contrastive`."""
    allowed = {"part3_contrastive", "part3_contrastive.artifacts"}
    seen = set()
    for module, targets in import_graph().items():
        if module.split(".")[0] == "part4_steering":
            reached = {t for t in targets if t.split(".")[0] == "part3_contrastive"}
            seen |= reached
            assert reached <= allowed, f"{module} imports {sorted(reached - allowed)} from section 3"
    assert seen == allowed, f"the scan must see section 4's imports of section 3, got {sorted(seen)}"


def test_the_door_check_catches_a_side_entrance(tmp_path):
    source = tmp_path / "x.py"
    source.write_text(
        "from part3_contrastive.capture import padded_batches\nfrom part3_contrastive import trait_file\n"
    )
    found = _imports(source, set(_house_files()))
    assert "part3_contrastive.capture" in found and "part3_contrastive" in found

"""The layering of DESIGN.md ("Layers"), read from the source with `ast`: no import cycle in
plimsoll/, the core imports no Dagster and no outer layer, nothing imports from tests, and
plimsoll/ is one subpackage per stage."""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from conftest import REPO_ROOT

CORE = "plimsoll"
# What the core must never import besides Dagster (dagster*: dagster_k8s and the rest too).
OUTER_LAYERS = ("assets", "sensors", "platform_defs", "tests", "conftest")
# Folders whose code ships or runs outside pytest, so must not lean on the test suite.
NON_TEST_FOLDERS = ("assets", "sensors", "platform_defs", "tools", "benchmarks")
CYCLE_FIX = ("fix: move what both sides need into a module they can each import, or pass "
             "it in as an argument, so that the imports run one way only")


@dataclass(frozen=True)
class ImportEdge:
    """One import statement's target, resolved to a dotted module name."""

    source: str
    target: str
    path: Path
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`, so never run


def modules_under(root: Path, package: str) -> dict[str, Path]:
    """Each module in the folder root/package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_statements(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, at any depth (functions, methods, try blocks), and whether it
    sits under `if TYPE_CHECKING:`."""
    pending: list[tuple[ast.AST, bool]] = [(tree, False)]
    while pending:
        node, type_checking = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend((child, True) for child in node.body)
            pending.extend((child, type_checking) for child in node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_checking
        pending.extend((child, type_checking) for child in ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: dict[str, Path]) -> list[str]:
    """The modules one statement imports: `from a.b import c` is a.b.c when c is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[:len(package) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    else:
        base = node.module or ""
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names]


def import_edges(root: Path, package: str) -> list[ImportEdge]:
    """Every import in root/package, in source order per file."""
    known = modules_under(root, package)
    edges = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_checking in _import_statements(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                edges.append(ImportEdge(module, target, path, node.lineno, type_checking))
    return sorted(edges, key=lambda edge: (edge.source, edge.line))


def _owning_module(target: str, known: dict[str, Path]) -> str | None:
    """The module an import runs: the longest known prefix (`import a.b.c` of module a.b)."""
    parts = target.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph(root: Path, package: str) -> dict[str, dict[str, ImportEdge]]:
    """Module → imported module of the same package → the first import that makes the edge;
    imports under TYPE_CHECKING never run, so they make no edge."""
    known = modules_under(root, package)
    graph: dict[str, dict[str, ImportEdge]] = {module: {} for module in known}
    for edge in import_edges(root, package):
        target = _owning_module(edge.target, known)
        if target is not None and not edge.type_checking:
            graph[edge.source].setdefault(target, edge)
    return graph


def _strongly_connected(graph: dict[str, dict[str, ImportEdge]]) -> list[list[str]]:
    """Tarjan's components, each sorted; graphs here are small enough to recurse."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def find_cycles(graph: dict[str, dict[str, ImportEdge]]) -> list[list[str]]:
    """One shortest cycle per tangle of modules, as a → b → … → a from its first module."""
    cycles = []
    for component in _strongly_connected(graph):
        start = component[0]
        if len(component) == 1 and start not in graph[start]:
            continue
        members = set(component)
        came_from: dict[str, str] = {}
        frontier = [start]
        while start not in came_from:
            following = []
            for node in frontier:
                for successor in sorted(graph[node]):
                    if successor in members and successor not in came_from:
                        came_from[successor] = node
                        following.append(successor)
            frontier = following
        path = [start]
        while (previous := came_from[path[-1]]) != start:
            path.append(previous)
        cycles.append([start, *reversed(path[1:]), start])
    return sorted(cycles)


def describe_cycle(cycle: list[str], graph: dict[str, dict[str, ImportEdge]],
                   root: Path) -> str:
    hops = []
    for source, target in pairwise(cycle):
        edge = graph[source][target]
        hops.append(f"  {edge.path.relative_to(root)}:{edge.line} imports {target}")
    return " → ".join(cycle) + "\n" + "\n".join(hops)


def forbidden_imports(root: Path, folder: str, banned: tuple[str, ...]) -> list[str]:
    """`file:line imports name` for each import in root/folder, at any depth and under
    TYPE_CHECKING too, of a top-level name in `banned` (or starting with one ending in *)."""
    def is_banned(top: str) -> bool:
        return any(top.startswith(name[:-1]) if name.endswith("*") else top == name
                   for name in banned)

    return [f"{edge.path.relative_to(root)}:{edge.line} imports {edge.target}"
            for edge in import_edges(root, folder) if is_banned(edge.target.split(".")[0])]


# --- the repository ---------------------------------------------------------------------


def test_no_import_cycle_among_plimsoll_modules():
    graph = import_graph(REPO_ROOT, CORE)
    assert set(graph) == set(modules_under(REPO_ROOT, CORE))
    cycles = find_cycles(graph)
    assert not cycles, ("import cycles among plimsoll modules (function-level imports "
                        "included):\n" + "\n".join(describe_cycle(c, graph, REPO_ROOT)
                                                   for c in cycles) + "\n" + CYCLE_FIX)


def test_core_imports_neither_dagster_nor_the_outer_layers():
    wrong = forbidden_imports(REPO_ROOT, CORE, ("dagster*", *OUTER_LAYERS))
    assert not wrong, ("plimsoll/ is plain Python that assets, sensors and platform_defs "
                       "call, never the other way:\n  " + "\n  ".join(wrong) + "\nfix: move "
                       "the Dagster-facing code into assets/, sensors/ or platform_defs/")


def test_nothing_outside_tests_imports_from_tests():
    wrong = [found for folder in NON_TEST_FOLDERS
             for found in forbidden_imports(REPO_ROOT, folder, ("tests", "conftest"))]
    assert not wrong, ("code that ships or runs outside pytest imports the test suite:\n  "
                       + "\n  ".join(wrong) + "\nfix: move what it needs into plimsoll/ "
                       "and import it from there in both places")


def test_every_plimsoll_subpackage_says_what_it_is_in_one_line():
    wrong = []
    for init in sorted((REPO_ROOT / CORE).glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")), clean=False)
        lines = (docstring or "").strip().splitlines()
        # A summary line of its own: the docstring is one line, or a blank line follows it.
        if not lines or not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
            wrong.append(f"{init.relative_to(REPO_ROOT)}: "
                         + ("no docstring" if not lines else "no one-line summary"))
    assert not wrong, ("each stage's __init__.py opens with one line saying what the stage "
                       "is:\n  " + "\n  ".join(wrong)
                       + '\nfix: begin the file with """<what this stage does>."""')


def test_plimsoll_top_level_holds_only_subpackages():
    top = REPO_ROOT / CORE
    loose = sorted(path.name for path in top.glob("*.py") if path.name != "__init__.py")
    not_packages = sorted(path.name for path in top.iterdir()
                          if path.is_dir() and path.name != "__pycache__"
                          and any(path.rglob("*.py")) and not (path / "__init__.py").exists())
    assert not loose, (f"loose modules in plimsoll/: {loose}; fix: move each into the stage "
                       "package it belongs to (plimsoll/<stage>/)")
    assert not not_packages, (f"folders in plimsoll/ without __init__.py: {not_packages}; "
                              "fix: add an __init__.py with a one-line docstring")


# --- the walker itself, on a tiny synthetic package --------------------------------------


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


def test_cycle_finder_follows_function_level_and_relative_imports(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": '"""A package."""\n',
        "pkg/a.py": "from pkg import b\n",  # b is a submodule, not an attribute
        "pkg/b.py": "def build():\n    from .c import thing\n    return thing\n",
        "pkg/c.py": "thing = 1\n\n\ndef late():\n    import pkg.a\n    return pkg.a\n",
        "pkg/leaf.py": "from pkg.c import thing\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    described = describe_cycle(["pkg.a", "pkg.b", "pkg.c", "pkg.a"], graph, tmp_path)
    assert "pkg.a → pkg.b → pkg.c → pkg.a" in described
    assert "pkg/b.py:2 imports pkg.c" in described
    assert "pkg/c.py:5 imports pkg.a" in described


def test_cycle_finder_ignores_type_checking_imports(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/model.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                         "    from pkg.store import Store\n"),
        "pkg/view.py": ("import typing\n\nif typing.TYPE_CHECKING:\n    from pkg import store\n"
                        "else:\n    from pkg import model\n"),
        "pkg/store.py": "from pkg.model import Model\nfrom pkg.view import View\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == []
    assert set(graph["pkg.view"]) == {"pkg.model"}  # the else branch does run
    assert [edge.target for edge in import_edges(tmp_path, "pkg") if edge.type_checking] == [
        "pkg.store", "pkg.store"]


def test_cycle_finder_reports_a_module_that_imports_itself(tmp_path):
    _write_package(tmp_path, {"pkg/__init__.py": "", "pkg/loop.py": "from pkg import loop\n"})
    assert find_cycles(import_graph(tmp_path, "pkg")) == [["pkg.loop", "pkg.loop"]]


def test_forbidden_imports_are_found_in_functions_and_under_type_checking(tmp_path):
    _write_package(tmp_path, {
        "core/__init__.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                            "    import dagster\n",
        "core/run.py": ("import dagstermill\n\n\n"
                        "def launch():\n    from dagster_k8s import job\n"
                        "    from tests.conftest import REPO_ROOT\n"
                        "    import assets.release\n    return job, REPO_ROOT, assets\n"),
        "core/plain.py": "import os\nfrom pathlib import Path\n",
    })
    assert forbidden_imports(tmp_path, "core", ("dagster*", *OUTER_LAYERS)) == [
        "core/__init__.py:4 imports dagster",
        "core/run.py:1 imports dagstermill",
        "core/run.py:5 imports dagster_k8s",
        "core/run.py:6 imports tests.conftest",
        "core/run.py:7 imports assets.release",
    ]

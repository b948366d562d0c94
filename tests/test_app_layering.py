"""The project's modules (frdiff/, app/, analysis/) import in one direction: no chain of imports
(at the top or inside a function) leads from a module back to itself; the shared part of two
modules sits a level below both. Read from the source with `ast`, so nothing is imported."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("frdiff", "app", "analysis")


def module_files(root: pathlib.Path = ROOT, packages=PACKAGES) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module of `packages` (a package by its __init__)."""
    files = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _absolute(node: ast.ImportFrom, name: str, path: pathlib.Path) -> str:
    """The module a `from ... import` reads from, relative imports resolved against `name`."""
    if not node.level:
        return node.module
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, files: dict) -> str | None:
    """The project module that importing `name` runs last: `name` itself, or the module whose
    attribute it is (`frdiff.peers.deepcache` the function: the module `frdiff.peers`)."""
    while name and name not in files:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: pathlib.Path, files: dict) -> set[str]:
    """The project modules that a module imports anywhere in it. `from a import b` is an import of
    the module `a.b` where that is one, else of `a`; parent packages, which Python runs first
    anyway, are not counted (every submodule would otherwise import its package); imports under
    `if TYPE_CHECKING:` never run, and are not counted either."""
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {_known(alias.name, files) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, name, path)
            subs = {f"{module}.{a.name}" for a in node.names} & set(files)
            found |= subs
            if len(subs) < len(node.names):  # names defined in `module` itself
                found.add(_known(module, files))
    return found - {None, name}


def import_graph(root: pathlib.Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    files = module_files(root, packages)
    return {name: imports(name, path, files) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest import cycle per group of modules that import one another (a strongly
    connected component, Tarjan's algorithm), each as [a, b, ..., a]."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while v not in group:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_shortest_cycle(graph, group) for group in groups)


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph.get(path[-1], ())):
            if w == start:
                return path + [start]
            if w in group and w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_graph_sees_the_project():
    graph = import_graph()
    assert {"frdiff.accelerate", "frdiff.glyphs.bench", "app.methods", "analysis.common"} <= set(graph)
    # relative imports at any depth, function-level imports, `from package import module`
    assert "frdiff.patching" in graph["frdiff.clock"]
    assert "frdiff.glyphs.peer_rows" in graph["frdiff.cli"]  # imported inside a function
    assert "frdiff.peers" in graph["frdiff.glyphs.peer_rows"]  # `from .. import peers`
    assert {"frdiff.targets", "frdiff.peers._common"} <= graph["frdiff.peers.cache_dit"]
    assert "analysis.common" in graph["analysis.magcache"]
    # the circles that were, each now on a module a level below both
    assert graph["app.methods"] >= {"app.runs", "app.peers"} and "app.methods" not in graph["app.peers"]
    assert "analysis.results_doc" not in graph["analysis.verdict_quality"]
    assert {"frdiff.glyphs.bench", "frdiff.glyphs.peer_rows"} <= graph["frdiff.glyphs.sweep"]
    assert "frdiff.glyphs.bench" in graph["frdiff.glyphs.peer_rows"]
    assert "frdiff.glyphs.peer_rows" not in graph["frdiff.glyphs.bench"]
    # the peers: one registry above the families, the package's names above it
    families = {"frdiff.peers.deep_cache", "frdiff.peers.diffusers_hooks", "frdiff.peers.cache_dit"}
    assert families <= graph["frdiff.peers.registry"] and "frdiff.peers.registry" in graph["frdiff.peers"]
    assert not any({"frdiff.peers", "frdiff.peers.registry"} & graph[f] for f in families)


def test_cycles_are_found_in_a_synthetic_graph():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"b"}, "x": {"y"}, "y": {"x"}}) == [
        ["a", "b", "a"], ["x", "y", "x"]]
    assert cycles({"a": {"a"}}) == [["a", "a"]]


def test_a_cycle_through_relative_and_function_level_imports_fails(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .low import f\n")
    (pkg / "low.py").write_text("def f():\n    from .sub.high import g\n    return g\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "high.py").write_text("from .. import low\n\ndef g():\n    return low\n")
    (pkg / "alone.py").write_text("import pkg.low\nfrom pkg import f\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.alone"] == {"pkg.low", "pkg"}
    assert cycles(graph) == [["pkg.low", "pkg.sub.high", "pkg.low"]]


def test_imports_for_type_checking_only_are_not_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "b.py").write_text("from .a import A\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == []
    (pkg / "a.py").write_text("from .b import B\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) != []

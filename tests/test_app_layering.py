"""The app's and the analysis scripts' modules import in one direction: no two modules import
each other (at the top or inside a function), the shared part sits a level below both."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imports(path: pathlib.Path, package: str) -> set[str]:
    """The modules of `package` that a file imports anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    here = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    parts = here.split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parts[:-node.level] if path.name != "__init__.py" else parts[:len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == package and m != here}


@pytest.mark.parametrize("package", ["app", "analysis"])
def test_no_two_modules_import_each_other(package):
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / package).rglob("*.py")}
    graph = {name: imports(path, package) & set(files) for name, path in files.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())})
    assert pairs == [], pairs
    if package == "app":  # the circle that was: methods <-> peers, now both on app.runs
        assert graph["app.methods"] >= {"app.runs", "app.peers"} and "app.methods" not in graph["app.peers"]
    else:  # results_doc <-> verdict_quality, now both on analysis.common
        assert "analysis.results_doc" not in graph["analysis.verdict_quality"]

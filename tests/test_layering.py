"""The core library never imports the glyph testbed (`frdiff.glyphs`), read from the source."""

import ast
import os
import subprocess
import sys

import frdiff

PACKAGE_DIR = os.path.dirname(os.path.abspath(frdiff.__file__))
TESTBED = "frdiff.glyphs"
# entry points over both layers: the package's lazy names and the command line
ENTRY_POINTS = {"frdiff", "frdiff.__main__", "frdiff.cli"}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[: -len(".py")]
    parts = rel.split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, str]:
    """Module name -> file of every frdiff module outside the testbed and the entry points."""
    found = {}
    for root, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(root, file)
                name = _module_name(path)
                if name not in ENTRY_POINTS and not (name + ".").startswith(TESTBED + "."):
                    found[name] = path
    return found


def imported_names(name: str, path: str) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved, any depth)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    package = name if is_package else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import glyphs`
        elif isinstance(node, ast.Call) and _is_dynamic_import(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return names


def _is_dynamic_import(call: ast.Call) -> bool:
    fn = call.func
    name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
    return name in ("import_module", "__import__")


def test_core_modules_are_found():
    core = core_modules()
    for name in ("frdiff.accelerate", "frdiff.reuse", "frdiff.targets", "frdiff.autofr",
                 "frdiff.analysis", "frdiff.analysis.spectra", "frdiff.metrics", "frdiff.schedulers"):
        assert name in core
    assert not any(n.startswith(TESTBED) for n in core)


def test_relative_imports_resolve():
    names = imported_names("frdiff.analysis.spectra", core_modules()["frdiff.analysis.spectra"])
    assert "frdiff.accelerate" in names and "frdiff.metrics.psnr" in names
    testbed = os.path.join(PACKAGE_DIR, "glyphs", "bench.py")
    assert "frdiff.glyphs.evaluate" in imported_names("frdiff.glyphs.bench", testbed)


def test_core_never_imports_the_testbed():
    offenders = {name: sorted(n for n in imported_names(name, path)
                              if n == TESTBED or n.startswith(TESTBED + "."))
                 for name, path in core_modules().items()}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_importing_the_library_loads_no_testbed():
    code = ("import sys, frdiff, frdiff.analysis, frdiff.autofr, frdiff.peers, frdiff.schedulers, "
            "frdiff.timing, frdiff.images; "
            "assert not [m for m in sys.modules if m.startswith('frdiff.glyphs')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(PACKAGE_DIR))


def test_testbed_names_stay_reachable_from_the_package():
    assert frdiff.load_pipeline is frdiff.glyphs.load_pipeline
    assert frdiff.GlyphPipeline is frdiff.glyphs.GlyphPipeline
    assert "load_pipeline" in dir(frdiff)

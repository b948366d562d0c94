"""pyproject.toml, the requirements files and the package data agree with each other."""

import fnmatch
import os
import re

import pytest

from frdiff.glyphs import ASSETS_DIR

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _requirements(name: str) -> set[str]:
    with open(os.path.join(ROOT, name)) as f:
        lines = (line.split("#")[0].strip() for line in f)
        return {line for line in lines if line and not line.startswith("-r")}


def _spec(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement.split(";")[0])


def test_requirements_files_match_the_package():
    project = _project()["project"]
    extras = project["optional-dependencies"]
    runtime = {_spec(r) for r in project["dependencies"] + extras["app"]}
    assert {_spec(r) for r in _requirements("requirements.txt")} == runtime  # what a Space installs
    dev = {_spec(r) for r in extras["dev"] + extras["peers"] if not r.startswith("frdiff[")}
    assert {_spec(r) for r in _requirements("requirements-dev.txt")} == dev
    assert "torch==2.13.0" in runtime


def test_package_data_covers_every_embedded_file():
    patterns = _project()["tool"]["setuptools"]["package-data"]["frdiff.glyphs"]
    package_dir = os.path.dirname(ASSETS_DIR)
    files = [os.path.relpath(os.path.join(root, f), package_dir)
             for root, _, names in os.walk(ASSETS_DIR) for f in names]
    for name in ("glyph-unet/model_index.json", "glyph-dit/model_index.json", "glyph-flux/model_index.json",
                 "glyph-flux/label_encoder/config.json", "classifier/config.json"):
        assert os.path.join("assets", name) in files
    assert any(f.startswith(os.path.join("assets", "policies")) for f in files)
    # fnmatch's * also crosses "/", so "assets/**/*.json" reads as setuptools' recursive glob
    missing = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert missing == []
    assert not any(f.endswith(".png") for f in files)  # the README figures stay out of the wheel

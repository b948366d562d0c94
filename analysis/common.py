"""What the analysis scripts share: where results go and how they are written.

Every script writes its figures through `write_result`, so every result file records the
command that made it and the machine it ran on (docs/results.md quotes both), and rows come
from the library's one protocol (`frdiff.glyphs.bench`: interleaved timing, quality against
full compute on held-out seeds, `collect_rows` sharing one baseline).
"""

from __future__ import annotations

import json
import os
import sys

from frdiff.timing import machine

RESULTS = "analysis/results"


def command() -> str:
    """The command line that is running, as someone would type it again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = f"python -m {spec.name}" if spec is not None else f"python {sys.argv[0]}"
    return " ".join([head] + sys.argv[1:])


def result_path(name: str) -> str:
    """analysis/results/NAME.json for a bare name; a path is kept as given."""
    return name if os.sep in name or name.endswith(".json") else os.path.join(RESULTS, name + ".json")


def write_result(name: str, result, markdown: str | None = None) -> str:
    """Write a result (a dict gets `command` and `machine` unless it has them) as JSON, and
    `markdown` beside it (same name, .md); returns the JSON path."""
    path = result_path(name)
    if isinstance(result, dict):
        result = {"command": command(), "machine": machine()} | result
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    if markdown is not None:
        with open(path[: -len(".json")] + ".md", "w") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


def load_results(path: str) -> dict:
    """A result file, or FILE1+FILE2+...: results of one protocol read as one (their rows joined)."""
    results = []
    for part in path.split("+"):
        with open(part) as f:
            results.append(json.load(f))
    return results[0] if len(results) == 1 else results[0] | {"rows": [r for x in results for r in x["rows"]]}

"""Regenerate the tables of README.md and docs/results.md from the files in analysis/results/.

    python -m analysis.results_doc            # rewrite every marked table in place
    python -m analysis.results_doc --check    # exit 1 if a table differs from its result file

A generated table sits between two markers:

    <!-- table: KIND analysis/results/FILE.json [ARG] -->
    ...
    <!-- /table -->

KIND names the script whose `markdown` (or `table`) renders it, from the JSON that script
wrote (FILE1+FILE2: the rows of several results of the same protocol as one; FILE1,FILE2:
several results, one line each, for `verdicts`); ARG picks a part (a model, a speed). So a
figure in the document is the one its command wrote,
and the test suite runs `--check`. The prose around the tables is written by hand and says
what the tables show; rerun a script, then this command, then reread the prose.
"""

from __future__ import annotations

import argparse
import re
import sys

from analysis.common import load_results

DOCS = ("README.md", "docs/overview.md", "docs/results.md")
MARKER = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _renderers() -> dict:
    from analysis import (bench_table, cpu_topologies, deepcache, dpmsolver, measured_cost_summary,
                          models_report, overhead, policy_table, score_spectra, spectra, verdict_quality)
    from frdiff.glyphs.bench import budget_table, sweep_table, verdict_table

    return {"bench": bench_table.markdown, "deepcache": deepcache.rows_markdown,
            "dpmsolver": dpmsolver.markdown, "models": models_report.markdown,
            "measured-cost": measured_cost_summary.markdown, "overhead": overhead.summary,
            "cpu-topologies": lambda result: cpu_topologies.markdown(result["results"]),
            "policies": policy_table.markdown, "score-spectra": score_spectra.markdown,
            "verdict-quality": verdict_quality.markdown,
            "spectra": lambda result, model: spectra.table(result["models"][model]),
            "sweep": lambda result: sweep_table(result).split("\n\n")[0],
            "budgets": lambda result, speed="measured": budget_table(result, key=SPEEDS[speed]),
            "verdicts": lambda result, speed="measured", against="row": verdict_table(
                result["results"], key=SPEEDS[speed], against=against)}


SPEEDS = {"measured": "speedup", "counted": "ideal_speedup"}


def render(spec: str, renderers: dict) -> str:
    """A table from its spec; FILE may be FILE1+FILE2+...: results of the same protocol whose
    rows are read as one table (a sweep and a supplementary sweep of more settings)."""
    kind, path, *args = spec.split()
    if kind not in renderers:
        raise ValueError(f"unknown table kind {kind!r} (known: {', '.join(sorted(renderers))})")
    if "," in path:  # several results, each a table's line (verdicts)
        result = {"results": [load_results(part) for part in path.split(",")]}
    else:
        result = load_results(path)
    return renderers[kind](result, *args).rstrip("\n") + "\n"


def regenerate(text: str) -> str:
    renderers = _renderers()
    return MARKER.sub(lambda m: m.group(1) + render(m.group("spec"), renderers) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report tables that are out of date")
    ap.add_argument("--doc", nargs="+", default=list(DOCS))
    args = ap.parse_args(argv)
    stale = []
    for doc in args.doc:
        with open(doc) as f:
            text = f.read()
        new = regenerate(text)
        if args.check:
            stale += [f"{doc}: {m.group('spec')}" for m, n in zip(MARKER.finditer(text), MARKER.finditer(new))
                      if m.group("body") != n.group("body")]
            continue
        with open(doc, "w") as f:
            f.write(new)
        print(f"{doc}: {len(MARKER.findall(text))} tables regenerated")
    for entry in stale:
        print(f"out of date: {entry} (run python -m analysis.results_doc)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""Does each winning frdiff row keep class accuracy and FD? Rechecked on many more images.

    python -m analysis.verdict_quality [--samples 1024] [--seed 1] [--json]

The sweeps behind the README's verdict table judge quality on 64 images, where one glyph is
1.6 points of class accuracy, so "within one point of full compute" cannot be read from them.
This script takes every cell of that table (the groups of sweep files named by its marker in
README.md), finds frdiff's best row at each budget with the same rule as the table
(`frdiff.glyphs.bench.budget_rows`, measured speed), and reruns those policies, with the same
command and specs (`python -m frdiff sweep ... --samples N`), on N fresh class-balanced images
against full compute on the same noise: class accuracy of both, the share of images whose
class equals their full-compute twin's, and the Frechet distance of both to N real glyphs;
also whether that row is on the measured speed/PSNR Pareto front of its sweep group (no row
of any method at least as fast and as good).
Speed is not remeasured (one timing pair at batch 1 only, discarded): each cell keeps the
speedups of the sweep that chose it. Writes analysis/results/verdict-quality.json; the
results document renders it (`<!-- table: verdict-quality ... -->`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import tempfile

from analysis.common import load_results, write_result
from frdiff.glyphs.bench import BUDGETS, budget_rows
from frdiff.metrics import pareto_front

MARKER = re.compile(r"<!-- table: verdicts (\S+)")
POINT = 0.01  # "within one point" of class accuracy
FD_MARGIN = 0.10  # "FD within 10%"


def verdict_groups(readme: str = "README.md") -> list[str]:
    """The sweep groups of the README's verdict table (FILE1+FILE2 per model and sampler)."""
    with open(readme) as f:
        found = MARKER.search(f.read())
    if found is None:
        raise ValueError(f"{readme} has no verdicts table marker")
    return found.group(1).split(",")


def winners(result: dict, budgets=BUDGETS) -> list[dict]:
    """Per budget, frdiff's best row at least that fast (measured), as the verdict table picks it."""
    return [{"budget": row["budget"], "row": row["frdiff"]} for row in budget_rows(result, budgets)
            if row["frdiff"] is not None]


def on_front(row: dict, rows: list[dict], key: str = "speedup") -> bool:
    """No row of the sweep (any method) is at least as fast and as good, and better in one; the
    same setting measured again in another sweep of the group is not another point."""
    same = (row["method"], row["setting"])
    point = (row[key], row["psnr"])
    others = [(r[key], r["psnr"]) for r in rows if r.get("psnr") is not None and (r["method"], r["setting"]) != same]
    return point in pareto_front(others + [point])


def rerun(result: dict, specs: list[str], samples: int, seed: int) -> dict:
    """`python -m frdiff sweep` of `specs` (no fewer-steps rows, one timing pair at batch 1) on
    the sweep's model, sampler and steps, quality on `samples` images."""
    from frdiff.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sweep.json")
        argv = ["sweep", "--model", result["model"], "--scheduler", result["scheduler"],
                "--steps", str(result["steps"]), "--policies", ",".join(specs), "--fewer-steps", "",
                "--samples", str(samples), "--seed", str(seed), "--batch", "1", "--repeats", "1",
                "--json", "--out", out]
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        if code != 0:
            raise RuntimeError(f"python -m frdiff {' '.join(argv)} exited with {code}")
        with open(out) as f:
            return json.load(f)


def check(group: str, samples: int, seed: int) -> dict:
    result = load_results(group)
    cells = winners(result)
    specs = list(dict.fromkeys(c["row"]["policy"] for c in cells))
    rows = {r["policy"]: r for r in rerun(result, specs, samples, seed)["rows"]}
    out = []
    for cell in cells:
        old, new = cell["row"], rows[cell["row"]["policy"]]
        delta = new["class_accuracy"] - new["baseline_class_accuracy"]
        fd_ratio = new["fd"] / new["baseline_fd"]
        out.append({"budget": cell["budget"], "policy": old["policy"], "setting": old["setting"],
                    "speedup": old["speedup"], "ideal_speedup": old["ideal_speedup"],
                    "sweep_psnr": old["psnr"], "psnr": new["psnr"], "ssim": new["ssim"],
                    "class_accuracy": new["class_accuracy"],
                    "baseline_class_accuracy": new["baseline_class_accuracy"],
                    "class_agreement": new["class_agreement"], "fd": new["fd"], "baseline_fd": new["baseline_fd"],
                    "on_measured_front": on_front(old, result["rows"]),
                    "class_accuracy_ok": delta >= -POINT - 1e-9, "fd_ok": fd_ratio <= 1 + FD_MARGIN})
    return {"group": group, "model": result["model"], "scheduler": result["scheduler"],
            "steps": result["steps"], "cells": out}


def markdown(result: dict) -> str:
    """One line per verdict cell: the row, its class accuracy and FD against full compute's."""
    lines = ["| model, sampler | at least | frdiff's row (measured speed in its sweep) | PSNR | class acc. (full) | "
             "same class as full | FD (full) | class acc. within 1 point, FD within 10% | on the measured front |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in result["groups"]:
        for c in g["cells"]:
            verdict = ("yes" if c["class_accuracy_ok"] else "no") + ", " + ("yes" if c["fd_ok"] else "no")
            lines.append(
                f"| {g['model']}, {g['scheduler']} {g['steps']} | {c['budget']}x | {c['setting']} "
                f"({c['speedup']:.2f}x) | {c['psnr']:.1f} dB | {c['class_accuracy']:.3f} "
                f"({c['baseline_class_accuracy']:.3f}) | {c['class_agreement']:.3f} | {c['fd']:.2f} "
                f"({c['baseline_fd']:.2f}) | {verdict} | {'yes' if c['on_measured_front'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1024, help="images per row (one point = samples/100)")
    ap.add_argument("--seed", type=int, default=1, help="the sweeps' seed is 0; a fresh one by default")
    ap.add_argument("--groups", default=None,
                    help="comma-separated sweep groups (FILE1+FILE2); default: the README's verdict table")
    ap.add_argument("--out", default="verdict-quality")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    groups = args.groups.split(",") if args.groups else verdict_groups()
    result = {"samples": args.samples, "seed": args.seed, "groups": []}
    for group in groups:
        result["groups"].append(check(group, args.samples, args.seed))
        write_result(args.out, result)  # a partial file after each group
    write_result(args.out, result, markdown(result))
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()

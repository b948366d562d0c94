"""Tune the shipped Auto-FR policies: `assets/policies/{model}-{scheduler}{steps}-{speedup}x.json`.

    python -m analysis.ship_policies --model glyph-unet [--configs ddim:50 dpmsolver:20]
        [--speedups 1.5 2.0 2.5] [--iterations 30] [--per-step]

Each file holds the policy and how it was made (the `tune` CLI's metadata, the tuning wall
time and the machine). Per-block search (the default) contains the per-step policies as its
"fr" starting points, so a per-block file is per-step wherever that won on the held-out
tuning batches. A file's target is its nominal speedup, raised to uniform:2's ideal speedup
where that is higher (a slower policy would only compete with full compute). A summary goes
to analysis/results/policies-MODEL.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from analysis.policy_table import ideal_speedup
from frdiff import KeyframePolicy, ScoreMixing, load_pipeline, set_scheduler
from frdiff.glyphs import load_calibration
from frdiff.autofr import tune
from frdiff.timing import machine
from analysis.common import write_result


def policy_path(model: str, scheduler: str, steps: int, speedup: float) -> str:
    return f"assets/policies/{model}-{scheduler}{steps}-{speedup:.1f}x.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-unet")
    ap.add_argument("--configs", nargs="+", default=["ddim:50", "dpmsolver:20"],
                    help="SCHEDULER:STEPS pairs")
    ap.add_argument("--speedups", nargs="+", type=float, default=[1.5, 2.0, 2.5])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--per-step", action="store_true", help="one gate per step (default: per block)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="assets/policies")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    summary = []
    for config in args.configs:
        scheduler, steps = config.split(":")
        pipe = set_scheduler(load_pipeline(args.model), scheduler)
        floor = ideal_speedup(pipe, KeyframePolicy.uniform(int(steps), 2), ScoreMixing())
        for speedup in args.speedups:
            # a policy slower than uniform:2 would only compete with full compute: ship at
            # least uniform:2's speed, so each file replaces a real uniform policy
            target = max(speedup, floor)
            t0 = time.perf_counter()
            result = tune(pipe, int(steps), target, per_block=not args.per_step,
                          iterations=args.iterations, seed=args.seed, mixing=ScoreMixing(),
                          calibration=load_calibration(args.model, scheduler, int(steps)))
            meta = {"model": args.model, "scheduler": scheduler, "steps": int(steps),
                    "target_speedup": target, "nominal_speedup": speedup, "per_block": not args.per_step,
                    "iterations": args.iterations, "seed": args.seed, "mixing": "on",
                    **result.meta(),
                    "tuning_s": round(time.perf_counter() - t0, 1), "machine": machine()}
            path = os.path.join(args.out_dir, os.path.basename(
                policy_path(args.model, scheduler, int(steps), speedup)))
            result.policy.to_json(path, **meta)
            summary.append(meta | {"out": path})
            print(json.dumps(summary[-1]), flush=True)
    path = f"analysis/results/policies-{args.model}.json"
    if os.path.exists(path):  # keep the entries of files this run did not rewrite
        with open(path) as f:
            done = {entry["out"] for entry in summary}
            summary = [e for e in json.load(f) if e["out"] not in done] + summary
    write_result(path, sorted(summary, key=lambda e: e["out"]))


if __name__ == "__main__":
    main()

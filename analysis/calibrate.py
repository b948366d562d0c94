"""Calibrate the glyph models' magnitude ratios (frdiff.magnitude) and ship them.

    python -m analysis.calibrate [--configs ddim:50 dpmsolver:20] [--glyphs 8]
    python -m analysis.calibrate --models glyph-flux --configs euler:28

For each model and SCHEDULER:STEPS: one full-compute run on class-balanced labels, seed 0,
observed; writes frdiff/glyphs/assets/calibrations/MODEL-SCHEDULERSTEPS.json (what
`frdiff.glyphs.load_calibration` reads) and a summary to analysis/results/calibrations.json.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from analysis.common import command, write_result
from frdiff.timing import machine
from frdiff import load_pipeline, set_scheduler
from frdiff.glyphs import ASSETS_DIR
from frdiff.glyphs.evaluate import balanced_labels
from frdiff.magnitude import calibrate

MODELS = ("glyph-unet", "glyph-dit", "glyph-flux")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["ddim:50", "dpmsolver:20"])
    ap.add_argument("--glyphs", type=int, default=8)
    ap.add_argument("--models", nargs="+", default=["glyph-unet", "glyph-dit"], choices=MODELS,
                    help="glyph-flux samples a flow: give it flow samplers (--configs euler:28)")
    args = ap.parse_args()
    out_dir = os.path.join(ASSETS_DIR, "calibrations")
    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    for model in args.models:
        for config in args.configs:
            scheduler, steps = config.split(":")
            pipe = set_scheduler(load_pipeline(model), scheduler)
            pipe.set_progress_bar_config(disable=True)
            labels = balanced_labels(args.glyphs, len(pipe.labels))
            cal = calibrate(pipe, int(steps), class_labels=labels, output_type="pt",
                            generator=torch.Generator().manual_seed(0))
            meta = {"model": model, "scheduler": scheduler, "steps": int(steps), "glyphs": args.glyphs, "seed": 0}
            cal = type(cal)(cal.magnitudes, cal.space, meta)
            name = f"{model}-{scheduler}{steps}"
            cal.to_json(os.path.join(out_dir, name + ".json"))
            summary[name] = {"space": cal.space, "ratios": [round(r, 4) for r in cal.ratios],
                             "command": command(), "machine": machine()}  # runs may differ per entry
            print(name, cal.space, " ".join(f"{r:.3f}" for r in cal.ratios), flush=True)
    path = "analysis/results/calibrations.json"
    if os.path.exists(path):  # keep the entries this run did not rewrite (other models, samplers);
        # the top-level command and machine are those of the entries without their own
        with open(path) as f:
            summary = {k: v for k, v in json.load(f).items() if k not in summary} | summary
    write_result(path, summary)


if __name__ == "__main__":
    main()

"""Speed and quality of frdiff policies on the embedded models (the README's core table).

    python -m analysis.bench_table --model glyph-unet [--samples 128] [--repeats 5]

For each policy: measured speedup (median of interleaved baseline/accelerated pairs, batch 8,
50 DDIM steps), the ideal (MAC-counted) speedup, PSNR/SSIM against the full-compute images
from the same noise and labels, and class accuracy. Writes analysis/results/bench-MODEL.json
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json

import torch

from frdiff import ScoreMixing, block_depths, load_pipeline, set_scheduler
from frdiff.glyphs import load_classifier
from frdiff.glyphs.bench import measure_quality, measure_speed
from frdiff.policy import KeyframePolicy
from frdiff.timing import machine
from analysis.common import write_result

CONFIGS = [  # (label, policy spec, mixing on)
    ("all keyframes (hook overhead)", "uniform:1", True),
    ("FR, interval 2", "uniform:2", False),
    ("FRDiff (FR + mixing), interval 2", "uniform:2", True),
    ("FRDiff (FR + mixing), interval 3", "uniform:3", True),
    ("whole-block skip, interval 2 (DeepCache granularity)", "deep:2", False),
    ("whole-block skip, interval 3", "deep:3", False),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-unet")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pipe = set_scheduler(load_pipeline(args.model), "ddim")
    clf, depths = load_classifier(), block_depths(pipe)
    labels = [i % len(pipe.labels) for i in range(args.batch)]
    rows, baseline = [], None
    for name, spec, mix in CONFIGS:
        policy = KeyframePolicy.parse(spec, args.steps, depths)
        mixing = ScoreMixing() if mix else ScoreMixing.off()
        speed = measure_speed(pipe, policy, mixing, labels, args.steps, args.seed, args.repeats)
        q = measure_quality(pipe, clf, policy, mixing, args.samples, args.steps, args.seed + 1000,
                            baseline=baseline)
        baseline = q.pop("baseline_images")
        rows.append({"config": name, "policy": spec, "mixing": mix} | speed | q)
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "stats"}), flush=True)
    out = {"model": args.model, "steps": args.steps, "batch": args.batch,
           "samples": args.samples, "machine": machine(), "rows": rows}
    write_result(f"bench-{args.model}", out)
    print("\n" + markdown(out))


def markdown(result: dict) -> str:
    lines = ["| policy | mixing | measured speedup | ideal speedup | PSNR (dB) | SSIM | class acc. (baseline) |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} (`{r['policy']}`) | {'on' if r['mixing'] else 'off'} | "
                     f"{r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | {r['psnr']:.1f} | "
                     f"{r['ssim']:.3f} | {r['class_accuracy']:.3f} ({r['baseline_class_accuracy']:.3f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

"""Shipped Auto-FR policies against the uniform policies they replace (held-out seeds).

    python -m analysis.policy_table --model glyph-unet [--samples 128] [--repeats 4] [--seed 7]

For each `assets/policies/{model}-*.json`: the fastest uniform FRDiff policy (mixing on) whose
ideal speedup is at or below the shipped policy's, then both benchmarked as `frdiff bench`
does (interleaved timing, PSNR/SSIM to the full-compute images, class accuracy), on seeds and
labels the tuner never saw (tuning uses seeds 0-3 and 1000-1001; this uses seed+1000 = 1007).
Writes analysis/results/policies-bench-MODEL.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline, set_scheduler
from frdiff.glyphs import load_classifier
from frdiff.glyphs.bench import measure_quality, measure_speed
from frdiff.timing import machine
from analysis.common import write_result


def ideal_speedup(pipe, policy: KeyframePolicy, mixing: ScoreMixing) -> float:
    """MAC-counted speedup of a policy (one single-image call)."""
    pipe.set_progress_bar_config(disable=True)
    with accelerate(pipe, policy, mixing) as run:
        pipe([0], num_inference_steps=policy.num_steps, output_type="pt")
    return run.stats.ideal_speedup


def fastest_uniform_not_faster(pipe, steps: int, ceiling: float, mixing: ScoreMixing):
    best = None
    for interval in range(1, steps):
        policy = KeyframePolicy.uniform(steps, interval)
        ideal = ideal_speedup(pipe, policy, mixing)
        if ideal <= ceiling + 1e-9 and (best is None or ideal > best[2]):
            best = (f"uniform:{interval}", policy, ideal)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-unet")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--policies", nargs="*", default=None, help="policy files (default: the shipped ones)")
    ap.add_argument("--out", default=None, help="JSON to write (default analysis/results/policies-bench-MODEL.json)")
    args = ap.parse_args()
    files = args.policies or sorted(glob.glob(f"assets/policies/{args.model}-*.json"))
    if not files:
        raise SystemExit(f"no policy files for {args.model}; run python -m analysis.ship_policies first")
    clf, mixing, rows = load_classifier(), ScoreMixing(), []
    for path in files:
        with open(path) as f:
            meta = json.load(f).get("meta", {})
        scheduler, steps = meta.get("scheduler", "ddim"), int(meta.get("steps", 50))
        pipe = set_scheduler(load_pipeline(args.model), scheduler)
        pipe.set_progress_bar_config(disable=True)
        tuned = KeyframePolicy.from_json(path)
        tuned_ideal = ideal_speedup(pipe, tuned, mixing)
        name, uniform, _ = fastest_uniform_not_faster(pipe, steps, tuned_ideal, mixing)
        labels = [(args.seed + i) % len(pipe.labels) for i in range(args.batch)]
        row, baseline = {"file": path, "scheduler": scheduler, "steps": steps}, None
        for key, policy in (("tuned", tuned), ("uniform", uniform)):
            speed = measure_speed(pipe, policy, mixing, labels, steps, args.seed, args.repeats)
            q = measure_quality(pipe, clf, policy, mixing, args.samples, steps, args.seed + 1000,
                                baseline=baseline)
            baseline = q.pop("baseline_images")
            q.pop("stats")
            row[key] = {"policy": os.path.basename(path) if key == "tuned" else name} | speed | q
        row["beats_uniform"] = (row["tuned"]["psnr"] > row["uniform"]["psnr"]
                                and row["tuned"]["class_accuracy"] >= row["uniform"]["class_accuracy"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"model": args.model, "samples": args.samples, "seed": args.seed, "machine": machine(),
           "rows": rows}
    write_result(args.out or f"policies-bench-{args.model}", out)
    print("\n" + markdown(out))


def label(path: str) -> str:
    """A policy file's name; with its folder where that is not assets/policies (older files)."""
    folder = os.path.dirname(os.path.normpath(path))
    name = os.path.basename(path)
    return name if folder.endswith(os.path.join("assets", "policies")) else f"{os.path.basename(folder)}/{name}"


def markdown(result: dict) -> str:
    """Each shipped policy beside the uniform policy it replaces."""
    lines = ["| shipped policy | ideal / measured | PSNR (dB) | class acc. | uniform it replaces | "
             "ideal / measured | PSNR (dB) | class acc. | tuned better on PSNR, class acc. not lower |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        t, u = r["tuned"], r["uniform"]
        lines.append(f"| `{label(r['file'])}` | {t['ideal_speedup']:.2f}x / {t['speedup']:.2f}x | {t['psnr']:.1f} | "
                     f"{t['class_accuracy']:.3f} | `{u['policy']}` | {u['ideal_speedup']:.2f}x / "
                     f"{u['speedup']:.2f}x | {u['psnr']:.1f} | {u['class_accuracy']:.3f} | "
                     f"{'yes' if r['beats_uniform'] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

"""FRDiff on DPM-Solver++ (our extension) against plain DPM-Solver++ with fewer steps.

    python -m analysis.dpmsolver --model glyph-unet [--steps 20] [--samples 128]

Reference: DPM-Solver++(2M) with --steps steps, full compute. Compared at the same noise and
labels: DPM-Solver++ with fewer steps (ideal speedup steps/K), FR alone, and FRDiff with score
mixing whose reuse steps hold the keyframe's x0 or extrapolate it linearly in log-SNR.
Writes analysis/results/dpmsolver-MODEL.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json

import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline, set_scheduler
from frdiff.glyphs import load_classifier
from frdiff.glyphs.evaluate import balanced_labels, generate
from frdiff.metrics import accuracy, classify, psnr, ssim
from frdiff.timing import machine
from analysis.common import write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-unet")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pipe = set_scheduler(load_pipeline(args.model), "dpmsolver")
    clf = load_classifier()
    labels = balanced_labels(args.samples, len(pipe.labels))
    target = torch.tensor(labels)
    ref = generate(pipe, labels, args.steps, args.seed, progress=False)
    rows = []

    def record(name: str, images: torch.Tensor, ideal: float) -> None:
        logits, _ = classify(clf, images)
        rows.append({"config": name, "ideal_speedup": ideal, "psnr": psnr(images, ref),
                     "ssim": ssim(images, ref), "class_accuracy": accuracy(logits, target)})
        print(json.dumps(rows[-1]), flush=True)

    record(f"DPM-Solver++ {args.steps} steps (reference)", ref, 1.0)
    for k in sorted({args.steps * 3 // 4, args.steps * 2 // 3, args.steps // 2, args.steps * 2 // 5}, reverse=True):
        record(f"DPM-Solver++ {k} steps", generate(pipe, labels, k, args.seed, progress=False),
               args.steps / k)
    policy = KeyframePolicy.uniform(args.steps, 2)
    for name, mixing in [("FR only, interval 2", ScoreMixing.off()),
                         ("FRDiff interval 2, reuse steps hold x0", ScoreMixing(multistep="hold")),
                         ("FRDiff interval 2, reuse steps extrapolate x0", ScoreMixing(multistep="extrapolate")),
                         ("reduced NFE only (lam = 0), extrapolate x0",
                          ScoreMixing.reduced_nfe("extrapolate")),
                         ("reduced NFE only (lam = 0), hold x0",
                          ScoreMixing.reduced_nfe("hold"))]:
        with accelerate(pipe, policy, mixing) as run:
            images = generate(pipe, labels, args.steps, args.seed, progress=False)
        record(name, images, run.stats.ideal_speedup)
    out = {"model": args.model, "steps": args.steps, "samples": args.samples,
           "machine": machine(), "rows": rows}
    write_result(f"dpmsolver-{args.model}", out)
    print("\n" + markdown(out))


def markdown(result: dict) -> str:
    lines = ["| configuration | ideal speedup | PSNR vs reference (dB) | SSIM | class acc. |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['ideal_speedup']:.2f}x | {r['psnr']:.1f} | {r['ssim']:.3f} | "
                     f"{r['class_accuracy']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The embedded models' figures for the README: quality, classifier accuracy, sampling time.

    python -m analysis.models_report [--samples 512] [--grids]

For glyph-unet and glyph-dit at 50 DDIM steps, glyph-flux at 28 Euler steps, the default guidance scale:
`class_accuracy` and `fd` on balanced samples (as `python -m frdiff evaluate`), and the
median wall time of that sampling at batch 8 over 5 runs after a warm-up. Also the
classifier's accuracy on fresh real glyphs. Writes analysis/results/models.json; with
--grids, also the sample grids assets/samples-MODEL.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from frdiff import load_pipeline
from frdiff.glyphs import load_classifier
from frdiff.glyphs.evaluate import classifier_accuracy, evaluate
from frdiff.images import save_grid
from frdiff.schedulers import default_steps
from frdiff.timing import machine
from analysis.common import write_result

MODELS = ("glyph-unet", "glyph-dit", "glyph-flux")


def sampling_seconds(pipe, steps: int = 50, batch: int = 8, runs: int = 5) -> float:
    labels = list(range(batch))
    call = lambda: pipe(labels, num_inference_steps=steps, output_type="pt",  # noqa: E731
                        generator=torch.Generator().manual_seed(0))
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--grids", action="store_true")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                    help="re-measure only these (the others' rows stay in models.json)")
    args = ap.parse_args()
    clf = load_classifier()
    path = "analysis/results/models.json"
    old = {}
    if set(args.models) != set(MODELS) and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)["models"]
    report = {"machine": machine(), "classifier_accuracy_real": classifier_accuracy(clf, 4000),
              "models": {name: row for name, row in old.items() if name not in args.models}}
    print(json.dumps({"classifier_accuracy_real": report["classifier_accuracy_real"]}), flush=True)
    for name in args.models:
        pipe = load_pipeline(name)
        pipe.set_progress_bar_config(disable=True)
        steps = default_steps(pipe)  # 50 DDIM steps; 28 Euler steps for glyph-flux
        row = evaluate(pipe, clf, args.samples, steps, seed=0, progress=False)
        row["sampling_s_batch8"] = sampling_seconds(pipe, steps)
        row["steps"], row["sampler"] = steps, type(pipe.scheduler).__name__
        with open(os.path.join("assets", name, "training.json")) as f:
            training = json.load(f)
        row["training_steps"] = training.get("total_steps", training["steps"])  # warm starts included
        row["training_wall_s"] = training.get("total_wall_time_s", training["wall_time_s"])
        row["parameters"] = sum(p.numel() for p in pipe.denoiser.parameters())
        row["machine"] = machine()  # rows may come from different runs (--models)
        report["models"][name] = row
        print(json.dumps({name: row}), flush=True)
        if args.grids:
            labels = list(pipe.labels) * 3
            images = pipe(labels, num_inference_steps=steps, output_type="pt",
                          generator=torch.Generator().manual_seed(1)).images
            save_grid(images, f"assets/samples-{name}.png", ncol=len(pipe.labels), scale=2)
    write_result(path, report)



def markdown(report: dict) -> str:
    """One row per model: size, training, class accuracy, FD, sampling time."""
    lines = ["| model | parameters | training steps | training wall time | class accuracy | "
             "FD (classifier features) | sampling, batch 8 |", "|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        seconds = r.get("sampling_s_batch8", r.get("sampling_s_50steps_batch8"))
        sampler = "Euler" if r.get("sampler", "").startswith("FlowMatch") else "DDIM"
        lines.append(f"| {name} | {r['parameters'] / 1e6:.2f}M | {r['training_steps']:,} | "
                     f"{r['training_wall_s'] / 60:.1f} min | **{r['class_accuracy']:.3f}** | {r['fd']:.2f} | "
                     f"{seconds:.2f} s at {r.get('steps', 50)} {sampler} steps ({r['machine']['threads']} threads) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

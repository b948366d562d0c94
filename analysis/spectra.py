"""Where in frequency each shortcut loses detail (method.md section 3), as a figure.

    python -m analysis.spectra [--steps 50] [--interval 3] [--samples 64] [--threads 1]

For glyph-unet and glyph-dit (DDIM, class-balanced labels, seed 0): full compute is the
reference; "fewer steps" (steps / interval DDIM steps), "reduced NFE" (uniform keyframes,
lam = 0 at every other step: the keyframe prediction is reused, no call), "FR only" and
"FRDiff" (FR + the default score mixing) and "fewer steps, FRDiff's compute" (as many DDIM
steps as FRDiff's counted compute buys) start from the same noise and are compared with it
band by band (`frdiff.analysis.frequency_comparison`): relative error power
P(images - full) / P(full) per radial frequency band, in cycles per image.
Writes analysis/results/spectra.json and assets/spectra.png, and prints per model a table of
the mean relative error in the low, mid and high bands (frdiff.metrics.band_errors, the one
band aggregation of the CLI's `analyze`, the app and analysis/score_spectra.py).
"""

from __future__ import annotations

import argparse
import os

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from frdiff import load_pipeline  # noqa: E402
from frdiff.analysis import frequency_comparison  # noqa: E402
from frdiff.glyphs.evaluate import balanced_labels  # noqa: E402
from frdiff.metrics import BANDS, band_errors  # noqa: E402
from frdiff.timing import machine  # noqa: E402
from analysis.common import write_result  # noqa: E402

MODELS = ("glyph-unet", "glyph-dit")
STYLES = {"fewer steps": ("#e63946", "--"), "reduced NFE (lam = 0)": ("#f4a261", "--"),
          "FR only": ("#457b9d", "-"), "FRDiff (FR + mixing)": ("#1d3557", "-"),
          "fewer steps, FRDiff's compute": ("#2a9d8f", ":")}


def table(model: dict) -> str:
    """One Markdown row per run: band-group errors, PSNR vs full compute, ideal speedup."""
    lines = ["| run | " + " | ".join(f"error {g}" for g in BANDS) + " | PSNR (dB) | ideal speedup |",
             "|---|" + "---:|" * (len(BANDS) + 2)]
    for name, run in model["runs"].items():
        errors = band_errors(run["error_spectrum"])
        cells = [f"{errors[g]:.2e}" for g in BANDS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {run['psnr']:.1f} | {run['ideal_speedup']:.2f}x |")
    return "\n".join(lines)


def draw(results: dict, out: str) -> None:
    """One panel per model: relative error power per band (log), one line per run."""
    models = results["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 4.2), dpi=110, squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items()):
        for run_name, run in model["runs"].items():
            color, style = STYLES.get(run_name, (None, "-"))
            ax.plot(model["bands"], run["error_spectrum"], style, color=color, marker="o", markersize=3,
                    label=f"{run_name}: {run['ideal_speedup']:.2f}x ideal, {run['psnr']:.1f} dB")
        ax.set_yscale("log", nonpositive="clip")
        ax.set_xlabel("frequency band (cycles per image)")
        ax.set_ylabel("relative error power  P(x - full) / P(full)")
        ax.set_title(f"{name}: DDIM {results['steps']} steps, keyframe interval {results['interval']}, "
                     f"{results['samples']} samples", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--interval", type=int, default=3)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="assets/spectra.png")
    ap.add_argument("--results", default="analysis/results/spectra.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {"machine": machine(), "steps": args.steps, "interval": args.interval,
               "samples": args.samples, "seed": 0, "scheduler": "DDIM", "models": {}}
    for name in MODELS:
        pipe = load_pipeline(name)
        pipe.set_progress_bar_config(disable=True)
        labels = balanced_labels(args.samples, len(pipe.labels))
        comparison = frequency_comparison(pipe, args.steps, interval=args.interval, seed=0,
                                          class_labels=labels)
        results["models"][name] = comparison.as_dict()
        print(f"\n### {name}: DDIM {args.steps} steps, interval {args.interval}, {args.samples} samples\n")
        print(table(results["models"][name]))
    draw(results, args.out)
    write_result(args.results, results)
    print(f"\n{args.out}\n{args.results}")


if __name__ == "__main__":
    main()

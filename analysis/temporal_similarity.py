"""Per-block temporal similarity heatmaps, beside a tuned policy (the README's picture).

    python -m analysis.temporal_similarity [--steps 50] [--policy POLICY_FILE]

(default policy: analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json, the reuse-family
policy shipped before the re-tune, which draws feature reuse and skips beside the heatmaps)

For glyph-unet and glyph-dit (full compute, DDIM, 8 samples of different classes, seed 0):
the relative change of every policy block's output from one step to the next
(`frdiff.analysis.temporal_similarity`), and the tuned policy's modes for the same grid.
Writes analysis/results/temporal-similarity.json and assets/temporal-similarity.png.
"""

from __future__ import annotations

import argparse
import os

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from frdiff import KeyframePolicy, ScoreMixing, load_pipeline  # noqa: E402
from frdiff.analysis import temporal_similarity  # noqa: E402
from analysis.common import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--policy", default="analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json")
    ap.add_argument("--out", default="assets/temporal-similarity.png")
    args = ap.parse_args()
    results = {}
    for name in ("glyph-unet", "glyph-dit"):
        pipe = load_pipeline(name)
        pipe.set_progress_bar_config(disable=True)
        labels = list(range(0, len(pipe.labels), max(1, len(pipe.labels) // 8)))[:8]
        sim = temporal_similarity(pipe, args.steps, class_labels=labels,
                                  generator=torch.Generator().manual_seed(0), output_type="pt")
        results[name] = sim
    policy = KeyframePolicy.from_json(args.policy)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=110,
                             gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for ax, name in ((axes[0], "glyph-unet"), (axes[2], "glyph-dit")):
        sim = results[name]
        vmax = float(torch.quantile(sim.change.nan_to_num().flatten(), 0.98))  # one outlier step
        im = ax.imshow(sim.change.T, aspect="auto", cmap="magma", vmin=0, vmax=vmax,
                       extent=(0.5, args.steps - 0.5, len(sim.blocks) - 0.5, -0.5))
        ax.set_yticks(range(len(sim.blocks)), [b.replace("_blocks", "") for b in sim.blocks], fontsize=7)
        ax.set_xlabel("step (0 = noisiest)")
        ax.set_title(f"{name}: relative change vs previous step", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    mixing = ScoreMixing()  # the shipped policies' mixing: lam = 0 reuse steps make no call
    names = results["glyph-unet"].blocks
    modes = torch.tensor([[3 if not policy.makes_call(s, mixing)
                           else {"K": 2, "F": 1, "S": 0}[policy.mode(s, b)]
                           for b in range(len(names))] for s in range(policy.num_steps)])
    axes[1].imshow(modes.T, aspect="auto",
                   cmap=ListedColormap(["#bbbbbb", "#f4a261", "#1d3557", "#ffffff"]), vmin=0, vmax=3,
                   extent=(-0.5, policy.num_steps - 0.5, modes.shape[1] - 0.5, -0.5))
    axes[1].set_yticks(range(modes.shape[1]), [b.replace("_blocks", "") for b in names], fontsize=7)
    axes[1].set_xlabel("step")
    axes[1].set_title(f"tuned {os.path.basename(args.policy)}: dark compute (K), orange FR (F),\n"
                      f"grey skip block (S), white no call (lam = 0, keyframe prediction reused)",
                      fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out)
    write_result("temporal-similarity", {name: sim.as_dict() for name, sim in results.items()}
                 | {"steps": args.steps, "policy": args.policy})
    print(args.out)


if __name__ == "__main__":
    main()

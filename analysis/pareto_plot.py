"""Plot a comparison table as a speed/quality Pareto chart.

    python -m analysis.pareto_plot [--results analysis/results/deepcache.json]
        [--out assets/pareto-glyph-unet.png]

Reads the JSON of `python -m analysis.deepcache` (DeepCache, uniform FRDiff, tuned and
adaptive policies on one machine, one process each) and draws PSNR against the full-compute
output over measured speedup, one marker style per family, with each family's Pareto front.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def family(row: dict) -> str:
    if row["method"] == "DeepCache":
        return "DeepCache (PyPI)"
    policy = row.get("policy", "")
    if policy.startswith("adaptive:"):
        return "frdiff adaptive"
    if policy.startswith(("uniform:", "deep:")):
        return "frdiff uniform"
    if "per-step" in policy:
        return "frdiff Auto-FR, per-step gates"
    return "frdiff Auto-FR (tuned)"


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both speed and PSNR, by speed."""
    best = [p for p in points if not any(q[0] >= p[0] and q[1] > p[1] or q[0] > p[0] and q[1] >= p[1]
                                         for q in points)]
    return sorted(best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="analysis/results/deepcache.json")
    ap.add_argument("--out", default="assets/pareto-glyph-unet.png")
    args = ap.parse_args()
    with open(args.results) as f:
        data = json.load(f)
    styles = {"DeepCache (PyPI)": ("s", "tab:gray"), "frdiff uniform": ("o", "tab:blue"),
              "frdiff Auto-FR (tuned)": ("*", "tab:red"),
              "frdiff Auto-FR, per-step gates": ("P", "tab:purple"),
              "frdiff adaptive": ("^", "tab:green")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110, sharey=True)
    for ax, key, label in ((axes[0], "speedup", "measured speedup (interleaved pairs, one process)"),
                           (axes[1], "ideal_speedup", "ideal speedup (counted MACs, no timing noise)")):
        groups: dict[str, list[tuple[float, float]]] = {}
        for row in data["rows"]:
            groups.setdefault(family(row), []).append((row[key], row["psnr"]))
        for name, points in groups.items():
            marker, color = styles.get(name, ("x", "black"))
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, color=color,
                       s=90 if marker == "*" else 40, label=name, zorder=3)
            line = front(points)
            ax.plot([p[0] for p in line], [p[1] for p in line], color=color, alpha=0.5, zorder=2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    m = data["machine"]
    axes[0].set_ylabel("PSNR to full compute (dB)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{data['model']}, DDIM {data['steps']} steps, batch {data['batch']}, {data['samples']} "
                 f"samples; {m['cpu']}, {m['threads']} thread(s)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()

"""Plot a comparison table as a speed/quality Pareto chart.

    python -m analysis.pareto_plot [--results analysis/results/deepcache.json]
        [--rerun analysis/results/deepcache-focus.json] [--extra analysis/results/fewer-steps.json]
        [--out assets/pareto-glyph-unet.png]

Reads the JSON of `python -m analysis.deepcache` or `python -m frdiff sweep` (DeepCache, FRDiff,
tuned and adaptive policies, fewer steps; one machine, one process each) and draws PSNR against the full-compute
output over measured and over counted speedup, one marker style per family, with each
family's Pareto front. Rows of a rerun with more timing pairs (`--rerun`, drawn when the file
exists) appear in the measured panel as hollow markers, joined to the same setting's point
of the main run, so the timing noise is visible. `--extra` files (drawn when they exist) add
rows measured by a separate run of the same command and settings, such as the fewer-steps
baseline.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from frdiff.metrics import pareto_front  # noqa: E402


def family(row: dict) -> str:
    if row["method"] == "DeepCache":
        return "DeepCache (PyPI)"
    if row["method"] == "fewer steps":
        return "fewer Euler steps" if "FlowMatch" in row.get("setting", "") else "fewer DDIM steps"
    if row["method"] not in ("frdiff", "FRDiff"):  # a peer of a sweep: its own name
        return row["method"]
    policy = row.get("policy", "") or row.get("setting", "")
    if "@" in policy.split(":")[0]:  # SAMPLER@STEPS:SPEC, frdiff on another sampler
        return "frdiff on " + policy.split("@")[0]
    if policy.startswith("magnitude:"):
        return "frdiff magnitude schedule"
    if policy.startswith("adaptive:"):
        return "frdiff adaptive"
    if policy.startswith("deep:"):
        return "frdiff whole-block skip"
    if policy.startswith("uniform:"):
        return "frdiff uniform"
    if "per-step" in policy:
        return "frdiff Auto-FR, per-step gates"
    return "frdiff Auto-FR (tuned)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="analysis/results/deepcache.json")
    ap.add_argument("--rerun", default="analysis/results/deepcache-focus.json")
    ap.add_argument("--extra", action="append", default=None,
                    help="more result files of the same settings (default: fewer-steps.json)")
    ap.add_argument("--out", default="assets/pareto-glyph-unet.png")
    args = ap.parse_args()
    with open(args.results) as f:
        data = json.load(f)
    for path in args.extra if args.extra is not None else ["analysis/results/fewer-steps.json"]:
        if os.path.exists(path):
            with open(path) as f:
                data["rows"] = data["rows"] + json.load(f)["rows"]
    styles = {"DeepCache (PyPI)": ("s", "tab:gray"), "frdiff uniform": ("o", "tab:blue"),
              "frdiff Auto-FR (tuned)": ("*", "tab:red"),
              "frdiff Auto-FR, per-step gates": ("P", "tab:purple"),
              "frdiff adaptive": ("^", "tab:green"), "fewer DDIM steps": ("D", "tab:olive"),
              "frdiff whole-block skip": ("v", "tab:cyan"), "fewer Euler steps": ("D", "tab:olive"),
              "frdiff magnitude schedule": ("h", "tab:pink")}
    many = len({family(r) for r in data["rows"] if "status" not in r}) > 12  # legend rows
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5 if many else 4.5), dpi=110, sharey=True)
    for ax, key, label in ((axes[0], "speedup", "measured speedup (interleaved pairs, one process)"),
                           (axes[1], "ideal_speedup", "ideal speedup (counted MACs, no timing noise)")):
        groups: dict[str, list[tuple[float, float]]] = {}
        for row in data["rows"]:
            if "status" in row:  # a peer that did not run here (not applicable, not installed)
                continue
            groups.setdefault(family(row), []).append((row[key], row["psnr"]))
        for name, points in groups.items():
            if name not in styles:  # a peer or another sampler: markers and colours of their own
                others = [n for n in styles if styles[n][0] in "xX1234+" or n.startswith("frdiff on")]
                styles[name] = ("xX1234+"[len(others) % 7], plt.cm.tab20(len(others) % 20))
            marker, color = styles[name]
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, color=color,
                       s=90 if marker == "*" else 40, label=name, zorder=3)
            line = pareto_front(points)
            ax.plot([p[0] for p in line], [p[1] for p in line], color=color, alpha=0.5, zorder=2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    if args.rerun and os.path.exists(args.rerun):
        _draw_rerun(axes[0], data, args.rerun, styles)
    m = data["machine"]
    axes[0].set_ylabel("PSNR to full compute (dB)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=6, frameon=False)
    fig.suptitle(f"{data['model']}, {data.get('scheduler', 'ddim')} {data['steps']} steps, batch {data['batch']}, "
                 f"{data['samples']} samples; {m['cpu']}, {m['threads']} thread(s)", fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * ((len(labels) + 5) // 6), 1, 1))  # room for the legend rows
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out)
    print(args.out)


def _draw_rerun(ax, data: dict, path: str, styles: dict) -> None:
    """Hollow markers for a rerun's measured speedups, each joined to its main-run point."""
    with open(path) as f:
        rerun = json.load(f)
    main_rows = {(r["method"], r["setting"]): r for r in data["rows"]}
    for i, row in enumerate(rerun["rows"]):
        marker, color = styles.get(family(row), ("x", "black"))
        label = f"rerun, {rerun['repeats']} timing pairs (hollow)" if i == 0 else None
        ax.scatter([row["speedup"]], [row["psnr"]], marker=marker, facecolors="none",
                   edgecolors=color, s=110 if marker == "*" else 55, zorder=4, label=label)
        earlier = main_rows.get((row["method"], row["setting"]))
        if earlier is not None:
            ax.plot([earlier["speedup"], row["speedup"]], [earlier["psnr"], row["psnr"]],
                    color=color, linestyle=":", alpha=0.7, zorder=2)


if __name__ == "__main__":
    main()

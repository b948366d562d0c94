"""What frdiff's runtime costs, and why a uniform policy measures below its count.

    python -m analysis.overhead [--models glyph-unet,glyph-dit,glyph-flux] [--repeats 15]

For each model, at its default sampler and steps and batch 8, times in one process
(`frdiff.timing.interleaved_times`, rotating order):

- plain: the unmodified pipeline;
- all keyframes (`uniform:1`, mixing off): every hook installed, nothing reused: the
  runtime's overhead (issue 26's bar: under 2% of plain);
- `uniform:2`, FR only (mixing off), and `uniform:2` with score mixing (the default).

Beside each measured ratio: the counted one (the run's `stats.ideal_speedup`, MACs) and the
one a measured cost table predicts (`frdiff.profile`, this device, the same batch). Then, per
policy block, the time an FR step still takes against its counted MACs: the share of a
block's MACs FR skips, and the share of its time it saves. Where the second is smaller,
counted MACs overstate what reuse saves on this machine (small convolutions whose time is
launch and memory traffic, the glue FR runs). Writes analysis/results/overhead.json and .md.
"""

from __future__ import annotations

import argparse

import torch

from frdiff import KeyframePolicy, Mode, ScoreMixing, accelerate, load_pipeline
from frdiff.autofr.tuner import count_costs
from frdiff.profile import profile
from frdiff.schedulers import default_steps
from frdiff.targets import denoiser_of, find_blocks
from frdiff.timing import interleaved_times
from analysis.common import write_result

BATCH = 8


def standard_policies(steps: int) -> dict:
    """Label -> (policy, mixing) of the four runs compared (None: the plain pipeline)."""
    return {"plain": None,
            "all keyframes (uniform:1, mixing off)": (KeyframePolicy.uniform(steps, 1), ScoreMixing.off()),
            "uniform:2, FR only (mixing off)": (KeyframePolicy.uniform(steps, 2), ScoreMixing.off()),
            "uniform:2, score mixing": (KeyframePolicy.uniform(steps, 2), ScoreMixing())}


def time_policies(pipe, kwargs: dict, policies: dict, repeats: int) -> list[dict]:
    """Rows of seconds, measured speedup (vs the first, plain), counted speedup and cache misses
    (the run's own stats) of each policy, timed interleaved in this process; `kwargs` make one call."""
    counted, misses = {}, {}

    def runner(label):
        def run():
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                if policies[label] is None:
                    return pipe(generator=generator, **kwargs)
                with accelerate(pipe, *policies[label]) as r:
                    out = pipe(generator=generator, **kwargs)
                counted[label], misses[label] = r.stats.ideal_speedup, r.stats.cache_misses
                return out
        return run

    times = interleaved_times({label: runner(label) for label in policies}, repeats=repeats, warmup=1)
    return [{"run": label, "seconds": times[label]["seconds"], "measured": times[label]["speedup_vs_first"],
             "counted": counted.get(label, 1.0), "cache_misses": misses.get(label, 0)} for label in policies]


def measure(name: str, repeats: int) -> dict:
    pipe = load_pipeline(name)
    pipe.set_progress_bar_config(disable=True)
    steps = default_steps(pipe)
    labels = [i % len(pipe.labels) for i in range(BATCH)]
    kwargs = {"class_labels": labels, "output_type": "pt", "num_inference_steps": steps}
    policies = standard_policies(steps)
    rows = time_policies(pipe, kwargs, policies, repeats)
    table = profile(pipe, steps, {"class_labels": labels, "output_type": "pt"}, repeats=3, progress=False)
    blocks = find_blocks(denoiser_of(pipe))
    macs = count_costs(pipe, blocks, lambda n: pipe(class_labels=labels[:1], num_inference_steps=n,
                                                    output_type="pt"))
    for row, spec in zip(rows, policies.values()):
        if spec is not None:
            row["table_estimate"] = table.costs.speedup(*spec)
    per_block = []
    for i, block in enumerate(blocks):
        k, f = table.seconds[Mode.KEYFRAME][i], table.seconds[Mode.FEATURE_REUSE][i]
        per_block.append({"block": block.name, "K_ms": 1000 * k, "F_ms": 1000 * f,
                          "mac_share": macs.block[i] / macs.total,
                          "fr_skips_macs": macs.fr_saving[i] / macs.block[i] if macs.block[i] else 0.0,
                          "fr_saves_time": (k - f) / k if k else 0.0})
    return {"model": name, "steps": steps, "batch": BATCH, "repeats": repeats, "rows": rows,
            "overhead_all_keyframes": 1.0 / rows[1]["measured"] - 1.0,  # of the per-round ratios' median
            "uniform2_measured_over_counted": rows[2]["measured"] / rows[2]["counted"],
            "call_ms": 1000 * table.call, "step_ms": 1000 * table.step, "blocks": per_block}


def markdown(results: list[dict]) -> str:
    out = []
    for r in results:
        out += [f"### {r['model']} ({r['steps']} steps, batch {r['batch']}, {r['repeats']} interleaved rounds)", "",
                "| run | seconds | measured | counted | cost-table estimate |", "|---|---|---|---|---|"]
        for row in r["rows"]:
            est = f"{row['table_estimate']:.2f}x" if "table_estimate" in row else "-"
            out.append(f"| {row['run']} | {row['seconds']:.3f} | {row['measured']:.3f}x | {row['counted']:.2f}x "
                       f"| {est} |")
        out += ["", f"All-keyframe overhead: **{100 * r['overhead_all_keyframes']:+.1f}%** of plain time; "
                    f"`uniform:2` FR only measures **{r['uniform2_measured_over_counted']:.2f}** of its count. "
                    f"A full call {r['call_ms']:.1f} ms, the step around it {r['step_ms']:.1f} ms.", "",
                "| block | MACs of a call | K ms | F ms | FR skips, of its MACs | FR saves, of its time |",
                "|---|---|---|---|---|---|"]
        for b in r["blocks"]:
            out.append(f"| {b['block']} | {100 * b['mac_share']:.1f}% | {b['K_ms']:.2f} | {b['F_ms']:.2f} | "
                       f"{100 * b['fr_skips_macs']:.0f}% | {100 * b['fr_saves_time']:.0f}% |")
        out.append("")
    return "\n".join(out)


def summary(result: dict) -> str:
    """One line per model: the hook overhead, and uniform:2 measured against its count."""
    lines = ["| model | all keyframes: overhead | `uniform:2` FR only: measured / counted | measured / counted | "
             "cost-table estimate | `uniform:2` + mixing: measured / counted |", "|---|---|---|---|---|---|"]
    for r in result["results"]:
        fr, mix = r["rows"][2], r["rows"][3]
        lines.append(f"| {r['model']} | {100 * r['overhead_all_keyframes']:+.1f}% | {fr['measured']:.2f}x / "
                     f"{fr['counted']:.2f}x | {r['uniform2_measured_over_counted']:.2f} | "
                     f"{fr['table_estimate']:.2f}x | "
                     f"{mix['measured']:.2f}x / {mix['counted']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="glyph-unet,glyph-dit,glyph-flux")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [measure(name, args.repeats) for name in args.models.split(",")]
    md = markdown(results)
    print(md)
    print(write_result("overhead", {"results": results}, md))


if __name__ == "__main__":
    main()

"""One table from `bash analysis/measured_cost.sh`'s files: per model, the 2.0x policy tuned to
measured seconds beside the one tuned to counted MACs, as benched.

    python -m analysis.measured_cost_summary

Reads analysis/results/measured-cost/M-bench-{measured,counted}.json and M-2.0x-*.json, writes
analysis/results/measured-cost.json (docs/results.md renders its table from it).
"""

from __future__ import annotations

import json
import os

from analysis.common import RESULTS, write_result

FOLDER = os.path.join(RESULTS, "measured-cost")
MODELS = ("glyph-unet", "glyph-dit", "glyph-flux")


def rows(folder: str = FOLDER) -> list[dict]:
    out = []
    for model in MODELS:
        for cost in ("measured", "counted"):
            bench, policy = (os.path.join(folder, f"{model}-{kind}.json") for kind in
                             (f"bench-{cost}", f"2.0x-{cost}"))
            if not (os.path.isfile(bench) and os.path.getsize(bench)):
                continue
            with open(bench) as f:
                b = json.load(f)
            with open(policy) as f:
                meta = json.load(f).get("meta", {})
            out.append({"model": model, "tuned_to": cost, "measured": b["speedup"], "counted": b["ideal_speedup"],
                        "estimated": meta.get("ideal_speedup"), "psnr": b["psnr"], "ssim": b["ssim"],
                        "class_accuracy": b["class_accuracy"], "baseline_class_accuracy": b["baseline_class_accuracy"],
                        "fd_to_baseline": b.get("fd_to_baseline"), "start": meta.get("start"),
                        "machine": b.get("machine")})
    return out


def markdown(result: dict) -> str:
    lines = ["| model | tuned to | measured speedup | counted | tuner's estimate | PSNR (dB) | SSIM | class acc. "
             "(full compute) |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        est = f"{r['estimated']:.2f}x" if r.get("estimated") else "-"
        lines.append(f"| {r['model']} | {r['tuned_to']} | {r['measured']:.2f}x | {r['counted']:.2f}x | {est} | "
                     f"{r['psnr']:.1f} | {r['ssim']:.3f} | {r['class_accuracy']:.3f} "
                     f"({r['baseline_class_accuracy']:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    result = {"rows": rows()}
    print(markdown(result))
    print(write_result("measured-cost", result))


if __name__ == "__main__":
    main()

"""Does score mixing beat both of its parts, band by band? (method.md section 3, claim c)

    python -m analysis.score_spectra [--steps 50] [--interval 2] [--glyphs 8] [--json]

For glyph-unet and glyph-dit (DDIM, uniform keyframes every `--interval` steps, the default
score mixing k = 30, b = 0.5, seed 0, `--glyphs` class-balanced glyphs): along one FRDiff run,
`frdiff.analysis.score_spectra` records at every reuse step the keyframe's prediction eps_key,
the FR output eps_FR and the mix the sampler used, each compared with the full-compute
prediction at the same input. Printed per model: their relative error power P(pred - full) /
P(full) averaged over the steps where 0 < lam < 1, in the low (lowest quarter), mid and high
(upper half) radial bands, the same bands the app's Frequency tab uses. Writes
analysis/results/score-spectra.json.
"""

from __future__ import annotations

import argparse
import json

from frdiff import KeyframePolicy, ScoreMixing, load_pipeline
from frdiff.analysis import score_spectra
from frdiff.metrics import band_errors
from frdiff.glyphs.evaluate import balanced_labels
from frdiff.timing import machine
from analysis.common import write_result

MODELS = ("glyph-unet", "glyph-dit")
NAMES = {"eps_key": "keyframe (reduced NFE)", "eps_fr": "feature reuse", "mixed": "score mixing"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--interval", type=int, default=2)
    ap.add_argument("--glyphs", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = {"steps": args.steps, "interval": args.interval, "glyphs": args.glyphs, "machine": machine(),
              "models": {}}
    for model in MODELS:
        pipe = load_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        labels = balanced_labels(args.glyphs, len(pipe.labels))
        s = score_spectra(pipe, KeyframePolicy.uniform(args.steps, args.interval), ScoreMixing(), args.steps,
                          seed=0, class_labels=labels)
        result["models"][model] = {"space": s.space, "mixing_steps": sum(1 for v in s.lam if 0 < v < 1),
                                   "bands": {k: band_errors(v) for k, v in (s.mean or {}).items()}}
    write_result("score-spectra", result)
    if args.json:
        print(json.dumps(result))
        return
    print(markdown(result))


def markdown(result: dict) -> str:
    """Per model and prediction, the mean relative error in the low, mid and high bands; the
    lowest of each band and model in bold."""
    lines = ["| model | prediction | low bands | mid | high |", "|---|---|---|---|---|"]
    for model, r in result["models"].items():
        best = {band: min(NAMES, key=lambda k: r["bands"][k][band]) for band in ("low", "mid", "high")}
        for i, (key, name) in enumerate(NAMES.items()):
            cells = [f"**{r['bands'][key][b]:.2g}**" if best[b] == key else f"{r['bands'][key][b]:.2g}"
                     for b in ("low", "mid", "high")]
            lines.append(f"| {model if i == 0 else ''} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

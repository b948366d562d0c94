"""frdiff's residual reuse against diffusers' MagCache, on the same noise, labels and protocol.

    python -m analysis.magcache [--model glyph-dit] [--steps 50] [--samples 64] [--repeats 3]
        [--thresholds 0.06,0.12,0.24] [--fewer-steps 33,25,20] [--policies FILES]

Rows (each with `frdiff.glyphs.bench`'s protocol: interleaved timing of batch 8, quality of
`--samples` held-out images against full compute):
- diffusers' `apply_mag_cache` (through `frdiff.peers.mag_cache`, unmodified), calibrated first
  on a fixed call, at each threshold (max 3 skips in a row, the first 20% of steps computed);
- frdiff with the same rule (`frdiff.magnitude`, the shipped calibration) and mode R on every
  block: the same skipping, as a static policy; and with the first and last blocks computing;
- plain DDIM with fewer steps; and any policy files given (the shipped Auto-FR ones).
Writes analysis/results/magcache-MODEL.json (docs/results.md renders it).
"""

from __future__ import annotations

import argparse
import functools

from analysis.common import write_result
from analysis.policy_table import label
from frdiff import KeyframePolicy, Mode, ScoreMixing, accelerate, block_depths, load_pipeline
from frdiff.glyphs import load_calibration, load_classifier
from frdiff.glyphs.bench import collect_rows, context_row, fewer_steps_row, mark_front, sweep_table
from frdiff.magnitude import magnitude_policy
from frdiff.peers import calibrate_mag_cache, mag_cache
from frdiff.timing import machine


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-dit")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thresholds", type=_floats, default=[0.06, 0.12, 0.24])
    ap.add_argument("--fewer-steps", type=lambda t: [int(v) for v in t.split(",") if v.strip()],
                    default=[33, 25, 20])
    ap.add_argument("--policies", nargs="*", default=[])
    ap.add_argument("--mixing", type=lambda t: [v for v in t.split(",") if v], default=["off"],
                    help="score mixing of the frdiff magnitude rows: off, on or off,on")
    args = ap.parse_args()
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    clf = load_classifier()
    labels = [(args.seed + i) % len(pipe.labels) for i in range(args.batch)]
    common = dict(labels=labels, steps=args.steps, seed=args.seed, samples=args.samples, repeats=args.repeats)
    ratios = calibrate_mag_cache(pipe, args.steps, class_labels=labels[:4], output_type="pt")
    calibration = load_calibration(args.model, "ddim", args.steps)
    if calibration is None:
        raise SystemExit(f"no shipped calibration for {args.model} ddim {args.steps}; run python -m analysis.calibrate")
    names = tuple(block_depths(pipe))
    jobs = []
    for t in args.thresholds:
        jobs.append(lambda b, t=t: context_row(pipe, clf, "MagCache (diffusers)", f"threshold {t}",
                                               functools.partial(mag_cache, pipe, ratios, t,
                                                                 num_inference_steps=args.steps),
                                               baseline=b, **common))
        inside = Mode.KEYFRAME + Mode.RESIDUAL * (len(names) - 2) + Mode.KEYFRAME
        for row, shape in ((Mode.RESIDUAL * len(names), "R on every block"),
                           (inside, "R inside, first and last block computing")):
            policy = magnitude_policy(calibration, t, row, names)
            for mix in args.mixing:
                mixing = ScoreMixing() if mix == "on" else ScoreMixing.off()
                jobs.append(lambda b, p=policy, m=mixing, s=f"magnitude {t}, {shape}, mixing {mix}":
                            context_row(pipe, clf, "frdiff", s, lambda: accelerate(pipe, p, m),
                                        baseline=b, policy=p.to_dict(), **common))
    for path in args.policies:
        policy = KeyframePolicy.from_json(path)
        jobs.append(lambda b, p=policy, path=path: context_row(
            pipe, clf, "frdiff Auto-FR", label(path), lambda: accelerate(pipe, p, ScoreMixing()),
            baseline=b, **common))
    jobs += [lambda b, k=k: fewer_steps_row(pipe, clf, k, baseline=b, **common) for k in args.fewer_steps]
    rows = collect_rows(jobs, report=lambda r: print(f"{r['method']:<22} {r['setting']:<60} {r['speedup']:.2f}x "
                                                     f"{r['ideal_speedup']:.2f}x {r['psnr']:.1f} dB", flush=True))
    mark_front(rows)
    result = {"model": args.model, "scheduler": "ddim", "steps": args.steps, "batch": args.batch,
              "samples": args.samples, "repeats": args.repeats, "seed": args.seed, "machine": machine(),
              "rows": rows}
    write_result(f"magcache-{args.model}", result)
    print(sweep_table(result))


if __name__ == "__main__":
    main()

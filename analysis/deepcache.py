"""DeepCache (the PyPI package, `DeepCacheSDHelper`) against frdiff policies on glyph-unet.

    python -m analysis.deepcache [--samples N] [--repeats R] [--batch 8] [--steps 50]
        [--intervals 2,3,4,5] [--branch-ids 0,1,3] [--policy SPEC ...] [--mixing on|off]
        [--fewer-steps 25,17,13] [--out analysis/results/deepcache]

`--fewer-steps K,...` adds the shortcut users reach for first: plain DDIM with K steps instead
of `--steps` (counted speedup steps / K), timed and scored the same way against the full run.

Every row is measured like `python -m frdiff bench`: speed is the median of per-pair time
ratios, full-compute / accelerated calls interleaved in one process after a warm-up (batch
`--batch`, 50 DDIM steps); quality is PSNR/SSIM against the full-compute images from the same
noise and labels, and the project classifier's accuracy on `--samples` images. Writes OUT.json
and OUT.md.

What DeepCacheSDHelper needs on our `UNet2DModel` (0.1.1, used unmodified): its wrapped UNet
forward reads the step from `timesteps.index(args[1].item())`, i.e. it wants one scalar
timestep as the second positional argument, as SD pipelines pass it. The glyph pipeline passes
one timestep per sample (batch >= 2 with classifier-free guidance), so `.item()` raises. The
adapter (`frdiff.peers.deepcache`) puts one more forward outside DeepCache's: it hands DeepCache
the (all equal) timestep as a 0-d tensor, which UNet2DModel broadcasts back, so nothing else
changes. Its block wrappers need no change (UNet2DModel's blocks have the `resnets`,
`attentions`, `downsamplers`, `upsamplers` and `mid_block` it walks). `disable()` leaves a
bound-method `forward` on every module it wrapped; the adapter restores each module's instance
`forward` exactly.

DeepCache's branch id b means (block b // 3, layer b % 3): between full steps, down-path layers
from there inward, the mid block and the matching up-path layers return cached outputs. The
`% 3` assumes SD's 2 resnets per block; glyph-unet has 1 (layer 0 = the resnet, layer 1 = the
downsampler), so the distinct branches are 0, 1, 3, 4, 6, 7, 9, 10 (3k + 2 gives 3k + 1's output
with extra, unused compute); 10 skips only the mid block.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json

import torch
from diffusers.models.attention_processor import Attention
from tqdm.auto import tqdm

from frdiff import ScoreMixing, block_depths, load_pipeline, set_scheduler
from frdiff.cost import MacCounter
from frdiff.glyphs import load_classifier
from frdiff.glyphs.bench import collect_rows, fewer_steps_row, measure_speed_with, policy_row, quality_against
from frdiff.glyphs.evaluate import balanced_labels, generate
from frdiff.peers import deepcache
from frdiff.policy import KeyframePolicy
from frdiff.timing import machine
from analysis.common import write_result


def ideal_speedup(pipe, make_context, steps: int) -> float:
    """MACs of one image's full-compute sampling call over those it executes in `make_context()`."""
    counters = []
    for ctx in (contextlib.nullcontext, make_context):
        with ctx(), MacCounter(pipe.unet) as counter:
            pipe([0], num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                 output_type="pt")
        counters.append(counter)
    full, run = counters
    # MacCounter counts an attention product on every call of the module, but DeepCache may
    # return a cached output without running it: scale by how often its to_q projection ran.
    executed = run.total()
    for m in pipe.unet.modules():
        if isinstance(m, Attention) and full.macs.get(id(m.to_q)):
            ran = run.macs.get(id(m.to_q), 0) / full.macs[id(m.to_q)]
            executed += round(full.macs[id(m)] * ran) - run.macs.get(id(m), 0)
    return full.total() / executed


def deepcache_row(pipe, classifier, interval: int, branch_id: int, labels: list[int],
                  steps: int, seed: int, samples: int, repeats: int,
                  baseline: torch.Tensor | None = None) -> dict:
    """Speed and quality of DeepCache against full compute (frdiff bench's measures)."""
    make = functools.partial(deepcache, pipe, interval, branch_id)
    speed = measure_speed_with(pipe, make, labels, steps, seed, repeats)
    q_labels = balanced_labels(samples, len(pipe.labels))
    q_seed = seed + 1000
    base = baseline if baseline is not None else generate(pipe, q_labels, steps, q_seed, progress=False)
    with make():
        acc = generate(pipe, q_labels, steps, q_seed, progress=False)
    return {"method": "DeepCache", "setting": f"interval {interval}, branch {branch_id}",
            "cache_interval": interval, "cache_branch_id": branch_id} | speed | \
        quality_against(classifier, acc, base, q_labels) | {
            "ideal_speedup": ideal_speedup(pipe, make, steps), "baseline_images": base}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="glyph-unet")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8, help="batch of the timed calls")
    ap.add_argument("--samples", type=int, default=128, help="images for PSNR/SSIM/accuracy")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timing pairs per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--intervals", type=_ints, default=[2, 3, 4, 5])
    ap.add_argument("--branch-ids", type=_ints, default=[0, 1, 3])
    ap.add_argument("--policy", action="append", default=[], help="frdiff policy spec (repeatable)")
    ap.add_argument("--mixing", choices=["on", "off"], default="on", help="score mixing for --policy")
    ap.add_argument("--fewer-steps", type=_ints, default=[], help="plain DDIM with these step counts")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default="analysis/results/deepcache", help="writes OUT.json, OUT.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = set_scheduler(load_pipeline(args.model), "ddim")
    pipe.set_progress_bar_config(disable=True)
    clf = load_classifier()
    mixing = ScoreMixing() if args.mixing == "on" else ScoreMixing.off()
    for spec in args.policy:  # fail on a bad spec before any measuring
        KeyframePolicy.parse(spec, args.steps, block_depths(pipe))
    labels = [(args.seed + i) % len(pipe.labels) for i in range(args.batch)]
    common = dict(labels=labels, steps=args.steps, seed=args.seed, samples=args.samples,
                  repeats=args.repeats)
    jobs = [lambda b, s=spec: policy_row(pipe, clf, s, mixing, baseline=b, **common)
            for spec in args.policy]
    jobs += [lambda b, i=i, br=br: deepcache_row(pipe, clf, i, br, baseline=b, **common)
             for br in args.branch_ids for i in args.intervals]
    jobs += [lambda b, k=k: fewer_steps_row(pipe, clf, k, baseline=b, **common) for k in args.fewer_steps]
    rows = collect_rows(jobs, report=lambda row: tqdm.write(json.dumps(row)))
    out = {"model": args.model, "steps": args.steps, "scheduler": "ddim", "batch": args.batch,
           "samples": args.samples, "repeats": args.repeats, "seed": args.seed,
           "quality_seed": args.seed + 1000, "machine": machine(), "rows": rows}
    table = markdown(out)
    write_result(args.out + ".json", out, table)
    print("\n" + table)


def markdown(result: dict) -> str:
    m, rows = result["machine"], result["rows"]
    base_acc = rows[0]["baseline_class_accuracy"] if rows else float("nan")
    lines = [f"{result['model']}, DDIM {result['steps']} steps; speed: batch {result['batch']}, "
             f"median of {result['repeats']} interleaved pairs; quality: {result['samples']} "
             f"samples (seed {result['quality_seed']}) vs full compute (class accuracy "
             f"{base_acc:.3f}); {m['cpu']}, {m['threads']} threads, torch {m['torch']}", ""]
    return "\n".join(lines) + "\n" + rows_markdown(result) + "\n"


def rows_markdown(result: dict) -> str:
    """The rows as a Markdown table (what docs/results.md shows)."""
    lines = ["| method | setting | measured speedup | ideal speedup | PSNR (dB) | SSIM | class acc. |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['setting']} | {r['speedup']:.2f}x | "
                     f"{r['ideal_speedup']:.2f}x | {r['psnr']:.1f} | {r['ssim']:.3f} | "
                     f"{r['class_accuracy']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

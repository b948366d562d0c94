"""One comparison run for the app: full compute, fewer steps, FRDiff, same noise and labels."""

from __future__ import annotations

import time
from functools import lru_cache

import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline
from frdiff.images import make_grid
from frdiff.metrics import psnr, ssim


@lru_cache(maxsize=4)
def pipeline(name: str):
    pipe = load_pipeline(name)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def compare(model: str, labels: str, steps: int, interval: int, mixing: bool, seed: int):
    """Images (PIL grids) and a Markdown table of time, speedup, PSNR and SSIM."""
    pipe = pipeline(model)
    chars = [c for c in labels.upper() if not c.isspace()]
    pipe.label_ids(chars)  # raises ValueError naming the valid labels

    def sample(n_steps: int):
        g = torch.Generator().manual_seed(int(seed))
        return pipe(chars, num_inference_steps=n_steps, generator=g, output_type="pt").images

    policy = KeyframePolicy.uniform(steps, interval)
    mix = ScoreMixing() if mixing else ScoreMixing.off()
    full, t_full = _timed(lambda: sample(steps))
    fewer_steps = max(1, round(steps / interval))
    reduced, t_reduced = _timed(lambda: sample(fewer_steps))
    with accelerate(pipe, policy, mix) as run:
        fast, t_fast = _timed(lambda: sample(steps))
    rows = [("Full compute", steps, t_full, full), (f"Fewer steps ({fewer_steps})", fewer_steps, t_reduced, reduced),
            (f"FRDiff (interval {interval}, mixing {'on' if mixing else 'off'})", steps, t_fast, fast)]
    table = ["| run | time | speedup | PSNR vs full | SSIM vs full |", "|---|---|---|---|---|"]
    for name, _, t, images in rows:
        table.append(f"| {name} | {t:.2f} s | {t_full / t:.2f}x | {psnr(images, full):.1f} dB | "
                     f"{ssim(images, full):.3f} |")
    table.append(f"\nFRDiff ideal speedup (counted MACs): {run.stats.ideal_speedup:.2f}x; "
                 f"network calls {run.stats.network_calls}, skipped {run.stats.network_calls_skipped}. "
                 "Times are from this machine, one run each.")
    grids = [make_grid(images, ncol=len(chars), scale=4) for *_, images in rows]
    return (*grids, "\n".join(table))

"""One comparison for the app: full compute, FRDiff with the edited policy, and fewer steps at
the same counted compute, all from the same noise and labels."""

from __future__ import annotations

import time

import torch

from frdiff import accelerate
from frdiff.images import make_grid
from frdiff.metrics import error_spectrum, psnr, ssim
from frdiff.pipelines import set_scheduler

from .editor import mixing_of, parse_policy
from .plots import spectrum_figure
from .presets import SCHEDULERS, pipeline

MAX_GLYPHS = 8


def glyphs(pipe, labels: str) -> list[str]:
    chars = [c for c in labels.upper() if not c.isspace()]
    if not chars:
        raise ValueError(f"type at least one glyph; valid labels: {pipe.labels}")
    if len(chars) > MAX_GLYPHS:
        raise ValueError(f"at most {MAX_GLYPHS} glyphs per run, got {len(chars)}")
    pipe.label_ids(chars)  # raises ValueError naming the valid labels
    return chars


def compare(model: str, labels: str, scheduler: str, steps: int, policy_text: str, mixing: bool,
            slope: float, bias: float, seed: int):
    """Three image grids, a Markdown table (time, speedups, PSNR, SSIM) and an error-spectrum plot."""
    steps = int(steps)
    pipe = set_scheduler(pipeline(model), SCHEDULERS[scheduler])
    chars = glyphs(pipe, labels)
    policy = parse_policy(model, steps, policy_text)
    mix = mixing_of(mixing, slope, bias)

    def sample(n_steps: int):
        g = torch.Generator().manual_seed(int(seed))
        start = time.perf_counter()
        images = pipe(chars, num_inference_steps=n_steps, generator=g, output_type="pt").images
        return images, time.perf_counter() - start

    full, t_full = sample(steps)
    with accelerate(pipe, policy, mix) as run:
        fast, t_fast = sample(steps)
    ideal = run.stats.ideal_speedup
    fewer_steps = max(1, round(steps / ideal))
    fewer, t_fewer = sample(fewer_steps)
    rows = [("Full compute", f"{steps} steps", t_full, 1.0, full),
            ("FRDiff (edited policy)", f"{run.stats.network_calls} calls / {steps} steps", t_fast, ideal, fast),
            ("Fewer steps, same counted compute", f"{fewer_steps} steps", t_fewer, steps / fewer_steps, fewer)]
    table = ["| run | network | time | speedup (this run) | counted speedup | PSNR vs full | SSIM vs full |",
             "|---|---|---|---|---|---|---|"]
    for name, work, t, counted, images in rows:
        table.append(f"| {name} | {work} | {t:.2f} s | {t_full / t:.2f}x | {counted:.2f}x | "
                     f"{psnr(images, full):.1f} dB | {ssim(images, full):.3f} |")
    table.append(f"\n{scheduler}, seed {int(seed)}, mixing {'on' if mixing else 'off'}. Times are one "
                 "run each on the machine serving this app; `python -m frdiff bench` measures "
                 "speed properly (warm-up, interleaved pairs, median).")
    spectra = {"FRDiff": error_spectrum(fast, full).tolist(),
               f"fewer steps ({fewer_steps})": error_spectrum(fewer, full).tolist()}
    fig = spectrum_figure(list(range(len(spectra["FRDiff"]))), spectra,
                          "what each shortcut loses, per spatial frequency (lower is closer to full compute)")
    grids = [make_grid(images, ncol=len(chars), scale=4) for *_, images in rows]
    return (*grids, "\n".join(table), fig)

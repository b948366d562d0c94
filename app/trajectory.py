"""The Trajectory tab: predicted x0 of full compute and FRDiff at every step, scrubbed instantly.

One request runs both samplers and records their predicted x0 (`frdiff.analysis.trajectory`);
the step slider then only reads the stored run, so scrubbing never recomputes.
"""

from __future__ import annotations

import torch

from frdiff.analysis import trajectory
from frdiff.images import make_grid
from frdiff.metrics import psnr

from . import inputs
from .compare import columns
from .models import POOL


def decode(x0: torch.Tensor) -> torch.Tensor:
    """The glyph pipeline's images from a data prediction (its own output mapping)."""
    return (x0.float() / 2 + 0.5).clamp(0, 1)


def record(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed) -> dict:
    """Both runs' predicted x0 per step (as images), their distance per step, the step kinds."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed)
    with POOL.borrow(s.model, s.scheduler) as pipe:
        full = trajectory(pipe, s.steps, seed=s.seed, decode=decode, class_labels=s.glyphs)
        fast = trajectory(pipe, s.steps, policy=s.policy, mixing=s.mixing, seed=s.seed, decode=decode,
                          class_labels=s.glyphs)
    return {"full": full.x0, "frdiff": fast.x0, "kinds": fast.kinds, "timesteps": full.timesteps,
            "psnr": [psnr(a, b) for a, b in zip(fast.x0, full.x0)], "ncol": len(s.glyphs), "steps": s.steps,
            "lam": [1.0 if k == "keyframe" else s.policy.reuse_weight(i, s.mixing)
                    for i, k in enumerate(fast.kinds)]}


def frame(data: dict, step) -> tuple:
    """(full-compute x0 grid, FRDiff x0 grid, Markdown) at `step`, from the stored run."""
    if not data:
        raise ValueError("record a trajectory first (the Record button)")
    step = inputs.whole_number(step, "step", 0, data["steps"] - 1)
    ncol = columns(data["ncol"])
    left = make_grid(data["full"][step], ncol=ncol, scale=4)
    right = make_grid(data["frdiff"][step], ncol=ncol, scale=4)
    kind = data["kinds"][step]
    what = {"keyframe": "a **keyframe**: every block computes and refreshes its cache",
            "reuse": f"a **reuse step**: cached features, fresh time conditioning, lam = {data['lam'][step]:.2f}",
            "no call": "a **no-call step**: the network is not run, the keyframe prediction is reused"}[kind]
    text = (f"Step **{step}** of {data['steps']} (timestep {data['timesteps'][step]}): for FRDiff "
            f"{what}. Predicted x0 of FRDiff vs full compute: **{data['psnr'][step]:.1f} dB**.")
    return left, right, text


def numbers(data: dict) -> dict:
    return {k: data[k] for k in ("kinds", "timesteps", "psnr", "lam", "steps")}

"""What every method's run yields (`Run`) and the one way the app samples (`sample`): the
bottom of the app's method modules (methods and peers both build on it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class Run:
    """One method's images and what it cost."""

    name: str
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    seconds: float
    calls: int  # network (denoiser) calls made
    counted: float  # counted speedup: full-compute MACs / this run's MACs
    note: str = ""
    numbers: dict = field(default_factory=dict)


def sample(pipe, glyphs: list[str], steps: int, seed: int) -> tuple[torch.Tensor, float]:
    """Images and seconds of one pipeline call from `seed` (the same noise for every method)."""
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = pipe(glyphs, num_inference_steps=steps, generator=g, output_type="pt").images
    return images, time.perf_counter() - start

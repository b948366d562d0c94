"""Observe, change nothing: how much each block's output changes from one step to the next.

    sim = frdiff.analysis.temporal_similarity(pipe, num_inference_steps=50, class_labels=["A", "7"])
    sim.change      # (steps - 1, blocks): mean|h_t - h_prev| / mean|h_prev| per policy block
    sim.cosine      # (steps - 1, blocks): cosine similarity of consecutive outputs

This is the picture behind feature reuse: where a block's output barely changes between
steps, reusing it costs little. The step index comes from the scheduler-driven step clock,
as in `accelerate`; only the first model call of each step is recorded (batched CFG is one
call). Forward hooks are removed when the call returns, whatever happens.

    freq = frdiff.analysis.frequency_comparison(pipe, 50, interval=2, class_labels=["A", "7"])
    freq.runs["FR only"]["error_spectrum"]   # P(images - full) / P(full) per radial band

The frequency picture of score mixing (method.md section 3): from the same noise, full
compute is the reference, and "fewer steps" (N / interval steps), "reduced NFE" (lam = 0 at
every non-keyframe step), "FR only", "FRDiff" (FR + score mixing) and the plain sampler with
as many steps as FRDiff's counted compute buys are each compared with it band by band (`frdiff.metrics.error_spectrum`). The accelerated runs use `accelerate`,
which restores every replaced forward when it returns; the pipeline itself is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .accelerate import accelerate
from .adaptive import relative_change
from .clock import StepClock, drive_clock
from .metrics import error_spectrum, psnr, radial_power_spectrum
from .mixing import ScoreMixing
from .policy import KeyframePolicy
from .targets import denoiser_of, find_blocks


@dataclass
class TemporalSimilarity:
    blocks: list[str]
    depths: list[int]
    change: torch.Tensor  # (steps - 1, blocks)
    cosine: torch.Tensor  # (steps - 1, blocks)

    def as_dict(self) -> dict:
        return {"blocks": self.blocks, "depths": self.depths, "change": self.change.tolist(),
                "cosine": self.cosine.tolist()}


def _main_tensor(output) -> torch.Tensor:
    """A block's hidden states (UNet down blocks also return their skip features)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return getattr(output, "sample", output)


def temporal_similarity(pipe, num_inference_steps: int = 50, **call_kwargs) -> TemporalSimilarity:
    """Run the pipeline once at full compute and measure every policy block's step-to-step
    change. `call_kwargs` go to the pipeline (labels or prompt embeddings, generator...)."""
    model = denoiser_of(pipe)
    blocks = find_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no UNet or transformer blocks to observe")
    clock = StepClock()
    previous: dict[int, torch.Tensor] = {}
    change = torch.full((num_inference_steps - 1, len(blocks)), float("nan"))
    cosine = torch.full_like(change, float("nan"))

    def model_pre_hook(module, args, kwargs):
        clock.next_call()

    def block_hook(index):
        def hook(module, args, output):
            if clock.calls_in_step != 1:  # record the first call of each step only
                return
            h = _main_tensor(output).detach().float()
            s = clock.step
            prev = previous.get(index)
            if prev is not None and s >= 1 and prev.shape == h.shape:
                change[s - 1, index] = relative_change(h, prev)
                cosine[s - 1, index] = torch.nn.functional.cosine_similarity(
                    h.flatten(1), prev.flatten(1), dim=1).mean()
            previous[index] = h
        return hook

    handles = [model.register_forward_pre_hook(model_pre_hook, with_kwargs=True)]
    handles += [b.module.register_forward_hook(block_hook(i)) for i, b in enumerate(blocks)]
    restore = drive_clock(pipe.scheduler, clock.start, lambda out: (clock.advance(), out)[1])
    try:
        with torch.no_grad():
            pipe(num_inference_steps=num_inference_steps, **call_kwargs)
    finally:
        restore()
        for h in handles:
            h.remove()
    if clock.num_steps != num_inference_steps:
        raise RuntimeError(f"the pipeline ran {clock.num_steps} steps, not {num_inference_steps}")
    return TemporalSimilarity([b.name for b in blocks], [b.depth for b in blocks], change, cosine)


MATCHED = "fewer steps, FRDiff's compute"


@dataclass
class FrequencyComparison:
    bands: list[int]  # radial frequency, cycles per image
    runs: dict[str, dict]  # name -> error_spectrum (per band), psnr (dB vs full), ideal_speedup
    reference_spectrum: list[float]  # radial power of the full-compute images

    def as_dict(self) -> dict:
        return {"bands": self.bands, "runs": self.runs, "reference_spectrum": self.reference_spectrum}


def _images_tensor(images) -> torch.Tensor:
    """Pipeline images as (N, C, H, W) floats (a "pt" output, or an (N, H, W, C) array)."""
    if isinstance(images, torch.Tensor):
        return images.detach().float().cpu()
    return torch.as_tensor(images).float().permute(0, 3, 1, 2)


def frequency_comparison(pipe, num_inference_steps: int = 50, interval: int = 2, seed: int = 0,
                         **call_kwargs) -> FrequencyComparison:
    """Full compute vs fewer steps, reduced NFE, FR only and FRDiff, band by band, all from the
    same noise (a fresh generator seeded with `seed` per run). `call_kwargs` go to the pipeline
    (labels or prompt embeddings...); images are requested with output_type="pt"."""
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be an integer >= 1, got {interval!r}")
    for key in ("generator", "output_type"):
        if key in call_kwargs:
            raise ValueError(f"frequency_comparison sets {key!r} itself (every run starts from `seed`)")

    def sample(steps: int) -> torch.Tensor:
        out = pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                   output_type="pt", **call_kwargs)
        return _images_tensor(out.images)

    reference = sample(num_inference_steps)
    fewer = max(1, round(num_inference_steps / interval))
    results = {"fewer steps": (sample(fewer), num_inference_steps / fewer)}
    policy = KeyframePolicy.uniform(num_inference_steps, interval)
    mixings = {"reduced NFE (lam = 0)": ScoreMixing.reduced_nfe(),
               "FR only": ScoreMixing.off(), "FRDiff (FR + mixing)": ScoreMixing()}
    for name, mixing in mixings.items():
        with accelerate(pipe, policy, mixing) as run:
            images = sample(num_inference_steps)
        results[name] = (images, run.stats.ideal_speedup)
    # the shortcut a user would pick instead of FRDiff: as many plain steps as FRDiff's compute buys
    matched = max(1, round(num_inference_steps / results["FRDiff (FR + mixing)"][1]))
    results[MATCHED] = (sample(matched), num_inference_steps / matched)
    runs = {name: {"error_spectrum": error_spectrum(images, reference).tolist(),
                   "psnr": psnr(images, reference), "ideal_speedup": float(speedup)}
            for name, (images, speedup) in results.items()}
    spectrum = radial_power_spectrum(reference)
    return FrequencyComparison(list(range(len(spectrum))), runs, spectrum.tolist())

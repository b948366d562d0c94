"""The tuner's differentiable sampler: accelerate's parts (sampler.py) with soft gates.

`GatedRun` is the tuner's sampler state. It uses the runtime's step clock, cache store,
reuse forwards (`install_reuse`, every block and unit), the mixer of the scheduler's family
(eps hold, or x0 forecast for DPM-Solver++, exactly as `accelerate` picks it) and the same
cost model. The only difference: every block computes, and each cache and each mixing key
becomes a blend weighted by the gates, which are binary in the forward pass (straight-
through), so the forward pass is the sampler the projected policy runs on and the backward
pass sees how the result depends on each gate.
"""

from __future__ import annotations

import inspect

import torch

from ..clock import StepClock, drive_clock
from ..mixing import mixer_for
from ..modes import Mode
from ..noise import noise_schedule
from ..patching import Patches
from ..pytree import sample_of, with_sample
from ..sampler import CacheStore, install_reuse
from ..schedulers import is_data_prediction_solver
from ..targets import PolicyBlock, denoiser_of


def _blend(old, fresh, w):
    """w * old + (1 - w) * fresh, through tuples (block outputs) and None."""
    if fresh is None:
        return None
    if isinstance(fresh, torch.Tensor):
        return torch.lerp(fresh, old, w.to(fresh.dtype))
    return type(fresh)(_blend(o, f, w) for o, f in zip(old, fresh))


class GatedRun:
    """Soft-gated sampler state for gates k, z (steps x blocks) and lam per step; `whole`
    says per block what z = 1 means: "S" (skip, the default) or "R" (residual reuse)."""

    def __init__(self, model, scheduler, blocks: list[PolicyBlock], multistep: str,
                 k: torch.Tensor, z: torch.Tensor, lam: list[float], whole: str | None = None):
        self.blocks, self.scheduler, self.k, self.z, self.lam = blocks, scheduler, k, z, lam
        self.whole = whole or Mode.SKIP * len(blocks)
        self.clock = StepClock()
        self.caches = CacheStore(detach=False)
        self.mixing_used = any(value < 1.0 for value in lam)
        self.noise = noise_schedule(scheduler) if self.mixing_used else None
        kind = self.noise.prediction_type if self.noise else "epsilon"
        self.mixer = mixer_for(is_data_prediction_solver(scheduler), kind, multistep)
        self.signature = inspect.signature(model.forward)

    # -- the reuse forwards' questions (sampler.py) -------------------------------------
    def reuse(self, owner, block: int, mode: str):
        return None  # everything computes, so every gate has a gradient

    def keep(self, owner, block: int, mode: str, fresh):
        k = self.k[self.clock.step, block]
        if mode == Mode.FEATURE_REUSE:
            w = 1 - k
        else:  # S or R: the block's z gate, where that is what z means for it
            w = (1 - k) * self.z[self.clock.step, block] * (self.whole[block] == mode)
        old = self.caches.get(owner, count_miss=False)
        value = fresh if old is None else _blend(old, fresh, w)
        self.caches.put(owner, value)
        return value

    # -- the model's output: score mixing with a soft keyframe ---------------------------
    def model_forward(self, original):
        def forward(*args, **kwargs):
            self.caches.branch = branch = self.clock.next_call()
            return self.mix(original(*args, **kwargs), args, kwargs, branch)
        return forward

    def mix(self, out, args, kwargs, branch: int):
        """w = k + (1 - k) lam weighs this step's output against the key; the key becomes
        k * output + (1 - k) * key, as `Run` does with hard k."""
        if not self.mixing_used:
            return out
        step = self.clock.step
        x, alpha, sigma = self.noise.point(self.signature, args, kwargs)
        sample = sample_of(out)
        if branch not in self.mixer.keys:  # the run's first step: a keyframe
            self.mixer.keep(sample, x, alpha, sigma, branch)
            return out
        k = self.k[step].prod()
        _, _, mixed = self.mixer.mix(sample, x, alpha, sigma, branch, k + (1 - k) * self.lam[step])
        self.mixer.keep(sample, x, alpha, sigma, branch, weight=k)
        return with_sample(out, mixed.to(sample.dtype))

    def detach(self) -> None:
        self.caches.detach_all()
        self.mixer.detach()


def detach_state(obj) -> None:
    """Cut the graph held by a scheduler's multistep history (truncated back-propagation)."""
    for name, value in list(vars(obj).items()):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            setattr(obj, name, value.detach())
        elif isinstance(value, list) and any(isinstance(v, torch.Tensor) for v in value):
            setattr(obj, name, [v.detach() if isinstance(v, torch.Tensor) else v for v in value])


def step_sample(out):
    """prev_sample of a scheduler.step() output (tuple or dataclass)."""
    return out[0] if isinstance(out, tuple) else out.prev_sample


def _with_step_sample(out, sample):
    if isinstance(out, tuple):
        return (sample,) + tuple(out[1:])
    out.prev_sample = sample
    return out


def gated_pass(pipe, blocks, multistep: str, call, batch, k, z, lam, reference, segment,
               weight: float = 1.0, whole: str | None = None) -> float:
    """One differentiable sampling pass; returns the distance of its latents to `reference`
    (each step's full-compute latents). The loss is the final distance; with `segment`,
    back-propagation is truncated every `segment` steps (the distance at each segment end is
    added), so memory stays bounded for long runs. Gradients accumulate on the gates."""
    model = denoiser_of(pipe)
    run = GatedRun(model, pipe.scheduler, blocks, multistep, k, z, lam, whole)
    distance = [0.0]
    n = len(reference)
    scale = float(reference[-1].pow(2).mean()) + 1e-8

    def on_step(out):
        s = run.clock.step
        run.clock.advance()
        if s + 1 < n and (segment is None or (s + 1) % segment):
            return out
        x = step_sample(out)
        loss = (x.float() - reference[s]).pow(2).mean() / scale
        if loss.requires_grad:  # the gates' small graph is shared by every segment
            (weight * loss).backward(retain_graph=True)
        distance[0] += float(loss.detach())
        run.detach()
        detach_state(pipe.scheduler)
        return _with_step_sample(out, x.detach())

    with Patches() as patches:
        patches.callback(drive_clock(pipe.scheduler, run.clock.start, on_step))
        patches.forward(model, run.model_forward)
        install_reuse(blocks, run, patches)
        with torch.enable_grad():
            call(n, batch)
    return distance[0]


def reference_latents(pipe, call, n: int, batch: int) -> list[torch.Tensor]:
    """Latents after every step of the full-compute sampler."""
    latents = []

    def record(out):
        latents.append(step_sample(out).detach().clone())
        return out

    restore = drive_clock(pipe.scheduler, lambda steps: None, record)
    try:
        with torch.no_grad():
            call(n, batch)
    finally:
        restore()
    return latents


def policy_loss(pipe, call, policy, mixing, n: int, references: dict[int, torch.Tensor]) -> float:
    """Relative MSE of the final latents of the real accelerated sampler to the reference."""
    return sum(batch_losses(pipe, call, policy, mixing, n, references)) / len(references)


def batch_losses(pipe, call, policy, mixing, n: int, references: dict[int, torch.Tensor]) -> list[float]:
    """`policy_loss`'s terms: one relative MSE per reference batch, in the references' order."""
    from ..accelerate import accelerate

    losses = []
    with accelerate(pipe, policy, mixing):
        for batch, ref in references.items():
            final = reference_latents(pipe, call, n, batch)[-1]
            losses.append(float((final.float() - ref).pow(2).mean() / (ref.pow(2).mean() + 1e-12)))
    return losses

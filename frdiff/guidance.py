"""Guidance-branch reuse (uncond R): the unconditional CFG half rebuilt from the last guidance.

At an uncond R step of a policy whose `uncond` schedule says so, the model runs on the
conditional half of a batched classifier-free-guidance call only, and the unconditional half is
the conditional output minus the guidance difference (cond - uncond) of the last call that ran
both halves. The step's block modes, and the caches, apply to the half that runs."""

from __future__ import annotations

import torch

from .pytree import halve, sample_of, with_sample


class GuidanceReuse:
    """The guidance difference of the last full-batch call, and the half-batch call built on it."""

    def __init__(self, signature):
        self.signature = signature  # the model forward's, to find its sample argument
        self.difference: torch.Tensor | None = None  # cond - uncond

    def clear(self) -> None:
        self.difference = None

    def keep(self, out) -> None:
        """After a call that ran both CFG halves: keep cond - uncond."""
        sample = sample_of(out).detach()
        if sample.shape[0] % 2 == 0:
            uncond, cond = sample.chunk(2)
            self.difference = cond - uncond

    def half_call(self, original, caches, calls_per_step: int, pipe, args, kwargs):
        """The model call that runs the conditional half and rebuilds the unconditional one
        (refused, saying why, where the pipeline's calls are not batched CFG)."""
        if calls_per_step != 1:
            raise RuntimeError(f"frdiff: uncond R (guidance reuse) needs classifier-free guidance "
                               f"batched into one model call per step; this pipeline makes "
                               f"{calls_per_step} calls per step")
        if getattr(pipe, "do_classifier_free_guidance", True) is False:
            raise RuntimeError("frdiff: uncond R (guidance reuse) needs classifier-free guidance; "
                               "this call runs without it (guidance_scale <= 1): use a policy "
                               "without uncond, or guidance")
        batch = sample_of(self.signature.bind(*args, **kwargs).arguments[
            next(iter(self.signature.parameters))]).shape[0]
        if batch % 2 or self.difference is None or self.difference.shape[0] != batch // 2:
            raise RuntimeError(f"frdiff: uncond R (guidance reuse) needs a batch of unconditional "
                               f"and conditional halves (the second half runs, the first is rebuilt); "
                               f"this call's batch is {batch}")
        rows = batch // 2

        def conditional_half(*a, **k):
            with caches.half_batch(rows):
                out = original(*halve(a, batch), **halve(k, batch))
            cond = sample_of(out)
            return with_sample(out, torch.cat([cond - self.difference.to(cond.dtype), cond]))
        return conditional_half

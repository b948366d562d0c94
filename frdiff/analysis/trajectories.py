"""Observe one sampling run: the data prediction x0 the sampler works from at every step.

    traj = frdiff.analysis.trajectory(pipe, 50, policy=policy, mixing=ScoreMixing(),
                                      class_labels=["A", "7"])
    traj.x0[s]      # (N, C, H, W): the predicted x0 behind step s (decoded, given `decode`)
    traj.kinds[s]   # "keyframe", "reuse" or "no call"

x0 is what the scheduler implies from the model output it is handed at that step (after CFG
and, inside `accelerate`, after score mixing): its `pred_original_sample` where the step
output has one (DDIM, Euler), else x0 from the model output at the step's alpha_t, sigma_t
(DPM-Solver++ multistep, as its `convert_model_output` does; flow matching: x0 = x - s v). The scheduler's `step` is
wrapped for the call and restored exactly afterwards.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable

import torch

from ..accelerate import accelerate
from ..adaptive import AdaptivePolicy
from ..mixing import PREDICTION_TYPES, ScoreMixing, x0_of
from ..noise import FLOW, is_flow
from ..policy import KeyframePolicy
from .spectra import _images_tensor, _refuse_own_kwargs


@dataclass
class Trajectory:
    x0: torch.Tensor  # (steps, N, C, H, W) float32 on the CPU; decode(x0) when decode was given
    timesteps: list[int | float]  # the scheduler's timestep at each step
    kinds: list[str]  # per step: "keyframe", "reuse" or "no call"
    images: torch.Tensor  # the final pipeline output (output_type="pt")
    decoded: bool = False  # x0 holds decode(x0)

    def as_dict(self) -> dict:
        return {"timesteps": self.timesteps, "kinds": self.kinds, "decoded": self.decoded,
                "shape": list(self.x0.shape)}


def trajectory(pipe, num_inference_steps: int, policy: KeyframePolicy | AdaptivePolicy | None = None,
               mixing: ScoreMixing | None = None, seed: int = 0,
               decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
               **call_kwargs) -> Trajectory:
    """One run seeded with `seed`, full compute (policy None) or inside `accelerate(pipe,
    policy, mixing)`, recording every step's predicted x0 (mapped by `decode`, e.g. to images)
    and timestep. `call_kwargs` go to the pipeline (labels or prompt embeddings...)."""
    _refuse_own_kwargs(call_kwargs, "trajectory")
    scheduler = pipe.scheduler
    frames: list[torch.Tensor] = []
    timesteps: list[int | float] = []

    def record(args: tuple, kwargs: dict, output) -> None:
        model_output, timestep, sample = _step_arguments(args, kwargs)
        index = getattr(scheduler, "step_index", None)  # advanced by the step just taken
        index = len(frames) if index is None else index - 1
        x0 = predicted_x0(scheduler, output, model_output, timestep, sample, index)
        with torch.no_grad():
            frames.append((decode(x0) if decode else x0).detach().float().cpu())
        timesteps.append(_number(timestep))

    with contextlib.ExitStack() as stack:
        run = stack.enter_context(accelerate(pipe, policy, mixing)) if policy is not None else None
        stack.callback(observe_steps(scheduler, record))
        out = pipe(num_inference_steps=num_inference_steps, output_type="pt",
                   generator=torch.Generator().manual_seed(seed), **call_kwargs)
    if len(frames) != num_inference_steps:
        raise RuntimeError(f"the pipeline ran {len(frames)} steps, not {num_inference_steps}")
    return Trajectory(torch.stack(frames), timesteps, _kinds(policy, mixing, run, num_inference_steps),
                      _images_tensor(out.images), decode is not None)


def observe_steps(scheduler, record: Callable[[tuple, dict, object], None]) -> Callable[[], None]:
    """Make scheduler.step call record(args, kwargs, output) after each step (same signature);
    returns the function that restores the scheduler exactly."""
    saved = scheduler.__dict__.get("step")
    step = scheduler.step

    @functools.wraps(step)
    def step_and_record(*args, **kwargs):
        output = step(*args, **kwargs)
        record(args, kwargs, output)
        return output

    scheduler.step = step_and_record

    def restore() -> None:
        if saved is None:
            scheduler.__dict__.pop("step", None)
        else:
            scheduler.step = saved

    return restore


def predicted_x0(scheduler, step_output, model_output: torch.Tensor, timestep,
                 sample: torch.Tensor, index: int) -> torch.Tensor:
    """The data prediction behind a scheduler step: its `pred_original_sample`, else x0 from
    the model output at step `index`'s alpha_t, sigma_t (x = alpha_t x0 + sigma_t eps)."""
    x0 = getattr(step_output, "pred_original_sample", None)
    if x0 is not None:
        return x0
    if is_flow(scheduler):  # x = (1 - s) x0 + s eps, v = eps - x0: x0 = x - s v
        sigma = float(scheduler.sigmas[index])
        return x0_of(model_output.float(), sample.float(), 1.0 - sigma, sigma, FLOW)
    kind = scheduler.config.prediction_type
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"cannot recover x0 for prediction_type {kind!r}; "
                         f"supported: {', '.join(PREDICTION_TYPES)}")
    alpha, sigma = _alpha_sigma(scheduler, index, timestep)
    return x0_of(model_output.float(), sample.float(), alpha, sigma, kind)


def _alpha_sigma(scheduler, index: int, timestep) -> tuple[float, float]:
    """alpha_t, sigma_t at a step: from the scheduler's sigmas (DPM-Solver), else alphas_cumprod."""
    sigmas, convert = getattr(scheduler, "sigmas", None), getattr(scheduler, "_sigma_to_alpha_sigma_t", None)
    if sigmas is not None and convert is not None:
        alpha, sigma = convert(sigmas[index])
        return float(alpha), float(sigma)
    a = scheduler.alphas_cumprod[int(timestep)].double()
    return float(a.sqrt()), float((1 - a).sqrt())


def _step_arguments(args: tuple, kwargs: dict):
    """(model_output, timestep, sample) of a diffusers `scheduler.step` call."""
    names = ("model_output", "timestep", "sample")
    return tuple(args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))


def _number(timestep) -> int | float:
    value = timestep.item() if isinstance(timestep, torch.Tensor) else timestep
    return value if isinstance(value, (int, float)) else float(value)


def _kinds(policy, mixing: ScoreMixing | None, run, steps: int) -> list[str]:
    """Each step's kind; an adaptive policy's keyframes are read from the run."""
    if policy is None:
        return ["keyframe"] * steps
    mixing = mixing if mixing is not None else ScoreMixing.off()
    if isinstance(policy, KeyframePolicy):
        return [policy.step_kind(s, mixing) for s in range(steps)]
    keyframes = set(run.stats.keyframe_steps[-1])
    return ["keyframe" if s in keyframes else "reuse" if mixing.lam(s, steps) > 0.0 else "no call"
            for s in range(steps)]

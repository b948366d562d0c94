"""Noise schedules: where a model call lies on its sampling path, x = alpha x0 + sigma eps.

Score mixing, forecasts and the analyses split a model output into eps and x0; for that they
need (alpha, sigma) of the call and the model's prediction type. Two adapters give them:
  CumprodSchedule  DDPM-family schedulers (`alphas_cumprod`): alpha^2 = alphas_cumprod at the
                   call's timestep (interpolated at fractional timesteps), sigma^2 = 1 - alpha^2;
                   prediction type from the config (epsilon, v_prediction, sample).
  FlowSchedule     flow matching (FLUX, SD3, Qwen-Image, Wan, Sana): x = (1 - s) x0 + s eps with
                   s = `scheduler.sigmas` at the scheduler's current step (after shift, dynamic
                   shifting with `mu` and the custom sigmas pipelines pass, exactly as it steps);
                   the model predicts the velocity v = eps - x0 ("flow"): FlowMatchEuler/Heun, and
                   UniPC / DPM-Solver with `use_flow_sigmas` or `prediction_type="flow_prediction"`.
`noise_schedule(scheduler)` picks one, or raises before any step runs.
"""

from __future__ import annotations

import inspect

import torch

FLOW = "flow"  # the velocity v = eps - x0 of x = (1 - s) x0 + s eps
_CUMPROD_TYPES = ("epsilon", "v_prediction", "sample")


def _shape(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-sample coefficients broadcastable against x (one value: every sample)."""
    values = values.expand(x.shape[0]) if values.numel() == 1 else values
    return values.view((x.shape[0],) + (1,) * (x.ndim - 1)).to(x.device, torch.float32)


def _model_input(signature: inspect.Signature, args: tuple, kwargs: dict):
    bound = signature.bind(*args, **kwargs).arguments
    return bound, bound[next(iter(signature.parameters))]


class CumprodSchedule:
    """alphas_cumprod schedulers (DDIM, DDPM, Euler, DPM-Solver++, UniPC, Heun...)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")

    def point(self, signature, args: tuple, kwargs: dict):
        """The call's input x (float) and alpha, sigma at its timestep."""
        bound, x = _model_input(signature, args, kwargs)
        t = torch.as_tensor(bound["timestep"], dtype=torch.float64).flatten().cpu()
        ac = self.scheduler.alphas_cumprod.to(torch.float64).cpu()
        lo = t.floor().long().clamp(0, len(ac) - 1)
        hi = (lo + 1).clamp(max=len(ac) - 1)
        a = torch.lerp(ac[lo], ac[hi], t - lo)
        return x.float(), _shape(x, a.sqrt()), _shape(x, (1 - a).sqrt())

    def log_snrs(self) -> list[float]:
        """log(alpha / sigma) at each of the run's timesteps (after set_timesteps)."""
        s = self.scheduler
        a = s.alphas_cumprod.double().cpu()[s.timesteps.long().cpu()]
        return (0.5 * torch.log(a / (1.0 - a).clamp_min(1e-12))).tolist()


class FlowSchedule:
    """Flow matching: alpha = 1 - s, sigma = s, s the scheduler's sigma at its current step."""

    prediction_type = FLOW

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def index(self) -> int:
        """The scheduler's step index now: step_index, before the first step its begin index
        (img2img `strength` sets it), else 0."""
        s = self.scheduler
        for name in ("step_index", "begin_index"):
            value = getattr(s, name, None)
            if isinstance(value, int):
                return value
        return 0

    def point(self, signature, args: tuple, kwargs: dict):
        _, x = _model_input(signature, args, kwargs)
        sigmas = self.scheduler.sigmas
        s = torch.as_tensor(sigmas[min(self.index(), len(sigmas) - 1)], dtype=torch.float64).flatten()
        return x.float(), _shape(x, 1.0 - s.cpu()), _shape(x, s.cpu())

    def log_snrs(self) -> list[float]:
        s = torch.as_tensor(self.scheduler.sigmas, dtype=torch.float64).cpu()
        s = s[:len(self.scheduler.timesteps)].clamp(1e-6, 1 - 1e-6)
        return torch.log((1 - s) / s).tolist()


def is_flow(scheduler) -> bool:
    """Does the scheduler sample a flow-matching path (sigmas in [0, 1], velocity predictions)?"""
    config = scheduler.config
    return (type(scheduler).__name__.startswith("FlowMatch")
            or bool(getattr(config, "use_flow_sigmas", False))
            or getattr(config, "prediction_type", None) == "flow_prediction")


def noise_schedule(scheduler) -> CumprodSchedule | FlowSchedule:
    """The adapter for a scheduler, or a ValueError saying why its outputs cannot be split."""
    name = type(scheduler).__name__
    if is_flow(scheduler):
        if not hasattr(scheduler, "sigmas"):
            raise ValueError(f"{name} samples a flow but keeps no `sigmas`; frdiff cannot tell "
                             f"where a model call lies on its path")
        return FlowSchedule(scheduler)
    if not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"{name} has neither alphas_cumprod nor flow sigmas: frdiff cannot split "
                         f"its model outputs into eps and x0 (use ScoreMixing.off() and no N steps)")
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind not in _CUMPROD_TYPES:
        raise ValueError(f"{name} has prediction_type {kind!r}, which frdiff cannot split into eps "
                         f"and x0; supported: {', '.join(_CUMPROD_TYPES)} and flow matching")
    return CumprodSchedule(scheduler)

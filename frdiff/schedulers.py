"""Scheduler swaps by name, keeping the pipeline's noise schedule (betas, timestep spacing, or
a flow model's shift).

A model trained on an `alphas_cumprod` schedule (glyph-unet, glyph-dit, SD, PixArt) samples
with SCHEDULERS; a flow-matching model (glyph-flux, FLUX, SD3) with FLOW_SCHEDULERS, where
"euler" is FlowMatchEuler and UniPC / DPM-Solver++ run on flow sigmas as Wan and Sana use them.

It also tells the solver family of a scheduler from its class (never from config keys a
scheduler swap left behind): `is_data_prediction_solver`, which picks the mixer (mixing.py).
"""

from __future__ import annotations

import inspect

from diffusers import (DDIMScheduler, DiffusionPipeline, DPMSolverMultistepInverseScheduler,
                       DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
                       EDMDPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler,
                       UniPCMultistepScheduler)

from .noise import is_flow

_X0_SOLVERS = (DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,  # whose algorithm_type
               DPMSolverMultistepInverseScheduler, EDMDPMSolverMultistepScheduler)  # is real

SCHEDULERS = {  # name -> (class, config overrides); deterministic samplers only
    "ddim": (DDIMScheduler, {}),
    "dpmsolver": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": (EulerDiscreteScheduler, {}),
}
_FLOW_SOLVER = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
FLOW_SCHEDULERS = {
    "euler": (FlowMatchEulerDiscreteScheduler, {}),
    "heun": (FlowMatchHeunDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, _FLOW_SOLVER),
    "dpmsolver": (DPMSolverMultistepScheduler, _FLOW_SOLVER | {"algorithm_type": "dpmsolver++",
                                                               "solver_order": 2}),
}


def scheduler_names(pipe: DiffusionPipeline) -> tuple[str, ...]:
    """The names `set_scheduler` takes for this pipeline (its model's kind of schedule)."""
    return tuple(FLOW_SCHEDULERS if is_flow(pipe.scheduler) else SCHEDULERS)


def default_scheduler(pipe: DiffusionPipeline) -> str:
    """The name of the sampler a model is shown with: DDIM, or Euler for flow models."""
    return _default_name(pipe.scheduler)


def default_steps(pipe: DiffusionPipeline) -> int:
    """The step count a model is shown with: 50, or 28 (FLUX.1-dev's) for flow models."""
    return 28 if is_flow(pipe.scheduler) else 50


def _default_name(scheduler) -> str:
    return "euler" if is_flow(scheduler) else "ddim"


def swapped(scheduler, name: str | None):
    """A new scheduler `name` (None: the family's default) with `scheduler`'s noise schedule:
    "ddim", "dpmsolver" or "euler" for alphas_cumprod models; "euler", "heun", "unipc" or
    "dpmsolver" for flow models. `scheduler` itself is left as it is."""
    flow = is_flow(scheduler)
    table = FLOW_SCHEDULERS if flow else SCHEDULERS
    name = _default_name(scheduler) if name is None else name
    if name not in table:
        kind = "a flow-matching model" if flow else "a model on an alphas_cumprod schedule"
        raise ValueError(f"unknown scheduler {name!r} for {kind}; choose from {', '.join(table)}")
    cls, overrides = table[name]
    config = dict(scheduler.config)
    if flow and not type(scheduler).__name__.startswith("FlowMatch"):
        config.setdefault("shift", config.get("flow_shift", 1.0))  # back to a FlowMatch one
    if flow and cls in (UniPCMultistepScheduler, DPMSolverMultistepScheduler):
        overrides = overrides | {"flow_shift": config.get("shift", 1.0)}
    accepted = inspect.signature(cls.__init__).parameters  # drop another family's keys
    config = {k: v for k, v in config.items() if k in accepted}
    return cls.from_config(config, **overrides)


def set_scheduler(pipe: DiffusionPipeline, name: str | None) -> DiffusionPipeline:
    """Swap the pipeline's scheduler for `swapped(pipe.scheduler, name)`."""
    pipe.scheduler = swapped(pipe.scheduler, name)
    return pipe


def is_data_prediction_solver(scheduler) -> bool:
    """Does the scheduler integrate data predictions x0 (DPM-Solver++ and its SDE form)?"""
    # The class decides, not the config: `from_config` keeps keys the new class ignores, so
    # a DDIM made from a DPM-Solver++ config still carries algorithm_type="dpmsolver++".
    if not isinstance(scheduler, _X0_SOLVERS):
        return False
    return scheduler.config.algorithm_type in ("dpmsolver++", "sde-dpmsolver++")

"""Scheduler swaps by name, keeping the pipeline's noise schedule (betas, timestep spacing)."""

from __future__ import annotations

from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler

SCHEDULERS = {  # name -> (class, config overrides); deterministic samplers only
    "ddim": (DDIMScheduler, {}),
    "dpmsolver": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": (EulerDiscreteScheduler, {}),
}


def set_scheduler(pipe: DiffusionPipeline, name: str) -> DiffusionPipeline:
    """Swap the pipeline's scheduler for `name` ("ddim", "dpmsolver", "euler"), same betas."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    cls, overrides = SCHEDULERS[name]
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **overrides)
    return pipe

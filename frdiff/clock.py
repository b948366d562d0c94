"""The step clock: which denoising step, and which model call within it, is running.

It is driven by the scheduler, never guessed from timestep values: `set_timesteps` starts a
sampling run of len(scheduler.timesteps) steps and each `scheduler.step()` advances one step.
Within a step, the k-th model call is branch k (batched CFG is one call, so one branch;
pipelines that call the model once per CFG branch get branches 0 and 1).
"""

from __future__ import annotations

from typing import Callable


class StepClock:
    def __init__(self):
        self.num_steps: int | None = None
        self.step = 0
        self.calls_in_step = 0

    def start(self, num_steps: int) -> None:
        self.num_steps, self.step, self.calls_in_step = num_steps, 0, 0

    def advance(self) -> None:
        self.step += 1
        self.calls_in_step = 0

    def next_call(self) -> int:
        """Register a model call in the current step; returns its branch index."""
        if self.num_steps is None:
            raise RuntimeError("frdiff: the model was called before the scheduler's "
                               "set_timesteps(); the step is unknown. Drive sampling with the "
                               "scheduler given to accelerate() (swap schedulers before "
                               "entering accelerate()).")
        if self.step >= self.num_steps:
            raise RuntimeError(f"frdiff: model called at step {self.step} of a "
                               f"{self.num_steps}-step run (more scheduler steps than timesteps)")
        branch = self.calls_in_step
        self.calls_in_step += 1
        return branch

    @property
    def finished(self) -> bool:
        return self.num_steps is not None and self.step >= self.num_steps


def drive_clock(scheduler, on_start: Callable[[int], None], on_step: Callable[[object], object]):
    """Patch `scheduler` so set_timesteps calls on_start(n) and step() returns
    on_step(its output); returns a function that restores the scheduler exactly."""
    saved = {name: scheduler.__dict__.get(name) for name in ("set_timesteps", "step")}
    set_timesteps, step = scheduler.set_timesteps, scheduler.step

    def set_timesteps_and_start(*args, **kwargs):
        out = set_timesteps(*args, **kwargs)
        on_start(len(scheduler.timesteps))
        return out

    def step_and_advance(*args, **kwargs):
        return on_step(step(*args, **kwargs))

    scheduler.set_timesteps = set_timesteps_and_start
    scheduler.step = step_and_advance

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                scheduler.__dict__.pop(name, None)
            else:
                setattr(scheduler, name, value)

    return restore

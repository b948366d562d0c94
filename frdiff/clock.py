"""The step clock: which denoising step, and which model call within it, is running.

It is driven by the scheduler, never guessed: `set_timesteps` starts a sampling run and each
`scheduler.step()` advances one step. A step is one entry of `scheduler.timesteps`, so a run
has len(scheduler.timesteps) steps and a policy needs one row per step. Within a step, the
k-th model call is branch k (batched CFG is one call, so one branch; pipelines that call the
model once per CFG branch get branches 0 and 1).

What it supports, and what it refuses (with an error that says what to do):
- Runs that start part-way (img2img `strength`, SDXL `denoising_start`): the pipeline calls
  set_timesteps(n), then runs only the last timesteps. The run's first step() tells where it
  started: the scheduler's own step index where it keeps one (set_begin_index, or its lookup),
  else the position of the step's timestep in `scheduler.timesteps` (DDIM, DDPM; where that
  is not unique, step 0 is assumed). The clock jumps there; that first step is always a
  keyframe (the caches are empty), whatever its policy row says. Runs that stop
  early (`denoising_end`) just stop; the next set_timesteps starts afresh.
- Schedulers with more timesteps than steps (Heun, KDPM2: 2n - 1 for n steps; PNDM: n + 1)
  call step() once per model evaluation, so each evaluation is a policy step: their policies
  have len(scheduler.timesteps) rows (accelerate() says so when the lengths differ).
- Every step must call the model equally often, at most MAX_CALLS_PER_STEP times: the run's
  first step fixes the count. A loop that calls the model again without a step(), or calls
  step() without a model call, is refused: frdiff would otherwise file the calls under the
  wrong step or grow a cache per extra call.
"""

from __future__ import annotations

from typing import Callable

import torch

from .patching import Patches

MAX_CALLS_PER_STEP = 8  # model calls between two step() calls (CFG branches, batch splits)


class StepClock:
    """The current step (an index into scheduler.timesteps) and model call within it."""

    def __init__(self):
        self.num_steps: int | None = None
        self.step = 0
        self.calls_in_step = 0
        self.calls_per_step: int | None = None  # fixed by the run's first step
        self.steps_run = 0  # step() calls since set_timesteps

    def start(self, num_steps: int) -> None:
        self.num_steps, self.step, self.calls_in_step = num_steps, 0, 0
        self.calls_per_step, self.steps_run = None, 0

    def begin_at(self, step: int) -> None:
        """The run's first step was `step`, not 0 (it started part-way); relabel it."""
        if self.steps_run != 0:
            raise RuntimeError("frdiff: a run's start can only be set during its first step")
        if not 0 <= step < (self.num_steps or 0):
            raise RuntimeError(f"frdiff: the run started at step {step}, outside its "
                               f"{self.num_steps} timesteps")
        self.step = step

    @property
    def first_step(self) -> bool:
        """Is this the run's first step (always a keyframe: the caches are empty)?"""
        return self.steps_run == 0

    def next_call(self) -> int:
        """Register a model call in the current step; returns its branch index."""
        if self.num_steps is None:
            raise RuntimeError("frdiff: the model was called before the scheduler's "
                               "set_timesteps(); the step is unknown. Drive sampling with the "
                               "scheduler given to accelerate() (swap schedulers before "
                               "entering accelerate()).")
        if self.step >= self.num_steps:
            raise RuntimeError(f"frdiff: model called after the last of {self.num_steps} steps; "
                               f"start each sampling run with scheduler.set_timesteps() on the "
                               f"scheduler accelerate() was given, and call scheduler.step() "
                               f"once per step")
        branch = self.calls_in_step
        limit = self.calls_per_step or MAX_CALLS_PER_STEP
        if branch >= limit:
            raise RuntimeError(f"frdiff: model call {branch + 1} in step {self.step}, but "
                               + (f"the run's first step made {limit}" if self.calls_per_step
                                  else f"at most {limit} are supported")
                               + "; call scheduler.step() once per step, after the same model "
                               "calls (e.g. one batched CFG call) in every step")
        self.calls_in_step += 1
        return branch

    def advance(self) -> None:
        """scheduler.step() was called: the current step is over."""
        if self.calls_in_step == 0:
            raise RuntimeError(f"frdiff: scheduler.step() called at step {self.step} without "
                               f"a model call since the last step(); call the model, then "
                               f"step(), once per timestep")
        if self.calls_per_step is None:
            self.calls_per_step = self.calls_in_step
        elif self.calls_in_step != self.calls_per_step:
            raise RuntimeError(f"frdiff: step {self.step} made {self.calls_in_step} model "
                               f"call(s) but the run's first step made {self.calls_per_step}; "
                               f"every step must call the model equally often")
        self.step += 1
        self.steps_run += 1
        self.calls_in_step = 0

    @property
    def finished(self) -> bool:
        return self.num_steps is not None and self.step >= self.num_steps


def length_mismatch(policy_steps: int, steps: int, scheduler) -> str:
    """The error for a policy whose length is not the run's number of steps."""
    n = getattr(scheduler, "num_inference_steps", None)
    per_eval = "" if n in (None, steps) else (
        f" ({type(scheduler).__name__} calls step() {steps} times for num_inference_steps={n}: "
        f"a policy has one row per step() call, i.e. per timestep)")
    return (f"the policy covers {policy_steps} steps but the sampler runs {steps}{per_eval}; make "
            f"the policy for {steps} steps, e.g. KeyframePolicy.uniform({steps}, 2), or "
            f"len(scheduler.timesteps) after scheduler.set_timesteps(num_inference_steps)")


def run_start(scheduler, timestep) -> int:
    """Where in scheduler.timesteps a run's first step() (just made, at `timestep`) was."""
    index = getattr(scheduler, "step_index", None)  # advanced by step(): begin index + 1
    if isinstance(index, int):
        return index - 1
    timesteps = getattr(scheduler, "timesteps", None)
    if timestep is None or not isinstance(timesteps, torch.Tensor):
        return 0
    t = torch.as_tensor(timestep).flatten()[:1].to(timesteps.device, timesteps.dtype)
    hits = (timesteps == t).nonzero().flatten().tolist()
    return hits[0] if len(hits) == 1 else 0  # DDIM/DDPM timesteps are distinct


def drive_clock(scheduler, on_start: Callable[[int], None], on_step: Callable[[object], object],
                on_begin: Callable[[int], None] | None = None) -> Callable[[], None]:
    """Patch `scheduler`: on_start(n) at set_timesteps, on_begin(index) after a run's first
    step(), step() returns on_step(its output); returns the function that restores it exactly."""
    patches = Patches()
    first = [False]

    def start_clock(set_timesteps):
        def set_timesteps_and_start(*args, **kwargs):
            out = set_timesteps(*args, **kwargs)
            first[0] = True
            on_start(len(scheduler.timesteps))
            return out
        return set_timesteps_and_start

    def advance_clock(step):
        def step_and_advance(*args, **kwargs):
            out = step(*args, **kwargs)
            if first[0] and on_begin is not None:
                on_begin(run_start(scheduler, args[1] if len(args) > 1 else kwargs.get("timestep")))
            first[0] = False
            return on_step(out)
        return step_and_advance

    patches.replace(scheduler, "set_timesteps", start_clock)
    patches.replace(scheduler, "step", advance_clock)
    return patches.close

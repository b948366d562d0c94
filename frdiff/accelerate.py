"""`frdiff.accelerate(pipe, policy, mixing)`: install feature reuse, restore on exit.

Usage:
    with frdiff.accelerate(pipe, policy=KeyframePolicy.uniform(50, 2), mixing=ScoreMixing()) as run:
        images = pipe(class_labels=["A", "7"], num_inference_steps=50).images
    print(run.stats)

A bare model works too: `accelerate(model, policy, mixing, scheduler=scheduler)`; the
hand-written loop calls `scheduler.set_timesteps(n)` once and `scheduler.step(...)` after every
step, exactly as a pipeline does, and that is what advances frdiff's step clock.

The policy is a `KeyframePolicy` (modes fixed per step) or an `AdaptivePolicy` (the first
model call of each step decides, after the probe block, whether the step is a keyframe).

Observers (analysis only): set `run.observer` to a callable before sampling and it gets a
`MixEvent` at every model call of every reuse step: eps_key, the FR output and the mix, in the
space score mixing blends. Without an observer nothing extra is computed.

Precision and schedulers: score mixing computes in float32 and every output returned to the
pipeline has the dtype the model returns (fp16/bf16 pipelines keep their latents' dtype). The
mixer (eps hold, or x0 forecast for DPM-Solver++) is chosen from the scheduler's class and its
real algorithm when accelerate() is entered; swap schedulers before that, never inside (that
is refused). What the step clock supports (runs that start part-way, Heun/KDPM2, per-branch
CFG calls) and refuses is listed in clock.py. A long-lived context stays bounded: caches are
freed after every run, and `RunStats.keyframe_steps` keeps the last `RunStats.kept_runs` runs
(`mean_keyframes` counts them all).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable

import torch

from .adaptive import AdaptivePolicy
from .clock import StepClock, drive_clock, length_mismatch
from .compiled import compile_regions, is_wrapper, unwrapped
from .cost import CallCosts
from .guidance import GuidanceReuse
from .ledger import Call, Ledger, RunStats
from .mixing import MixEvent, ScoreMixing, in_space, mixer_for
from .modes import Mode
from .noise import noise_schedule
from .patching import Patches
from .plan import AdaptivePlan, plan_for
from .policy import KeyframePolicy
from .reuse import Unneeded, stand_in
from .sampler import CacheStore, ForecastStore, check_modes, install_reuse
from .pytree import build_output, sample_of, with_sample
from .schedulers import is_data_prediction_solver
from .targets import PolicyBlock, denoisers_of, find_blocks, supported_families
from .units import FRUnit
from .targets import block_depths, describe  # noqa: F401 (public names of this module)

__all__ = ["RunStats", "accelerate", "block_depths", "describe"]


class Run:
    """The state of one accelerate() context: the step clock's events, the current step (from
    the policy's plan), the caches the reuse forwards ask, the mixer of the scheduler's family,
    the ledger of calls and MACs, and, for uncond R, the guidance reuse. Each of those is its
    own object; this class only sequences them, once per model call (`model_forward`)."""

    def __init__(self, model, scheduler, blocks: list[PolicyBlock],
                 policy: KeyframePolicy | AdaptivePolicy, mixing: ScoreMixing,
                 cache_dtype: torch.dtype | None, clock: StepClock | None = None,
                 stats: RunStats | None = None):
        self.model, self.scheduler, self.blocks = model, scheduler, blocks
        self.pipe = None  # a pipeline whose `scheduler` must stay the one driving the clock
        self.policy, self.mixing, self.cache_dtype = policy, mixing, cache_dtype
        self.plan = plan_for(policy, mixing)
        self.clock = clock or StepClock()  # shared by every denoiser of one pipeline
        self.stats = stats or RunStats()
        self.ledger = Ledger(model, blocks, self.stats)
        self.experts: list[Run] = [self]  # every denoiser's Run (Wan 2.2: two), this one first
        self._last_step = -2  # the step of this denoiser's last call (two experts: a switch)
        # the current step: is it a keyframe (None: the adaptive probe decides), its block modes,
        # and was it made a keyframe because the caches are empty
        self.keyframe: bool | None = True
        self.modes: tuple[str, ...] = ()
        self.fresh = True
        self.forecast = self.plan.forecast
        self._signature = inspect.signature(model.forward)
        self.guidance = GuidanceReuse(self._signature) if self.plan.uncond is not None else None
        self._log_snr: list[float] = []  # forecast="logsnr": each step's, set once per run
        self.caches = ForecastStore(cache_dtype) if self.forecast else CacheStore(cache_dtype)
        self._out_meta: tuple[type, torch.dtype] | None = None  # the model output's type, dtype
        self.regions = None  # compiled.Regions where the model was compiled (set on install)
        try:  # observers (spectra) split outputs even when nothing here needs to
            self.noise = noise_schedule(scheduler)
        except ValueError:
            if self.plan.needs_schedule():
                raise
            self.noise = None
        self.prediction_type = self.noise.prediction_type if self.noise else getattr(
            scheduler.config, "prediction_type", "epsilon")
        self.mixer = mixer_for(is_data_prediction_solver(scheduler), self.prediction_type,
                               mixing.multistep)  # chosen once per scheduler family
        self.space = self.mixer.space  # what score mixing blends: "eps" or "x0"
        self._observer: Callable[[MixEvent], None] | None = None
        plan = self.plan  # does any step blend or reuse eps_key? (else keyframes skip storing it)
        lams = [plan.lam(i) for i in range(plan.num_steps) if not plan.known_keyframe(i)]
        self._mixing_used = any(lam < 1.0 for lam in lams)
        # adaptive steps at lam = 0 need the probe's output only: the blocks after it idle
        self.unneeded = Unneeded() if self.adaptive and 0.0 in lams else None

    @property
    def adaptive(self) -> bool:
        return isinstance(self.plan, AdaptivePlan)

    @property
    def costs(self) -> dict[int, CallCosts]:
        """Per CFG branch, what a full call costs (counted at its first full call)."""
        return self.ledger.costs

    @property
    def observer(self) -> Callable[[MixEvent], None] | None:
        return self._observer

    @observer.setter
    def observer(self, fn: Callable[[MixEvent], None] | None) -> None:
        """Observe every denoiser's calls (analysis only)."""
        for run in self.experts:
            run._observer = fn

    # -- clock events ------------------------------------------------------------------
    def on_start(self, num_steps: int) -> None:
        if num_steps != self.plan.num_steps:
            raise ValueError(length_mismatch(self.plan.num_steps, num_steps, self.scheduler))
        for run in self.experts:
            run.clear()
            run._last_step = -2
            if run.forecast == "logsnr":  # read from the scheduler once, never inside the loop
                run._log_snr = run.noise.log_snrs()
        self.clock.start(num_steps)
        self.stats.start_run()

    def on_begin(self, step: int) -> None:
        """After the run's first step(): it was `step` (img2img strength, denoising_start)."""
        if step != self.clock.step:
            self.clock.begin_at(step)
            for run in self.experts:  # the denoiser that ran it did so at `step`
                run._last_step = step if run._last_step == 0 else run._last_step
            runs = self.stats.keyframe_steps  # the first step was a keyframe, filed as step 0
            runs[-1] = [step if s == 0 else s for s in runs[-1]]

    def on_step(self, output=None):
        self.clock.advance()
        if self.clock.finished:
            for run in self.experts:
                run.clear()  # the call is over: free every cache
        return output

    def clear(self) -> None:
        self.caches.clear()
        self.mixer.clear()
        if self.unneeded is not None:
            self.unneeded.clear()
        if self.guidance is not None:
            self.guidance.clear()
        self.plan.reset()

    # -- what the reuse forwards ask (see sampler.py) -----------------------------------
    def reuse(self, owner, block: int, mode: str):
        """The cached value where this step runs `block` in `mode`, else None (compute)."""
        if self.modes[block] != mode:
            return None
        return self.caches.get(owner)

    def keep(self, owner, block: int, mode: str, fresh):
        feeder = isinstance(owner, FRUnit) and owner.kind.shape_only  # only its shape is needed at F
        self.caches.put(owner, stand_in(fresh) if feeder else fresh)
        return fresh

    # -- the model's forward -----------------------------------------------------------
    def model_forward(self, original):
        def forward(*args, **kwargs):
            self._check_scheduler()
            branch, step = self._begin_call()
            lam = self.plan.lam(step)  # of the step's own output, where it is not a keyframe
            network = self._network(original, step, args, kwargs)
            out, probe_only = self._call(original, network, branch, lam, args, kwargs)
            if self.keyframe is None:
                raise RuntimeError(f"frdiff: the probe block {self.blocks[0].name} did not run "
                                   f"in this model call; an adaptive policy cannot decide")
            keyframe = self.keyframe
            lam = 1.0 if keyframe else lam
            if branch == 0 and keyframe:
                self.stats.add_keyframe(step)
            self.ledger.record(Call(branch, keyframe, lam, self.modes, probe_only,
                                    half=network is not original), self.caches)
            shadow = None
            if out is None and not keyframe and self.observer is not None:
                shadow = self._shadow_fr(network, step, args, kwargs)
            return self._mix(out, args, kwargs, branch, keyframe, lam, shadow)
        return forward

    def _begin_call(self) -> tuple[int, int]:
        """The call's CFG branch and step; the step planned at its first call (every branch
        of a step follows that decision)."""
        self.caches.branch = branch = self.clock.next_call()
        if self.unneeded is not None:
            self.unneeded.branch = branch
        step = self.clock.step
        if self.forecast:
            self.caches.at = self._coordinate(step)
        if branch == 0:
            self._plan(step)
        return branch, step

    def _call(self, original, network, branch: int, lam: float, args, kwargs):
        """Run the network as the step asks: (its output, or None where no call was needed;
        did the call end after the adaptive probe)."""
        if self.keyframe and self.ledger.needs_count(branch):
            out = self.ledger.count(original, branch, args, kwargs, self.regions)
        elif self.keyframe is False and not lam > 0.0:
            return None, False  # the keyframe's prediction is the output
        else:  # a call (keyframe None: the probe decides at its end; see probe_hook)
            out, probe_only = self._run_network(network, args, kwargs)
            if probe_only:
                return None, True
        if self.guidance is not None and network is original:
            self.guidance.keep(out)
        return out, False

    def _run_network(self, network, args, kwargs):
        """(the call's output, did its probe find the output unneeded: then the blocks after
        the probe returned zeros and the output is no one's)."""
        unneeded = self.unneeded
        try:
            out = network(*args, **kwargs)
        finally:
            probe_only = unneeded is not None and unneeded.active
            if probe_only:
                unneeded.active = False
        return out, probe_only

    def _shadow_fr(self, original, step: int, args, kwargs):
        """For observers: the FR output at a lam = 0 step, leaving caches and stats untouched."""
        if not self.plan.shadow_possible(step):
            return None
        snapshot = self.caches.snapshot()
        try:
            return original(*args, **kwargs)
        finally:  # blocks in K mode refreshed caches the real run must not see
            self.caches.restore(snapshot)

    def _network(self, original, step: int, args, kwargs):
        """The model call of this step: `original`, or at an uncond R step the conditional half
        with the unconditional half rebuilt (guidance.py)."""
        if self.guidance is None or self.fresh or not self.plan.uncond_reused(step):
            return original
        return self.guidance.half_call(original, self.caches, self.clock.calls_per_step, self.pipe,
                                       args, kwargs)

    def _coordinate(self, step: int) -> float:
        """Where a step lies for the forecast: its index, or its timestep's log-SNR."""
        if self.forecast == "step":
            return float(step)
        return self._log_snr[min(step, len(self._log_snr) - 1)]

    def _check_scheduler(self) -> None:
        """The pipeline still samples with the scheduler whose steps drive the clock."""
        current = getattr(self.pipe, "scheduler", self.scheduler)
        if current is not self.scheduler:
            raise RuntimeError(f"frdiff: pipe.scheduler was replaced inside accelerate() (now "
                               f"{type(current).__name__}); its set_timesteps() and step() would "
                               f"not reach the step clock. Swap schedulers before entering "
                               f"accelerate().")

    def _plan(self, step: int) -> None:
        """The step's keyframe status and block modes, from the plan (adaptive: the probe
        completes them)."""
        # a keyframe whatever the policy says where the caches are empty: a run's first step
        # (it may start part-way, at any row) and, with two experts (Wan 2.2), the first step of
        # this one after the other ran: what it holds is from before the switch, so reset it
        self.fresh = self.clock.first_step or self._last_step != step - 1
        if self.fresh and not self.clock.first_step:
            self.clear()
        self._last_step = step
        if self.fresh:
            self.keyframe, self.modes = True, (Mode.KEYFRAME,) * len(self.blocks)
        else:
            self.keyframe, self.modes = self.plan.step(step, len(self.blocks))

    def probe_hook(self, module, args, output) -> None:
        """After the probe block (adaptive): decide the step at its first call, keep p_key.

        Where the step reuses at lam = 0 only the probe was needed: the blocks after it return
        zeros for the rest of the call (`Unneeded`), the model's own layers outside them finish
        it, and `_call` discards its output."""
        if self.caches.branch != 0:
            return
        probe = sample_of(output)
        state = self.plan.state
        if self.keyframe is None:
            modes = self.plan.decide(probe, self.caches.get(state), len(self.blocks))
            self.keyframe = modes is None
            if modes is not None:
                self.modes = modes
                if self.plan.lam(self.clock.step) == 0.0:
                    self.unneeded.active = True
                return
        else:
            self.plan.keyframe()
        self.caches.put(state, probe)  # p_key: the probe at this keyframe

    def _mix(self, out, args, kwargs, branch: int, keyframe: bool, lam: float, shadow=None):
        """Keyframes keep eps_key (x0_key); reuse steps get lam * FR + (1 - lam) * key."""
        watched = self.observer is not None
        if not watched and (not self._mixing_used or (lam == 1.0 and not keyframe)):
            return out
        x, alpha, sigma = self._point(args, kwargs)
        kind = self.prediction_type
        if keyframe:
            self._out_meta = (type(out), sample_of(out).dtype)
            self.mixer.keep(sample_of(out).detach(), x, alpha, sigma, branch)
            return out
        fr_out = None if out is None else sample_of(out)
        key, mixed, sample = self.mixer.mix(fr_out, x, alpha, sigma, branch, lam)
        if lam == 1.0:  # pure FR (only observers get here): the network's output, bit for bit
            result = out
        else:  # mixed in float32; returned in the dtype the model returns (fp16/bf16 latents)
            out_type, dtype = self._out_meta
            sample = sample.to(dtype)
            result = build_output(out_type, sample) if out is None else with_sample(out, sample)
        if watched:
            fr = out if out is not None else shadow
            fr = None if fr is None else in_space(self.space, sample_of(fr), x, alpha, sigma, kind)
            self.observer(MixEvent(self.clock.step, branch, lam, self.space, kind, x, alpha, sigma,
                                   key, fr, fr if lam == 1.0 else mixed, sample_of(result), args,
                                   kwargs))
        return result

    def _point(self, args, kwargs):
        """The model input x and its coefficients: x = alpha x0 + sigma eps (noise.py)."""
        if self.noise is None:  # an observer on a scheduler frdiff could not split: raises why
            self.noise = noise_schedule(self.scheduler)
        return self.noise.point(self._signature, args, kwargs)


@contextlib.contextmanager
def accelerate(pipe_or_model, policy: KeyframePolicy | AdaptivePolicy,
               mixing: ScoreMixing | None = None, scheduler=None,
               cache_dtype: torch.dtype | None = None):
    """Install FRDiff on a pipeline's denoisers (or a bare model with `scheduler`). A pipeline
    with two (Wan 2.2's `transformer` and `transformer_2`) gets both, on one step clock, each
    with its own caches; the Run yielded is the first's, `run.experts` lists them all."""
    if isinstance(pipe_or_model, torch.nn.Module):
        models, own_scheduler = [pipe_or_model], False
        if scheduler is None:
            raise ValueError("a bare model needs the scheduler that drives its sampling loop")
    else:
        models = denoisers_of(pipe_or_model)
        own_scheduler = scheduler is None
        scheduler = scheduler or getattr(pipe_or_model, "scheduler", None)
    wrappers = {id(unwrapped(m)): m for m in models if is_wrapper(m)}  # torch.compile(model)
    runs = _prepare([unwrapped(m) for m in models], scheduler, policy, mixing, cache_dtype)
    for run in runs:
        run.experts = runs
        run.pipe = pipe_or_model if own_scheduler else None
    with Patches() as patches:
        for run in runs:
            patches.callback(run.clear)  # last out: free every cache
        _install(runs, patches)
        for run in runs:  # after every patch: the compiled regions hold none of them
            run.regions = compile_regions(run.model, patches, wrappers.get(id(run.model)))
        yield runs[0]


def _prepare(models, scheduler, policy, mixing, cache_dtype) -> list[Run]:
    """Validate everything before anything is touched."""
    if not isinstance(policy, (KeyframePolicy, AdaptivePolicy)):
        raise TypeError(f"policy must be a KeyframePolicy or an AdaptivePolicy, "
                        f"got {type(policy).__name__}")
    mixing = mixing if mixing is not None else ScoreMixing.off()
    if not isinstance(mixing, ScoreMixing):
        raise TypeError(f"mixing must be a ScoreMixing, got {type(mixing).__name__}")
    if scheduler is None or not hasattr(scheduler, "set_timesteps") or not hasattr(scheduler, "step"):
        raise ValueError("accelerate() needs a diffusers scheduler (set_timesteps and step)")
    clock, stats, runs, names = StepClock(), RunStats(), [], None
    for model in models:
        if getattr(model, "_frdiff_run", None) is not None:
            raise RuntimeError(f"this {type(model).__name__} is already accelerated by frdiff; "
                               f"leave the first accelerate() context before entering another")
        blocks = find_blocks(model)
        if not any(b.units for b in blocks):
            raise ValueError(f"{type(model).__name__} has no module frdiff can reuse (supported: "
                             f"{supported_families()}); frdiff cannot accelerate it, but a "
                             f"fewer-steps run can")
        if names is not None and [b.name for b in blocks] != names:
            raise ValueError(f"the pipeline's denoisers have different blocks ({type(model).__name__}: "
                             f"{len(blocks)}, the first: {len(names)}); one policy cannot address both")
        names = [b.name for b in blocks]
        policy.check_blocks(names)
        check_modes(policy, blocks)
        runs.append(Run(model, scheduler, blocks, policy, mixing, cache_dtype, clock, stats))
    return runs


def _install(runs: list[Run], patches: Patches) -> None:
    """Replace forwards and scheduler methods, each undone when `patches` closes."""
    first, policy = runs[0], runs[0].policy
    patches.callback(drive_clock(first.scheduler, first.on_start, first.on_step, first.on_begin))
    for run in runs:
        patches.attribute(run.model, "_frdiff_run", run)
        patches.forward(run.model, run.model_forward)
        if run.adaptive:
            patches.hook(run.blocks[0].module.register_forward_hook(run.probe_hook), run.blocks[0].module)
        columns = [policy.block_modes(i) for i in range(len(run.blocks))]
        counts = install_reuse(run.blocks, run, patches, columns)
        if run.unneeded is not None:  # outermost: an unneeded block runs none of its reuse
            for index, block in enumerate(run.blocks[1:], start=1):
                patches.forward(block.module, lambda f, i=index, u=run.unneeded: u.forward(i, f))
        for kind, n in counts.items():
            first.stats.modules_reused[kind] = first.stats.modules_reused.get(kind, 0) + n

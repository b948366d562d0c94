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
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, ClassVar

import torch

from .adaptive import AdaptivePolicy, AdaptiveState, relative_change
from .clock import StepClock, drive_clock, length_mismatch
from .compiled import compile_regions, is_wrapper, unwrapped
from .cost import CallCosts, MacCounter
from .mixing import MixEvent, ScoreMixing, in_space, mixer_for
from .patching import Patches
from .policy import KeyframePolicy
from .reuse import stand_in
from .sampler import CacheStore, ForecastStore, check_modes, install_reuse
from .noise import noise_schedule
from .pytree import build_output, halve, sample_of, with_sample
from .schedulers import is_data_prediction_solver
from .targets import PolicyBlock, denoisers_of, find_blocks, supported_families
from .units import FRUnit
from .targets import block_depths, describe  # noqa: F401 (public names of this module)


@dataclass
class RunStats:
    """What an accelerated context did, summed over every pipeline call inside it."""

    kept_runs: ClassVar[int] = 64  # runs whose keyframe lists a long-lived context keeps

    modules_reused: dict = field(default_factory=dict)  # FR units by kind, and skip blocks
    network_calls: int = 0  # model forwards that ran (full or FR)
    network_calls_skipped: int = 0  # lam = 0 steps: the keyframe prediction was reused
    fr_calls: int = 0  # forwards with at least one block in F or S mode
    half_batch_calls: int = 0  # uncond R: forwards on the conditional CFG half only
    baseline_macs: int = 0  # what the same calls cost without frdiff
    executed_macs: int = 0
    peak_cache_bytes: int = 0
    cache_misses: int = 0  # reuse asked for but no cache (computed instead)
    probe_calls: int = 0  # adaptive lam = 0 steps: the network stopped after the probe block
    keyframe_steps: list = field(default_factory=list)  # the last kept_runs runs' keyframe steps
    sampling_runs: int = 0  # set_timesteps calls, all of them
    keyframes_total: int = 0  # keyframe steps over all runs

    @property
    def ideal_speedup(self) -> float:
        return self.baseline_macs / self.executed_macs if self.executed_macs else float("nan")

    @property
    def mean_keyframes(self) -> float:
        """Keyframe steps per sampling run (adaptive policies choose them per input)."""
        return self.keyframes_total / self.sampling_runs if self.sampling_runs else float("nan")

    def start_run(self) -> None:
        """A sampling run begins; only the last kept_runs keep their keyframe lists."""
        self.sampling_runs += 1
        self.keyframe_steps.append([])
        del self.keyframe_steps[:-self.kept_runs]

    def add_keyframe(self, step: int) -> None:
        self.keyframes_total += 1
        self.keyframe_steps[-1].append(step)

    def as_dict(self) -> dict:
        return asdict(self) | {"ideal_speedup": self.ideal_speedup,
                               "mean_keyframes": self.mean_keyframes}


class _StopAfterProbe(Exception):
    """The probe chose a reuse step at lam = 0: the rest of the network is not needed."""


class Run:
    """The state of one accelerate() context, built from the parts in sampler.py: the step
    clock, the modes of the current step (planned from the policy), the caches, the mixer of
    the scheduler's family and the cost model, plus the run's statistics."""

    def __init__(self, model, scheduler, blocks: list[PolicyBlock],
                 policy: KeyframePolicy | AdaptivePolicy, mixing: ScoreMixing,
                 cache_dtype: torch.dtype | None, clock: StepClock | None = None,
                 stats: RunStats | None = None):
        self.model, self.scheduler, self.blocks = model, scheduler, blocks
        self.pipe = None  # a pipeline whose `scheduler` must stay the one driving the clock
        self.policy, self.mixing, self.cache_dtype = policy, mixing, cache_dtype
        self.clock = clock or StepClock()  # shared by every denoiser of one pipeline
        self.stats = stats or RunStats()
        self.experts: list[Run] = [self]  # every denoiser's Run (Wan 2.2: two), this one first
        self._last_step = -2  # the step of this denoiser's last call (two experts: a switch)
        self.fresh = True  # this step is a keyframe because the caches are empty
        self.modes: tuple[str, ...] = ()
        self.keyframe: bool | None = True  # is the current step a keyframe (None: probe decides)
        self.adaptive = AdaptiveState(policy) if isinstance(policy, AdaptivePolicy) else None
        self.forecast = getattr(policy, "forecast", None)  # reuse extrapolates (KeyframePolicy.forecast)
        self.uncond = getattr(policy, "uncond", None)  # the unconditional CFG half reuses (uncond R)
        self._guidance = None  # uncond R: cond - uncond of the last call that ran both halves
        self._log_snr: list[float] = []  # forecast="logsnr": each step's, set once per run
        self.caches = ForecastStore(cache_dtype) if self.forecast else CacheStore(cache_dtype)
        self._out_meta: tuple[type, torch.dtype] | None = None  # the model output's type, dtype
        self.costs: dict[int, CallCosts] = {}  # per branch, counted at the first full call
        self._counter: MacCounter | None = None
        self._probe_at = 0  # adaptive: MACs up to the end of the probe block (first call)
        self._macs: dict[tuple[str, int], int] = {}  # (modes, branch) -> MACs of such a call
        self._signature = inspect.signature(model.forward)
        self.regions = None  # compiled.Regions where the model was compiled (set on install)
        needs_schedule = mixing.enabled or getattr(policy, "forecast", None) == "logsnr" or (
            isinstance(policy, KeyframePolicy) and policy.has_no_call)
        try:  # observers (spectra) split outputs even when nothing here needs to
            self.noise = noise_schedule(scheduler)
        except ValueError:
            if needs_schedule:
                raise
            self.noise = None
        self.prediction_type = self.noise.prediction_type if self.noise else getattr(
            scheduler.config, "prediction_type", "epsilon")
        self.mixer = mixer_for(is_data_prediction_solver(scheduler), self.prediction_type,
                               mixing.multistep)  # chosen once per scheduler family
        self.space = self.mixer.space  # what score mixing blends: "eps" or "x0"
        self._keys = self.mixer.keys  # eps_key / x0_key history per branch, cleared per run
        self._observer: Callable[[MixEvent], None] | None = None
        n = policy.num_steps  # does any step blend or reuse eps_key? (else keyframes skip storing it)
        known = policy.forced_keyframe if self.adaptive else policy.is_keyframe
        self._mixing_used = any(not known(i) and self._lam(i) < 1.0 for i in range(n))

    @property
    def observer(self) -> Callable[[MixEvent], None] | None:
        return self._observer

    @observer.setter
    def observer(self, fn: Callable[[MixEvent], None] | None) -> None:
        """Observe every denoiser's calls (analysis only)."""
        for run in self.experts:
            run._observer = fn

    def _lam(self, step: int) -> float:
        """Weight of a reuse step's own output: 0 at N steps (no call), else score mixing's."""
        if self.adaptive is None:
            return self.policy.reuse_weight(step, self.mixing)
        return self.mixing.lam(step, self.policy.num_steps)

    # -- clock events ------------------------------------------------------------------
    def on_start(self, num_steps: int) -> None:
        if num_steps != self.policy.num_steps:
            raise ValueError(length_mismatch(self.policy.num_steps, num_steps, self.scheduler))
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
        self._guidance = None
        if self.adaptive is not None:
            self.adaptive.reset()

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
            self.caches.branch = branch = self.clock.next_call()
            step = self.clock.step
            if self.forecast:
                self.caches.at = self._coordinate(step)
            if branch == 0:  # every CFG branch of a step follows its first call's decision
                self._plan(step)
            reuse_lam = self._lam(step)
            probe_only = False
            network = self._network(original, step, args, kwargs)
            if self.keyframe and branch not in self.costs:
                out = self._counted(original, branch, args, kwargs)
            elif self.keyframe is not False or reuse_lam > 0.0:  # None: the probe decides
                try:
                    out = network(*args, **kwargs)
                except _StopAfterProbe:
                    out, probe_only = None, True
            else:
                out = None
            if self.uncond is not None and out is not None and network is original:
                self._keep_guidance(out)
            if self.keyframe is None:
                raise RuntimeError(f"frdiff: the probe block {self.blocks[0].name} did not run "
                                   f"in this model call; an adaptive policy cannot decide")
            keyframe = self.keyframe
            lam = 1.0 if keyframe else reuse_lam
            if branch == 0 and keyframe:
                self.stats.add_keyframe(step)
            self._account(step, branch, keyframe, lam, probe_only, half=network is not original)
            shadow = None
            if out is None and not keyframe and self.observer is not None:
                shadow = self._shadow_fr(network, step, args, kwargs)
            return self._mix(out, args, kwargs, branch, keyframe, lam, shadow)
        return forward

    def _shadow_fr(self, original, step: int, args, kwargs):
        """For observers: the FR output at a lam = 0 step, leaving caches and stats untouched."""
        if self.adaptive is not None or self.policy.no_call(step):
            return None  # N steps have no FR modes; an adaptive probe would decide again
        snapshot = self.caches.snapshot()
        try:
            return original(*args, **kwargs)
        finally:  # blocks in K mode refreshed caches the real run must not see
            self.caches.restore(snapshot)

    def _network(self, original, step: int, args, kwargs):
        """The model call of this step: `original`, or at an uncond R step a call that runs the
        conditional half of the batch and rebuilds the unconditional half from the guidance
        difference (the step's block modes, and caches, apply to the half that runs)."""
        if self.uncond is None or self.fresh or not self.policy.uncond_reused(step):
            return original
        if self.clock.calls_per_step != 1:
            raise RuntimeError(f"frdiff: uncond R (guidance reuse) needs classifier-free guidance "
                               f"batched into one model call per step; this pipeline makes "
                               f"{self.clock.calls_per_step} calls per step")
        if getattr(self.pipe, "do_classifier_free_guidance", True) is False:
            raise RuntimeError("frdiff: uncond R (guidance reuse) needs classifier-free guidance; "
                               "this call runs without it (guidance_scale <= 1): use a policy "
                               "without uncond, or guidance")
        batch = sample_of(self._signature.bind(*args, **kwargs).arguments[
            next(iter(self._signature.parameters))]).shape[0]
        if batch % 2 or self._guidance is None or self._guidance.shape[0] != batch // 2:
            raise RuntimeError(f"frdiff: uncond R (guidance reuse) needs a batch of unconditional "
                               f"and conditional halves (the second half runs, the first is rebuilt); "
                               f"this call's batch is {batch}")
        rows = batch // 2

        def conditional_half(*a, **k):
            with self.caches.half_batch(rows):
                out = original(*halve(a, batch), **halve(k, batch))
            cond = sample_of(out)
            return with_sample(out, torch.cat([cond - self._guidance.to(cond.dtype), cond]))
        return conditional_half

    def _keep_guidance(self, out) -> None:
        """After a call that ran both CFG halves: keep cond - uncond (for uncond R steps)."""
        sample = sample_of(out).detach()
        if sample.shape[0] % 2 == 0:
            uncond, cond = sample.chunk(2)
            self._guidance = cond - uncond

    def _counted(self, original, branch: int, args, kwargs):
        """Step 0 is a full keyframe: count the MACs of the call (and of its modules)."""
        try:
            eager = self.regions.eager_calls() if self.regions else contextlib.nullcontext()
            with eager, MacCounter(self.model) as self._counter:  # hooks run eagerly
                out = original(*args, **kwargs)
            self.costs[branch] = CallCosts.count(self._counter, self.blocks, self._probe_at)
        finally:
            self._counter = None
        return out

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
        """The step's keyframe status and block modes (adaptive: the probe completes them)."""
        # a keyframe whatever the policy says where the caches are empty: a run's first step
        # (it may start part-way, at any row) and, with two experts (Wan 2.2), the first step of
        # this one after the other ran: what it holds is from before the switch, so reset it
        self.fresh = self.clock.first_step or self._last_step != step - 1
        if self.fresh and not self.clock.first_step:
            self.clear()
        self._last_step = step
        if self.fresh:
            self.keyframe, self.modes = True, ("K",) * len(self.blocks)
            return
        if self.adaptive is None:
            self.keyframe = self.policy.is_keyframe(step)
            self.modes = tuple(self.policy.mode(step, i) for i in range(len(self.blocks)))
            return
        self.keyframe = True if self.adaptive.forced(step) else None
        self.modes = ("K",) * len(self.blocks)

    def probe_hook(self, module, args, output) -> None:
        """After the probe block (adaptive): decide the step at its first call, keep p_key."""
        if self.caches.branch != 0:
            return
        probe = sample_of(output)
        if self._counter is not None:  # the first full call: cost of the network up to here
            self._probe_at = self._counter.total()
        if self.keyframe is None:
            key = self.caches.get(self.adaptive)
            change = math.inf if key is None else relative_change(probe, key)
            self.keyframe = self.adaptive.decide(change)
            if not self.keyframe:
                self.modes = ("K",) + (self.policy.reuse_mode,) * (len(self.blocks) - 1)
                if self.mixing.lam(self.clock.step, self.policy.num_steps) == 0.0:
                    raise _StopAfterProbe  # the keyframe prediction is the output
                return
        else:
            self.adaptive.keyframe()
        self.caches.put(self.adaptive, probe)  # p_key: the probe at this keyframe

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

    # -- accounting (the cost model is cost.CallCosts, shared with the tuner) ----------
    def _account(self, step: int, branch: int, keyframe: bool, lam: float,
                 probe_only: bool = False, half: bool = False) -> None:
        """Count one call; a half-batch call (uncond R) costs half of the same call on the full
        batch (every counted operation is linear in the batch)."""
        s, costs = self.stats, self.costs.get(branch) or self.costs[0]
        share = 0.5 if half else 1.0
        s.peak_cache_bytes = max(s.peak_cache_bytes, self.caches.peak_bytes)
        s.cache_misses = self.caches.misses
        s.baseline_macs += costs.total
        if lam == 0.0:
            s.network_calls_skipped += 1
            if probe_only:
                s.probe_calls += 1
                s.executed_macs += costs.probe
            return
        s.network_calls += 1
        s.half_batch_calls += half
        if keyframe:
            s.executed_macs += share * costs.total
            return
        s.fr_calls += 1
        key = ("".join(self.modes), branch if branch in self.costs else 0)
        if key not in self._macs:
            self._macs[key] = self.costs[key[1]].of_modes(key[0])
        s.executed_macs += share * self._macs[key]


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
        if run.adaptive is not None:
            patches.hook(run.blocks[0].module.register_forward_hook(run.probe_hook), run.blocks[0].module)
        columns = [policy.block_modes(i) for i in range(len(run.blocks))]
        counts = install_reuse(run.blocks, run, patches, columns)
        for kind, n in counts.items():
            first.stats.modules_reused[kind] = first.stats.modules_reused.get(kind, 0) + n

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
"""

from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .adaptive import AdaptivePolicy, AdaptiveState, relative_change
from .clock import StepClock, drive_clock
from .cost import MacCounter
from .mixing import (MixEvent, Prediction, ScoreMixing, extra_channels, forecast_x0,
                     from_prediction, in_space, log_snr, output_for_x0, to_prediction, x0_of)
from .policy import KeyframePolicy
from .reuse import UNIT_FORWARDS, block_forward, conv1_capture_hook
from .targets import (PolicyBlock, build_output, denoiser_of, expensive_part, find_blocks,
                      is_data_prediction_solver, map_tensors, model_point, sample_of,
                      with_sample)


@dataclass
class RunStats:
    """What an accelerated context did, summed over every pipeline call inside it."""

    modules_reused: dict = field(default_factory=dict)  # FR units by kind, and skip blocks
    network_calls: int = 0  # model forwards that ran (full or FR)
    network_calls_skipped: int = 0  # lam = 0 steps: the keyframe prediction was reused
    fr_calls: int = 0  # forwards with at least one block in F or S mode
    baseline_macs: int = 0  # what the same calls cost without frdiff
    executed_macs: int = 0
    peak_cache_bytes: int = 0
    cache_misses: int = 0  # reuse asked for but no cache (computed instead)
    probe_calls: int = 0  # adaptive lam = 0 steps: the network stopped after the probe block
    keyframe_steps: list = field(default_factory=list)  # per sampling run, its keyframe steps

    @property
    def ideal_speedup(self) -> float:
        return self.baseline_macs / self.executed_macs if self.executed_macs else float("nan")

    @property
    def mean_keyframes(self) -> float:
        """Keyframe steps per sampling run (adaptive policies choose them per input)."""
        runs = self.keyframe_steps
        return sum(map(len, runs)) / len(runs) if runs else float("nan")

    def as_dict(self) -> dict:
        return asdict(self) | {"ideal_speedup": self.ideal_speedup,
                               "mean_keyframes": self.mean_keyframes}


def describe(pipe_or_model) -> str:
    """A readable summary of what frdiff can reuse in a pipeline's (or a model's) denoiser."""
    model = pipe_or_model if isinstance(pipe_or_model, torch.nn.Module) else denoiser_of(pipe_or_model)
    lines = [f"{type(model).__name__}: policy blocks and their FR units"]
    for b in find_blocks(model):
        kinds = ", ".join(f"{u.name[len(b.name) + 1:]} ({u.kind})" for u in b.units) or "none"
        lines.append(f"  {b.name:<22} {type(b.module).__name__:<24} {kinds}")
    return "\n".join(lines)


def block_depths(pipe_or_model) -> dict[str, int]:
    """Policy block names in call order, with their depth (0 = outermost UNet level)."""
    model = pipe_or_model if isinstance(pipe_or_model, torch.nn.Module) else denoiser_of(pipe_or_model)
    return {b.name: b.depth for b in find_blocks(model)}


class _StopAfterProbe(Exception):
    """The probe chose a reuse step at lam = 0: the rest of the network is not needed."""


class Run:
    """The state of one accelerate() context: clock, modes of the current step, caches."""

    def __init__(self, model, scheduler, blocks: list[PolicyBlock],
                 policy: KeyframePolicy | AdaptivePolicy, mixing: ScoreMixing,
                 cache_dtype: torch.dtype | None):
        self.model, self.scheduler, self.blocks = model, scheduler, blocks
        self.policy, self.mixing, self.cache_dtype = policy, mixing, cache_dtype
        self.clock = StepClock()
        self.stats = RunStats()
        self.modes: tuple[str, ...] = ()
        self.keyframe: bool | None = True  # is the current step a keyframe (None: probe decides)
        self.adaptive = AdaptiveState(policy) if isinstance(policy, AdaptivePolicy) else None
        self.capturing = None
        self._cache: dict[tuple[int, int], object] = {}
        self._cache_bytes: dict[tuple[int, int], int] = {}
        self._branch = 0
        self._keys: dict[int, Prediction] = {}
        self._x0_history: dict[int, list] = {}
        self._data_space = is_data_prediction_solver(scheduler)
        self._call_macs: dict[int, int] = {}  # full model MACs per branch (from the probe)
        self._probe_macs: dict[int, int] = {}  # adaptive: MACs up to the end of the probe block
        self._counter: MacCounter | None = None
        self._saved_macs: dict[tuple[str, int], int] = {}
        self._unit_savings: dict[tuple[int, int], int] = {}  # (id(unit/block), branch) -> MACs saved
        self._signature = inspect.signature(model.forward)
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        x0_mixed = self._data_space or self.prediction_type == "sample"
        self.space = "x0" if x0_mixed else "eps"  # what score mixing blends
        self.observer: Callable[[MixEvent], None] | None = None
        n = policy.num_steps  # does any step blend or reuse eps_key? (else keyframes skip storing it)
        known = policy.forced_keyframe if self.adaptive else policy.is_keyframe
        self._mixing_used = any(not known(i) and self._lam(i) < 1.0 for i in range(n))

    def _lam(self, step: int) -> float:
        """Weight of a reuse step's own output: 0 at N steps (no call), else score mixing's."""
        if self.adaptive is None:
            return self.policy.reuse_weight(step, self.mixing)
        return self.mixing.lam(step, self.policy.num_steps)

    # -- clock events ------------------------------------------------------------------
    def on_start(self, num_steps: int) -> None:
        if num_steps != self.policy.num_steps:
            raise ValueError(f"the policy covers {self.policy.num_steps} steps but the sampler "
                             f"runs {num_steps}; make the policy for num_inference_steps={num_steps}")
        self.clear()
        self.clock.start(num_steps)
        self.stats.keyframe_steps.append([])

    def on_step(self, output=None):
        self.clock.advance()
        if self.clock.finished:
            self.clear()  # the call is over: free every cache
        return output

    def clear(self) -> None:
        self._cache.clear()
        self._cache_bytes.clear()
        self._keys.clear()
        self._x0_history.clear()
        if self.adaptive is not None:
            self.adaptive.reset()

    # -- caches --------------------------------------------------------------------------
    def store(self, owner, value) -> None:
        key = (id(owner), self._branch)
        value = map_tensors(lambda t: t.detach().to(self.cache_dtype or t.dtype), value)
        self._cache[key] = value
        self._cache_bytes[key] = _nbytes(value)
        total = sum(self._cache_bytes.values())
        self.stats.peak_cache_bytes = max(self.stats.peak_cache_bytes, total)

    def cached(self, owner):
        value = self._cache.get((id(owner), self._branch))
        if value is None:
            self.stats.cache_misses += 1
            return None
        if self.cache_dtype is None:
            return value
        return map_tensors(lambda t: t.to(self._compute_dtype), value)

    # -- the model's forward -----------------------------------------------------------
    def model_forward(self, original):
        def forward(*args, **kwargs):
            self._branch = branch = self.clock.next_call()
            step = self.clock.step
            if branch == 0:  # every CFG branch of a step follows its first call's decision
                self._plan(step)
            reuse_lam = self._lam(step)
            probe_only = False
            if self.keyframe and branch not in self._call_macs:
                out = self._counted(original, branch, args, kwargs)
            elif self.keyframe is not False or reuse_lam > 0.0:  # None: the probe decides
                try:
                    out = original(*args, **kwargs)
                except _StopAfterProbe:
                    out, probe_only = None, True
            else:
                out = None
            if self.keyframe is None:
                raise RuntimeError(f"frdiff: the probe block {self.blocks[0].name} did not run "
                                   f"in this model call; an adaptive policy cannot decide")
            keyframe = self.keyframe
            lam = 1.0 if keyframe else reuse_lam
            if branch == 0 and keyframe:
                self.stats.keyframe_steps[-1].append(step)
            self._account(step, branch, keyframe, lam, probe_only)
            shadow = None
            if out is None and not keyframe and self.observer is not None:
                shadow = self._shadow_fr(original, step, args, kwargs)
            return self._mix(out, args, kwargs, branch, keyframe, lam, shadow)
        return forward

    def _shadow_fr(self, original, step: int, args, kwargs):
        """For observers: the FR output at a lam = 0 step, leaving caches and stats untouched."""
        if self.adaptive is not None or self.policy.no_call(step):
            return None  # N steps have no FR modes; an adaptive probe would decide again
        cache, sizes = dict(self._cache), dict(self._cache_bytes)
        misses, peak = self.stats.cache_misses, self.stats.peak_cache_bytes
        try:
            return original(*args, **kwargs)
        finally:  # blocks in K mode refreshed caches the real run must not see
            self._cache.clear(), self._cache.update(cache)
            self._cache_bytes.clear(), self._cache_bytes.update(sizes)
            self.stats.cache_misses, self.stats.peak_cache_bytes = misses, peak

    def _counted(self, original, branch: int, args, kwargs):
        """Step 0 is a full keyframe: count the MACs of the call (and of its modules)."""
        try:
            with MacCounter(self.model) as self._counter:
                out = original(*args, **kwargs)
            self._record_costs(self._counter, branch)
        finally:
            self._counter = None
        return out

    def _plan(self, step: int) -> None:
        """The step's keyframe status and block modes (adaptive: the probe completes them)."""
        if self.adaptive is None:
            self.keyframe = self.policy.is_keyframe(step)
            self.modes = tuple(self.policy.mode(step, i) for i in range(len(self.blocks)))
            return
        self.keyframe = True if self.adaptive.forced(step) else None
        self.modes = ("K",) * len(self.blocks)

    def probe_hook(self, module, args, output) -> None:
        """After the probe block (adaptive): decide the step at its first call, keep p_key."""
        if self._branch != 0:
            return
        probe = sample_of(output)
        if self._counter is not None:  # the first full call: cost of the network up to here
            self._probe_macs[0] = self._counter.total()
        if self.keyframe is None:
            key = self.cached(self.adaptive)
            change = math.inf if key is None else relative_change(probe, key)
            self.keyframe = self.adaptive.decide(change)
            if not self.keyframe:
                self.modes = ("K",) + (self.policy.reuse_mode,) * (len(self.blocks) - 1)
                if self.mixing.lam(self.clock.step, self.policy.num_steps) == 0.0:
                    raise _StopAfterProbe  # the keyframe prediction is the output
                return
        else:
            self.adaptive.keyframe()
        self.store(self.adaptive, probe)  # p_key: the probe at this keyframe

    def _mix(self, out, args, kwargs, branch: int, keyframe: bool, lam: float, shadow=None):
        """Keyframes keep eps_key (x0_key); reuse steps get lam * FR + (1 - lam) * key."""
        watched = self.observer is not None
        if not watched and (not self._mixing_used or (lam == 1.0 and not keyframe)):
            return out
        x, alpha, sigma = self._point(args, kwargs)
        kind = self.prediction_type
        if keyframe:
            self._out_type = type(out)
            keep = self._keep_x0 if self._data_space else self._keep_eps
            keep(sample_of(out).detach(), x, alpha, sigma, branch, kind)
            return out
        mix = self._mix_x0 if self._data_space else self._mix_eps
        key, mixed, sample = mix(out, x, alpha, sigma, branch, lam, kind)
        if lam == 1.0:  # pure FR (only observers get here): the network's output, bit for bit
            result = out
        else:
            sample = sample.to(x.dtype if out is None else sample_of(out).dtype)
            result = build_output(self._out_type, sample) if out is None else with_sample(out, sample)
        if watched:
            fr = out if out is not None else shadow
            fr = None if fr is None else in_space(self.space, sample_of(fr), x, alpha, sigma, kind)
            self.observer(MixEvent(self.clock.step, branch, lam, self.space, kind, x, alpha, sigma,
                                   key, fr, fr if lam == 1.0 else mixed, sample_of(result), args,
                                   kwargs))
        return result

    def _keep_eps(self, out, x, alpha, sigma, branch, kind) -> None:
        """At a keyframe: store eps_key (and x0_key) for the following reuse steps."""
        self._keys[branch] = to_prediction(out, x, alpha, sigma, kind)

    def _mix_eps(self, out, x, alpha, sigma, branch, lam, kind):
        """eps = lam eps_FR + (1 - lam) eps_key: noise-prediction solvers (DDIM, Euler)."""
        key = self._keys[branch]
        pred = key if out is None else to_prediction(sample_of(out), x, alpha, sigma, kind).mix(key, lam)
        mixed = from_prediction(pred, alpha, sigma, kind)
        return getattr(key, self.space), getattr(pred, self.space), mixed

    def _keep_x0(self, out, x, alpha, sigma, branch, kind) -> None:
        """At a keyframe: append (log-SNR, x0_key, extra channels) to the last two."""
        history = self._x0_history.setdefault(branch, [])
        history.append((log_snr(alpha, sigma), x0_of(out, x, alpha, sigma, kind), extra_channels(out, x)))
        del history[:-2]

    def _mix_x0(self, out, x, alpha, sigma, branch, lam, kind):
        """Mix data predictions x0: DPM-Solver++ (see mixing.py for hold / extrapolate)."""
        history = self._x0_history[branch]
        key = forecast_x0([(snr, v) for snr, v, _ in history], log_snr(alpha, sigma), self.mixing.multistep)
        x0, extras = key, history[-1][2]
        if out is not None:
            x0 = torch.lerp(key, x0_of(sample_of(out), x, alpha, sigma, kind), lam)
            extras = extra_channels(sample_of(out), x)
        sample = output_for_x0(x0, x, alpha, sigma, kind)
        return key, x0, sample if extras is None else torch.cat([sample, extras], 1)

    def _point(self, args, kwargs):
        """The model input x and its coefficients: x = alpha x0 + sigma eps."""
        return model_point(self._signature, self.scheduler, args, kwargs)

    # -- accounting ----------------------------------------------------------------------
    def _record_costs(self, counter: MacCounter, branch: int) -> None:
        self._call_macs[branch] = counter.total()
        for b in self.blocks:
            self._unit_savings[(id(b), branch)] = counter.total(b.module)
            for u in b.units:
                self._unit_savings[(id(u), branch)] = counter.total(expensive_part(u))

    def _account(self, step: int, branch: int, keyframe: bool, lam: float,
                 probe_only: bool = False) -> None:
        s = self.stats
        macs = self._call_macs.get(branch, self._call_macs.get(0, 0))
        s.baseline_macs += macs
        if lam == 0.0:
            s.network_calls_skipped += 1
            if probe_only:
                s.probe_calls += 1
                s.executed_macs += self._probe_macs.get(branch, 0)
            return
        s.network_calls += 1
        if keyframe:
            s.executed_macs += macs
            return
        s.fr_calls += 1
        s.executed_macs += macs - self._saved(branch)

    def _saved(self, branch: int) -> int:
        key = ("".join(self.modes), branch)
        if key not in self._saved_macs:
            b_ = branch if (id(self.blocks[0]), branch) in self._unit_savings else 0
            saved = 0
            for mode, b in zip(self.modes, self.blocks):
                if mode == "S":
                    saved += self._unit_savings[(id(b), b_)]
                elif mode == "F":
                    saved += sum(self._unit_savings[(id(u), b_)] for u in b.units)
            self._saved_macs[key] = saved
        return self._saved_macs[key]

    @property
    def _compute_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


@contextlib.contextmanager
def accelerate(pipe_or_model, policy: KeyframePolicy | AdaptivePolicy,
               mixing: ScoreMixing | None = None, scheduler=None,
               cache_dtype: torch.dtype | None = None):
    """Install FRDiff on a pipeline's denoiser (or a bare model with `scheduler`)."""
    if isinstance(pipe_or_model, torch.nn.Module):
        model = pipe_or_model
        if scheduler is None:
            raise ValueError("a bare model needs the scheduler that drives its sampling loop")
    else:
        model = denoiser_of(pipe_or_model)
        scheduler = scheduler or getattr(pipe_or_model, "scheduler", None)
    run = _prepare(model, scheduler, policy, mixing, cache_dtype)
    undo = []
    try:
        _install(run, undo)
        yield run
    finally:
        for restore in reversed(undo):
            restore()
        run.clear()


def _prepare(model, scheduler, policy, mixing, cache_dtype) -> Run:
    """Validate everything before anything is touched."""
    if not isinstance(policy, (KeyframePolicy, AdaptivePolicy)):
        raise TypeError(f"policy must be a KeyframePolicy or an AdaptivePolicy, "
                        f"got {type(policy).__name__}")
    mixing = mixing if mixing is not None else ScoreMixing.off()
    if not isinstance(mixing, ScoreMixing):
        raise TypeError(f"mixing must be a ScoreMixing, got {type(mixing).__name__}")
    if getattr(model, "_frdiff_run", None) is not None:
        raise RuntimeError(f"this {type(model).__name__} is already accelerated by frdiff; "
                           f"leave the first accelerate() context before entering another")
    if scheduler is None or not hasattr(scheduler, "set_timesteps") or not hasattr(scheduler, "step"):
        raise ValueError("accelerate() needs a diffusers scheduler (set_timesteps and step)")
    no_calls = isinstance(policy, KeyframePolicy) and policy.has_no_call
    if (mixing.enabled or no_calls) and not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"score mixing and no-call (N) steps need a scheduler with alphas_cumprod; "
                         f"{type(scheduler).__name__} has none (use ScoreMixing.off() and no N steps)")
    blocks = find_blocks(model)
    if not any(b.units for b in blocks):
        raise ValueError(f"{type(model).__name__} has no module frdiff can reuse "
                         f"(supported: diffusers UNets with ResnetBlock2D/attention blocks, "
                         f"adaLN DiT and PixArt transformers)")
    policy.check_blocks([b.name for b in blocks])
    return Run(model, scheduler, blocks, policy, mixing, cache_dtype)


def _install(run: Run, undo: list) -> None:
    """Replace forwards (each with its exact inverse pushed on `undo` first)."""
    model, policy = run.model, run.policy
    model._frdiff_run = run
    undo.append(lambda: delattr(model, "_frdiff_run"))
    undo.append(drive_clock(run.scheduler, run.on_start, run.on_step))
    _replace_forward(model, run.model_forward(model.forward), undo)
    if run.adaptive is not None:
        handle = run.blocks[0].module.register_forward_hook(run.probe_hook)
        undo.append(handle.remove)
    counts: dict[str, int] = {}
    for index, block in enumerate(run.blocks):
        column = policy.block_modes(index)
        if "S" in column:
            _replace_forward(block.module, block_forward(block, index, run, block.module.forward), undo)
            counts["skip_blocks"] = counts.get("skip_blocks", 0) + 1
        if "F" not in column:
            continue
        for unit in block.units:
            _replace_forward(unit.module, UNIT_FORWARDS[unit.kind](unit, run, unit.module.forward), undo)
            if unit.kind == "resnet":
                handle = unit.module.conv1.register_forward_hook(conv1_capture_hook(unit, run))
                undo.append(handle.remove)
            counts[unit.kind] = counts.get(unit.kind, 0) + 1
    run.stats.modules_reused = counts


def _replace_forward(module: torch.nn.Module, new_forward, undo: list) -> None:
    saved = module.__dict__.get("forward")  # an instance-level forward (e.g. offload hooks)

    def restore() -> None:
        if saved is None:
            module.__dict__.pop("forward", None)
        else:
            module.forward = saved

    undo.append(restore)
    module.forward = new_forward

"""Measured costs: what each policy block takes, in seconds, on this device, dtype and batch.

Counted MACs are the ceiling of what reuse saves; on a small model, a CPU or a short block
the time a block takes is not proportional to its MACs (launch and Python overheads, memory
traffic, the glue an FR step still runs), so a policy tuned to counted MACs measures below
its count. `profile(pipe, steps)` samples with three policies (every step computes; every
other step in feature reuse; every other step skipping whole blocks) and times every policy
block's calls in each mode with forward hooks, every model call, and each run's wall time,
on the real pipeline and frdiff's real runtime (its hooks' cost included). The medians make
a `CostTable`: a `CallCosts` in seconds (the one cost model; `TuneConfig(cost="measured")`
tunes to a wall-clock budget with it) and the conditions it holds for.

    table = frdiff.profile.profile(pipe, 28, call_kwargs={"class_labels": list(range(8))})
    table.to_json("glyph-flux-costs.json")
    CostTable.from_json(path).check(pipe)  # refused for another model, device or dtype
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from .cost import CallCosts
from .modes import Mode
from .patching import Patches
from .policy import KeyframePolicy
from .targets import denoiser_of, find_blocks
from .timing import _sync, machine

@dataclass
class CostTable:
    """Seconds per policy block and mode, per model call and per step, for one model on one
    device, dtype and batch (`costs`: a CallCosts in seconds; `seconds[mode][b]` the medians
    it was made from)."""

    model: str  # the denoiser's class
    blocks: list[str]
    device: str
    dtype: str
    batch: int
    steps: int
    seconds: dict  # mode ("K", "F", "S") -> median seconds per block call
    call: float  # a full model call
    step: float  # a step's work outside the model
    machine: dict = field(default_factory=machine)
    repeats: int = 1

    @property
    def costs(self) -> CallCosts:
        k, f, s = (self.seconds[m] for m in (Mode.KEYFRAME, Mode.FEATURE_REUSE, Mode.SKIP))
        return CallCosts(total=self.call, block=list(k), fr_saving=[a - b for a, b in zip(k, f)],
                         skip=list(s), step=self.step)

    def check(self, pipe_or_model) -> None:
        """Refuse a table made for another model, block list, device or dtype (ValueError)."""
        model = _model(pipe_or_model)
        here = _conditions(model)
        theirs = {"model": self.model, "device": self.device, "dtype": self.dtype}
        for key, value in here.items():
            if theirs[key] != value:
                raise ValueError(f"this cost table was measured for {key} {theirs[key]}, not "
                                 f"{value}; profile this one (`python -m frdiff profile`)")
        names = [b.name for b in find_blocks(model)]
        if names != self.blocks:
            raise ValueError(f"this cost table's {len(self.blocks)} blocks are not this "
                             f"{self.model}'s {len(names)}: it was measured on another configuration")

    def to_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"kind": "frdiff cost table"} | asdict(self), f, indent=1)

    @classmethod
    def from_json(cls, path: str) -> "CostTable":
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read cost table {path}: {error}") from None
        if not isinstance(data, dict) or data.pop("kind", None) != "frdiff cost table":
            raise ValueError(f"{path} is not a frdiff cost table (make one with `python -m frdiff profile`)")
        try:
            table = cls(**data)
            table.costs  # noqa: B018 - every mode is there
        except (TypeError, KeyError) as error:
            raise ValueError(f"{path} is not a complete frdiff cost table: {error}") from None
        return table


def _model(pipe_or_model) -> torch.nn.Module:
    return pipe_or_model if isinstance(pipe_or_model, torch.nn.Module) else denoiser_of(pipe_or_model)


def _conditions(model: torch.nn.Module) -> dict:
    param = next(model.parameters())
    return {"model": type(model).__name__, "device": param.device.type, "dtype": str(param.dtype).replace("torch.", "")}


def profile(pipe, num_steps: int, call_kwargs: dict | None = None, repeats: int = 3,
            progress: bool = True) -> CostTable:
    """Time `pipe` at `num_steps` steps (`call_kwargs`: what else each call takes; its batch
    is the table's) under frdiff in modes K, F and S; a warm-up run first, medians of
    `repeats` runs of each, step 0 left out (it counts MACs)."""
    from .accelerate import accelerate  # accelerate uses cost.py; profile sits above both

    if num_steps < 3:
        raise ValueError(f"profiling needs at least 3 steps (step 0 is left out), got {num_steps}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    model = _model(pipe)
    blocks = find_blocks(model)
    kwargs = dict(call_kwargs or {})
    policies = {Mode.KEYFRAME: KeyframePolicy.uniform(num_steps, 1),  # the run each mode is timed in
                Mode.FEATURE_REUSE: KeyframePolicy.uniform(num_steps, 2),
                Mode.SKIP: KeyframePolicy.uniform(num_steps, 2, reuse="block")}
    block_times = {mode: [[] for _ in blocks] for mode in policies}
    call_times, step_times = [], []  # per K run: its calls' seconds; its step's work outside them
    state = {"run": None, "start": {}, "call": None, "timing": False, "mode": Mode.KEYFRAME}

    def pre(index):
        def hook(module, args):
            if state["timing"]:
                _sync()
                state["start"][index] = time.perf_counter()
        return hook

    def post(index):
        def hook(module, args, output):
            run = state["run"]
            if not state["timing"] or run is None or run.clock.step == 0:
                return
            _sync()
            mode = run.modes[index] if run.modes else Mode.KEYFRAME
            if mode == state["mode"]:  # each mode from its own run (K: the all-keyframe one)
                block_times[mode][index].append(time.perf_counter() - state["start"][index])
        return hook

    def call_pre(module, args):
        if state["timing"]:
            _sync()
            state["call"] = time.perf_counter()

    def call_post(module, args, output):
        run = state["run"]
        timed = state["timing"] and state["mode"] == Mode.KEYFRAME
        if timed and run is not None and run.clock.step > 0 and run.keyframe:
            _sync()
            call_times[-1].append(time.perf_counter() - state["call"])

    rounds = [(mode, r) for r in range(repeats + 1) for mode in policies]  # round 0: warm-up
    bar = tqdm(rounds, desc="profile", disable=not progress)
    with Patches() as patches, torch.no_grad():
        for i, block in enumerate(blocks):
            patches.hook(block.module.register_forward_pre_hook(pre(i)))
            patches.hook(block.module.register_forward_hook(post(i)))
        patches.hook(model.register_forward_pre_hook(call_pre))
        patches.hook(model.register_forward_hook(call_post))
        for mode, r in bar:
            state["timing"], state["mode"] = r > 0, mode
            call_times.append([])
            with accelerate(pipe, policies[mode]) as run:
                state["run"] = run
                _sync()
                start = time.perf_counter()
                pipe(num_inference_steps=num_steps, generator=torch.Generator().manual_seed(r), **kwargs)
                _sync()
                wall = time.perf_counter() - start
            state["run"] = None
            if r > 0 and mode == Mode.KEYFRAME:  # the same run's calls subtracted: a slow moment counts in both
                step_times.append(wall / num_steps - statistics.fmean(call_times[-1]))
    medians = {mode: [statistics.median(t) if t else 0.0 for t in times] for mode, times in block_times.items()}
    # a call: the median over the K runs of each run's mean call (what a run's time is made of)
    call = statistics.median(statistics.fmean(t) for t in call_times if t)
    call = max(call, sum(medians[Mode.KEYFRAME]))  # timer noise: a call holds its blocks
    for i, block in enumerate(blocks):  # a block with no FR unit computes in full at F
        if not block.units:
            medians[Mode.FEATURE_REUSE][i] = medians[Mode.KEYFRAME][i]
    conditions = _conditions(model)
    return CostTable(model=conditions["model"], blocks=[b.name for b in blocks],
                     device=conditions["device"], dtype=conditions["dtype"],
                     batch=_batch(kwargs), steps=num_steps, seconds=medians, call=call,
                     step=max(0.0, statistics.median(step_times)), repeats=repeats)


def _batch(kwargs: dict) -> int:
    """The images per call, read from the call's arguments (1 when they do not say)."""
    for key in ("class_labels", "prompt_embeds", "prompt"):
        value = kwargs.get(key)
        if isinstance(value, torch.Tensor):
            return int(value.shape[0])
        if isinstance(value, (list, tuple)):
            return len(value)
    return int(kwargs.get("num_images_per_prompt", 1) or 1)

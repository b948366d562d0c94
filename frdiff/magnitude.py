"""When to reuse, from calibrated magnitude ratios (in the spirit of MagCache; our own code).

MagCache's observation: along a sampling run, the magnitude of the residual that the block
stack adds (last block's output minus first block's input) changes by a ratio that is
nearly the same for every input, so one calibration run per model, scheduler and step count
tells when reusing the cached residual is safe. frdiff turns that into a static
`KeyframePolicy`:

    cal = calibrate(pipe, 50, class_labels=[...])          # one full-compute run, observed
    policy = magnitude_policy(cal, threshold=0.12, row="R" * 6, blocks=names)

Steps in the first `retain` share of the run, and the last step, compute. After a keyframe a
step reuses (its blocks take the modes in `row`: R for residual reuse, as MagCache; F or S
work too) while the accumulated error sum_i |1 - prod_{j <= i} ratio_j| over the reuse steps
since that keyframe stays below `threshold`, at most `max_reuse` steps in a row. For a UNet,
whose block stack is not a residual map, the magnitude is the model output's.

Calibrations of the glyph models ship in frdiff/glyphs/assets/calibrations/ (`python -m
analysis.calibrate`); `frdiff.autofr.tune` builds starts from them, so its search contains
the magnitude schedule.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import dataclass

import torch

from .clock import StepClock, drive_clock
from .modes import Mode
from .patching import Patches
from .policy import KeyframePolicy
from .pytree import sample_of
from .targets import denoiser_of, find_blocks, output_streams


@dataclass(frozen=True)
class Calibration:
    """Mean magnitude of the stack's residual per step, and its step-to-step ratio."""

    magnitudes: tuple[float, ...]
    space: str  # "stack residual" or "model output"
    meta: dict | None = None

    @property
    def ratios(self) -> tuple[float, ...]:
        """ratio_t = magnitude_t / magnitude_{t-1}; ratio_0 = 1."""
        m = self.magnitudes
        return (1.0,) + tuple(m[t] / m[t - 1] if m[t - 1] > 0 else 1.0 for t in range(1, len(m)))

    @property
    def num_steps(self) -> int:
        return len(self.magnitudes)

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps({"magnitudes": list(self.magnitudes), "space": self.space,
                           "ratios": list(self.ratios), "meta": self.meta or {}}, indent=1)
        if path:
            with open(path, "w") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> "Calibration":
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            if not os.path.isfile(text_or_path):
                raise ValueError(f"no calibration file at {text_or_path!r}")
            with open(text_or_path) as f:
                text = f.read()
        try:
            data = json.loads(text)
            magnitudes = tuple(float(v) for v in data["magnitudes"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a calibration (expected JSON with a list 'magnitudes'): {err}") from None
        if not magnitudes or not all(math.isfinite(v) and v >= 0 for v in magnitudes):
            raise ValueError("a calibration's magnitudes must be finite numbers >= 0, at least one")
        return cls(magnitudes, str(data.get("space", "stack residual")), data.get("meta"))


def calibrate(pipe, num_inference_steps: int, call=None, **call_kwargs) -> Calibration:
    """Observe one full-compute run (`pipe(num_inference_steps=..., **call_kwargs)`, or
    `call(num_inference_steps)`) and record the residual magnitude of every step (the mean
    over the step's model calls). Nothing is changed: hooks only, removed afterwards."""
    model = denoiser_of(pipe)
    blocks = find_blocks(model)
    residual = bool(blocks) and all(b.residual for b in blocks)
    clock, sums, counts, inputs = StepClock(), {}, {}, []

    def record(value: torch.Tensor) -> None:
        s = clock.step
        sums[s] = sums.get(s, 0.0) + float(value.detach().float().abs().mean())
        counts[s] = counts.get(s, 0) + 1

    with Patches() as patches, torch.no_grad():
        patches.callback(drive_clock(pipe.scheduler, clock.start, lambda out: (clock.advance(), out)[1]))
        if residual:
            first, last = blocks[0].module, blocks[-1].module
            name = next(iter(inspect.signature(first.forward).parameters))

            def keep_input(module, args, kwargs):
                inputs.append(args[0] if args else kwargs[name])

            def stack_residual(module, args, out):  # the image stream of dual-stream stacks
                record(output_streams(blocks[-1], out)["hidden_states"] - inputs.pop())

            patches.hook(first.register_forward_pre_hook(keep_input, with_kwargs=True), first)
            patches.hook(last.register_forward_hook(stack_residual), last)
        else:
            patches.hook(model.register_forward_hook(lambda m, a, out: record(sample_of(out))), model)
        patches.hook(model.register_forward_pre_hook(lambda m, a: (clock.next_call(), None)[1]), model)
        if call is not None:
            call(num_inference_steps)
        else:
            pipe(num_inference_steps=num_inference_steps, **call_kwargs)
    steps = clock.num_steps or 0
    if sorted(sums) != list(range(steps)):
        raise RuntimeError(f"frdiff: calibration saw model calls in steps {sorted(sums)} of {steps}")
    return Calibration(tuple(sums[s] / counts[s] for s in range(steps)),
                       "stack residual" if residual else "model output")


def reuse_steps(calibration: Calibration, threshold: float, max_reuse: int = 3,
                retain: float = 0.2) -> list[bool]:
    """Per step: True where it may reuse (see the module docstring)."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if isinstance(max_reuse, bool) or not isinstance(max_reuse, int) or max_reuse < 0:
        raise ValueError(f"max_reuse must be an integer >= 0, got {max_reuse!r}")
    if not (0.0 <= retain <= 1.0):
        raise ValueError(f"retain must be in [0, 1], got {retain!r}")
    ratios, n = calibration.ratios, calibration.num_steps
    reuse, product, error, run = [], 1.0, 0.0, 0
    for t in range(n):
        if t == 0 or t < retain * n or t == n - 1:
            reuse.append(False)
            product, error, run = 1.0, 0.0, 0
            continue
        product *= ratios[t]
        error += abs(1.0 - product)
        run += 1
        if error < threshold and run <= max_reuse:
            reuse.append(True)
        else:
            reuse.append(False)
            product, error, run = 1.0, 0.0, 0
    return reuse


def magnitude_policy(calibration: Calibration, threshold: float, row: str = Mode.RESIDUAL,
                     blocks: tuple[str, ...] | None = None, max_reuse: int = 3,
                     retain: float = 0.2) -> KeyframePolicy:
    """A KeyframePolicy: keyframes where the calibrated error says compute, `row` elsewhere
    (one letter for every block, or one per block with `blocks`)."""
    if blocks is not None and len(row) not in (1, len(blocks)):
        raise ValueError(f"row {row!r} has {len(row)} modes for {len(blocks)} blocks")
    width = len(blocks) if blocks else 1
    rows = tuple(row if r else Mode.KEYFRAME * width for r in reuse_steps(calibration, threshold, max_reuse, retain))
    return KeyframePolicy(rows, tuple(blocks) if blocks else None)


def policy_for_speedup(calibration: Calibration, speedup, target: float, row: str = Mode.RESIDUAL,
                       blocks: tuple[str, ...] | None = None, max_reuse: int = 3,
                       retain: float = 0.2) -> tuple[float, KeyframePolicy] | None:
    """The smallest threshold (on a geometric grid) whose policy's `speedup(policy)` reaches
    `target`, with that policy; None if no threshold does (max_reuse and retain cap it)."""
    for i in range(61):
        threshold = 1e-3 * 1.2 ** i
        policy = magnitude_policy(calibration, threshold, row, blocks, max_reuse, retain)
        if speedup(policy) >= target:
            return threshold, policy
    return None

"""Replacement forwards: what a reusable module does at keyframe (K), FR (F), skip (S) and
residual reuse (R).

Each factory takes the unit, the sampler state (which knows the current step's modes and
holds the caches, see sampler.py) and the module's original forward, and returns the
forward to install. The state is a `ReuseState`: its `reuse(owner, block, mode)` gives a
cached value to use instead of computing (or None), and `keep(owner, block, mode, fresh)` the
value to use after computing; the forwards ask it nothing else. At K the original forward
runs unchanged (so an all-keyframe policy is bit-exact) and the cache is refreshed; at F the
expensive part is read from the cache and only the cheap part runs. The tuner's soft state
always computes and blends in `keep`. Which forward an FR unit gets is its kind's (units.py).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from .modes import Mode
from .pytree import map_tensors, sample_of
from .tails import residual_scale, resnet_tail, wrap_sample

if TYPE_CHECKING:
    from .targets import PolicyBlock
    from .units import FRUnit


@runtime_checkable
class ReuseState(Protocol):
    """What a replaced forward asks of its sampler state (`Run`, the tuner's `GatedRun`):
    `owner` is the unit, block or module whose value is cached, `block` its policy block's
    index, `mode` the letter that reuses it ("F" for an FR unit, "S" or "R" for a block)."""

    def reuse(self, owner, block: int, mode: str):
        """The cached value to use instead of computing, or None (compute)."""

    def keep(self, owner, block: int, mode: str, fresh):
        """The value to use after computing `fresh` (the state may cache or blend it)."""


@dataclass
class Capture:
    """A resnet unit's keyframe call in progress, shared by its forward and its conv1 hook
    alone: the hook keeps conv1's output while `running`, and only then."""

    running: bool = False


def _first_arg(args: tuple, kwargs: dict, name: str):
    return args[0] if args else kwargs[name]


def resnet_forward(unit: FRUnit, state: ReuseState, original, capture: Capture):
    """ResnetBlock2D: at F skip norm1, SiLU, resampling and conv1 entirely."""
    module = unit.module

    def forward(input_tensor, temb=None, *args, **kwargs):
        h = state.reuse(unit, unit.block, Mode.FEATURE_REUSE)
        if h is not None:
            return resnet_tail(module, h, input_tensor, temb)
        capture.running = True  # conv1's hook keeps its output
        try:
            return original(input_tensor, temb, *args, **kwargs)
        finally:
            capture.running = False

    return forward


def conv1_capture_hook(unit: FRUnit, state: ReuseState, capture: Capture):
    def hook(conv, inputs, output):
        if capture.running:
            return state.keep(unit, unit.block, Mode.FEATURE_REUSE, output)
    return hook


def residual_forward(unit: FRUnit, state: ReuseState, original):
    """Residual branch (Transformer2DModel, residual attention): output = input + cached branch."""
    module, scale = unit.module, residual_scale(unit.module)

    def forward(*args, **kwargs):
        x = _first_arg(args, kwargs, "hidden_states")
        branch = state.reuse(unit, unit.block, Mode.FEATURE_REUSE)
        if branch is not None:
            return wrap_sample(module, x / scale + branch, kwargs)
        out = original(*args, **kwargs)
        fresh = sample_of(out) - x / scale
        kept = state.keep(unit, unit.block, Mode.FEATURE_REUSE, fresh)
        return out if kept is fresh else wrap_sample(module, x / scale + kept, kwargs)

    return forward


def _cached_output_forward(owner, block_index: int, reuse_mode: str, state: ReuseState, original):
    """In `reuse_mode`, return the owner's output from the last time it ran; else run it."""

    def forward(*args, **kwargs):
        cached = state.reuse(owner, block_index, reuse_mode)
        if cached is not None:
            return cached
        return state.keep(owner, block_index, reuse_mode, original(*args, **kwargs))

    return forward


def output_forward(unit: FRUnit, state: ReuseState, original):
    """adaLN DiT self-attention: reuse its output before the gate; gate and MLP stay fresh."""
    return _cached_output_forward(unit, unit.block, Mode.FEATURE_REUSE, state, original)


def stand_in(value):
    """Zeros shaped like `value`'s tensors, broadcast from one element (no memory): what a
    feeder returns at F, where only the cached unit it feeds uses it."""
    return map_tensors(lambda t: t.new_zeros(()).expand(t.shape), value)


class Unneeded:
    """The policy blocks after an adaptive probe, at a call whose output nobody uses.

    At an adaptive reuse step with lam = 0 (score mixing's early steps) the keyframe's
    prediction is the step's output and only the probe block's output is needed (it decides the
    step). The probe hook then sets `active`, and until the call ends every block after the
    probe returns zeros shaped like its output at the branch's first call of the run instead
    of running: the model's forward goes on to its end on those zeros (its output is
    discarded), so no exception has to cut the call short through the hooks, offloading or
    compiled regions around the model. `branch` is the CFG branch of the call running (set by the state). The
    zeros are real tensors (the model may write to them), one per shape, kept for the run."""

    def __init__(self):
        self.active = False
        self.branch = 0
        self._like: dict[tuple[int, int], object] = {}  # (block, branch) -> a stand-in of its output
        self._zeros: dict[tuple, tuple[torch.Tensor, int]] = {}  # (shape, dtype, device) -> zeros, their version

    def forward(self, index: int, original):
        """The replaced forward of the policy block `index` (after the probe)."""

        def forward(*args, **kwargs):
            like = self._like.get((index, self.branch)) if self.active else None
            if like is not None:
                return map_tensors(self._zeros_like, like)
            out = original(*args, **kwargs)
            if (index, self.branch) not in self._like:  # shapes hold for a run (cleared at its start)
                self._like[(index, self.branch)] = stand_in(out)
            return out

        return forward

    def _zeros_like(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.shape, t.dtype, t.device)
        zeros, version = self._zeros.get(key, (None, -1))
        if zeros is None:
            zeros = torch.zeros(t.shape, dtype=t.dtype, device=t.device)
        elif zeros._version != version:  # the model wrote to them: zero them again
            zeros.zero_()
        self._zeros[key] = (zeros, zeros._version)
        return zeros

    def clear(self) -> None:
        self.active = False
        self._like.clear()
        self._zeros.clear()


def block_forward(block: PolicyBlock, index: int, state: ReuseState, original):
    """Whole-block reuse: at S return the block's output from the last step it ran."""
    return _cached_output_forward(block, index, Mode.SKIP, state, original)


def _add(x, r):
    return None if x is None or r is None else x + r


def _minus(out, x):
    return None if out is None else out - x


def _block_streams(block: PolicyBlock, signature: inspect.Signature, output) -> tuple[str, ...]:
    """The input arguments a block call's output gives back, in its order: a tensor output is
    the first argument's stream; a tuple follows the block's spec (dual-stream blocks)."""
    first = next(iter(signature.parameters))
    if isinstance(output, torch.Tensor) or block.spec is None:
        return (first,)
    if not isinstance(output, tuple) or len(output) != len(block.spec.returns):
        raise RuntimeError(f"frdiff: {block.name} ({type(block.module).__name__}) returned "
                           f"{type(output).__name__}, not the {len(block.spec.returns)} streams "
                           f"{block.spec.returns} frdiff expects; mode R does not apply to it")
    return block.spec.returns


def _stream_inputs(signature: inspect.Signature, args: tuple, kwargs: dict,
                   names: tuple[str, ...]) -> tuple:
    """The tensors of a call's arguments `names` (None where an argument is absent)."""
    bound = signature.bind(*args, **kwargs).arguments
    return tuple(bound.get(n) for n in names)


def _pack_streams(template, values: tuple):
    """A block output shaped like `template` (a tensor, or a tuple of streams) from `values`."""
    return values[0] if isinstance(template, torch.Tensor) else tuple(values)


def residual_block_forward(block: PolicyBlock, index: int, state: ReuseState, original):
    """Residual reuse: at R return the current input plus the block's residual (output minus
    input) from the last step it ran, per stream (a dual-stream block has two: text and
    image tokens, in the order it returns them). The cache is keyed by the block's module,
    so a block that takes both S and R in one policy keeps its output and its residual apart."""
    owner, signature = block.module, inspect.signature(original)
    streams: list[tuple[str, ...]] = []  # the output's stream names, learnt at its first call

    def forward(*args, **kwargs):
        residual = state.reuse(owner, index, Mode.RESIDUAL) if streams else None
        if residual is not None:
            inputs = _stream_inputs(signature, args, kwargs, streams[0])
            return _pack_streams(streams[1], tuple(_add(x, r) for x, r in zip(inputs, residual)))
        out = original(*args, **kwargs)
        names = _block_streams(block, signature, out)
        inputs = _stream_inputs(signature, args, kwargs, names)
        outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        for name, x, y in zip(names, inputs, outs):
            if y is not None and (not isinstance(x, torch.Tensor) or y.shape != x.shape):
                raise RuntimeError(f"frdiff: {block.name} is not a residual map (its {name} "
                                   f"output is not shaped like its input); mode R does not "
                                   f"apply to it")
        streams[:] = [names, out if isinstance(out, torch.Tensor) else tuple(outs)]
        fresh = tuple(_minus(y, x) for x, y in zip(inputs, outs))
        kept = state.keep(owner, index, Mode.RESIDUAL, fresh)
        if kept is fresh:
            return out
        return _pack_streams(out, tuple(_add(x, r) for x, r in zip(inputs, kept)))

    return forward

"""Replacement forwards: what a reusable module does at keyframe (K), FR (F), skip (S) and
residual reuse (R).

Each factory takes the unit, the sampler state (which knows the current step's modes and
holds the caches, see sampler.py) and the module's original forward, and returns the
forward to install. The state's `reuse(owner, block, mode)` gives a cached value to use
instead of computing (or None), and `keep(owner, block, mode, fresh)` the value to use after
computing: at K the original forward runs unchanged (so an all-keyframe policy is bit-exact)
and the cache is refreshed; at F the expensive part is read from the cache and only the
cheap part runs. The tuner's soft state always computes and blends in `keep`.
"""

from __future__ import annotations

import inspect

import torch

from .pytree import map_tensors, sample_of
from .targets import (FRUnit, PolicyBlock, block_streams, pack_streams, resnet_tail, residual_scale,
                      stream_inputs, wrap_sample)


def _first_arg(args: tuple, kwargs: dict, name: str):
    return args[0] if args else kwargs[name]


def resnet_forward(unit: FRUnit, state, original):
    """ResnetBlock2D: at F skip norm1, SiLU, resampling and conv1 entirely."""
    module = unit.module

    def forward(input_tensor, temb=None, *args, **kwargs):
        h = state.reuse(unit, unit.block, "F")
        if h is not None:
            return resnet_tail(module, h, input_tensor, temb)
        state.capturing = unit  # conv1's hook keeps its output
        try:
            return original(input_tensor, temb, *args, **kwargs)
        finally:
            state.capturing = None

    return forward


def conv1_capture_hook(unit: FRUnit, state):
    def hook(conv, inputs, output):
        if state.capturing is unit:
            return state.keep(unit, unit.block, "F", output)
    return hook


def residual_forward(unit: FRUnit, state, original):
    """Residual branch (Transformer2DModel, residual attention): output = input + cached branch."""
    module, scale = unit.module, residual_scale(unit.module)

    def forward(*args, **kwargs):
        x = _first_arg(args, kwargs, "hidden_states")
        branch = state.reuse(unit, unit.block, "F")
        if branch is not None:
            return wrap_sample(module, x / scale + branch, kwargs)
        out = original(*args, **kwargs)
        fresh = sample_of(out) - x / scale
        kept = state.keep(unit, unit.block, "F", fresh)
        return out if kept is fresh else wrap_sample(module, x / scale + kept, kwargs)

    return forward


def _cached_output_forward(owner, block_index: int, reuse_mode: str, state, original):
    """In `reuse_mode`, return the owner's output from the last time it ran; else run it."""

    def forward(*args, **kwargs):
        cached = state.reuse(owner, block_index, reuse_mode)
        if cached is not None:
            return cached
        return state.keep(owner, block_index, reuse_mode, original(*args, **kwargs))

    return forward


def output_forward(unit: FRUnit, state, original):
    """adaLN DiT self-attention: reuse its output before the gate; gate and MLP stay fresh."""
    return _cached_output_forward(unit, unit.block, "F", state, original)


def stand_in(value):
    """Zeros shaped like `value`'s tensors, broadcast from one element (no memory): what a
    feeder returns at F, where only the cached unit it feeds uses it."""
    return map_tensors(lambda t: t.new_zeros(()).expand(t.shape), value)


UNIT_FORWARDS = {"resnet": resnet_forward, "residual": residual_forward, "output": output_forward,
                 "feeder": output_forward}  # the runtime keeps a feeder's stand-in (Run.keep)


def block_forward(block: PolicyBlock, index: int, state, original):
    """Whole-block reuse: at S return the block's output from the last step it ran."""
    return _cached_output_forward(block, index, "S", state, original)


def _add(x, r):
    return None if x is None or r is None else x + r


def _minus(out, x):
    return None if out is None else out - x


def residual_block_forward(block: PolicyBlock, index: int, state, original):
    """Residual reuse: at R return the current input plus the block's residual (output minus
    input) from the last step it ran, per stream (a dual-stream block has two: text and
    image tokens, in the order it returns them). The cache is keyed by the block's module,
    so a block that takes both S and R in one policy keeps its output and its residual apart."""
    owner, signature = block.module, inspect.signature(original)
    streams: list[tuple[str, ...]] = []  # the output's stream names, learnt at its first call

    def forward(*args, **kwargs):
        residual = state.reuse(owner, index, "R") if streams else None
        if residual is not None:
            inputs = stream_inputs(signature, args, kwargs, streams[0])
            return pack_streams(streams[1], tuple(_add(x, r) for x, r in zip(inputs, residual)))
        out = original(*args, **kwargs)
        names = block_streams(block, signature, args, kwargs, out)
        inputs = stream_inputs(signature, args, kwargs, names)
        outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        for name, x, y in zip(names, inputs, outs):
            if y is not None and (not isinstance(x, torch.Tensor) or y.shape != x.shape):
                raise RuntimeError(f"frdiff: {block.name} is not a residual map (its {name} "
                                   f"output is not shaped like its input); mode R does not "
                                   f"apply to it")
        streams[:] = [names, out if isinstance(out, torch.Tensor) else tuple(outs)]
        fresh = tuple(_minus(y, x) for x, y in zip(inputs, outs))
        kept = state.keep(owner, index, "R", fresh)
        if kept is fresh:
            return out
        return pack_streams(out, tuple(_add(x, r) for x, r in zip(inputs, kept)))

    return forward

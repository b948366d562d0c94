"""Replacement forwards: what a reusable module does at keyframe (K), FR (F) and skip (S).

Each factory takes the unit, the run (which knows the current step's modes and holds the
caches) and the module's original forward, and returns the forward to install. At K the
original forward runs unchanged (so an all-keyframe policy is bit-exact) and the cache is
refreshed; at F the expensive part is read from the cache and only the cheap part runs.
"""

from __future__ import annotations

from .targets import FRUnit, PolicyBlock, resnet_tail, residual_scale, sample_of, wrap_sample


def _first_arg(args: tuple, kwargs: dict, name: str):
    return args[0] if args else kwargs[name]


def resnet_forward(unit: FRUnit, run, original):
    """ResnetBlock2D: at F skip norm1, SiLU, resampling and conv1 entirely."""
    module = unit.module

    def forward(input_tensor, temb=None, *args, **kwargs):
        if run.modes[unit.block] == "F":
            h = run.cached(unit)
            if h is not None:
                return resnet_tail(module, h, input_tensor, temb)
        run.capturing = unit  # conv1's hook stores its output at this keyframe
        try:
            return original(input_tensor, temb, *args, **kwargs)
        finally:
            run.capturing = None

    return forward


def conv1_capture_hook(unit: FRUnit, run):
    def hook(conv, inputs, output):
        if run.capturing is unit:
            run.store(unit, output)
    return hook


def residual_forward(unit: FRUnit, run, original):
    """Residual branch (Transformer2DModel, residual attention): output = input + cached branch."""
    module, scale = unit.module, residual_scale(unit.module)

    def forward(*args, **kwargs):
        x = _first_arg(args, kwargs, "hidden_states")
        if run.modes[unit.block] == "F":
            branch = run.cached(unit)
            if branch is not None:
                return wrap_sample(module, x / scale + branch, kwargs)
        out = original(*args, **kwargs)
        run.store(unit, sample_of(out) - x / scale)
        return out

    return forward


def _cached_output_forward(owner, block_index: int, reuse_mode: str, run, original):
    """In `reuse_mode`, return the owner's output from the last time it ran; else run it."""

    def forward(*args, **kwargs):
        if run.modes[block_index] == reuse_mode:
            cached = run.cached(owner)
            if cached is not None:
                return cached
        out = original(*args, **kwargs)
        run.store(owner, out)
        return out

    return forward


def output_forward(unit: FRUnit, run, original):
    """adaLN DiT self-attention: reuse its output before the gate; gate and MLP stay fresh."""
    return _cached_output_forward(unit, unit.block, "F", run, original)


UNIT_FORWARDS = {"resnet": resnet_forward, "residual": residual_forward, "output": output_forward}


def block_forward(block: PolicyBlock, index: int, run, original):
    """Whole-block reuse: at S return the block's output from the last step it ran."""
    return _cached_output_forward(block, index, "S", run, original)

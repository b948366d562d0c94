"""Model and block outputs as nested values: a tensor, a tuple or list of them, a dict, or an
output object with a `.sample` (diffusers' `...Output` dataclasses, or anything shaped so).

The runtime reads the main tensor of an output, puts another in its place, splits the CFG
halves of a call's arguments, and walks caches (dtype casts, byte counts, forecasts) without
knowing which model made them; these helpers are that, and nothing here knows a model class.
"""

from __future__ import annotations

import math

import torch


def sample_of(output):
    """The main tensor of a module or model output (tensor, tuple or output object)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple):
        return output[0]
    return output.sample


def main_tensor(output) -> torch.Tensor:
    """The first tensor of a (nested) output (UNet down blocks also return skip features)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return getattr(output, "sample", output)


def with_sample(template, sample: torch.Tensor):
    """An output shaped like `template` but holding `sample`."""
    if isinstance(template, torch.Tensor):
        return sample
    if isinstance(template, tuple):
        return (sample,) + tuple(template[1:])
    return type(template)(sample=sample)


def build_output(out_type: type, sample: torch.Tensor):
    """A model output of type `out_type` (tensor, tuple or output class) holding `sample`."""
    if out_type is torch.Tensor:
        return sample
    if out_type is tuple:
        return (sample,)
    return out_type(sample=sample)


def map_tensors(fn, value):
    """Apply fn to every tensor of a (nested) tuple/list output."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(fn, v) for v in value)
    return value


def zip_tensors(fn, a, b):
    """fn(x, y) over the tensors of two values of the same (nested tuple/list) structure."""
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    if isinstance(a, (tuple, list)):
        return type(a)(zip_tensors(fn, x, y) for x, y in zip(a, b))
    return a


def halve(value, batch: int):
    """The second (conditional CFG) half of every tensor in `value` (nested tuples, lists,
    dicts) whose first dimension is `batch`; everything else as it is."""
    if isinstance(value, torch.Tensor):
        return value[batch // 2:] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, (tuple, list)):
        return type(value)(halve(v, batch) for v in value)
    if isinstance(value, dict):
        return {k: halve(v, batch) for k, v in value.items()}
    return value


def cast_like(value, dtypes):
    """`value` (tensors, nested tuples) cast back to `dtypes`, the same structure of dtypes."""
    if isinstance(value, torch.Tensor):
        return value.to(dtypes)
    if isinstance(value, (tuple, list)):
        return type(value)(cast_like(v, d) for v, d in zip(value, dtypes))
    return value


def nbytes(value) -> int:
    """Bytes held by the tensors of a (nested) tuple/list value (a broadcast stand-in: one
    element per stored, non-zero-stride, position)."""
    if isinstance(value, torch.Tensor):
        stored = [n for n, stride in zip(value.shape, value.stride()) if stride != 0]
        return math.prod(stored) * value.element_size() if value.numel() else 0
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0

"""The compute a peer (or any accelerator's context) actually ran, counted in denoiser MACs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch

from ..cost import MacCounter
from ..targets import denoiser_of


def counted_macs(pipe, context: ContextManager | None = None, **call_kwargs) -> tuple[Any, int]:
    """Run `pipe(**call_kwargs)` (inside `context`); its output and the denoiser MACs executed."""
    context = context if context is not None else contextlib.nullcontext()
    with context, MacCounter(denoiser_of(pipe)) as counter:
        out = pipe(**call_kwargs)
    return out, counter.total()


def counted_speedup(pipe, make_context: Callable[[], ContextManager], seed: int = 0,
                    **call_kwargs) -> float:
    """MACs of the full-compute call over those run inside `make_context()`, on the same noise."""
    totals = []
    for make in (contextlib.nullcontext, make_context):
        context = make()  # MagCache's factory calibrates here, outside the counted call
        generator = torch.Generator().manual_seed(seed)
        totals.append(counted_macs(pipe, context, generator=generator, **call_kwargs)[1])
    return totals[0] / totals[1]

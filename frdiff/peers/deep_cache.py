"""DeepCache (PyPI `DeepCache`, its `DeepCacheSDHelper` unmodified) on UNet pipelines.

Named deep_cache, not deepcache, so that this module never shadows the `deepcache` function
that `frdiff.peers` exports.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ._common import _denoiser_name, _load, _number, _saved


@dataclass(frozen=True)
class DeepCacheSettings:
    """DeepCacheSDHelper: a full step every `interval` steps; between them, cache from `branch_id`."""

    interval: int = 3
    branch_id: int = 0

    def __post_init__(self) -> None:
        _number("DeepCache interval", self.interval, 1, integer=True)
        _number("DeepCache branch_id", self.branch_id, 0, integer=True)


def _scalar_timestep(forward: Callable) -> Callable:
    """DeepCache reads the step with `timestep.item()`: give it the batch's one timestep."""
    @functools.wraps(forward)
    def wrapped(sample, timestep, *args, **kwargs):
        if torch.is_tensor(timestep) and timestep.ndim > 0:
            if not bool((timestep == timestep.flatten()[0]).all()):
                raise ValueError("DeepCache needs one timestep for the whole batch")
            timestep = timestep.flatten()[0]
        return forward(sample, timestep, *args, **kwargs)
    return wrapped


@contextlib.contextmanager
def deepcache(pipe, interval: int = DeepCacheSettings.interval,
              branch_id: int = DeepCacheSettings.branch_id) -> Iterator[Any]:
    """DeepCacheSDHelper (unmodified) on `pipe.unet` inside the `with` block; yields the helper.

    What DeepCacheSDHelper needs on our `UNet2DModel` (DeepCache 0.1.1): its wrapped UNet forward
    reads the step from `timesteps.index(args[1].item())`, i.e. one scalar timestep as the second
    positional argument, as SD pipelines pass it. The glyph pipeline passes one timestep per
    sample (batch >= 2 with classifier-free guidance), so `.item()` raises; one more forward
    outside DeepCache's hands it the (all equal) timestep as a 0-d tensor, which UNet2DModel
    broadcasts back. `disable()` would leave a bound-method `forward` on every module it wrapped;
    on exit each module's own `forward` attribute is put back exactly instead.
    """
    settings = DeepCacheSettings(interval, branch_id)
    if reason := deepcache_unfit(pipe):
        raise ValueError(reason)
    unet = pipe.unet
    last = 3 * len(unet.down_blocks) - 1
    if branch_id > last:  # DeepCache's branch b is (down block b // 3, layer b % 3)
        raise ValueError(f"DeepCache branch_id must be in 0..{last} for this UNet's "
                         f"{len(unet.down_blocks)} down blocks, got {branch_id}")
    (helper_cls,) = _load("DeepCache", "DeepCache", "DeepCacheSDHelper")
    restore = _saved(list(unet.modules()), ["forward"])
    helper = helper_cls(pipe=pipe)
    helper.set_params(cache_interval=settings.interval, cache_branch_id=settings.branch_id)
    try:
        helper.enable()
        unet.forward = _scalar_timestep(unet.forward)
        yield helper
    finally:
        helper.reset_states()  # drops the cached block outputs
        restore()


def deepcache_unfit(pipe) -> str:
    """'' when DeepCache applies to `pipe` (a `unet` with a mid block), else why not."""
    unet = getattr(pipe, "unet", None)
    if isinstance(unet, torch.nn.Module) and getattr(unet, "mid_block", None) is not None:
        return ""
    return (f"DeepCache applies to UNet pipelines (a `unet` with down blocks and a mid block); "
            f"this pipeline's denoiser is a {_denoiser_name(pipe)}")

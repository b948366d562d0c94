"""cache-dit's DBCache (PyPI `cache-dit`, unmodified): through cache-dit's own adapter where it
has one for the pipeline class (FluxPipeline, StableDiffusion3Pipeline, WanPipeline, QwenImage...:
what a user calls), else (our glyph pipelines) wired on DiT and FLUX denoisers as cache-dit's
adapters for those families wire them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..targets import denoiser_of
from ._common import PeerUnavailable, _denoiser_name, _load, _number, _snapshot


@dataclass(frozen=True)
class DBCacheSettings:
    """cache-dit's DBCache: the first `front` and last `back` blocks always run; the blocks
    between are skipped (their cached residual added) while the front blocks' residual changed by
    less than `threshold` (relative L1) since the last step that ran them, after `warmup` steps.
    `taylorseer_order` > 0 adds cache-dit's TaylorSeer calibrator (the skipped residual predicted
    by a Taylor series instead of reused)."""

    threshold: float = 0.08
    front: int = 1
    back: int = 0
    warmup: int = 8
    taylorseer_order: int = 0

    def __post_init__(self) -> None:
        _number("DBCache threshold", self.threshold, 0.0)
        _number("DBCache front blocks (Fn)", self.front, 1, integer=True)
        _number("DBCache back blocks (Bn)", self.back, 0, integer=True)
        _number("DBCache warmup steps", self.warmup, 0, integer=True)
        _number("DBCache taylorseer_order", self.taylorseer_order, 0, integer=True)

    def describe(self) -> str:
        extra = f", TaylorSeer calibrator order {self.taylorseer_order}" if self.taylorseer_order else ""
        return (f"threshold {self.threshold}, F{self.front}B{self.back}, warmup {self.warmup}{extra}")


def _load_cache_dit() -> tuple:
    names = _load("cache_dit", "cache-dit", "enable_cache", "disable_cache", "BlockAdapter",
                  "DBCacheConfig", "ForwardPattern", "TaylorSeerCalibratorConfig")
    return names + _load("cache_dit.caching.patch_functors", "cache-dit", "DiTPatchFunctor")


def _cache_dit_wiring(pipe) -> tuple[torch.nn.Module, list[torch.nn.ModuleList], dict]:
    """The denoiser, its block lists and the `BlockAdapter` arguments cache-dit's own adapter
    for that family uses: DiT (one list, pattern 3, its DiTPatchFunctor) and FLUX (dual-stream
    then single-stream blocks, pattern 1 each, as its Flux adapter without dummy blocks)."""
    if reason := dbcache_unfit(pipe):
        raise ValueError(reason)
    model = denoiser_of(pipe)
    _, _, _, _, pattern, _, functor_cls = _load_cache_dit()
    if type(model).__name__ == "DiTTransformer2DModel":
        return model, [model.transformer_blocks], dict(
            blocks=model.transformer_blocks, blocks_name="transformer_blocks",
            forward_pattern=pattern.Pattern_3, patch_functor=functor_cls())
    lists = [model.transformer_blocks, model.single_transformer_blocks]  # FLUX
    return model, lists, dict(blocks=lists, forward_pattern=[pattern.Pattern_1, pattern.Pattern_1])


_CACHE_DIT_FAMILIES = ("DiTTransformer2DModel", "FluxTransformer2DModel")


def _has_adapter(pipe) -> bool:
    """Has cache-dit an adapter of its own for this pipeline's class (False where it is not installed)?"""
    try:
        (register,) = _load("cache_dit", "cache-dit", "BlockAdapterRegister")
    except PeerUnavailable:
        return False
    return bool(register.is_supported(pipe))


def dbcache_unfit(pipe) -> str:
    """'' when `dbcache` can run on this pipeline: cache-dit has an adapter for its class, or its
    denoiser is a DiT or FLUX transformer (wired here; cache-dit need not be installed to say so),
    else why not."""
    name = _denoiser_name(pipe)
    if name in _CACHE_DIT_FAMILIES or _has_adapter(pipe):
        return ""
    return (f"cache-dit's DBCache runs through cache-dit's adapter for the pipeline class, or is wired "
            f"here for DiT and FLUX transformers; cache-dit has no adapter for {type(pipe).__name__} (or "
            f"is not installed) and this pipeline's denoiser is a {name}")


@contextlib.contextmanager
def dbcache(pipe, threshold: float = DBCacheSettings.threshold, front: int = DBCacheSettings.front,
            back: int = DBCacheSettings.back, warmup: int = DBCacheSettings.warmup,
            taylorseer_order: int = DBCacheSettings.taylorseer_order) -> Iterator[DBCacheSettings]:
    """cache-dit's DBCache (PyPI `cache-dit`, unmodified) inside the `with` block, on a pipeline
    cache-dit has an adapter for or one whose denoiser is a DiT or FLUX transformer.

    Where cache-dit has an adapter for the pipeline's class it is that adapter
    (`cache_dit.enable_cache(pipe, ...)`, as a user calls it: it knows the class's block lists and
    CFG calls); else it is driven as cache-dit's own adapters for DiT and FLUX do
    (`_cache_dit_wiring`), one batched-CFG call per step (`has_separate_cfg=False`). The
    front/back block counts span all block lists in call order.
    cache-dit patches the pipeline *class*'s `__call__` (a fresh cache context per call, so
    nothing leaks between calls) and, while enabled, every other instance of that class goes
    through its wrapper: one DBCache pipeline per class at a time (refused otherwise), not for a
    server sharing the class between requests. `disable_cache` leaves the functor's `forward`,
    `_is_patched` and a `_norm1_emb` submodule alias behind, and the first cached call moves
    the block lists last among the submodules: on exit the pipeline's, transformer's and block
    lists' attributes and submodules are put back exactly as they were."""
    settings = DBCacheSettings(threshold, front, back, warmup, taylorseer_order)
    if reason := dbcache_unfit(pipe):
        raise ValueError(reason)
    own = _has_adapter(pipe)
    if own:
        model = denoiser_of(pipe)
        lists, wiring = [m for m in model.children() if isinstance(m, torch.nn.ModuleList)], None
    else:
        model, lists, wiring = _cache_dit_wiring(pipe)
    count = sum(len(blocks) for blocks in lists)
    if front + back > count:
        raise ValueError(f"DBCache front + back blocks ({front} + {back}) exceed this "
                         f"{type(model).__name__}'s {count} blocks")
    enable, disable, adapter_cls, config_cls, _, taylor_cls, _ = _load_cache_dit()
    cls = type(pipe)
    if getattr(cls, "_is_cached", False):
        raise ValueError(f"cache-dit is already enabled on a {cls.__name__} (it patches the class); "
                         f"leave that DBCache context first")
    restore = _snapshot([pipe, model, *lists], cls, ("__call__", "_original_call", "_is_cached"))
    adapter = None
    try:
        calibrator = taylor_cls(taylorseer_order=taylorseer_order) if taylorseer_order else None
        config = dict(Fn_compute_blocks=front, Bn_compute_blocks=back, residual_diff_threshold=threshold,
                      max_warmup_steps=warmup)
        if own:  # the class's adapter says how its CFG calls run
            adapter = pipe
            enable(pipe, cache_config=config_cls(**config), calibrator_config=calibrator)
        else:
            adapter = adapter_cls(pipe=pipe, transformer=model, has_separate_cfg=False,
                                  check_forward_pattern=True, **wiring)
            enable(adapter, cache_config=config_cls(**config, enable_separate_cfg=False),
                   calibrator_config=calibrator)
        yield settings
    finally:
        try:
            if adapter is not None and getattr(cls, "_is_cached", False):
                disable(adapter)
        finally:
            restore()

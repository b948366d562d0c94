"""diffusers' own cache hooks (unmodified) on our pipelines: FirstBlockCache, MagCache,
TaylorSeer, SeaCache, FasterCache and PyramidAttentionBroadcast.

What diffusers' hooks (0.42) need on our pipelines: their state is keyed by a cache context that
diffusers' pipelines set around each denoiser call (`transformer.cache_context("cond")`, a
`CacheMixin` method `DiTTransformer2DModel` lacks); FirstBlockCache raises "No cache context is
set" without one. Nothing resets the state between pipeline calls either (only `CacheMixin`
components are reset), so FirstBlockCache's first step would compare against the previous call's
last. So the hooks are driven from the scheduler, like frdiff's step clock: each `set_timesteps`
(a new pipeline call) resets their state and sets one context, right for GlyphPipeline's one
batched-CFG [uncond, cond] denoiser call per step (one skip decision per step for the batch).
`remove_hook` leaves a bound-method `forward` and an empty `_diffusers_hook` on each module it
touched; those attributes are restored exactly too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any

import torch

from ..clock import drive_clock
from ..noise import is_flow
from ..targets import denoiser_of, find_blocks
from ._common import PeerUnavailable, _load, _number, _saved

CACHE_CONTEXT = "frdiff-peers"  # batched CFG: one denoiser call per step, so one context
_HOOKS = "diffusers.hooks"


# -- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FirstBlockCacheSettings:
    """Skip blocks 1.. when block 0's residual changed by less than `threshold` (relative L1)."""

    threshold: float = 0.08

    def __post_init__(self) -> None:
        _number("FirstBlockCache threshold", self.threshold, 0.0)


@dataclass(frozen=True)
class MagCacheSettings:
    """Skip the whole block stack while the accumulated magnitude-ratio error stays under threshold."""

    mag_ratios: tuple[float, ...]
    threshold: float = 0.12
    max_skip_steps: int = 3
    retention_ratio: float = 0.2
    num_inference_steps: int | None = None  # None: len(mag_ratios); else diffusers interpolates

    def __post_init__(self) -> None:
        ratios = tuple(float(r) for r in self.mag_ratios)
        if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
            raise ValueError("mag_ratios must be a non-empty sequence of finite positive numbers "
                             "(one per step, from calibrate_mag_cache)")
        object.__setattr__(self, "mag_ratios", ratios)
        _number("MagCache threshold", self.threshold, 0.0)
        _number("MagCache max_skip_steps", self.max_skip_steps, 0, integer=True)
        _number("MagCache retention_ratio", self.retention_ratio, 0.0, 1.0)
        if self.num_inference_steps is not None:
            _number("MagCache num_inference_steps", self.num_inference_steps, 1, integer=True)

    @property
    def steps(self) -> int:
        return self.num_inference_steps or len(self.mag_ratios)


# -- diffusers cache hooks -------------------------------------------------------------------
def _transformer_blocks(model: torch.nn.Module, method: str) -> list[torch.nn.Module]:
    """The blocks diffusers' cache hooks walk, checked first so nothing half-installs."""
    (identifiers,) = _load("diffusers.hooks._common", _HOOKS, "_ALL_TRANSFORMER_BLOCK_IDENTIFIERS")
    (registry,) = _load("diffusers.hooks._helpers", _HOOKS, "TransformerBlockRegistry")
    blocks = [block for name, child in model.named_children()
              if name in identifiers and isinstance(child, torch.nn.ModuleList) for block in child]
    if not blocks:
        raise ValueError(f"{method} applies to transformer denoisers (DiT, PixArt, ...: a "
                         f"`transformer_blocks` list of blocks); this pipeline's denoiser is a "
                         f"{type(model).__name__}")
    for block in blocks:
        try:
            registry.get(type(block))
        except ValueError:
            raise ValueError(f"{method}: diffusers' hooks have no metadata for "
                             f"{type(block).__name__} blocks (they support BasicTransformerBlock, "
                             f"Flux, Wan, ... blocks)") from None
    return blocks


def _set_context(manager, name: str, **where) -> None:
    """StateManager.set_context takes a CacheContext in diffusers 0.42 (with where the loop is:
    step_index, num_inference_steps, timestep, sigma, which SeaCache reads), a plain name before."""
    try:
        (context_cls,) = _load("diffusers.hooks.hooks", _HOOKS, "CacheContext")
    except PeerUnavailable:
        return manager.set_context(name)
    fields = getattr(context_cls, "__dataclass_fields__", {})
    manager.set_context(context_cls(name, **{k: v for k, v in where.items() if k in fields}))


class _StepTimestep:
    """The timestep of the step being run, for hooks that ask for it (PAB's callback): driven by
    the scheduler like frdiff's step clock (set_timesteps starts at step 0, each step() advances)."""

    def __init__(self, scheduler):
        self.scheduler, self.index = scheduler, 0

    def start(self) -> None:
        self.index = 0

    def advance(self) -> None:
        self.index += 1

    def __call__(self) -> int:
        timesteps = getattr(self.scheduler, "timesteps", None)
        if timesteps is None or len(timesteps) == 0:
            raise RuntimeError("the denoiser was called before the scheduler's set_timesteps()")
        return int(timesteps[min(self.index, len(timesteps) - 1)])

    def where(self) -> dict:
        """The step as diffusers' CacheContext fields (sigma where the scheduler keeps sigmas)."""
        timesteps = getattr(self.scheduler, "timesteps", None)
        if timesteps is None or len(timesteps) == 0:
            return {}
        i = min(self.index, len(timesteps) - 1)
        sigmas = getattr(self.scheduler, "sigmas", None)
        sigma = float(sigmas[i]) if sigmas is not None and i < len(sigmas) else None
        return {"step_index": i, "num_inference_steps": len(timesteps),
                "timestep": float(timesteps[i]), "sigma": sigma}


@contextlib.contextmanager
def _cache_hooks(pipe, method: str, apply: Callable[[torch.nn.Module, _StepTimestep], None],
                 hook_names: Sequence[str], num_steps: int | None = None,
                 blocks: bool = True) -> Iterator[list]:
    """Install diffusers hooks with `apply(model, timestep)`, reset per pipeline call; exact
    inverse on exit. `timestep()` is the current step's timestep (for PAB's callback).

    Yields the hooks' state managers. `num_steps`: the step count the hooks were configured for;
    a pipeline call with another count raises ValueError at its `set_timesteps`. `blocks`: the
    method hooks transformer blocks (checked first, so nothing half-installs)."""
    (registry_cls,) = _load("diffusers.hooks.hooks", _HOOKS, "HookRegistry")
    model = denoiser_of(pipe)
    if blocks:
        _transformer_blocks(model, method)
    if any(name in _hooks_of(m) for m in model.modules() for name in hook_names):
        raise ValueError(f"this denoiser already has {method} hooks (enable_cache or apply_*); "
                         f"remove them before entering {method}")
    timestep = _StepTimestep(pipe.scheduler)
    managers: list = []
    with contextlib.ExitStack() as stack:
        stack.callback(_saved(list(model.modules()), ["forward", "_diffusers_hook"]))
        stack.callback(lambda: [m.reset() for m in managers])  # frees the cached residuals
        stack.callback(_remove_hooks, registry_cls, model, hook_names)
        apply(model, timestep)
        _walk_afresh(registry_cls, model)  # else a pipeline's cache_context() misses the new hooks
        hooked = [(module, hook) for module in model.modules()
                  for name, hook in _hooks_of(module).items() if name in hook_names]
        if not hooked:
            raise ValueError(f"{method} hooked no module of this {type(model).__name__}")
        for hook in (h for _, h in hooked):
            manager = getattr(hook, "state_manager", None)
            if manager is not None and all(manager is not m for m in managers):
                managers.append(manager)

        def start(steps: int | None = None) -> None:
            if None not in (steps, num_steps) and steps != num_steps:
                raise ValueError(f"{method} was set up for {num_steps} steps but the sampler "
                                 f"runs {steps}; call the pipeline with "
                                 f"num_inference_steps={num_steps} or set {method} up again")
            timestep.start()
            for module, hook in hooked:  # a new call: no state carried over from the last one
                if getattr(hook, "_is_stateful", False) and getattr(hook, "state_manager", None) is None:
                    hook.reset_state(module)
            for manager in managers:
                manager.reset()
                _set_context(manager, CACHE_CONTEXT, **timestep.where())

        def advance(out):
            timestep.advance()
            for manager in managers:  # the context says which step comes next
                if manager._context is not None:
                    _set_context(manager, CACHE_CONTEXT, **timestep.where())
            return out

        start()  # a context for direct denoiser calls too
        stack.callback(drive_clock(pipe.scheduler, start, advance))
        yield managers


def _hooks_of(module: torch.nn.Module) -> dict:
    registry = module.__dict__.get("_diffusers_hook")
    return registry.hooks if registry is not None else {}


def _walk_afresh(registry_cls, model: torch.nn.Module) -> None:
    """diffusers >= 0.42 caches the registries below a model's (the walk `cache_context` makes):
    a registry made by an earlier call (a CacheMixin pipeline names its contexts even without
    hooks) would keep walking the old, hookless list."""
    root = registry_cls.check_if_exists_or_initialize(model)
    if hasattr(root, "invalidate_child_registries_cache"):
        root.invalidate_child_registries_cache()


def _remove_hooks(registry_cls, model: torch.nn.Module, hook_names: Sequence[str]) -> None:
    root = registry_cls.check_if_exists_or_initialize(model)
    for name in hook_names:
        root.remove_hook(name, recurse=True)
    _walk_afresh(registry_cls, model)


@contextlib.contextmanager
def first_block_cache(pipe, threshold: float = FirstBlockCacheSettings.threshold
                      ) -> Iterator[FirstBlockCacheSettings]:
    """diffusers' FirstBlockCache (unmodified) on a DiT-family transformer inside the `with` block.

    Each step runs block 0; if its residual changed by less than `threshold` (mean |change| over
    mean |residual|, against the last step that ran everything), the other blocks are skipped and
    their cached residual is added. Default 0.08, the knee of its curve on glyph-dit (DDIM 50,
    PSNR vs full compute, counted speedup; 4 glyphs seed 0 / 8 glyphs seed 1): 0.05 57 dB 1.09x,
    0.06 43 / 37 dB 1.46x, 0.08 40 / 37 dB 1.6x, 0.1 33 / 31 dB 1.7x, 0.2 (diffusers' documented
    example) 31 / 28 dB 2.4x. Unlike MagCache it has no cap on consecutive skips."""
    settings = FirstBlockCacheSettings(threshold)
    config_cls, apply, leader, follower = _load(
        "diffusers.hooks.first_block_cache", _HOOKS, "FirstBlockCacheConfig",
        "apply_first_block_cache", "_FBC_LEADER_BLOCK_HOOK", "_FBC_BLOCK_HOOK")
    model = denoiser_of(pipe)
    if len(_transformer_blocks(model, "FirstBlockCache")) < 2:
        raise ValueError("FirstBlockCache needs a transformer with at least 2 blocks")
    if reason := _text_stream_missing(model):
        raise ValueError(reason)
    with _cache_hooks(pipe, "FirstBlockCache", lambda m, _: apply(m, config_cls(threshold=threshold)),
                      (leader, follower)):
        yield settings


def _mag_cache_hooks(pipe, config) -> ContextManager[list]:
    apply, leader, follower = _load("diffusers.hooks.mag_cache", _HOOKS, "apply_mag_cache",
                                    "_MAG_CACHE_LEADER_BLOCK_HOOK", "_MAG_CACHE_BLOCK_HOOK")
    return _cache_hooks(pipe, "MagCache", lambda m, _: apply(m, config), (leader, follower),
                        num_steps=None if config.calibrate else config.num_inference_steps)


def calibrate_mag_cache(pipe, num_inference_steps: int, **call_kwargs) -> tuple[float, ...]:
    """MagCache's magnitude ratios from one full-compute call `pipe(..., calibrate=True)`.

    The hooks run every block and record mean |residual_t| / |residual_t-1| per step; the call's
    output is the full-compute one. The config is told one step more than the call runs, so its
    end-of-run reset (which prints the ratios and drops them) never fires before they are read."""
    _number("num_inference_steps", num_inference_steps, 1, integer=True)
    (config_cls,) = _load("diffusers.hooks.mag_cache", _HOOKS, "MagCacheConfig")
    config = config_cls(calibrate=True, num_inference_steps=num_inference_steps + 1)
    with _mag_cache_hooks(pipe, config) as managers:
        kept = _ratios_kept_at_reset(managers[0])
        pipe(num_inference_steps=num_inference_steps, **call_kwargs)
        managers[0].reset()  # where the pipeline did not reset at its end (no CacheMixin model)
    ratios = tuple(float(r) for r in kept)
    if len(ratios) != num_inference_steps:
        raise RuntimeError(f"MagCache calibration recorded {len(ratios)} ratios for a "
                           f"{num_inference_steps}-step call; does the pipeline call its "
                           f"denoiser once per step?")
    return ratios


def _ratios_kept_at_reset(manager) -> list[float]:
    """A list that receives the calibration ratios of the manager's states each time it resets:
    pipelines of CacheMixin models (FLUX...) reset their hooks' states at the end of a call
    (`maybe_free_model_hooks`), before the caller could read them."""
    kept: list[float] = []
    reset = manager.reset

    def reset_keeping(*args, **kwargs):  # a pipeline's conditional context over the others
        for _, state in sorted(manager._state_cache.items(), key=lambda item: item[0] == "cond"):
            if state.calibration_ratios:
                kept[:] = state.calibration_ratios
        return reset(*args, **kwargs)

    manager.reset = reset_keeping
    return kept


@contextlib.contextmanager
def mag_cache(pipe, mag_ratios: Sequence[float], threshold: float = MagCacheSettings.threshold,
              max_skip_steps: int = MagCacheSettings.max_skip_steps,
              retention_ratio: float = MagCacheSettings.retention_ratio,
              num_inference_steps: int | None = None) -> Iterator[MagCacheSettings]:
    """diffusers' MagCache (unmodified) with calibrated `mag_ratios` inside the `with` block.

    After the first `retention_ratio` of the steps, a step reuses the last computed residual of the
    whole block stack while the accumulated error sum |1 - prod ratios| stays <= `threshold`, at
    most `max_skip_steps` steps in a row. Calls must run `num_inference_steps` steps (default
    len(mag_ratios)). Defaults: threshold 0.12, 44 dB PSNR at a 1.78x counted speedup on
    glyph-dit (DDIM 50, vs full compute; 4 glyphs seed 0: 44.3 dB, 8 glyphs seed 1: 43.6 dB;
    diffusers' default 0.06 gives 50 dB at 1.38x, 0.2 gives 40 dB at 2.07x); max_skip_steps 3
    and retention_ratio 0.2 are diffusers' defaults."""
    settings = MagCacheSettings(tuple(mag_ratios), threshold, max_skip_steps, retention_ratio,
                                num_inference_steps)
    (config_cls,) = _load("diffusers.hooks.mag_cache", _HOOKS, "MagCacheConfig")
    config = config_cls(threshold=threshold, max_skip_steps=max_skip_steps,
                        retention_ratio=retention_ratio, num_inference_steps=settings.steps,
                        mag_ratios=list(settings.mag_ratios))
    with _mag_cache_hooks(pipe, config):
        yield settings


@dataclass(frozen=True)
class TaylorSeerSettings:
    """Every transformer block predicted by a Taylor series of its output over the steps."""

    cache_interval: int = 3
    max_order: int = 1
    disable_cache_before_step: int = 3

    def __post_init__(self) -> None:
        _number("TaylorSeer cache_interval", self.cache_interval, 1, integer=True)
        _number("TaylorSeer max_order", self.max_order, 0, integer=True)
        _number("TaylorSeer disable_cache_before_step", self.disable_cache_before_step, 0, integer=True)


TAYLORSEER_BLOCKS = r"transformer_blocks\.\d+"  # our blocks; its default patterns match no DiT module


def _fr_units(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Patterns naming frdiff's FR units of `model`: those it caches (attention and MLP outputs,
    a single-stream block's fused proj_out) and the feeders it skips at F (what only feeds
    proj_out)."""
    units = [u for b in find_blocks(model) for u in b.units]

    def names(feeders: bool) -> list[str]:
        return [u.name.replace(".", r"\.") for u in units if u.kind.shape_only == feeders]

    return names(False), names(True)


@contextlib.contextmanager
def taylorseer_cache(pipe, cache_interval: int = TaylorSeerSettings.cache_interval,
                     max_order: int = TaylorSeerSettings.max_order,
                     disable_cache_before_step: int = TaylorSeerSettings.disable_cache_before_step,
                     identifiers: str = "blocks") -> Iterator[TaylorSeerSettings]:
    """diffusers' TaylorSeer cache (unmodified) on a DiT-family transformer inside the `with` block.

    The first `disable_cache_before_step` steps and then every `cache_interval`-th compute every
    block and update its Taylor factors (divided differences up to `max_order`); the steps
    between predict each block's output from them and run no block. Its default identifiers
    match `attn` modules, of which DiT and PixArt have none (theirs are `attn1` / `attn2`): a
    silent no-op; so `identifiers="blocks"` (the default) predicts the `transformer_blocks`
    (TAYLORSEER_BLOCKS), and `identifiers="units"` the modules frdiff's FR caches (attention and
    MLP outputs, a single-stream block's proj_out; what only feeds proj_out is skipped, not
    predicted): the granularity of its paper, and the one that matches every block list of a
    flow transformer (FLUX's single blocks, Wan's `blocks`). The factors are kept in float32
    (diffusers' default is bfloat16)."""
    settings = TaylorSeerSettings(cache_interval, max_order, disable_cache_before_step)
    if identifiers not in ("blocks", "units"):
        raise ValueError(f"TaylorSeer identifiers must be 'blocks' or 'units', got {identifiers!r:.60}")
    config_cls, apply, hook = _load("diffusers.hooks.taylorseer_cache", _HOOKS, "TaylorSeerCacheConfig",
                                    "apply_taylorseer_cache", "_TAYLORSEER_CACHE_HOOK")
    cached, feeders = ([TAYLORSEER_BLOCKS], []) if identifiers == "blocks" else _fr_units(denoiser_of(pipe))
    if not cached:
        raise ValueError(f"TaylorSeer: frdiff has no FR unit in this {type(denoiser_of(pipe)).__name__} to predict")
    config = config_cls(cache_interval=cache_interval, max_order=max_order,
                        disable_cache_before_step=disable_cache_before_step, taylor_factors_dtype=torch.float32,
                        cache_identifiers=cached, skip_predict_identifiers=feeders or None)
    with _cache_hooks(pipe, "TaylorSeer", lambda m, _: apply(m, config), (hook,)):
        yield settings


@dataclass(frozen=True)
class SeaCacheSettings:
    """The whole block stack's residual reused (order 0) or extrapolated (order 1) while the
    spectral-evolution-aware indicator changed by less than `threshold` (accumulated)."""

    threshold: float = 0.25
    residual_order: int = 1
    max_consecutive_cached: int = 2

    def __post_init__(self) -> None:
        _number("SeaCache threshold", self.threshold, 0.0)
        _number("SeaCache residual_order", self.residual_order, 0, 1, integer=True)
        _number("SeaCache max_consecutive_cached", self.max_consecutive_cached, 0, integer=True)


@contextlib.contextmanager
def sea_cache(pipe, threshold: float = SeaCacheSettings.threshold,
              residual_order: int = SeaCacheSettings.residual_order,
              max_consecutive_cached: int = SeaCacheSettings.max_consecutive_cached,
              raw_vision_callback: Callable | None = None) -> Iterator[SeaCacheSettings]:
    """diffusers' SeaCache (unmodified) inside the `with` block. It reads the step, sigma and
    step count from the cache context, which is set at every step here as diffusers' pipelines
    do. Outside Wan T2V and Cosmos 3 (its built-in adapters) it needs `raw_vision_callback(module,
    args, kwargs)`: the visual latents of the call as (C, T, H, W) tensors, one per sample (its
    documented generic path)."""
    settings = SeaCacheSettings(threshold, residual_order, max_consecutive_cached)
    if reason := sea_cache_unfit(pipe):
        raise ValueError(reason)
    names = _load("diffusers.hooks.sea_cache", _HOOKS, "SeaCacheConfig", "apply_sea_cache",
                  "_SEA_CACHE_ROOT_HOOK", "_SEA_CACHE_LEADER_BLOCK_HOOK", "_SEA_CACHE_BLOCK_HOOK",
                  "_SEA_CACHE_POST_NORM_HOOK")
    config_cls, apply, hooks = names[0], names[1], names[2:]
    config = config_cls(threshold=threshold, residual_order=residual_order,
                        max_consecutive_cached=max_consecutive_cached,
                        raw_vision_callback=raw_vision_callback)
    with _cache_hooks(pipe, "SeaCache", lambda m, _: apply(m, config), hooks):
        yield settings


@dataclass(frozen=True)
class FasterCacheSettings:
    """Attention outputs reused every other call inside a timestep range, and the CFG
    unconditional branch approximated from the conditional one (frequency-wise deltas) at
    `uncond_skip_range - 1` of every `uncond_skip_range` steps."""

    attention_skip_range: int = 2
    uncond_skip_range: int = 5

    def __post_init__(self) -> None:
        _number("FasterCache attention_skip_range", self.attention_skip_range, 1, integer=True)
        _number("FasterCache uncond_skip_range", self.uncond_skip_range, 1, integer=True)


_PACKED_TOKEN_OUTPUTS = ("FluxTransformer2DModel", "Flux2Transformer2DModel", "ChromaTransformer2DModel",
                         "QwenImageTransformer2DModel")  # they return (B, S, C), unpacked by the pipeline


def faster_cache_unfit(pipe) -> str:
    """'' when FasterCache can run on this denoiser, else why not: its CFG approximation splits
    an image-shaped output (BCHW, BFCHW, BCFHW) into frequencies; packed token outputs (B, S, C:
    FLUX, Qwen-Image) are not supported by diffusers (a TODO there)."""
    model = denoiser_of(pipe)
    if type(model).__name__ in _PACKED_TOKEN_OUTPUTS:
        return (f"FasterCache approximates the CFG branch by an FFT of an image-shaped output (BCHW, "
                f"BFCHW, BCFHW); {type(model).__name__} returns packed tokens (B, S, C), which "
                f"diffusers' FasterCache does not support")
    try:
        _transformer_blocks(model, "FasterCache")
    except (ValueError, PeerUnavailable) as err:
        return str(err)
    return ""


@contextlib.contextmanager
def faster_cache(pipe, attention_skip_range: int = FasterCacheSettings.attention_skip_range,
                 uncond_skip_range: int = FasterCacheSettings.uncond_skip_range
                 ) -> Iterator[FasterCacheSettings]:
    """diffusers' FasterCache (unmodified) on a batched-CFG pipeline ([uncond, cond] in one
    call) with an image-shaped output, inside the `with` block; the timestep ranges are
    diffusers' defaults, the current timestep the scheduler's."""
    settings = FasterCacheSettings(attention_skip_range, uncond_skip_range)
    if reason := faster_cache_unfit(pipe):
        raise ValueError(reason)
    config_cls, apply, denoiser_hook, block_hook, batched = _load(
        "diffusers.hooks.faster_cache", _HOOKS, "FasterCacheConfig", "apply_faster_cache",
        "_FASTER_CACHE_DENOISER_HOOK", "_FASTER_CACHE_BLOCK_HOOK", "_UNCOND_COND_INPUT_KWARGS_IDENTIFIERS")

    def install(model, timestep):
        apply(model, config_cls(spatial_attention_block_skip_range=attention_skip_range,
                                unconditional_batch_skip_range=uncond_skip_range,
                                current_timestep_callback=timestep, tensor_format="BCHW",
                                attention_weight_callback=lambda _: 0.5,
                                spatial_attention_block_identifiers=("transformer_blocks",),
                                # the class labels are batched [uncond, cond] like the inputs
                                _unconditional_conditional_input_kwargs_identifiers=(
                                    *batched, "class_labels")))

    with _cache_hooks(pipe, "FasterCache", install, (denoiser_hook, block_hook)):
        yield settings


@dataclass(frozen=True)
class PABSettings:
    """Self-attention outputs broadcast (reused) for `skip_range - 1` calls of every `skip_range`,
    at timesteps strictly inside `timestep_range`."""

    skip_range: int = 2
    timestep_range: tuple[int, int] = (100, 800)

    def __post_init__(self) -> None:
        _number("PyramidAttentionBroadcast skip_range", self.skip_range, 1, integer=True)
        low, high = self.timestep_range
        _number("PyramidAttentionBroadcast timestep_range start", low, 0)
        _number("PyramidAttentionBroadcast timestep_range end", high, low)


@contextlib.contextmanager
def pyramid_attention_broadcast(pipe, skip_range: int = PABSettings.skip_range,
                                timestep_range: tuple[int, int] = PABSettings.timestep_range
                                ) -> Iterator[PABSettings]:
    """diffusers' PyramidAttentionBroadcast (unmodified) on the denoiser's self-attention.

    It hooks diffusers `Attention` modules under `blocks` / `transformer_blocks` (so a DiT's
    `attn1` and a UNet's down/mid/up attentions); its `current_timestep_callback` is the timestep
    of the step the scheduler is in (diffusers' pipelines keep `_current_timestep`, ours need not).
    Its state lives on each hook, reset at every pipeline call's `set_timesteps`."""
    settings = PABSettings(skip_range, tuple(timestep_range))
    config_cls, apply, hook = _load("diffusers.hooks.pyramid_attention_broadcast", _HOOKS,
                                    "PyramidAttentionBroadcastConfig", "apply_pyramid_attention_broadcast",
                                    "_PYRAMID_ATTENTION_BROADCAST_HOOK")

    def install(model, timestep) -> None:
        apply(model, config_cls(spatial_attention_block_skip_range=skip_range,
                                spatial_attention_timestep_skip_range=settings.timestep_range,
                                current_timestep_callback=timestep))

    with _cache_hooks(pipe, "PyramidAttentionBroadcast", install, (hook,), blocks=False):
        yield settings


# -- what applies to a pipeline ----------------------------------------------------------------
def _hookable_blocks(model: torch.nn.Module) -> tuple[int, str]:
    """How many blocks diffusers' cache hooks would walk, and why the hooks are unavailable."""
    try:
        return len(_transformer_blocks(model, "diffusers' cache hooks")), ""
    except ValueError:
        return 0, ""
    except PeerUnavailable as err:  # still say that they would apply to a transformer
        blocks = getattr(model, "transformer_blocks", None)
        return (len(blocks) if isinstance(blocks, torch.nn.ModuleList) else 0), str(err)



def blocks_unfit(pipe, at_least: int = 1) -> str:
    """'' when diffusers' cache hooks would walk at least `at_least` blocks of the denoiser
    (diffusers need not be importable), else why not."""
    model = denoiser_of(pipe)
    count, _ = _hookable_blocks(model)  # every block list diffusers' hooks walk
    if count >= at_least:
        return ""
    return (f"applies to transformer denoisers (DiT, PixArt, FLUX...) with at least {at_least} blocks; "
            f"this one's denoiser is a {type(model).__name__}")


def _text_stream_missing(model: torch.nn.Module) -> str:
    """'' unless the last block diffusers' hooks walk returns no text stream (SD3.5's last joint
    block, `context_pre_only`), which FirstBlockCache's tail hook subtracts from."""
    try:
        last = _transformer_blocks(model, "FirstBlockCache")[-1]
    except (ValueError, PeerUnavailable):
        return ""
    if not getattr(last, "context_pre_only", False):
        return ""
    return (f"diffusers' FirstBlockCache tail hook subtracts the text stream of the last block, which this "
            f"{type(last).__name__} does not return (context_pre_only): TypeError: unsupported operand type(s) "
            f"for -: 'NoneType' and 'Tensor'")


def first_block_cache_unfit(pipe) -> str:
    """'' when FirstBlockCache applies: at least 2 blocks to walk, the last returning every stream."""
    return blocks_unfit(pipe, at_least=2) or _text_stream_missing(denoiser_of(pipe))


def sea_cache_unfit(pipe) -> str:
    """'' where SeaCache can run: blocks its hooks walk and a flow-matching sampler (it reads each
    step's sigma, in [0, 1]); elsewhere diffusers runs it "fail-open", full compute with a
    warning, which would pass for a cache that skipped nothing."""
    if reason := blocks_unfit(pipe):
        return reason
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is not None and is_flow(scheduler):
        return ""
    return (f"SeaCache reads each step's flow-matching sigma in [0, 1]; {type(scheduler).__name__} samples "
            f"no flow (diffusers would run SeaCache fail-open: full compute)")


def attention_unfit(pipe) -> str:
    """'' when PyramidAttentionBroadcast finds attention modules to hook, else why not."""
    try:  # the attention classes PAB hooks (FLUX's FluxAttention is an AttentionModuleMixin)
        from diffusers.hooks._common import _ATTENTION_CLASSES as classes
    except ImportError:
        from diffusers.models.attention_processor import Attention as classes

    model = denoiser_of(pipe)
    if any(isinstance(m, classes) and "blocks" in name for name, m in model.named_modules()):
        return ""
    return f"PAB hooks diffusers attention modules inside blocks; {type(model).__name__} has none"


# -- MagCache calibrated on the call (`peer_methods`) ------------------------------------------
def _frozen(value: Any) -> Any:
    """A hashable stand-in for a call argument: generators by state, tensors by content."""
    if isinstance(value, torch.Generator):
        return "generator", value.get_state().numpy().tobytes()
    if torch.is_tensor(value):  # as bytes: numpy has no bfloat16
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        return "tensor", tuple(value.shape), str(value.dtype), data.numpy().tobytes()
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return repr(value)


def _mag_cache_factory(pipe) -> Callable[..., ContextManager]:
    """MagCache's `make`: calibrates on the given call, once per distinct call and scheduler."""
    calibrated: dict[tuple, tuple[float, ...]] = {}

    def make(num_inference_steps: int, **call_kwargs) -> ContextManager:
        scheduler = pipe.scheduler  # the ratios depend on the sampler and its steps
        key = (num_inference_steps, type(scheduler).__name__, _frozen(dict(scheduler.config)),
               _frozen(call_kwargs))
        if key not in calibrated:
            calibrated[key] = calibrate_mag_cache(pipe, num_inference_steps, **call_kwargs)
        return mag_cache(pipe, calibrated[key])

    return make

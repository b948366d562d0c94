"""The one registry of peer methods. The sweep's rows (`frdiff.glyphs.peer_rows`), the app's peer
and the benchmarks (`peer_methods`) all read it: adding a peer here adds it everywhere.

Each entry names the peer (its `--peers` name in the sweep), the package pip installs and the
module whose import tells whether it is installed, when it applies to a pipeline, the context
manager that runs it, the one setting `peer_methods` gives it (where it has one) and whether
`peer_methods` offers it unasked (the app and the glyph benchmarks take those; the GPU benchmark
names the ones it measures).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any

from ._common import PeerUnavailable, _probe
from .cache_dit import DBCacheSettings, dbcache, dbcache_unfit
from .deep_cache import deepcache, deepcache_unfit
from .diffusers_hooks import (FirstBlockCacheSettings, MagCacheSettings, TaylorSeerSettings, _mag_cache_factory,
                              attention_unfit, blocks_unfit, faster_cache, faster_cache_unfit, first_block_cache,
                              first_block_cache_unfit, mag_cache, pyramid_attention_broadcast, sea_cache,
                              sea_cache_unfit, taylorseer_cache)

Default = Callable[..., tuple[str, str, Callable[..., ContextManager]]]


@dataclass(frozen=True)
class Peer:
    """A peer method as every reader sees it. `context(pipe, *settings)` is the context manager
    that runs it; `unfit(pipe)` is '' where it applies, else why not; `default(pipe, **options)`
    gives (display name, setting, make) for the one setting `peer_methods` gives it (None: the
    peer is measured in the sweep only); `offered`: `peer_methods` lists it without being asked."""

    name: str
    package: str  # what `pip` installs
    module: str  # imported to tell whether it is installed
    context: Callable[..., ContextManager] = field(repr=False)
    unfit: Callable[[Any], str] = field(repr=False)
    default: Default | None = field(default=None, repr=False)
    offered: bool = True

    def missing(self) -> str:
        """'' when its package imports, else the reason it does not (never raised)."""
        return _probe(self.module, self.package)


def _deepcache_default(pipe, interval: int = 3) -> tuple:
    return (f"DeepCache (interval {interval})", f"interval {interval}, branch 0",
            lambda steps, **_: deepcache(pipe, interval))


_MAG_SETTING = (f"threshold {MagCacheSettings.threshold}, at most {MagCacheSettings.max_skip_steps} "
                f"steps skipped in a row, first {MagCacheSettings.retention_ratio:.0%} of steps "
                f"always run, calibrated on the call")


def _mag_cache_default(pipe) -> tuple:
    return "MagCache", _MAG_SETTING, _mag_cache_factory(pipe)


def _first_block_cache_default(pipe) -> tuple:
    return ("FirstBlockCache", f"threshold {FirstBlockCacheSettings.threshold}",
            lambda steps, **_: first_block_cache(pipe))


def _taylorseer_default(pipe, identifiers: str = "blocks") -> tuple:
    t = TaylorSeerSettings()
    return ("TaylorSeer", f"interval {t.cache_interval}, order {t.max_order}, {t.disable_cache_before_step} "
                          f"warm-up steps, predicting the {identifiers}",
            lambda steps, **_: taylorseer_cache(pipe, identifiers=identifiers))


def _dbcache_default(pipe, threshold: float = DBCacheSettings.threshold, front: int = DBCacheSettings.front,
                     warmup: int = DBCacheSettings.warmup) -> tuple:
    settings = DBCacheSettings(threshold=threshold, front=front, warmup=warmup)
    return ("cache-dit DBCache", settings.describe(),
            lambda steps, **_: dbcache(pipe, threshold, front=front, warmup=warmup))


REGISTRY: dict[str, Peer] = {p.name: p for p in (
    Peer("deepcache", "DeepCache", "DeepCache", deepcache, deepcache_unfit, _deepcache_default),
    Peer("magcache", "diffusers", "diffusers.hooks.mag_cache", mag_cache, blocks_unfit, _mag_cache_default),
    Peer("firstblockcache", "diffusers", "diffusers.hooks.first_block_cache", first_block_cache,
         first_block_cache_unfit, _first_block_cache_default),
    Peer("taylorseer", "diffusers", "diffusers.hooks.taylorseer_cache", taylorseer_cache, blocks_unfit,
         _taylorseer_default, offered=False),
    Peer("pab", "diffusers", "diffusers.hooks.pyramid_attention_broadcast", pyramid_attention_broadcast,
         attention_unfit),
    Peer("seacache", "diffusers", "diffusers.hooks.sea_cache", sea_cache, sea_cache_unfit),
    Peer("fastercache", "diffusers", "diffusers.hooks.faster_cache", faster_cache, faster_cache_unfit),
    Peer("dbcache", "cache-dit", "cache_dit", dbcache, dbcache_unfit, _dbcache_default, offered=False),
    Peer("dbcache-taylorseer", "cache-dit", "cache_dit", functools.partial(dbcache, taylorseer_order=1),
         dbcache_unfit),
)}


@dataclass(frozen=True)
class PeerMethod:
    """A peer method for one pipeline: `method(num_inference_steps, **call_kwargs)` gives its
    context manager. MagCache calibrates there, outside the context, on exactly that call
    (`pipe(num_inference_steps=..., **call_kwargs)`, generators by their state), once per
    distinct call and scheduler; the others ignore the call."""

    name: str
    package: str
    setting: str
    make: Callable[..., ContextManager] = field(repr=False)
    reason: str = ""  # why it is unavailable; empty when it is available

    @property
    def available(self) -> bool:
        return not self.reason

    def __call__(self, num_inference_steps: int, **call_kwargs) -> ContextManager:
        if self.reason:
            raise PeerUnavailable(f"{self.name}: {self.reason}")
        return self.make(num_inference_steps, **call_kwargs)


def peer_methods(pipe, deepcache_interval: int = 3, peers: Sequence[str] | None = None,
                 options: dict[str, dict] | None = None) -> dict[str, PeerMethod]:
    """The peer methods for `pipe`'s denoiser, by display name, in the registry's order.

    Without `peers`: the offered ones that apply (unavailable packages too, with the reason).
    With `peers` (registry names, any with a default setting): exactly those, and one that does
    not apply comes back unavailable with why, so a caller can say so. `options` gives a peer's
    default its keyword arguments, e.g. {"dbcache": {"front": 8}}."""
    options = {"deepcache": {"interval": deepcache_interval}} | dict(options or {})
    named = {p.name for p in REGISTRY.values() if p.default is not None}
    unknown = sorted(set(peers or ()) - named) + sorted(set(options) - named)
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(map(repr, unknown))}; peer_methods knows "
                         f"{', '.join(sorted(named))}")
    methods: list[PeerMethod] = []
    for peer in REGISTRY.values():
        asked = peer.name in peers if peers is not None else peer.offered
        if peer.default is None or not asked:
            continue
        unfit = peer.unfit(pipe)
        if unfit and peers is None:
            continue
        name, setting, make = peer.default(pipe, **options.get(peer.name, {}))
        methods.append(PeerMethod(name, peer.package, setting, make, unfit or peer.missing()))
    return {m.name: m for m in methods}

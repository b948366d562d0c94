"""The one registry of peer methods. The sweep's rows (`frdiff.glyphs.peer_rows`), the app's peer
and the benchmarks (`peer_methods`) all read it: adding a peer here adds it everywhere.

Each entry names the peer (its `--peers` name in the sweep), the package pip installs and the
module whose import tells whether it is installed, when it applies to a pipeline, the context
manager that runs it, and, for the peers `peer_methods` offers, the one setting offered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any

from ._common import PeerUnavailable, _probe
from .cache_dit import dbcache, dbcache_unfit
from .deep_cache import deepcache, deepcache_unfit
from .diffusers_hooks import (FirstBlockCacheSettings, MagCacheSettings, _mag_cache_factory, attention_unfit,
                              blocks_unfit, faster_cache, faster_cache_unfit, first_block_cache, mag_cache,
                              pyramid_attention_broadcast, sea_cache, taylorseer_cache)

Default = Callable[..., tuple[str, str, Callable[..., ContextManager]]]


@dataclass(frozen=True)
class Peer:
    """A peer method as every reader sees it. `context(pipe, *settings)` is the context manager
    that runs it; `unfit(pipe)` is '' where it applies, else why not; `default(pipe, **options)`
    gives (display name, setting, make) for the one setting `peer_methods` offers (None: the peer
    is measured in the sweep only)."""

    name: str
    package: str  # what `pip` installs
    module: str  # imported to tell whether it is installed
    context: Callable[..., ContextManager] = field(repr=False)
    unfit: Callable[[Any], str] = field(repr=False)
    default: Default | None = field(default=None, repr=False)

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


REGISTRY: dict[str, Peer] = {p.name: p for p in (
    Peer("deepcache", "DeepCache", "DeepCache", deepcache, deepcache_unfit, _deepcache_default),
    Peer("magcache", "diffusers", "diffusers.hooks.mag_cache", mag_cache, blocks_unfit, _mag_cache_default),
    Peer("firstblockcache", "diffusers", "diffusers.hooks.first_block_cache", first_block_cache,
         functools.partial(blocks_unfit, at_least=2), _first_block_cache_default),
    Peer("taylorseer", "diffusers", "diffusers.hooks.taylorseer_cache", taylorseer_cache, blocks_unfit),
    Peer("pab", "diffusers", "diffusers.hooks.pyramid_attention_broadcast", pyramid_attention_broadcast,
         attention_unfit),
    Peer("seacache", "diffusers", "diffusers.hooks.sea_cache", sea_cache, blocks_unfit),
    Peer("fastercache", "diffusers", "diffusers.hooks.faster_cache", faster_cache, faster_cache_unfit),
    Peer("dbcache", "cache-dit", "cache_dit", dbcache, dbcache_unfit),
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


def peer_methods(pipe, deepcache_interval: int = 3) -> dict[str, PeerMethod]:
    """The peer methods that apply to `pipe`'s denoiser, by display name (unavailable ones too):
    the registry's peers that have a default setting, in its order."""
    options = {"deepcache": {"interval": deepcache_interval}}
    methods: list[PeerMethod] = []
    for peer in REGISTRY.values():
        if peer.default is None or peer.unfit(pipe):
            continue
        name, setting, make = peer.default(pipe, **options.get(peer.name, {}))
        methods.append(PeerMethod(name, peer.package, setting, make, peer.missing()))
    return {m.name: m for m in methods}

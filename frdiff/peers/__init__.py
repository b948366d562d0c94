"""Peer methods a user would pick instead of frdiff, run unmodified from their own packages.

    deep_cache       DeepCache's `DeepCacheSDHelper` (PyPI `DeepCache`) on UNet pipelines
    diffusers_hooks  diffusers' FirstBlockCache, MagCache (calibrated first), TaylorSeer,
                     SeaCache, FasterCache and PyramidAttentionBroadcast hooks
    cache_dit        cache-dit's DBCache (optionally with its TaylorSeer calibrator): cache-dit's own
                     adapter for the pipeline class where it has one, else wired on DiT and FLUX
    registry         the one list of peers that the sweep, the app and the benchmarks read;
                     `peer_methods(pipe)`: those offered that apply to a pipeline (or those named)
    counting         `counted_macs` / `counted_speedup`: the compute a peer actually ran

Each peer is a context manager that validates, installs, yields, and on exit (also on an
exception) removes every hook and puts back every attribute it changed: the model then runs
bit-for-bit as before. A package that is missing or fails to import is reported by
`peer_methods` (`available`, `reason`) and the registry (`Peer.missing`), or raised as
PeerUnavailable when the peer is entered, never on import of this package.

How to add a peer: its context manager (and `*_unfit` check) in the module of its family, or a
new module here; one entry in `registry.REGISTRY`; its sweep settings in
`frdiff.glyphs.peer_rows`; and one test in tests/test_peers.py.
"""

from ._common import PeerUnavailable
from .cache_dit import DBCacheSettings, dbcache, dbcache_unfit
from .counting import counted_macs, counted_speedup
from .deep_cache import DeepCacheSettings, deepcache, deepcache_unfit
from .diffusers_hooks import (CACHE_CONTEXT, TAYLORSEER_BLOCKS, FasterCacheSettings, FirstBlockCacheSettings,
                              MagCacheSettings, PABSettings, SeaCacheSettings, TaylorSeerSettings, attention_unfit,
                              blocks_unfit, calibrate_mag_cache, faster_cache, faster_cache_unfit, first_block_cache,
                              first_block_cache_unfit, mag_cache, pyramid_attention_broadcast, sea_cache,
                              sea_cache_unfit, taylorseer_cache)
from .registry import REGISTRY, Peer, PeerMethod, peer_methods

__all__ = ["CACHE_CONTEXT", "REGISTRY", "TAYLORSEER_BLOCKS", "DBCacheSettings", "DeepCacheSettings",
           "FasterCacheSettings", "FirstBlockCacheSettings", "MagCacheSettings", "PABSettings", "Peer",
           "PeerMethod", "PeerUnavailable", "SeaCacheSettings", "TaylorSeerSettings", "attention_unfit",
           "blocks_unfit", "calibrate_mag_cache", "counted_macs", "counted_speedup", "dbcache", "dbcache_unfit",
           "deepcache", "deepcache_unfit", "faster_cache", "faster_cache_unfit", "first_block_cache",
           "first_block_cache_unfit", "mag_cache",
           "peer_methods", "pyramid_attention_broadcast", "sea_cache", "sea_cache_unfit", "taylorseer_cache"]

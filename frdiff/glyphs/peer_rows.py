"""The peers of a sweep (`python -m frdiff sweep --peers ...`) as rows under the sweep's protocol:
the peers of `frdiff.peers.REGISTRY` (which package each needs, where it applies, how it runs)
at the settings below, and the two sampler shortcuts, which frdiff runs itself.

    deepcache        DeepCache on a UNet: intervals 2, 3, 5 from branch 0, interval 3 from branch 1
    fewer-steps      the sweep's sampler with steps / 1.5, 2, 2.5 and 3
    dpmsolver        DPM-Solver++ (2M) with as many steps, against the sweep's full compute
    magcache         diffusers' MagCache, calibrated first, thresholds 0.06 to 0.4
    firstblockcache  diffusers' FirstBlockCache, thresholds 0.08, 0.12, 0.2
    taylorseer       diffusers' TaylorSeer on the transformer blocks, intervals 2, 3, 5 (order 1)
    pab              diffusers' PyramidAttentionBroadcast on the self-attention, every 2 and 3 calls
    seacache         diffusers' SeaCache (its generic path: the glyphs as its visual latents),
                     thresholds 0.1, 0.25, 0.5
    fastercache      diffusers' FasterCache (attention every 2nd call, CFG branch approximated
                     at 4 of 5 steps); image-shaped outputs only (DiT, not FLUX)
    dbcache          cache-dit's DBCache (F1B0 threshold 0.08, F1B1 threshold 0.2, warm-up 8; under
                     40 steps also F1B0 thresholds 0.2 and 0.4 with steps / 7 warm-up steps)
    dbcache-taylorseer  the same with cache-dit's TaylorSeer calibrator (order 1)

A peer that does not apply to the model, or (in `all`) whose package is missing, is a reported
row (`status`, `reason`, no figures), never a hole in the table. A peer named explicitly whose
package is missing is an error before anything is measured, with the command that installs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from .. import peers
from ..peers import REGISTRY, Peer
from ..schedulers import scheduler_names
from .bench import context_row, fewer_steps_row

INSTALL = "pip install 'frdiff[peers]'"
BUDGETS = (1.5, 2.0, 2.5, 3.0)  # the speedups the issue compares at; fewer-steps rows aim there


@dataclass(frozen=True)
class SweepPeer:
    """`applies(pipe, scheduler)` is '' or why the peer cannot run there; `settings(pipe,
    steps, labels)` gives (method, setting, make_context) triples, or for sampler peers
    (method, setting, fewer, scheduler) rows run by `fewer_steps_row`. `peer`: its entry in
    `frdiff.peers.REGISTRY` (None for the samplers, which frdiff itself runs)."""

    name: str
    applies: Callable[..., str]
    settings: Callable[..., list[tuple]]
    peer: Peer | None = None

    def missing(self) -> str:
        """'' when its package imports, else the reason and how to install it."""
        reason = self.peer.missing() if self.peer is not None else ""
        return f"{reason}; install it with {INSTALL} (or pip install {self.peer.package})" if reason else ""


def glyph_latents(pipe) -> Callable:
    """SeaCache's `raw_vision_callback` for a glyph pipeline: the call's images as (C, 1, H, W),
    unpacked from FLUX's patch tokens where the model takes tokens."""
    from .pipeline import unpack_patches

    def latents(module, args, kwargs) -> list:
        x = args[0] if args else kwargs["hidden_states"]
        if x.ndim == 3:  # (B, S, C p p) tokens
            side = pipe.resolution
            x = unpack_patches(x, pipe.config.patch_size, (x.shape[0], pipe.image_channels, side, side))
        return [image.unsqueeze(1) for image in x]

    return latents


def _not_dpm(pipe, scheduler: str) -> str:
    if scheduler == "dpmsolver":
        return "the sweep's sampler is DPM-Solver++ already: its fewer-steps rows are the fewer-steps peer"
    return ""


def _counts(steps: int) -> list[int]:
    return sorted({max(1, round(steps / b)) for b in BUDGETS}, reverse=True)


# -- the settings each registered peer is measured at: (peer, pipe, steps, labels) -> rows -----
def _deepcache(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("DeepCache", f"interval {i}, branch {b}", functools.partial(peer.context, pipe, i, b))
            for i, b in ((2, 0), (3, 0), (5, 0), (3, 1))]


def _mag_cache(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    # calibrated once on a fixed call of this sampler and step count (untimed, outside the rows)
    ratios = peers.calibrate_mag_cache(pipe, steps, class_labels=labels[:4], output_type="pt")
    return [("MagCache (diffusers)", f"threshold {t}, calibrated on 4 glyphs",
             functools.partial(peer.context, pipe, ratios, t, num_inference_steps=steps))
            for t in (0.06, 0.12, 0.24, 0.4)]


def _first_block_cache(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("FirstBlockCache (diffusers)", f"threshold {t}", functools.partial(peer.context, pipe, t))
            for t in (0.08, 0.12, 0.2)]


def _taylorseer(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("TaylorSeer (diffusers)", f"interval {i}, order {o}, first 3 steps computed, on "
             f"{peers.TAYLORSEER_BLOCKS}", functools.partial(peer.context, pipe, i, o))
            for i, o in ((2, 1), (3, 1), (5, 1))]


def _pab(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("PyramidAttentionBroadcast (diffusers)", f"self-attention every {k} calls, timesteps {lo}-{hi}",
             functools.partial(peer.context, pipe, k, (lo, hi))) for k, (lo, hi) in ((2, (100, 800)), (3, (100, 800)))]


def _sea_cache(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("SeaCache (diffusers)", f"threshold {t}, residual order 1, at most 2 cached in a row",
             functools.partial(peer.context, pipe, t, raw_vision_callback=glyph_latents(pipe)))
            for t in (0.1, 0.25, 0.5)]


def _faster_cache(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
    return [("FasterCache (diffusers)", f"attention every {a} calls, CFG branch approximated {u - 1} of {u} steps",
             functools.partial(peer.context, pipe, a, u)) for a, u in ((2, 5), (3, 5))]


def _dbcache(order: int) -> Callable[..., list[tuple]]:
    def settings(peer: Peer, pipe, steps: int, labels: list[int]) -> list[tuple]:
        grid = [(0.08, 0, 8), (0.2, 1, 8)]
        if steps < 40:  # short schedules (FLUX-style 28 steps): 8 warm-up steps leave little to cache
            warmup = max(2, steps // 7)
            grid += [(0.2, 0, warmup), (0.4, 0, warmup)]
        rows = []
        for threshold, back, warmup in grid:
            s = peers.DBCacheSettings(threshold, back=back, warmup=warmup, taylorseer_order=order)
            rows.append(("cache-dit DBCache" + (" + TaylorSeer" if order else ""), s.describe(),
                         functools.partial(peer.context, pipe, threshold, back=back, warmup=warmup,
                                           taylorseer_order=order)))
        return rows
    return settings


SETTINGS: dict[str, Callable[..., list[tuple]]] = {
    "deepcache": _deepcache, "magcache": _mag_cache, "firstblockcache": _first_block_cache,
    "taylorseer": _taylorseer, "pab": _pab, "seacache": _sea_cache, "fastercache": _faster_cache,
    "dbcache": _dbcache(0), "dbcache-taylorseer": _dbcache(1)}


def _registered(name: str) -> SweepPeer:
    """The sweep's view of a registered peer: the registry's applicability, these settings."""
    peer = REGISTRY[name]
    return SweepPeer(name, lambda pipe, scheduler: peer.unfit(pipe), functools.partial(SETTINGS[name], peer), peer)


_SAMPLERS = (
    SweepPeer("fewer-steps", lambda pipe, scheduler: "", lambda pipe, steps, labels: [
        ("fewer steps", "", k, None) for k in _counts(steps)]),
    SweepPeer("dpmsolver", _not_dpm, lambda pipe, steps, labels: [
        ("other sampler", "", k, "dpmsolver") for k in _counts(steps)]),
)
# the order of the sweep's rows: DeepCache, the sampler shortcuts, then the other registered peers
PEERS: dict[str, SweepPeer] = {p.name: p for p in (
    _registered("deepcache"), *_SAMPLERS, *(_registered(name) for name in REGISTRY if name != "deepcache"))}


def resolve(names: list[str]) -> tuple[list[SweepPeer], bool]:
    """The peers named (`all` for every one) and whether `all` was asked; a ValueError for an
    unknown name (listing the known ones) or a missing package of a peer named explicitly."""
    names = [n.strip().lower() for n in names if n.strip()]
    every = "all" in names
    unknown = [n for n in names if n != "all" and n not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer {', '.join(map(repr, unknown))}; known peers: all, {', '.join(PEERS)}")
    chosen = list(PEERS.values()) if every else [PEERS[n] for n in dict.fromkeys(names)]
    if not every:
        for peer in chosen:
            if reason := peer.missing():
                raise ValueError(f"peer {peer.name!r} is not installed: {reason}")
    return chosen, every


def reported_row(peer: SweepPeer, status: str, reason: str) -> dict:
    """A peer that did not run: named, with why, and no figures."""
    return {"method": peer.name, "setting": "-", "status": status, "reason": reason}


def peer_jobs(pipe, classifier, chosen: list[SweepPeer], scheduler: str, common: dict,
              skip_fewer: set[int] = frozenset()) -> tuple[list[Callable], list[dict]]:
    """Row jobs for `collect_rows`, and the reported rows of peers that cannot run here."""
    if scheduler not in scheduler_names(pipe):
        raise ValueError(f"unknown scheduler {scheduler!r}; this model's are {', '.join(scheduler_names(pipe))}")
    jobs: list[Callable] = []
    reported: list[dict] = []
    steps, labels = common["steps"], common["labels"]
    for peer in chosen:
        if reason := peer.applies(pipe, scheduler):
            reported.append(reported_row(peer, "not applicable", reason))
            continue
        if reason := peer.missing():
            reported.append(reported_row(peer, "not installed", reason))
            continue
        for item in peer.settings(pipe, steps, labels):
            if len(item) == 4:  # a sampler row
                _, _, fewer, other = item
                if other is None and fewer in skip_fewer:
                    continue  # the sweep's own fewer-steps rows have it
                jobs.append(lambda b, k=fewer, o=other: fewer_steps_row(pipe, classifier, k, baseline=b,
                                                                        scheduler=o, **common))
            else:
                method, setting, make = item
                jobs.append(lambda b, m=method, s=setting, c=make, n=peer.name: context_row(
                    pipe, classifier, m, s, c, baseline=b, peer=n, **common))
    return jobs, reported

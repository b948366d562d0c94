"""What an accelerated run did and what it cost: `RunStats`, and the `Ledger` that fills it.

The ledger counts each model call at the MACs the one cost model (`cost.CallCosts`) gives its
block modes: the first full call of each CFG branch is counted operation by operation, every
later call is priced from that count. A half-batch call (uncond R) costs half of the same call
on the full batch (every counted operation is linear in the batch)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from .cost import CallCosts, MacCounter


@dataclass
class RunStats:
    """What an accelerated context did, summed over every pipeline call inside it."""

    kept_runs: ClassVar[int] = 64  # runs whose keyframe lists a long-lived context keeps

    modules_reused: dict = field(default_factory=dict)  # FR units by kind, and skip blocks
    network_calls: int = 0  # model forwards that ran (full or FR)
    network_calls_skipped: int = 0  # lam = 0 steps: the keyframe prediction was reused
    fr_calls: int = 0  # forwards with at least one block in F or S mode
    half_batch_calls: int = 0  # uncond R: forwards on the conditional CFG half only
    baseline_macs: int = 0  # what the same calls cost without frdiff
    executed_macs: int = 0
    peak_cache_bytes: int = 0
    cache_misses: int = 0  # reuse asked for but no cache (computed instead)
    probe_calls: int = 0  # adaptive lam = 0 steps: no block after the probe ran
    keyframe_steps: list = field(default_factory=list)  # the last kept_runs runs' keyframe steps
    sampling_runs: int = 0  # set_timesteps calls, all of them
    keyframes_total: int = 0  # keyframe steps over all runs

    @property
    def ideal_speedup(self) -> float:
        return self.baseline_macs / self.executed_macs if self.executed_macs else float("nan")

    @property
    def mean_keyframes(self) -> float:
        """Keyframe steps per sampling run (adaptive policies choose them per input)."""
        return self.keyframes_total / self.sampling_runs if self.sampling_runs else float("nan")

    def start_run(self) -> None:
        """A sampling run begins; only the last kept_runs keep their keyframe lists."""
        self.sampling_runs += 1
        self.keyframe_steps.append([])
        del self.keyframe_steps[:-self.kept_runs]

    def add_keyframe(self, step: int) -> None:
        self.keyframes_total += 1
        self.keyframe_steps[-1].append(step)

    def as_dict(self) -> dict:
        return asdict(self) | {"ideal_speedup": self.ideal_speedup,
                               "mean_keyframes": self.mean_keyframes}


@dataclass(frozen=True)
class Call:
    """One model call as the ledger records it."""

    branch: int  # the CFG branch (its index in the step's calls)
    keyframe: bool
    lam: float  # the weight of the call's own output (0: no call, the keyframe's prediction)
    modes: tuple[str, ...]  # one letter per policy block
    probe_only: bool = False  # adaptive lam = 0: the blocks after the probe returned zeros
    half: bool = False  # uncond R: the conditional half of the batch only


class Ledger:
    """Counts the first full call of each branch and prices every call into `stats`."""

    def __init__(self, model, blocks, stats: RunStats):
        self.model, self.blocks, self.stats = model, blocks, stats
        self.costs: dict[int, CallCosts] = {}  # per branch, counted at its first full call
        self.counter: MacCounter | None = None  # while a call is being counted
        self._macs: dict[tuple[str, int], int] = {}  # (modes, branch) -> MACs of such a call

    def needs_count(self, branch: int) -> bool:
        return branch not in self.costs

    def count(self, original, branch: int, args, kwargs, regions=None):
        """Run a full call with every operation counted: its costs price the branch's calls."""
        try:
            eager = regions.eager_calls() if regions else contextlib.nullcontext()
            with eager, MacCounter(self.model) as self.counter:  # hooks run eagerly
                out = original(*args, **kwargs)
            self.costs[branch] = CallCosts.count(self.counter, self.blocks)
        finally:
            self.counter = None
        return out

    def record(self, call: Call, caches) -> None:
        """Add one call to the stats (`caches`: its peak size and misses so far)."""
        s, costs = self.stats, self.costs.get(call.branch) or self.costs[0]
        share = 0.5 if call.half else 1.0
        s.peak_cache_bytes = max(s.peak_cache_bytes, caches.peak_bytes)
        s.cache_misses = caches.misses
        s.baseline_macs += costs.total
        if call.lam == 0.0:
            s.network_calls_skipped += 1
            if call.probe_only:
                s.probe_calls += 1
                s.executed_macs += costs.probe_only
            return
        s.network_calls += 1
        s.half_batch_calls += call.half
        if call.keyframe:
            s.executed_macs += share * costs.total
            return
        s.fr_calls += 1
        key = ("".join(call.modes), call.branch if call.branch in self.costs else 0)  # joined for FR calls only
        if key not in self._macs:
            self._macs[key] = self.costs[key[1]].of_modes(key[0])
        s.executed_macs += share * self._macs[key]

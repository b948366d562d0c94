"""The parts of frdiff's sampler state, shared by accelerate's `Run` and the tuner's `GatedRun`.

- `CacheStore` (here): the caches of one sampling run, per (owner, CFG branch);
  `ForecastStore` reads them extrapolated from their last two keyframes (a policy's `forecast`).
- `install_reuse` (here): the replaced forwards of policy blocks (reuse.py) and FR units
  (each installed by its kind, units.py), on a `Patches` stack (patching.py).
- `CallCosts` (cost.py): the one cost model, counted from a real call.
- the mixers (mixing.py): `EpsHold` or `X0Forecast`, chosen once per scheduler family.
- the step clock (clock.py), driven by the scheduler.

A state (Run or GatedRun) is a `reuse.ReuseState`: it answers the reuse forwards with two
methods, and they ask it nothing else:

    reuse(owner, block, mode) -> the cached value to use instead of computing, or None
    keep(owner, block, mode, fresh) -> the value to use after computing `fresh`

where `mode` is the letter that reuses this owner ("F" for an FR unit, "S" for a whole
block) and `block` its policy block's index. `Run` answers from hard modes: reuse where the
step's mode says so and a cache exists, else compute and store. `GatedRun` computes
everything and keeps `w * cache + (1 - w) * fresh`, w being the soft reuse gate (1 - k for
FR units, (1 - k) z for whole blocks), so with binary gates the tuner's forward pass is
exactly the sampler its policy later runs on, and the gradient flows through the difference.
"""

from __future__ import annotations

import contextlib

import torch

from .modes import Mode
from .patching import Patches
from .pytree import cast_like, map_tensors, nbytes, zip_tensors
from .reuse import ReuseState, block_forward, residual_block_forward
from .targets import PolicyBlock


class CacheStore:
    """Cached values per (owner, branch). `branch` is set by the state at each model call,
    `half_batch` around a call on the conditional CFG half (uncond R).

    With `cache_dtype`, values are stored in that dtype and read back in their own; with
    `detach=False` (the tuner) they keep their graph until `detach_all()`. `peak_bytes` is
    the most held at once; `misses` counts reads that found nothing."""

    def __init__(self, cache_dtype: torch.dtype | None = None, detach: bool = True):
        self.cache_dtype, self.detach = cache_dtype, detach
        self.branch = 0
        self._rows: int | None = None  # a half-batch call (uncond R): the rows from here on run
        self.values: dict[tuple[int, int], object] = {}
        self._bytes: dict[tuple[int, int], int] = {}
        self._dtypes: dict[tuple[int, int], object] = {}  # with cache_dtype: the originals
        self.peak_bytes = 0
        self.misses = 0

    def put(self, owner, value) -> None:
        key = (id(owner), self.branch)
        if self._rows is not None:  # the rows that ran are fresh, the others keep their values
            if key not in self.values:
                return
            old = self._held(key)
            value = zip_tensors(lambda new, held: torch.cat([held[:self._rows].to(new.dtype), new]),
                                value, old)
        if self.cache_dtype is not None:
            self._dtypes[key] = map_tensors(lambda t: t.dtype, value)
        if self.detach or self.cache_dtype is not None:
            value = map_tensors(lambda t: (t.detach() if self.detach else t).to(
                self.cache_dtype or t.dtype), value)
        self.values[key] = value
        self._bytes[key] = nbytes(value)
        self.peak_bytes = max(self.peak_bytes, sum(self._bytes.values()))

    def get(self, owner, count_miss: bool = True):
        key = (id(owner), self.branch)
        if key not in self.values:
            self.misses += count_miss
            return None
        return self.rows_of(self._held(key))

    def _held(self, key):
        """The value held for `key`, in its original dtype, every row."""
        value = self.values[key]
        return value if self.cache_dtype is None else cast_like(value, self._dtypes[key])

    def rows_of(self, value):
        """`value`, or in a half-batch call the rows that run."""
        if self._rows is None:
            return value
        return map_tensors(lambda t: t[self._rows:], value)

    @contextlib.contextmanager
    def half_batch(self, rows: int):
        """Inside, the calls run on the rows from `rows` on: reads give those rows, writes
        refresh them and keep the others (an owner with nothing held stores nothing)."""
        self._rows = rows
        try:
            yield
        finally:
            self._rows = None

    def clear(self) -> None:
        self.values.clear()
        self._bytes.clear()
        self._dtypes.clear()

    def detach_all(self) -> None:
        """Cut the graph every cached value holds (the tuner's truncated back-propagation)."""
        self.values = {k: map_tensors(lambda t: t.detach(), v) for k, v in self.values.items()}

    def snapshot(self) -> tuple:
        return dict(self.values), dict(self._bytes), dict(self._dtypes), self.peak_bytes, self.misses

    def restore(self, snapshot: tuple) -> None:
        values, sizes, dtypes, self.peak_bytes, self.misses = snapshot
        self.values, self._bytes, self._dtypes = dict(values), dict(sizes), dict(dtypes)


class ForecastStore(CacheStore):
    """A CacheStore whose reads forecast: a value stored at two keyframes is read as the line
    through them, taken to the current coordinate `at` (the step index, or the step's log-SNR):
    v1 + (v1 - v0) (at - a1) / (a1 - a0). With one stored value it is read as it is."""

    def __init__(self, cache_dtype: torch.dtype | None = None):
        super().__init__(cache_dtype)
        self.at = 0.0
        self._when: dict[tuple[int, int], float] = {}  # coordinate of the value held
        self._before: dict[tuple[int, int], tuple[float, object]] = {}  # the one before it

    def put(self, owner, value) -> None:
        key = (id(owner), self.branch)
        if key in self.values and self._when[key] != self.at:
            self._before[key] = (self._when[key], self.values[key])
        super().put(owner, value)
        if key not in self.values:  # a half-batch call with nothing held: nothing stored
            return
        self._when[key] = self.at
        if key in self._before:  # both values are held
            self._bytes[key] += nbytes(self._before[key][1])
            self.peak_bytes = max(self.peak_bytes, sum(self._bytes.values()))

    def get(self, owner, count_miss: bool = True):
        value = super().get(owner, count_miss)
        key = (id(owner), self.branch)
        if value is None or key not in self._before:
            return value
        (a0, v0), a1 = self._before[key], self._when[key]
        if self.cache_dtype is not None:
            v0 = cast_like(v0, self._dtypes[key])
        w = (self.at - a1) / (a1 - a0)
        return zip_tensors(lambda x1, x0: x1 + w * (x1 - x0), value, self.rows_of(v0))

    def clear(self) -> None:
        super().clear()
        self._when.clear()
        self._before.clear()

    def snapshot(self) -> tuple:
        return super().snapshot(), dict(self._when), dict(self._before)

    def restore(self, snapshot: tuple) -> None:
        base, when, before = snapshot
        super().restore(base)
        self._when, self._before = dict(when), dict(before)


def check_residual(block: PolicyBlock) -> None:
    """Mode R needs a residual block; else a ValueError naming the block."""
    if not block.residual:
        raise ValueError(f"mode R (residual reuse) does not apply to {block.name}: it is not a "
                         f"residual block (those are DiT/PixArt transformer blocks and a UNet's "
                         f"mid block); use S or F there")


def check_modes(policy, blocks: list[PolicyBlock]) -> None:
    """Refuse a policy that uses mode R on a block that is not residual (before any work)."""
    for index, block in enumerate(blocks):
        if Mode.RESIDUAL in policy.block_modes(index):
            check_residual(block)


def install_reuse(blocks: list[PolicyBlock], state: ReuseState, patches: Patches,
                  columns: list[set[str]] | None = None) -> dict[str, int]:
    """Replace the forwards of the blocks (S, R) and FR units (F) that `columns` (the modes each
    block's policy column uses; None: every mode the block has, as the tuner needs) can reuse;
    returns how many of each kind (unit kinds by name, and blocks) were installed."""
    counts: dict[str, int] = {}
    for index, block in enumerate(blocks):
        column = columns[index] if columns is not None else (
            {Mode.SKIP, Mode.FEATURE_REUSE} | ({Mode.RESIDUAL} if block.residual else set()))
        if Mode.RESIDUAL in column:  # inside S's wrapper: an S step returns before reaching it
            check_residual(block)
            patches.forward(block.module, lambda f, b=block, i=index: residual_block_forward(b, i, state, f))
            counts["residual_blocks"] = counts.get("residual_blocks", 0) + 1
        if Mode.SKIP in column:
            patches.forward(block.module, lambda f, b=block, i=index: block_forward(b, i, state, f))
            counts["skip_blocks"] = counts.get("skip_blocks", 0) + 1
        if Mode.FEATURE_REUSE not in column:
            continue
        for unit in block.units:
            unit.kind.install(unit, state, patches)
            counts[unit.kind.name] = counts.get(unit.kind.name, 0) + 1
    return counts

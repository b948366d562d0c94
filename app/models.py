"""Per-request model views: every run borrows a pipeline nobody else is using.

`frdiff.accelerate`, DeepCache and diffusers' cache hooks all replace forwards on the model they
are given, and every sampler keeps its own step state, so two requests must never share a
denoiser object or a scheduler. The pool keeps, per model, `APP_CONCURRENCY` replicas that share
the weight tensors (one copy of the parameters in memory) but are distinct module objects; a
request borrows one and gets a scheduler of its own, built from the model's pristine scheduler
config (so no setting left by another sampler's config leaks in), and gives it back at the end.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import queue
import threading
import time
from functools import lru_cache

import torch

from frdiff import block_depths, load_pipeline
from frdiff.clock import drive_clock
from frdiff.targets import find_blocks
from frdiff.glyphs import GlyphPipeline, load_classifier
from frdiff.schedulers import swapped

MODELS = ("glyph-unet", "glyph-dit", "glyph-flux")
SCHEDULERS = {"DDIM": "ddim", "DPM-Solver++": "dpmsolver", "Euler": "euler"}
FLOW_MODELS = ("glyph-flux",)  # rectified flow: Euler (FlowMatchEuler) or DPM-Solver++ on flow sigmas


def model_defaults(model: str) -> tuple[str, int]:
    """The sampler and step count a model is shown with: DDIM 50, or Euler 28 for flow models."""
    return ("Euler", 28) if model in FLOW_MODELS else ("DDIM", 50)


def check_sampler(scheduler: str, model: str | None = None) -> None:
    """A ValueError for an unknown sampler, or one `model` cannot use (DDIM on a flow model)."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown sampler {scheduler!r}; choose from {', '.join(SCHEDULERS)}")
    if model in FLOW_MODELS and scheduler == "DDIM":
        raise ValueError(f"{model} is a flow-matching model: choose Euler or DPM-Solver++ (DDIM "
                         f"samples alphas_cumprod schedules)")


def env_int(name: str, default: int, low: int = 1) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError as err:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from err
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def app_concurrency() -> int:
    """How many model runs may go on at once (env FRDIFF_APP_CONCURRENCY, default 1: 2 CPU cores)."""
    return env_int("FRDIFF_APP_CONCURRENCY", 1)


def compute_threads() -> int:
    """Intra-op threads of each model run (env FRDIFF_APP_THREADS, default 1). Requests run in
    the server's worker threads, where PyTorch's OpenMP team wakes slowly for every small
    operation: on the 2-core CPU this app is sized for, a 50-step glyph-unet call takes 1.5 s
    at 2 threads there, 0.7 s at 1 (0.6 s at 2 in a main thread). One thread a run also lets
    concurrent runs share the cores instead of fighting over them."""
    return env_int("FRDIFF_APP_THREADS", 1)


def threads_here() -> None:
    """Give the calling worker thread the runs' intra-op thread count. A thread's count is its own
    (OpenMP's), and a handler's steps may run in different worker threads: numbers computed
    outside `ModelPool.borrow` (metrics) must call this, or a reduction split over 1 or 2 threads
    differs in its last bits with the thread's history."""
    torch.set_num_threads(compute_threads())


def time_limit() -> int:
    """Seconds a request may sample for (env FRDIFF_APP_TIME_LIMIT, default 120)."""
    return env_int("FRDIFF_APP_TIME_LIMIT", 120)


class TimeLimitExceeded(ValueError):
    """A request sampled for longer than its time limit (a ValueError: its message is shown)."""


def replica(pipe: GlyphPipeline) -> GlyphPipeline:
    """A pipeline whose denoiser is a new module object sharing `pipe`'s weight tensors."""
    model = pipe.denoiser
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    encoder = pipe.label_encoder  # glyph-flux's class tokens: shared too, never patched
    if encoder is not None:
        shared |= {id(t): t for t in encoder.parameters()}
    twin = copy.deepcopy(model, memo=shared)
    return GlyphPipeline.from_model(twin, copy.deepcopy(pipe.scheduler), labels=pipe.labels,
                                    label_encoder=None if encoder is None else copy.deepcopy(encoder, memo=shared),
                                    resolution=pipe.config.resolution)


class ModelPool:
    """Replicas of each embedded model, lent to one request at a time."""

    def __init__(self, size: int):
        self.size = size
        self._free: dict[str, queue.Queue] = {}
        self._configs: dict[str, dict] = {}
        self._scheduler_cls: dict[str, type] = {}  # each model's own (a lent pipe's is swapped)
        self._base: dict[str, GlyphPipeline] = {}
        self._spare: dict[str, GlyphPipeline] = {}  # never lent: for measurements like block costs
        self._lock = threading.Lock()

    def _queue(self, name: str) -> queue.Queue:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        with self._lock:  # the first request for a model loads it, the others wait for it
            if name not in self._free:
                base = load_pipeline(name)
                # inference only, and the weights are shared by every replica: no request may
                # change them (the tuner freezes and then restores each parameter's flag)
                base.denoiser.requires_grad_(False)
                if base.label_encoder is not None:
                    base.label_encoder.requires_grad_(False)
                self._configs[name] = dict(base.scheduler.config)
                self._scheduler_cls[name] = type(base.scheduler)
                free: queue.Queue = queue.Queue()
                for pipe in [base] + [replica(base) for _ in range(self.size - 1)]:
                    pipe.set_progress_bar_config(disable=True)
                    free.put(pipe)
                self._spare[name] = replica(base)  # made before any request can patch `base`
                self._spare[name].set_progress_bar_config(disable=True)
                self._free[name] = free
                self._base[name] = base
            return self._free[name]

    @contextlib.contextmanager
    def borrow(self, name: str, scheduler: str = "DDIM", seconds: float | None = None):
        """An exclusive pipeline for `name` with a fresh `scheduler` ("DDIM", "DPM-Solver++",
        "Euler"). Sampling with it for longer than `seconds` (default `time_limit()`, counted from
        when it is lent) raises TimeLimitExceeded at the next scheduler step."""
        check_sampler(scheduler, name)
        limit = time_limit() if seconds is None else seconds
        free = self._queue(name)
        pipe = free.get()
        threads_here()
        try:
            pristine = self._scheduler_cls[name].from_config(self._configs[name])
            pipe.scheduler = swapped(pristine, SCHEDULERS[scheduler])
            deadline = time.monotonic() + limit

            def in_time(out):
                if time.monotonic() > deadline:
                    raise TimeLimitExceeded(f"this request ran past its time limit of {limit:g} s "
                                            f"(FRDIFF_APP_TIME_LIMIT): try fewer glyphs or steps")
                return out

            restore = drive_clock(pipe.scheduler, lambda steps: None, in_time)  # on this request's scheduler only
            try:
                yield pipe
            finally:
                restore()
        finally:
            free.put(pipe)

    def ensure(self, size: int) -> None:
        """Grow to `size` replicas per model (for a server allowed more concurrent runs)."""
        with self._lock:
            for name, free in self._free.items():
                for _ in range(size - self.size):
                    pipe = replica(self._base[name])
                    pipe.set_progress_bar_config(disable=True)
                    free.put(pipe)
            self.size = max(self.size, size)

    def peek(self, name: str) -> GlyphPipeline:
        """A loaded pipeline for read-only questions (its block names, its labels): never sample with it."""
        self._queue(name)
        return self._base[name]

    def spare(self, name: str) -> GlyphPipeline:
        """A replica no request ever borrows (weights shared, modules its own), copied from the
        model before any request could patch it; callers serialise their use of it."""
        self._queue(name)
        return self._spare[name]

    def warm_up(self, name: str) -> None:
        """One short run per replica: the first convolutions on a CPU pick their kernels slowly."""
        free = self._queue(name)
        with self._lock:
            size = self.size
        pipes = [free.get() for _ in range(size)]
        threads_here()  # as the requests will run
        try:
            for pipe in pipes:
                pipe(["A"], num_inference_steps=2, generator=torch.Generator().manual_seed(0))
        finally:
            for pipe in pipes:
                free.put(pipe)


POOL = ModelPool(app_concurrency())


@lru_cache(maxsize=None)
def policy_blocks(model: str) -> list:
    """The model's policy blocks (frdiff.targets.PolicyBlock: name, depth, residual), read once."""
    return find_blocks(POOL.peek(model).denoiser)


def blocks_of(model: str) -> dict[str, int]:
    """Policy block names of a model and their depth (read once; never changes)."""
    return block_depths(POOL.peek(model))


@lru_cache(maxsize=None)
def labels_of(model: str) -> str:
    return POOL.peek(model).labels


@lru_cache(maxsize=1)
def classifier():
    """The project's glyph classifier (eval mode, only ever read: safe to share)."""
    return load_classifier()

"""The Learn tab: Auto-FR (`frdiff.autofr`) on the current model, sampler and steps, watched
as it learns, then compared on the user's glyphs and seed (never used in tuning) with the
uniform policy of the same estimated time and with fewer steps.

The tuner's budget is wall-clock time on this server (`TuneConfig(cost="measured")`): each
policy block is profiled once per model, sampler and glyph count (`frdiff.profile`, a few
seconds at PROFILE_STEPS steps) and the table is then shared, read-only, by every learning
run. A policy tuned to counted MACs measured slower than uniform FR of the same count here;
one tuned to measured seconds is what a visitor's clock sees.

The tuner runs in a worker thread that owns its borrowed pipeline; the page's generator reads
its events (progress, every projected policy) from a queue. The Stop button (a cancelled event
need not close its generator at once), a page that stops listening (no heartbeat from the
generator for ABANDONED_S) and the time limit all stop the tuner at its next progress callback,
by an exception: the tuner restores the model, the pipeline goes back to the pool, and nothing
is loaded into the editor.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass

from frdiff import KeyframePolicy
from frdiff.autofr import Tuner, TuneConfig
from frdiff.glyphs import load_calibration
from frdiff.profile import CostTable, profile

from . import inputs
from .compare import score
from .methods import FULL, run_plain, run_policy
from .models import POOL, SCHEDULERS, env_int

LEARNED, UNIFORM = "Auto-FR (learned here)", "Uniform FR, same estimated time"
TARGETS = (1.2, 3.0)  # the slider's range of speedups (measured seconds on this server)
PROFILE_STEPS = 12  # a block's time does not depend on the step count: a short profile does
ABANDONED_S = 5.0  # no heartbeat from the page's generator for this long: nobody is listening


@dataclass(frozen=True)
class LearnLimits:
    """What one learning run may use (raise them on a bigger machine)."""

    iterations: int = env_int("FRDIFF_APP_TUNER_ITERATIONS", 4)  # gradient steps, reuse family
    seconds: int = env_int("FRDIFF_APP_TUNER_SECONDS", 240)  # wall time, then it stops


LEARN_LIMITS = LearnLimits()


class Stopped(Exception):
    """The learning run was cancelled or ran past its time limit."""


# what a learning run reports, in order: Progress many times, Start once, Check per projected
# policy, then Done or Failed
@dataclass(frozen=True)
class Progress:
    stage: str  # "profile", "starts", "descent", "compare"
    done: int
    total: int


@dataclass(frozen=True)
class Start:
    name: str  # the best structured start
    policy: KeyframePolicy


@dataclass(frozen=True)
class Check:
    check: object  # frdiff.autofr.TuneCheck: a projected policy and its held-out loss


@dataclass(frozen=True)
class Done:
    result: object  # frdiff.autofr.TuneResult
    runs: list
    rows: list
    seconds: float


@dataclass(frozen=True)
class Failed:
    error: Exception


def target_of(value) -> float:
    low, high = TARGETS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"the target speedup must be a number from {low} to {high}, got {value!r}")
    return float(value)


_TABLES: dict[tuple, CostTable] = {}  # (model, sampler, glyphs) -> this server's measured costs
_TABLES_LOCK = threading.Lock()


def cost_table(pipe, s) -> CostTable:
    """The measured block costs of `pipe` at the user's glyph count: profiled on the first
    learning run that needs them (on the borrowed pipeline, so no other request shares it
    meanwhile), then reused; a table is never changed once made."""
    key = (s.model, s.scheduler, len(s.glyphs))
    with _TABLES_LOCK:
        table = _TABLES.get(key)
    if table is None:
        table = profile(pipe, PROFILE_STEPS, {"class_labels": list(s.glyphs), "output_type": "pt"},
                        repeats=2, progress=False)
        with _TABLES_LOCK:
            table = _TABLES.setdefault(key, table)
    return table


def config(steps_total: int, mixing, on_check, on_progress, calibration, table: CostTable) -> TuneConfig:
    """A tuner small enough for a shared CPU: per-block gates, 2 + 2 batches of 2 images, the
    structured starts halved after the first held-out batch (the best 3 of each family go on),
    the budget in seconds measured on this server (`table`)."""
    return TuneConfig(per_block=True, iterations=steps_total, mixing=mixing, tuning_batches=2,
                      selection_batches=2, checks=2, prune_starts=3, progress=False, calibration=calibration,
                      on_check=on_check, on_progress=on_progress, cost="measured", cost_table=table)


def uniform_like(tuner: Tuner, speedup: float) -> tuple[int, KeyframePolicy]:
    """The keyframe interval, and its uniform FR policy, whose speedup in the tuner's cost
    model (measured seconds) is closest to `speedup`."""
    options = {k: KeyframePolicy.uniform(tuner.n, k) for k in range(1, min(tuner.n, 12) + 1)}
    k = min(options, key=lambda k: abs(tuner.costs.speedup(options[k], tuner.config.mixing) - speedup))
    return k, options[k]


def learn(s, target: float, events: queue.Queue, stop: threading.Event, heartbeat: list[float]) -> None:
    """Tune on a borrowed pipeline and compare; every outcome is put on `events` (Progress,
    Start, Check, then Done or Failed)."""
    started = time.monotonic()

    def on_progress(stage, done, total):
        if stop.is_set():
            raise Stopped("stopped")
        if time.monotonic() - heartbeat[0] > ABANDONED_S:
            raise Stopped("the page stopped listening")
        if time.monotonic() - started > LEARN_LIMITS.seconds:
            raise Stopped(f"the time limit of {LEARN_LIMITS.seconds} s (FRDIFF_APP_TUNER_SECONDS)")
        events.put(Progress(stage, done, total))

    try:
        with POOL.borrow(s.model, s.scheduler, seconds=LEARN_LIMITS.seconds + 60) as pipe:  # + the comparison
            calibration = load_calibration(s.model, SCHEDULERS[s.scheduler], s.steps)
            on_progress("profile", 0, 1)
            table = cost_table(pipe, s)
            tuner = Tuner(pipe, s.steps, target, config(LEARN_LIMITS.iterations, s.mixing,
                                                         lambda c: events.put(Check(c)), on_progress,
                                                         calibration, table))
            starts = tuner.score_starts()
            families = tuner.families(starts)
            best = min(starts, key=lambda name: starts[name][1])
            events.put(Start(best, starts[best][0]))
            with tuner.training(families):
                descents = {no_call: tuner.descend(*starts[name], no_call) for no_call, name in families.items()}
            result = tuner.select(starts, families, descents)
            on_progress("compare", 0, 4)
            k, uniform = uniform_like(tuner, result.ideal_speedup)
            fewer = max(1, round(s.steps / result.ideal_speedup))
            runs = [run_plain(pipe, FULL, s.steps, s.steps, s.glyphs, s.seed, "the reference"),
                    run_policy(pipe, LEARNED, result.policy, s.mixing, s.glyphs, s.seed, f"from {result.start}"),
                    run_policy(pipe, f"{UNIFORM} (interval {k})", uniform, s.mixing, s.glyphs, s.seed),
                    run_plain(pipe, f"Fewer steps ({fewer})", fewer, s.steps, s.glyphs, s.seed)]
        events.put(Done(result, runs, score(runs, s.model, "".join(s.glyphs)), time.monotonic() - started))
    except Exception as err:  # noqa: BLE001 - every failure reaches the page through the queue
        events.put(Failed(err))


def settings(model, glyphs, scheduler, steps, mixing_on, slope, bias, seed, target):
    """Everything checked before any work (the editor's policy is not needed: it is learned)."""
    model = inputs.model_name(model)
    scheduler = inputs.sampler(scheduler, model)
    s = inputs.RunSettings(model, inputs.glyphs_of(model, glyphs), scheduler, inputs.steps_of(steps), None,
                           inputs.mixing_of(mixing_on, slope, bias), inputs.seed_of(seed))
    return s, target_of(target)


def run(s, target: float):
    """Start learning; yields the events as they come, and stops the worker when closed early
    (a cancelled event, a closed page)."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    heartbeat = [time.monotonic()]
    worker = threading.Thread(target=learn, args=(s, target, events, stop, heartbeat), daemon=True,
                              name="frdiff-learn")
    worker.start()
    try:
        while True:
            heartbeat[0] = time.monotonic()
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                if not worker.is_alive() and events.empty():
                    raise RuntimeError("the learning worker ended without a result") from None
                continue
            yield event
            if isinstance(event, (Done, Failed)):
                return
    finally:
        stop.set()
        worker.join()  # at most one tuner step: the model is restored before the next request


def summary(result, rows: list[dict], seconds: float) -> str:
    """What the Learn tab says when done: the learned policy's estimate, then it and uniform FR
    side by side in measured time and quality (a run each: a few percent of timing noise)."""
    learned, uniform = rows[1], rows[2]
    return (f"**Learned** a policy in {seconds:.0f} s, at {result.ideal_speedup:.2f}x estimated from this "
            f"server's block timings (from *{result.start}*; held-out loss {result.final_loss:.2e}, start "
            f"{result.start_loss:.2e}). It is now in the editor: every tab uses it.\n\n"
            f"On your glyphs: learned **{learned['measured_speedup']:.2f}x** measured, "
            f"**{learned['psnr']:.1f} dB**; {uniform['method']} {uniform['measured_speedup']:.2f}x, "
            f"{uniform['psnr']:.1f} dB. Both were chosen for the same estimated time, so the times differ "
            f"only by timing noise (one run each) and the estimate's error; the quality at that time is "
            f"what learning buys.")

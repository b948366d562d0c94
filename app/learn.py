"""The Learn tab: Auto-FR (`frdiff.autofr`) on the current model, sampler and steps, watched
as it learns, then compared on the user's glyphs and seed (never used in tuning) with the
uniform policy of the same counted compute and with fewer steps.

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

from . import inputs
from .compare import score
from .methods import FULL, run_plain, run_policy
from .models import POOL, SCHEDULERS, env_int

LEARNED, UNIFORM = "Auto-FR (learned here)", "Uniform FR, same counted compute"
TARGETS = (1.2, 3.0)  # the slider's range of counted speedups
ABANDONED_S = 5.0  # no heartbeat from the page's generator for this long: nobody is listening


@dataclass(frozen=True)
class LearnLimits:
    """What one learning run may use (raise them on a bigger machine)."""

    iterations: int = env_int("FRDIFF_APP_TUNER_ITERATIONS", 4)  # gradient steps, reuse family
    seconds: int = env_int("FRDIFF_APP_TUNER_SECONDS", 240)  # wall time, then it stops


LEARN_LIMITS = LearnLimits()


class Stopped(Exception):
    """The learning run was cancelled or ran past its time limit."""


def target_of(value) -> float:
    low, high = TARGETS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"the target speedup must be a number from {low} to {high}, got {value!r}")
    return float(value)


def config(steps_total: int, mixing, on_check, on_progress, calibration) -> TuneConfig:
    """A tuner small enough for a shared CPU: per-block gates, 2 + 2 batches of 2 images, the
    structured starts halved after the first held-out batch (the best 3 of each family go on)."""
    return TuneConfig(per_block=True, iterations=steps_total, mixing=mixing, tuning_batches=2,
                      selection_batches=2, checks=2, prune_starts=3, progress=False, calibration=calibration,
                      on_check=on_check, on_progress=on_progress)


def uniform_like(tuner: Tuner, speedup: float) -> tuple[int, KeyframePolicy]:
    """The keyframe interval, and its uniform FR policy, whose counted speedup is closest to `speedup`."""
    options = {k: KeyframePolicy.uniform(tuner.n, k) for k in range(1, min(tuner.n, 12) + 1)}
    k = min(options, key=lambda k: abs(tuner.costs.speedup(options[k], tuner.config.mixing) - speedup))
    return k, options[k]


def learn(s, target: float, events: queue.Queue, stop: threading.Event, heartbeat: list[float]) -> None:
    """Tune on a borrowed pipeline and compare; every outcome is put on `events`:
    ("progress", stage, done, total), ("start", name, policy), ("check", TuneCheck),
    ("done", result dict), ("error", exc)."""
    started = time.monotonic()

    def on_progress(stage, done, total):
        if stop.is_set():
            raise Stopped("stopped")
        if time.monotonic() - heartbeat[0] > ABANDONED_S:
            raise Stopped("the page stopped listening")
        if time.monotonic() - started > LEARN_LIMITS.seconds:
            raise Stopped(f"the time limit of {LEARN_LIMITS.seconds} s (FRDIFF_APP_TUNER_SECONDS)")
        events.put(("progress", stage, done, total))

    try:
        with POOL.borrow(s.model, s.scheduler, seconds=LEARN_LIMITS.seconds + 60) as pipe:  # + the comparison
            calibration = load_calibration(s.model, SCHEDULERS[s.scheduler], s.steps)
            tuner = Tuner(pipe, s.steps, target, config(LEARN_LIMITS.iterations, s.mixing,
                                                         lambda c: events.put(("check", c)), on_progress,
                                                         calibration))
            starts = tuner.score_starts()
            families = tuner.families(starts)
            best = min(starts, key=lambda name: starts[name][1])
            events.put(("start", best, starts[best][0]))
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
        events.put(("done", {"result": result, "runs": runs, "rows": score(runs, s.model, "".join(s.glyphs)),
                             "seconds": time.monotonic() - started}))
    except Exception as err:  # noqa: BLE001 - every failure reaches the page through the queue
        events.put(("error", err))


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
            if event[0] in ("done", "error"):
                return
    finally:
        stop.set()
        worker.join()  # at most one tuner step: the model is restored before the next request

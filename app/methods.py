"""The methods the Compare tab runs side by side, each from the same noise and labels.

Each method is a context to sample in (frdiff's `accelerate`, a peer package's helper, or
nothing) and a step count; this module only picks them and runs them. Full compute is the
reference every other run is scored against, and FRDiff with the editor's policy is the point
of the app, so those two always run; the rest are chosen by the user.
"""

from __future__ import annotations

import contextlib

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.clock import drive_clock

from .peers import run_peer
from .presets import shipped_policy
from .runs import Run, sample

FULL, FRDIFF = "Full compute", "FRDiff (your policy)"
# value (API name) -> label shown in the picker
OPTIONAL = {"fr-only": "FR only (mixing off)",
            "reduced-nfe": "Reduced NFE only (lam = 0)",
            "fewer-steps": "Fewer steps, same counted compute",
            "auto-fr": "Auto-FR (shipped policy)",
            "peer": "Peer (DeepCache / diffusers cache hook)"}
DEFAULT_METHODS = ("fewer-steps", "peer")  # full + FRDiff + these: about 4 s on a 2-core CPU


def run_policy(pipe, name: str, policy: KeyframePolicy, mixing: ScoreMixing, glyphs, seed, note="") -> Run:
    with accelerate(pipe, policy, mixing) as acc:
        images, seconds = sample(pipe, glyphs, policy.num_steps, seed)
    s = acc.stats
    return Run(name, images, seconds, s.network_calls, s.ideal_speedup, note,
               {"network_calls_skipped": s.network_calls_skipped, "keyframes": s.keyframe_steps[-1],
                "peak_cache_bytes": s.peak_cache_bytes})


def run_plain(pipe, name: str, steps: int, full_steps: int, glyphs, seed, note="") -> Run:
    images, seconds = sample(pipe, glyphs, steps, seed)
    return Run(name, images, seconds, steps, full_steps / steps, note)


def run_optional(key: str, pipe, model: str, scheduler: str, policy: KeyframePolicy,
                 mixing: ScoreMixing, frdiff_run: Run, glyphs, seed) -> Run:
    """One of OPTIONAL; ValueError (shown as a note) where it does not apply to this setting."""
    steps = policy.num_steps
    if key == "fr-only":
        return run_policy(pipe, OPTIONAL[key], policy, ScoreMixing.off(), glyphs, seed)
    if key == "reduced-nfe":
        return run_policy(pipe, OPTIONAL[key], policy, ScoreMixing.reduced_nfe(), glyphs, seed,
                          "the editor's keyframes; no network call in between")
    if key == "fewer-steps":
        n = max(1, round(steps / frdiff_run.counted))
        return run_plain(pipe, f"Fewer steps ({n})", n, steps, glyphs, seed,
                         f"{n} plain {scheduler} steps: FRDiff's counted compute")
    if key == "auto-fr":
        label, tuned = shipped_policy(model, scheduler, steps, frdiff_run.counted)
        return run_policy(pipe, f"Auto-FR ({label})", tuned, ScoreMixing(), glyphs, seed,
                          "learned by frdiff.autofr.tune, shipped in assets/policies")
    if key == "peer":
        return run_peer(pipe, model, scheduler, steps, glyphs, seed)
    raise ValueError(f"unknown method {key!r}; choose from {', '.join(OPTIONAL)}")


@contextlib.contextmanager
def step_progress(pipe, report):
    """Call report() after every scheduler step of `pipe` (observes only; restored on exit)."""
    restore = drive_clock(pipe.scheduler, lambda n: None, lambda out: (report(), out)[1])
    try:
        yield
    finally:
        restore()

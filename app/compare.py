"""The Compare tab: full compute, FRDiff and the chosen alternatives from the same noise."""

from __future__ import annotations

import csv
import io
import logging
import re
import time

import torch

from frdiff.images import make_grid
from frdiff.metrics import classify, psnr, ssim

from . import inputs
from .methods import FRDIFF, FULL, OPTIONAL, run_optional, run_plain, run_policy, step_progress
from .runs import Run
from .models import POOL, classifier, labels_of, threads_here

log = logging.getLogger("frdiff.app")
DIFF_GAIN = 8
HEADERS = ["method", "network calls", "time (s)", "measured speedup", "counted speedup",
           "PSNR vs full (dB)", "SSIM vs full", "class agreement"]


def method_keys(methods) -> list[str]:
    """The optional methods asked for, in the picker's order; unknown ones are an error."""
    if methods is None:
        return []
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, (list, tuple)):
        raise ValueError(f"methods must be a list of names from {', '.join(OPTIONAL)}")
    unknown = [m for m in methods if m not in OPTIONAL]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(str, unknown))}; choose from {', '.join(OPTIONAL)}")
    return [m for m in OPTIONAL if m in methods]


def compare(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed, methods,
            progress=None) -> tuple[list[Run], list[str], dict]:
    """Run full compute, FRDiff and `methods`; (runs, notes, settings). Checks everything first."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed)
    keys = method_keys(methods)
    total = s.steps * (2 + len(keys))  # an estimate: fewer-steps runs are shorter
    done, shown = [0], [0.0]

    def tick(name):
        done[0] += 1
        now = time.perf_counter()
        if progress is not None and now - shown[0] > 0.25:  # each update is a message to the page
            shown[0] = now
            progress((min(done[0], total), total), desc=name, unit="steps")

    runs, notes = [], []
    with POOL.borrow(s.model, s.scheduler) as pipe:
        current = [FULL]
        with step_progress(pipe, lambda: tick(current[0])):
            runs.append(run_plain(pipe, FULL, s.steps, s.steps, s.glyphs, s.seed, "the reference"))
            current[0] = FRDIFF
            runs.append(run_policy(pipe, FRDIFF, s.policy, s.mixing, s.glyphs, s.seed, policy_summary(s.policy)))
            for key in keys:
                current[0] = OPTIONAL[key]
                try:
                    runs.append(run_optional(key, pipe, s.model, s.scheduler, s.policy, s.mixing, runs[1],
                                             s.glyphs, s.seed))
                except ValueError as err:  # does not apply here: say so, run the others
                    notes.append(f"{OPTIONAL[key]}: not run ({err})")
                except Exception as err:  # noqa: BLE001 - a failing peer package must not take the others down
                    if key != "peer":
                        raise
                    log.exception("the peer method failed")
                    notes.append(f"{OPTIONAL[key]}: failed ({type(err).__name__}: {err}); the other methods ran")
    settings = {"model": s.model, "glyphs": "".join(s.glyphs), "scheduler": s.scheduler, "steps": s.steps,
                "seed": s.seed, "mixing": {"enabled": s.mixing.enabled, "slope": s.mixing.slope,
                                           "bias": s.mixing.bias}}
    return runs, notes, settings


def policy_summary(policy) -> str:
    return f"{len(policy.keyframes)} keyframe steps of {policy.num_steps}"


def difference(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """|images - reference| per pixel (mean over colours) x DIFF_GAIN through a colour map whose
    zero is white: identical pixels white, larger errors darker and redder."""
    from matplotlib.colors import LinearSegmentedColormap

    ramp = LinearSegmentedColormap.from_list("difference", ["#ffffff", "#f4a261", "#e63946", "#1d1d1d"])
    error = ((images.float() - reference.float()).abs().mean(1) * DIFF_GAIN).clamp(0, 1)
    rgb = ramp(error.cpu().numpy())[..., :3]  # (N, H, W, 3)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float()


def columns(n: int) -> int:
    """Glyphs per row of a run's grid: two rows once there are more than four."""
    return n if n <= 4 else -(-n // 2)


def score(runs: list[Run], model: str, chars: str) -> list[dict]:
    """One row of numbers per run: cost, time, and closeness to full compute."""
    threads_here()  # the same bits whichever worker thread scores
    full = runs[0]
    labels = labels_of(model)
    target = torch.tensor([labels.index(c) for c in chars])
    rows = []
    for r in runs:
        logits, _ = classify(classifier(), r.images)
        agree = int((logits.argmax(1) == target).sum())
        rows.append({"method": r.name, "network_calls": r.calls, "seconds": r.seconds,
                     "measured_speedup": full.seconds / r.seconds, "counted_speedup": r.counted,
                     "psnr": psnr(r.images, full.images), "ssim": ssim(r.images, full.images),
                     "class_agreement": agree, "glyphs": len(chars), "note": r.note} | r.numbers)
    return rows


def table_rows(rows: list[dict]) -> list[list]:
    return [[r["method"], r["network_calls"], round(r["seconds"], 3), f"{r['measured_speedup']:.2f}x",
             f"{r['counted_speedup']:.2f}x", round(r["psnr"], 1), round(r["ssim"], 3),
             f"{r['class_agreement']}/{r['glyphs']}"] for r in rows]


def file_stem(name: str) -> str:
    """A run's name as a file name: "Fewer steps (25)" -> "fewer-steps-25"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "run"


def policy_json(model: str, steps, text: str, settings: dict) -> str:
    """The FRDiff run's policy as a policy file (`KeyframePolicy.from_json` reads it), its
    mixing and the run's settings in `meta`."""
    policy = inputs.policy_of(model, inputs.steps_of(steps), text)
    return policy.to_json(app_settings=settings)


def table_csv(rows: list[dict]) -> str:
    """The results table as CSV, with the exact numbers and each run's note."""
    out = io.StringIO()
    keys = ["method", "network_calls", "seconds", "measured_speedup", "counted_speedup", "psnr", "ssim",
            "class_agreement", "glyphs", "note"]
    writer = csv.DictWriter(out, keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def grids(runs: list[Run], ncol: int) -> tuple[dict, list]:
    # ncol: the number of glyphs; grids wrap into two rows past four
    """name -> image grid of every run, and the amplified difference of each against full compute."""
    full = runs[0].images
    ncol = columns(ncol)
    images = {r.name: make_grid(r.images, ncol=ncol, scale=4) for r in runs}
    diffs = [(make_grid(difference(r.images, full), ncol=ncol, scale=4), r.name) for r in runs[1:]]
    return images, diffs


def reference_key(s) -> list:
    """What fixes the full-compute run: model, glyphs, sampler, steps and seed (the noise)."""
    return [s.model, "".join(s.glyphs), s.scheduler, s.steps, s.seed]


def live(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed, reference):
    """Only the FRDiff run, redone for an edited policy, mixing or seed; full compute is reused
    from `reference` (the last run with the same noise) and computed only where it differs.
    Returns (FRDiff run, full-compute run, its numbers row, the reference to keep)."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed)
    key = reference_key(s)
    with POOL.borrow(s.model, s.scheduler) as pipe:
        if isinstance(reference, dict) and reference.get("key") == key:
            full = reference["full"]
        else:
            full = run_plain(pipe, FULL, s.steps, s.steps, s.glyphs, s.seed, "the reference")
        fr = run_policy(pipe, FRDIFF, s.policy, s.mixing, s.glyphs, s.seed, policy_summary(s.policy))
    row = score([full, fr], s.model, "".join(s.glyphs))[1]
    return fr, full, row, {"key": key, "full": full}

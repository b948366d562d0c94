"""Policy presets for the editor: uniform intervals, whole-block skip, no call, residual reuse,
cache-dit-style step masks and the shipped Auto-FR files."""

from __future__ import annotations

import glob
import os
import re

from frdiff import KeyframePolicy
from frdiff.glyphs import ASSETS_DIR

from . import inputs
from .models import SCHEDULERS, blocks_of


def shipped(model: str, scheduler: str, steps: int) -> dict[str, str]:
    """Label -> path of the tuned policies in assets/policies for this model, scheduler, steps."""
    pattern = os.path.join(ASSETS_DIR, "policies", f"{model}-{SCHEDULERS[scheduler]}{int(steps)}-*x.json")
    found = {}
    for path in sorted(glob.glob(pattern)):
        speed = re.search(r"-([0-9.]+)x\.json$", path).group(1)
        found[f"Auto-FR tuned, {speed}x"] = path
    return found


# one table for the names and the policies, so the two cannot drift apart
INTERVAL_PRESETS = {
    "uniform, interval {}": ((1, 2, 3, 4, 5), lambda model, steps, k: KeyframePolicy.uniform(steps, k)),
    "whole-block skip, interval {}": ((2, 3), lambda model, steps, k: KeyframePolicy.deep_skip(
        blocks_of(model), steps, k)),
    "no call between keyframes, interval {}": ((2, 3), lambda model, steps, k: KeyframePolicy.uniform(
        steps, k, reuse="none")),
    "residual reuse of the inner blocks, interval {}": ((2, 3, 4), lambda model, steps, k: _inner_residual(
        model, steps, k)),
}


# cache-dit 1.5's predefined step masks for 28 steps (`cache_dit.steps_mask`): alternating runs
# of computed and cached steps, (compute runs, cache runs); the last step always computes
STEP_MASKS = {"slow": ((8, 3, 3, 2, 1, 1), (1, 2, 2, 2, 3)),
              "medium": ((6, 2, 2, 2, 2, 1), (1, 3, 3, 3, 3)),
              "fast": ((6, 1, 1, 1, 1, 1), (1, 3, 4, 5, 4))}


def _step_mask(model: str, steps: int, speed: str) -> KeyframePolicy:
    """A STEP_MASKS mask stretched to `steps` (each step takes the mask entry at its relative
    position), with DBCache's reuse at the cached steps: the first block computes and the rest
    reuse their residual on transformer blocks; feature reuse in every block on a UNet."""
    compute, cache = STEP_MASKS[speed]
    mask = []
    for i, run in enumerate(compute):
        mask += [True] * run + [False] * (cache[i] if i < len(cache) else 0)
    names = list(blocks_of(model))
    reuse = "K" + "R" * (len(names) - 1) if _residual_model(model) else "F" * len(names)
    rows = [mask[min(len(mask) - 1, i * len(mask) // steps)] or i in (0, steps - 1) for i in range(steps)]
    return KeyframePolicy(tuple("K" * len(names) if k else reuse for k in rows), tuple(names))


def _residual_model(model: str) -> bool:
    """Are every block's input and output the same shape (transformer blocks: mode R applies)?"""
    return all(name.startswith("transformer_blocks.") for name in blocks_of(model))


def _inner_residual(model: str, steps: int, k: int) -> KeyframePolicy:
    """MagCache's stack form: between keyframes the inner blocks add their cached residual to
    their current input; the first and last blocks, embeddings and output layers compute."""
    names = list(blocks_of(model))
    keys = set(KeyframePolicy.uniform(steps, k).keyframes)
    inner = "K" + "R" * (len(names) - 2) + "K"
    return KeyframePolicy(tuple("K" * len(names) if i in keys else inner for i in range(steps)), tuple(names))


def _applies(label: str, model: str) -> bool:
    return not label.startswith("residual") or _residual_model(model)


MASK_LABEL = "cache-dit-style step mask, {}"


def preset_names(model: str, scheduler: str, steps: int) -> list[str]:
    names = [label.format(k) for label, (intervals, _) in INTERVAL_PRESETS.items() if _applies(label, model)
             for k in intervals]
    return names + [MASK_LABEL.format(speed) for speed in STEP_MASKS] + list(shipped(model, scheduler, steps))


def preset_policy(model: str, scheduler: str, steps: int, preset: str) -> KeyframePolicy:
    model = inputs.model_name(model)
    scheduler, steps = inputs.sampler(scheduler, model), inputs.steps_of(steps)
    for label, (intervals, make) in INTERVAL_PRESETS.items():
        for k in intervals:
            if preset == label.format(k) and _applies(label, model):
                return make(model, steps, k)
    for speed in STEP_MASKS:
        if preset == MASK_LABEL.format(speed):
            return _step_mask(model, steps, speed)
    files = shipped(model, scheduler, steps)
    if preset not in files:
        raise ValueError(f"no preset {preset!r} for {model}, {scheduler}, {steps} steps; "
                         f"choose from {', '.join(preset_names(model, scheduler, steps))}")
    return KeyframePolicy.from_json(files[preset])


def preset_text(model: str, scheduler: str, steps: int, preset: str) -> str:
    return preset_policy(model, scheduler, steps, preset).to_text(list(blocks_of(model)))


def shipped_policy(model: str, scheduler: str, steps: int, target: float) -> tuple[str, KeyframePolicy]:
    """The shipped Auto-FR policy for this setting whose speed is nearest `target`."""
    files = shipped(model, scheduler, steps)
    if not files:
        settings = sorted({os.path.basename(p).split("-")[2] for p in
                           glob.glob(os.path.join(ASSETS_DIR, "policies", f"{model}-*.json"))})
        raise ValueError(f"no shipped Auto-FR policy for {model} with {scheduler} {int(steps)} steps "
                         f"(they ship for {', '.join(settings)})")
    label = min(files, key=lambda name: abs(float(name.split(", ")[1][:-1]) - target))
    return label.replace("Auto-FR tuned, ", "tuned "), KeyframePolicy.from_json(files[label])

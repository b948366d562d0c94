"""Policy presets for the editor: uniform intervals, whole-block skip, no call, residual reuse,
cache-dit-style step masks and the shipped Auto-FR files."""

from __future__ import annotations

import glob
import os

from frdiff import KeyframePolicy
from frdiff.glyphs import ASSETS_DIR

from . import inputs
from .specs import STEP_MASKS, residual_model, shipped, spec_in, spec_policy, spec_text


# label -> (intervals, spec): one table for the names and the policies, so they cannot drift apart
INTERVAL_PRESETS = {
    "uniform, interval {}": ((1, 2, 3, 4, 5), "uniform:{}"),
    "whole-block skip, interval {}": ((2, 3), "deep:{}"),
    "no call between keyframes, interval {}": ((2, 3), "uniform:{}:none"),
    "residual reuse of the inner blocks, interval {}": ((2, 3, 4), "inner-residual:{}"),
}
MASK_LABEL = "cache-dit-style step mask, {}"
TUNED_LABEL = "Auto-FR tuned, {}x"


def _applies(label: str, model: str) -> bool:
    return not label.startswith("residual") or residual_model(model)


def _labels(model: str, scheduler: str, steps: int) -> dict[str, str]:
    """Preset label -> its spec, for this model, sampler and step count."""
    labels = {label.format(k): spec.format(k) for label, (intervals, spec) in INTERVAL_PRESETS.items()
              if _applies(label, model) for k in intervals}
    labels |= {MASK_LABEL.format(speed): f"mask:{speed}" for speed in STEP_MASKS}
    return labels | {TUNED_LABEL.format(speed): f"tuned:{speed}" for speed in shipped(model, scheduler, steps)}


def preset_names(model: str, scheduler: str, steps: int) -> list[str]:
    return list(_labels(model, scheduler, steps))


def preset_spec(model: str, scheduler: str, steps: int, preset: str) -> str:
    """The spec of a preset label ("uniform, interval 2" -> "uniform:2")."""
    model = inputs.model_name(model)
    scheduler, steps = inputs.sampler(scheduler, model), inputs.steps_of(steps)
    labels = _labels(model, scheduler, steps)
    if preset not in labels:
        raise ValueError(f"no preset {preset!r} for {model}, {scheduler}, {steps} steps; "
                         f"choose from {', '.join(labels)}")
    return labels[preset]


def preset_label(model: str, scheduler: str, steps: int, text: str) -> str | None:
    """The preset whose spec made `text` (its `# spec:` line), or None."""
    spec = spec_in(text)
    return next((label for label, s in _labels(model, scheduler, int(steps)).items() if s == spec), None)


def preset_policy(model: str, scheduler: str, steps: int, preset: str) -> KeyframePolicy:
    return spec_policy(model, steps, preset_spec(model, scheduler, steps, preset), scheduler)


def preset_text(model: str, scheduler: str, steps: int, preset: str) -> str:
    """The editor text of a preset: its `# spec:` line (a run at other steps re-derives it), then the grid."""
    return spec_text(model, steps, preset_spec(model, scheduler, steps, preset), scheduler)


def shipped_policy(model: str, scheduler: str, steps: int, target: float) -> tuple[str, KeyframePolicy]:
    """The shipped Auto-FR policy for this setting whose speed is nearest `target`."""
    files = {TUNED_LABEL.format(speed): path for speed, path in shipped(model, scheduler, steps).items()}
    if not files:
        settings = sorted({os.path.basename(p).split("-")[2] for p in
                           glob.glob(os.path.join(ASSETS_DIR, "policies", f"{model}-*.json"))})
        raise ValueError(f"no shipped Auto-FR policy for {model} with {scheduler} {int(steps)} steps "
                         f"(they ship for {', '.join(settings)})")
    label = min(files, key=lambda name: abs(float(name.split(", ")[1][:-1]) - target))
    return label.replace("Auto-FR tuned, ", "tuned "), KeyframePolicy.from_json(files[label])

"""Policies by name: one-line specs that make a policy for any step count.

    uniform:K[:fr|block|residual|none]   keyframe every K steps (FR between; or S, R, no call)
    deep:K[:LEVELS[:F]]                  whole-block skip from the deepest level (DeepCache's)
    inner-residual:K                     the inner blocks add their cached residual (MagCache's form)
    magnitude:THRESHOLD[:ROW]            the model's shipped magnitude calibration (its sampler, steps);
                                         ROW: the reuse steps' modes (default R, F on a UNet)
    mask:slow|medium|fast                cache-dit's 28-step masks, stretched to the run's steps
    tuned:X                              the shipped Auto-FR policy of X (for its sampler and steps)

`uniform` and `deep` take the library's options (`+cfg:K[:START]`, `+forecast[:step|logsnr]`).
A spec is only ever parsed here, never read as a file path (the server reads no file a request
names). Text made from a spec starts with `# spec: SPEC`, so a run with another step count
re-derives it instead of failing.
"""

from __future__ import annotations

import glob
import os
import re

from frdiff import KeyframePolicy
from frdiff.glyphs import ASSETS_DIR, load_calibration
from frdiff.magnitude import magnitude_policy
from frdiff.policy import split_options

from .models import SCHEDULERS, blocks_of, model_defaults

HEADER = "# spec: "
KINDS = ("uniform", "deep", "inner-residual", "magnitude", "mask", "tuned")
SPEC_HELP = ("uniform:K[:fr|block|residual|none], deep:K[:LEVELS[:F]], inner-residual:K, magnitude:THRESHOLD[:ROW], "
             "mask:slow|medium|fast or tuned:X")

# cache-dit 1.5's predefined step masks for 28 steps (`cache_dit.steps_mask`): alternating runs
# of computed and cached steps, (compute runs, cache runs); the last step always computes
STEP_MASKS = {"slow": ((8, 3, 3, 2, 1, 1), (1, 2, 2, 2, 3)),
              "medium": ((6, 2, 2, 2, 2, 1), (1, 3, 3, 3, 3)),
              "fast": ((6, 1, 1, 1, 1, 1), (1, 3, 4, 5, 4))}


def shipped(model: str, scheduler: str, steps: int) -> dict[str, str]:
    """Speed ("2.0") -> path of the tuned policies in assets/policies for this model, scheduler, steps."""
    pattern = os.path.join(ASSETS_DIR, "policies", f"{model}-{SCHEDULERS[scheduler]}{int(steps)}-*x.json")
    return {re.search(r"-([0-9.]+)x\.json$", path).group(1): path for path in sorted(glob.glob(pattern))}


def is_spec(text) -> bool:
    """Is `text` one line naming a spec kind (`uniform:2`), not a grid?"""
    if not isinstance(text, str):
        return False
    line = text.strip()
    return "\n" not in line and line.partition(":")[0].strip() in KINDS


def spec_in(text: str) -> str | None:
    """The spec a policy text was made from (its `# spec:` first line), or None."""
    first = text.lstrip().partition("\n")[0].strip()
    return first[len(HEADER):].strip() if first.startswith(HEADER) else None


def residual_model(model: str) -> bool:
    """Are every block's input and output the same shape (transformer blocks: mode R applies)?"""
    return all(name.startswith("transformer_blocks.") for name in blocks_of(model))


def _interval(value: str, spec: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise ValueError(f"bad policy {spec!r}: {value!r} is not a whole number of steps") from None
    if k < 1:
        raise ValueError(f"bad policy {spec!r}: the interval must be at least 1")
    return k


def spec_policy(model: str, steps: int, spec: str, scheduler: str | None = None) -> KeyframePolicy:
    """The policy a spec names for `model` at `steps` steps (`scheduler`: for `magnitude` and
    `tuned`, default the model's own); a ValueError says what is wrong."""
    scheduler = scheduler or model_defaults(model)[0]
    spec = spec.strip()
    base, finish = split_options(spec)
    kind, _, rest = base.partition(":")
    kind, args = kind.strip(), rest.split(":") if rest else []
    if kind not in KINDS:
        raise ValueError(f"bad policy {spec!r}; a named policy is one of {SPEC_HELP}")
    if finish is not None and kind not in ("uniform", "deep"):
        raise ValueError(f"bad policy {spec!r}: +cfg and +forecast apply to uniform: and deep: specs")
    if not args:
        raise ValueError(f"bad policy {spec!r}; expected {kind}:...")
    if kind in ("uniform", "deep"):
        _interval(args[0], spec)
        policy = KeyframePolicy.parse(base, steps, blocks_of(model))
        return finish(policy) if finish else policy
    names = list(blocks_of(model))
    if kind == "inner-residual":
        if not residual_model(model):
            raise ValueError(f"inner-residual needs transformer blocks (every block a residual map); "
                             f"{model}'s are not")
        keys = set(KeyframePolicy.uniform(steps, _interval(args[0], spec)).keyframes)
        inner = "K" + "R" * (len(names) - 2) + "K"
        return KeyframePolicy(tuple("K" * len(names) if i in keys else inner for i in range(steps)), tuple(names))
    if kind == "mask":
        if args[0] not in STEP_MASKS:
            raise ValueError(f"bad policy {spec!r}; the masks are {', '.join(STEP_MASKS)}")
        return _step_mask(names, residual_model(model), steps, args[0])
    if kind == "magnitude":
        try:
            threshold = float(args[0])
        except ValueError:
            raise ValueError(f"bad policy {spec!r}; expected magnitude:THRESHOLD[:ROW]") from None
        if len(args) > 2 or not threshold >= 0:
            raise ValueError(f"bad policy {spec!r}; expected magnitude:THRESHOLD[:ROW] with THRESHOLD >= 0")
        calibration = load_calibration(model, SCHEDULERS[scheduler], steps)
        if calibration is None:
            raise ValueError(f"no magnitude calibration ships for {model} with {scheduler} {steps} steps")
        row = args[1] if len(args) > 1 else "R" if residual_model(model) else "F"
        return magnitude_policy(calibration, threshold, row * len(names) if len(row) == 1 else row, tuple(names))
    files = shipped(model, scheduler, steps)  # tuned
    speed = args[0].removesuffix("x")
    if speed not in files:
        have = ", ".join(f"tuned:{s}" for s in files) or "none"
        raise ValueError(f"no shipped Auto-FR policy {spec!r} for {model} with {scheduler} {steps} steps "
                         f"(shipped for these settings: {have})")
    return KeyframePolicy.from_json(files[speed])


def _step_mask(names: list[str], residual: bool, steps: int, speed: str) -> KeyframePolicy:
    """A STEP_MASKS mask stretched to `steps` (each step takes the mask entry at its relative
    position), with DBCache's reuse at the cached steps: the first block computes and the rest
    reuse their residual on transformer blocks; feature reuse in every block on a UNet."""
    compute, cache = STEP_MASKS[speed]
    mask = []
    for i, run in enumerate(compute):
        mask += [True] * run + [False] * (cache[i] if i < len(cache) else 0)
    reuse = "K" + "R" * (len(names) - 1) if residual else "F" * len(names)
    rows = [mask[min(len(mask) - 1, i * len(mask) // steps)] or i in (0, steps - 1) for i in range(steps)]
    return KeyframePolicy(tuple("K" * len(names) if k else reuse for k in rows), tuple(names))


def spec_text(model: str, steps: int, spec: str, scheduler: str | None = None) -> str:
    """The editor's text of a spec: its `# spec:` line, then the grid."""
    policy = spec_policy(model, steps, spec, scheduler)
    return f"{HEADER}{spec.strip()}\n" + policy.to_text(list(blocks_of(model)))

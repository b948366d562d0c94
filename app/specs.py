"""Policies by name: one-line specs that make a policy for any step count.

The app's registry of specs (frdiff.specs.Registry): the library's `uniform:`, `deep:` and
`magnitude:` (the model's shipped calibration for the run's sampler and steps) and the app's own

    inner-residual:K                     the inner blocks add their cached residual (MagCache's form)
    mask:slow|medium|fast                cache-dit's 28-step masks, stretched to the run's steps
    tuned:X                              the shipped Auto-FR policy of X (for its sampler and steps)

`uniform` and `deep` take the library's options (`+cfg:K[:START]`, `+forecast[:step|logsnr]`).
A spec is only ever parsed here, never read as a file path (the server reads no file a request
names: the registry has no files). Text made from a spec starts with `# spec: SPEC`, so a run
with another step count re-derives it instead of failing.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import replace

from frdiff import KeyframePolicy, Mode
from frdiff.glyphs import ASSETS_DIR, load_calibration
from frdiff.specs import DEEP, MAGNITUDE, UNIFORM, Prefix, Registry, Request, SpecContext

from .models import SCHEDULERS, blocks_of, model_defaults

HEADER = "# spec: "

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
    return "\n" not in line and SPECS.find(line) is not None


def spec_in(text: str) -> str | None:
    """The spec a policy text was made from (its `# spec:` first line), or None."""
    first = text.lstrip().partition("\n")[0].strip()
    return first[len(HEADER):].strip() if first.startswith(HEADER) else None


def residual_model(model: str) -> bool:
    """Are every block's input and output the same shape (transformer blocks: mode R applies)?"""
    return all(name.startswith("transformer_blocks.") for name in blocks_of(model))


def spec_policy(model: str, steps: int, spec: str, scheduler: str | None = None) -> KeyframePolicy:
    """The policy a spec names for `model` at `steps` steps (`scheduler`: for `magnitude` and
    `tuned`, default the model's own); a ValueError says what is wrong."""
    return SPECS.parse_policy(spec.strip(), steps, spec_context(model, scheduler))


def spec_context(model: str, scheduler: str | None = None) -> SpecContext:
    """What the specs read of a model: its blocks, whether they are residual maps, its shipped
    calibrations; `scheduler` (a display name) default the model's own."""
    return SpecContext(blocks=blocks_of(model), residual=residual_model(model), model=model,
                       sampler=scheduler or model_defaults(model)[0], calibration=_calibration)


def _calibration(model: str, scheduler: str, steps: int):
    return load_calibration(model, SCHEDULERS[scheduler], steps)


def _inner_residual(request: Request) -> KeyframePolicy:
    c, (interval,) = request.context, request.arity(1, 1)
    if not c.residual:
        raise request.refuse(f"inner-residual needs transformer blocks (every block a residual map); "
                             f"{c.model}'s are not")
    keys = set(KeyframePolicy.uniform(request.num_steps, request.interval(interval)).keyframes)
    names = request.blocks("inner-residual")
    inner = Mode.KEYFRAME + Mode.RESIDUAL * (len(names) - 2) + Mode.KEYFRAME
    return KeyframePolicy(tuple(Mode.KEYFRAME * len(names) if i in keys else inner for i in range(request.num_steps)),
                          names)


def _mask(request: Request) -> KeyframePolicy:
    (speed,) = request.arity(1, 1)
    if speed not in STEP_MASKS:
        raise request.bad(f"the masks are {', '.join(STEP_MASKS)}")
    return _step_mask(list(request.blocks("mask:")), request.context.residual, request.num_steps, speed)


def _tuned(request: Request) -> KeyframePolicy:
    c, (speed,) = request.context, request.arity(1, 1)
    files = shipped(c.model, c.sampler, request.num_steps)
    if speed.removesuffix("x") not in files:
        have = ", ".join(f"tuned:{s}" for s in files) or "none"
        raise request.refuse(f"no shipped Auto-FR policy for {c.model} with {c.sampler} {request.num_steps} "
                             f"steps (shipped for these settings: {have})")
    return KeyframePolicy.from_json(files[speed.removesuffix("x")])


SPECS = Registry([
    UNIFORM, DEEP,
    Prefix("inner-residual", "inner-residual:K", "inner-residual:3",
           "a keyframe every K steps; between them the inner blocks reuse their residual (R), the "
           "first and last compute (MagCache's form; transformer blocks only; app only)", _inner_residual,
           options=False),
    replace(MAGNITUDE, options=False),
    Prefix("mask", "mask:slow|medium|fast", "mask:fast",
           "cache-dit's 28-step masks stretched to the run's steps; DBCache's reuse at the cached steps "
           "(app only)", _mask, options=False),
    Prefix("tuned", "tuned:X", "tuned:2.0",
           "the shipped Auto-FR policy of speed X for the model, sampler and steps (app only)", _tuned,
           options=False)])
SPEC_HELP = SPECS.expected()


def _step_mask(names: list[str], residual: bool, steps: int, speed: str) -> KeyframePolicy:
    """A STEP_MASKS mask stretched to `steps` (each step takes the mask entry at its relative
    position), with DBCache's reuse at the cached steps: the first block computes and the rest
    reuse their residual on transformer blocks; feature reuse in every block on a UNet."""
    compute, cache = STEP_MASKS[speed]
    mask = []
    for i, run in enumerate(compute):
        mask += [True] * run + [False] * (cache[i] if i < len(cache) else 0)
    reuse = Mode.KEYFRAME + Mode.RESIDUAL * (len(names) - 1) if residual else Mode.FEATURE_REUSE * len(names)
    rows = [mask[min(len(mask) - 1, i * len(mask) // steps)] or i in (0, steps - 1) for i in range(steps)]
    return KeyframePolicy(tuple(Mode.KEYFRAME * len(names) if k else reuse for k in rows), tuple(names))


def spec_text(model: str, steps: int, spec: str, scheduler: str | None = None) -> str:
    """The editor's text of a spec: its `# spec:` line, then the grid."""
    policy = spec_policy(model, steps, spec, scheduler)
    return f"{HEADER}{spec.strip()}\n" + policy.to_text(list(blocks_of(model)))

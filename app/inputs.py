"""The app's inputs, checked before any work: what was wrong and what is allowed.

Gradio enforces `maximum`/`max_length` only in the browser; API callers can send anything,
so every callback passes its raw arguments through these checks first. The limits can be
raised on a bigger machine with the environment variables named in LIMITS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from frdiff import KeyframePolicy, ScoreMixing
from frdiff.sampler import check_modes

from .models import MODELS, check_sampler, env_int, blocks_of, labels_of, policy_blocks
from .specs import SPEC_HELP, is_spec, spec_in, spec_policy


@dataclass(frozen=True)
class Limits:
    glyphs: int = env_int("FRDIFF_APP_MAX_GLYPHS", 8)
    steps: int = env_int("FRDIFF_APP_MAX_STEPS", 100)
    text: int = env_int("FRDIFF_APP_MAX_TEXT", 20_000)  # characters of policy text
    upload: int = env_int("FRDIFF_APP_MAX_UPLOAD", 100_000)  # bytes of an imported policy file
    queue: int = env_int("FRDIFF_APP_QUEUE_SIZE", 32)


LIMITS = Limits()
MIN_STEPS = 4


def model_name(model) -> str:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    return model


def sampler(name, model: str | None = None) -> str:
    """A sampler's display name, checked (and for `model`: one it can use)."""
    check_sampler(name, model)
    return name


def whole_number(value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        raise ValueError(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{what} must be from {low} to {high}, got {int(value)}")
    return int(value)


def steps_of(value) -> int:
    return whole_number(value, "steps", MIN_STEPS, LIMITS.steps)


def seed_of(value) -> int:
    return whole_number(value, "seed", 0, 2**31 - 1)


def glyphs_of(model: str, text) -> list[str]:
    """The glyphs to draw, one per character (spaces ignored)."""
    if not isinstance(text, str):
        raise ValueError(f"glyphs must be text, got {type(text).__name__}")
    if len(text) > 4 * LIMITS.glyphs:
        raise ValueError(f"at most {LIMITS.glyphs} glyphs per run (FRDIFF_APP_MAX_GLYPHS)")
    chars = [c for c in text.upper() if not c.isspace()]
    valid = labels_of(model)
    if not chars:
        raise ValueError(f"type at least one glyph; valid glyphs: {' '.join(valid)}")
    if len(chars) > LIMITS.glyphs:
        raise ValueError(f"at most {LIMITS.glyphs} glyphs per run (FRDIFF_APP_MAX_GLYPHS), got {len(chars)}")
    bad = sorted({c for c in chars if c not in valid})
    if bad:
        raise ValueError(f"no glyph {' '.join(map(repr, bad))}; valid glyphs: {' '.join(valid)}")
    return chars


def mixing_of(enabled, slope, bias) -> ScoreMixing:
    """The mixing sliders as a ScoreMixing (its constructor says what is out of range)."""
    for value, what in ((slope, "mixing slope k"), (bias, "mixing bias b")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value!r}")
    return ScoreMixing(slope=float(slope), bias=float(bias)) if enabled else ScoreMixing.off()


def policy_of(model: str, steps: int, text, scheduler: str | None = None) -> KeyframePolicy:
    """The editor's text as a policy for this model and step count: a grid (`NAME KFK...`
    lines), or a named policy (`uniform:2`, `tuned:2.0`, ...: app/specs.py), made for `steps`.
    A grid made from a spec (its first line `# spec: ...`) covering other steps is re-derived
    from the spec; `scheduler` (default the model's own) picks `magnitude` and `tuned` files."""
    if not isinstance(text, str):
        raise ValueError(f"the policy must be text, got {type(text).__name__}")
    if len(text) > LIMITS.text:
        raise ValueError(f"the policy text is {len(text)} characters; at most {LIMITS.text} "
                         f"(FRDIFF_APP_MAX_TEXT)")
    if is_spec(text):
        policy = spec_policy(model, steps, text, scheduler)
    else:
        try:
            policy = KeyframePolicy.from_text(text)
        except ValueError as err:
            if "\n" in text.strip():
                raise
            raise ValueError(f"{err}; or name a policy: {SPEC_HELP}") from None
        spec = spec_in(text)
        if spec is not None and policy.num_steps != steps:
            policy = spec_policy(model, steps, spec, scheduler)
    policy.check_blocks(list(blocks_of(model)))
    check_modes(policy, policy_blocks(model))
    if policy.num_steps != steps:
        raise ValueError(f"the policy covers {policy.num_steps} steps but the run has {steps}: "
                         f"pick a preset, edit the rows or name a policy ({SPEC_HELP})")
    return policy


@dataclass(frozen=True)
class RunSettings:
    """One request's checked settings: what every tab that samples needs."""

    model: str
    glyphs: list
    scheduler: str
    steps: int
    policy: KeyframePolicy
    mixing: ScoreMixing
    seed: int


def run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed) -> RunSettings:
    """The settings row and the policy editor, checked in the order a user would fix them."""
    model = model_name(model)
    scheduler = sampler(scheduler, model)
    steps, seed = steps_of(steps), seed_of(seed)
    chars = glyphs_of(model, glyphs)
    policy = policy_of(model, steps, policy_text, scheduler)
    return RunSettings(model, chars, scheduler, steps, policy, mixing_of(mixing_on, slope, bias), seed)

"""The step plans: what each step of a sampling run does, one class per policy type.

A plan answers, before a step's first model call, whether the step is a keyframe and which
mode each policy block runs in, and the weight `lam` of a reuse step's own output (0: no call,
the keyframe's prediction stands). `FixedPlan` reads a `KeyframePolicy` (every answer known
before sampling); `AdaptivePlan` an `AdaptivePolicy`, whose steps stay undecided (keyframe
None) until the probe block has run in the step's first call (`decide`)."""

from __future__ import annotations

import math

import torch

from .adaptive import AdaptivePolicy, AdaptiveState, relative_change
from .mixing import ScoreMixing
from .modes import Mode
from .policy import KeyframePolicy


class FixedPlan:
    """Keyframes and block modes fixed per step by a KeyframePolicy."""

    def __init__(self, policy: KeyframePolicy, mixing: ScoreMixing):
        self.policy, self.mixing = policy, mixing
        self.num_steps = policy.num_steps
        self.forecast = policy.forecast  # reuse extrapolates ("step", "logsnr") or holds (None)
        self.uncond = policy.uncond  # the unconditional CFG half's K/R per step (None: always K)

    def lam(self, step: int) -> float:
        """Weight of a reuse step's own output: 0 at N steps (no call), else score mixing's."""
        return self.policy.reuse_weight(step, self.mixing)

    def known_keyframe(self, step: int) -> bool:
        return self.policy.is_keyframe(step)

    def step(self, step: int, blocks: int) -> tuple[bool | None, tuple[str, ...]]:
        """(is the step a keyframe, each block's mode)."""
        return self.policy.is_keyframe(step), tuple(self.policy.mode(step, i) for i in range(blocks))

    def needs_schedule(self) -> bool:
        """Does the run need the scheduler's noise schedule (to mix, forecast or skip calls)?"""
        return self.mixing.enabled or self.forecast == "logsnr" or self.policy.has_no_call

    def shadow_possible(self, step: int) -> bool:
        """Can an observer be shown this step's FR output (an N step has no FR modes)?"""
        return not self.policy.no_call(step)

    def uncond_reused(self, step: int) -> bool:
        return self.policy.uncond_reused(step)

    def reset(self) -> None:
        """A new sampling run (nothing is carried over)."""


class AdaptivePlan:
    """Keyframes decided at run time from the probe block's change (adaptive.py)."""

    forecast = None
    uncond = None

    def __init__(self, policy: AdaptivePolicy, mixing: ScoreMixing):
        self.policy, self.mixing = policy, mixing
        self.num_steps = policy.num_steps
        self.state = AdaptiveState(policy)  # also the owner of p_key in the caches

    def lam(self, step: int) -> float:
        return self.mixing.lam(step, self.num_steps)

    def known_keyframe(self, step: int) -> bool:
        return self.policy.forced_keyframe(step)

    def step(self, step: int, blocks: int) -> tuple[bool | None, tuple[str, ...]]:
        """A forced keyframe, or undecided (None) until the probe has run; every block computes
        until then."""
        return (True if self.state.forced(step) else None), (Mode.KEYFRAME,) * blocks

    def decide(self, probe: torch.Tensor, probe_key: torch.Tensor | None, blocks: int) -> tuple[str, ...] | None:
        """After the probe of an undecided step: the reuse modes of its blocks, or None where
        the step is a keyframe (the probe changed enough since the last one)."""
        change = math.inf if probe_key is None else relative_change(probe, probe_key)
        if self.state.decide(change):
            return None
        return (Mode.KEYFRAME,) + (self.policy.reuse_mode,) * (blocks - 1)

    def keyframe(self) -> None:
        """A forced keyframe's probe ran: the change since it starts from zero."""
        self.state.keyframe()

    def needs_schedule(self) -> bool:
        return self.mixing.enabled

    def shadow_possible(self, step: int) -> bool:
        return False  # the probe would decide the step again

    def uncond_reused(self, step: int) -> bool:
        return False

    def reset(self) -> None:
        self.state.reset()


def plan_for(policy: KeyframePolicy | AdaptivePolicy, mixing: ScoreMixing) -> FixedPlan | AdaptivePlan:
    """The plan of a policy, chosen by its type."""
    if isinstance(policy, AdaptivePolicy):
        return AdaptivePlan(policy, mixing)
    if isinstance(policy, KeyframePolicy):
        return FixedPlan(policy, mixing)
    raise TypeError(f"policy must be a KeyframePolicy or an AdaptivePolicy, got {type(policy).__name__}")

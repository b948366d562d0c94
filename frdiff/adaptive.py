"""Adaptive keyframes: decide at run time, from a cheap probe, whether a step recomputes.

FRDiff fixes its keyframes before sampling (uniform or learned); the authors leave open an
input-dependent choice. This policy makes it the way TeaCache and FirstBlockCache do: the
first policy block (the *probe*, e.g. the UNet's first down block or the first DiT block)
computes at every step, and its output p is compared with its output p_key at the last
keyframe. Over the reuse steps since that keyframe the relative L1 changes add up,

    acc = sum_i mean|p_i - p_key| / mean|p_key|,

each reuse step having run on caches that are that stale. A step is a keyframe when
acc >= threshold (then every block computes and refreshes its caches, p_key = p, acc = 0);
otherwise the other blocks run in reuse mode: "fr" (feature reuse in every block) or
"skip" (each block returns its output from the keyframe). Steps 0 (the caches are empty) and
N-1 (its prediction is the final x0, as TeaCache also computes it) are always keyframes, and
so is a step after `max_reuse` consecutive reuse steps. The decision is made once per step,
in its first model call, and holds for every CFG branch of the step.

Score mixing (see accelerate.py): at an adaptive reuse step the output is
lam * reuse output + (1 - lam) * keyframe prediction, as for fixed keyframes. Where lam = 0
only the probe's output is needed: the blocks after it return zeros instead of running
(`reuse.Unneeded`), the model's own layers outside them finish the call and its output is
discarded, so such a step costs everything but the blocks after the probe (the embeddings,
the probe block and the output layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .modes import Mode

REUSE_NAMES = ("fr", "skip", "residual")  # the reuse names it takes (their modes: Mode.from_reuse)


@dataclass(frozen=True)
class AdaptivePolicy:
    """Keyframes chosen at run time: a step recomputes once the probe has changed enough."""

    num_steps: int
    threshold: float
    reuse: str = "fr"  # between keyframes: "fr" (feature reuse), "skip" (whole blocks) or
    # "residual" (input + cached residual: the probe and everything outside the blocks fresh)
    max_reuse: int | None = None  # at most this many consecutive reuse steps (None: no limit)

    def __post_init__(self):
        steps = self.num_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {self.num_steps!r}")
        try:
            threshold = float(self.threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number >= 0, got {self.threshold!r}") from None
        if not math.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be finite and >= 0, got {self.threshold!r}")
        object.__setattr__(self, "threshold", threshold)
        if self.reuse == "block":  # KeyframePolicy's name for whole-block reuse
            object.__setattr__(self, "reuse", "skip")
        if not isinstance(self.reuse, str) or self.reuse not in REUSE_NAMES:
            raise ValueError(f"reuse must be 'fr', 'skip' or 'residual', got {self.reuse!r:.60}")
        limit = self.max_reuse
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"max_reuse must be None or an integer >= 0, got {self.max_reuse!r}")

    @property
    def reuse_mode(self) -> Mode:
        """The mode of every block but the probe at a reuse step: F, S or R."""
        return Mode.from_reuse(self.reuse)

    def forced_keyframe(self, step: int) -> bool:
        """Keyframes known before sampling: the first and the last step."""
        return step == 0 or step == self.num_steps - 1

    def block_modes(self, block_index: int) -> set[str]:
        """Modes a block can take: the probe (block 0) always computes."""
        return {Mode.KEYFRAME} if block_index == 0 else {Mode.KEYFRAME, self.reuse_mode}

    def check_blocks(self, available) -> None:
        if len(available) < 2:
            raise ValueError(f"an adaptive policy needs a probe block and at least one block to "
                             f"reuse; this model has {len(available)} policy block(s)")

    def to_dict(self) -> dict:
        return {"num_steps": self.num_steps, "adaptive": {
            "threshold": self.threshold, "reuse": self.reuse, "max_reuse": self.max_reuse}}

    def summary(self) -> str:
        limit = "" if self.max_reuse is None else f", at most {self.max_reuse} reuse steps in a row"
        return f"adaptive: keyframe once the probe changed by {self.threshold:g} ({self.reuse}{limit})"


def relative_change(probe: torch.Tensor, probe_key: torch.Tensor) -> float:
    """mean|p - p_key| / mean|p_key| (FRDiff section 1's relative L1 distance)."""
    p, k = probe.detach().float(), probe_key.detach().float()
    scale = k.abs().mean()
    diff = (p - k).abs().mean()
    if scale == 0:
        return 0.0 if diff == 0 else math.inf
    return float(diff / scale)


@dataclass
class AdaptiveState:
    """The accumulated probe change and the reuse steps since the last keyframe."""

    policy: AdaptivePolicy
    accumulated: float = 0.0
    since_keyframe: int = 0

    def reset(self) -> None:
        self.keyframe()

    def forced(self, step: int) -> bool:
        """A keyframe whatever the probe says: first/last step, or max_reuse reached."""
        limit = self.policy.max_reuse
        return self.policy.forced_keyframe(step) or (
            limit is not None and self.since_keyframe >= limit)

    def decide(self, change: float) -> bool:
        """Add this step's probe change; True (a keyframe) once the sum reaches the threshold."""
        self.accumulated += change
        keyframe = not self.accumulated < self.policy.threshold  # NaN: recompute, never reuse
        if keyframe:
            self.keyframe()
        else:
            self.since_keyframe += 1
        return keyframe

    def keyframe(self) -> None:
        self.accumulated, self.since_keyframe = 0.0, 0

"""The tuner's search space: gates, structured starts, and projection onto the budget.

A policy of N steps x B blocks is a pair of binary gate matrices: k (1 = the block computes,
a keyframe) and z (1 = a non-keyframe block skips whole, else it uses FR). Costs come from
the one cost model, `frdiff.cost.CallCosts`.
"""

from __future__ import annotations

import torch

from ..cost import CallCosts
from ..mixing import ScoreMixing
from ..modes import Mode
from ..policy import KeyframePolicy


def lambdas(num_steps: int, mixing: ScoreMixing) -> list[float]:
    return [mixing.lam(i, num_steps) for i in range(num_steps)]


def as_no_call(policy: KeyframePolicy) -> KeyframePolicy:
    """Every step that is not a keyframe becomes N (no network call)."""
    return KeyframePolicy(tuple(row if set(row) == {Mode.KEYFRAME} else Mode.NO_CALL * len(row)
                                for row in policy.schedule),
                          policy.blocks)


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """Binary in the forward pass, the sigmoid's gradient in the backward pass."""
    p = torch.sigmoid(logits)
    return (p > 0.5).float() + p - p.detach()


def step_gated(k: torch.Tensor, lam: list[float]) -> torch.Tensor:
    """Where lam = 0 a non-keyframe step makes no network call at all, so no block can
    refresh its cache there: such a step is a keyframe for every block or for none, and
    column 0 of `k` decides. Elsewhere each block has its own gate."""
    no_call = torch.tensor([l == 0.0 for l in lam])[:, None]
    return torch.where(no_call, k[:, :1].expand_as(k), k)


def max_speedup(costs: CallCosts, num_steps: int, mixing: ScoreMixing) -> float:
    """The most any policy can save: every non-initial step skips every block."""
    n, b = num_steps, len(costs.block)
    k = torch.zeros(n, b)
    k[0] = 1
    z = torch.ones(n, b)
    return n * costs.full_step / float(costs.per_step(k, z, lambdas(n, mixing)).sum())


def gates_policy(k: torch.Tensor, z: torch.Tensor, blocks: list[str] | None,
                 whole: str | None = None) -> KeyframePolicy:
    """Binary gates (N, B) to a policy: K where k, else `whole`'s letter (S, or R for residual
    reuse; default S) where z, else F."""
    whole = whole or Mode.SKIP * k.shape[1]
    rows = ["".join(Mode.KEYFRAME if k[s, j] else (whole[j] if z[s, j] else Mode.FEATURE_REUSE)
                    for j in range(k.shape[1]))
            for s in range(k.shape[0])]
    if blocks is None:
        rows = [row[0] for row in rows]
    return KeyframePolicy(tuple(rows), tuple(blocks) if blocks else None)


def project(probs_k: torch.Tensor, probs_z: torch.Tensor, costs: CallCosts, mixing: ScoreMixing,
            target: float, blocks: list[str] | None, whole: str | None = None) -> KeyframePolicy:
    """Round the gates, then drop the least wanted keyframes until the budget holds and add
    back the most wanted ones while it still holds (greedy, by gate probability). A step
    where lam = 0 is one unit (all blocks or none, see `step_gated`), and so is every step
    when the gates are per step (`blocks` None: the policy has one letter per step)."""
    n, width = probs_k.shape[0], len(costs.block)
    lam = lambdas(n, mixing)
    budget = n * costs.full_step / target
    probs_k = step_gated(probs_k.expand(n, width), lam)
    k = (probs_k > 0.5).float()
    k[0] = 1.0
    z = (probs_z.expand(n, width) > 0.5).float()
    units = []  # (probability, step, block or None for the whole step)
    for s in range(1, n):
        if lam[s] == 0.0 or blocks is None:
            units.append((float(probs_k[s, 0]), s, None))
        else:
            units.extend((float(probs_k[s, b]), s, b) for b in range(width))

    def total() -> float:
        return float(costs.per_step(k, z, lam).sum())

    def put(s, b, value):
        if b is None:
            k[s, :] = value
        else:
            k[s, b] = value

    order = sorted(units, key=lambda u: u[0])
    for _, s, b in order:  # least wanted first
        if total() <= budget:
            break
        put(s, b, 0.0)
    for _, s, b in reversed(order):  # most wanted first
        if (k[s] if b is None else k[s, b]).min() == 0.0:
            put(s, b, 1.0)
            if total() > budget:
                put(s, b, 0.0)
    return gates_policy(k, z, blocks, whole)


def whole_letters(policy: KeyframePolicy, num_blocks: int) -> str:
    """Per block, what its whole-block reuse is in `policy`: "R" where it uses R, else "S"."""
    return "".join(Mode.RESIDUAL if Mode.RESIDUAL in policy.block_modes(b) else Mode.SKIP
                   for b in range(num_blocks))


def spread(num_steps: int, count: int) -> list[int]:
    """`count` keyframes as evenly spread as integers allow, step 0 first (a fractional
    uniform interval)."""
    return sorted({round(i * num_steps / count) for i in range(count)})


def templates(depths: dict[str, int] | None, residual: list[bool] | None = None) -> dict[str, str]:
    """The non-keyframe rows of the structured starts: FR everywhere; whole-block skip from the
    deepest level outward, shallow blocks computing or using FR (and DeepCache's shape, where
    only the outgoing shallow blocks run); where every block is residual (a DiT), residual
    reuse of the whole stack, or of all but the first and last blocks (computing or using FR):
    MagCache's form; no call at all (fewer steps)."""
    width = len(depths) if depths else 1
    rows = {"fr": Mode.FEATURE_REUSE * width}
    if depths and residual and all(residual):
        rows["residual"] = Mode.RESIDUAL * width
        if width > 2:
            for ends in (Mode.KEYFRAME, Mode.FEATURE_REUSE):
                rows[f"residual inner/{ends}"] = ends + Mode.RESIDUAL * (width - 2) + ends
    if depths:
        levels = list(depths.values())
        deepest = max(levels)
        middle = levels.index(deepest)  # blocks after it are on the way out (UNet up blocks)
        for keep in range(1, deepest + 1):
            for shallow in (Mode.KEYFRAME, Mode.FEATURE_REUSE):
                rows[f"skip>={keep}/{shallow}"] = "".join(Mode.SKIP if d >= keep else shallow for d in levels)
                rows[f"skip>={keep}/out-{shallow}"] = "".join(
                    shallow if d < keep and i > middle else Mode.SKIP for i, d in enumerate(levels))
    rows["no call"] = Mode.NO_CALL * width  # reduced NFE: no call between keyframes (fewer steps)
    return rows


def candidates(costs: CallCosts, n: int, mixing: ScoreMixing, target: float,
               depths: dict[str, int] | None, residual: list[bool] | None = None) -> dict[str, KeyframePolicy]:
    """Structured starting points that meet the target: for each template row, the most
    keyframes it can afford, spread evenly."""
    names = tuple(depths) if depths else None
    width = len(names) if names else 1
    found = {}
    for name, row in templates(depths, residual).items():
        for count in range(n, 0, -1):
            keys = set(spread(n, count))
            policy = KeyframePolicy(tuple(Mode.KEYFRAME * width if i in keys else row for i in range(n)), names)
            if costs.speedup(policy, mixing) >= target:
                found[f"{name} x{count}"] = policy
                break
    return found

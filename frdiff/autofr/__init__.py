"""Auto-FR: learn a keyframe policy to a speed budget (FRDiff section 4, extended).

Gates: one logit per step (shared by all blocks), or per step x block with `per_block=True`,
where a block that is not a keyframe also chooses between FR (fine reuse) and skipping the
whole block. Forward uses the binarised gate, backward the sigmoid's gradient (straight-
through). While tuning, every block computes and each cache becomes
`k * current + (1 - k) * cache`, so gradients flow through the difference. Where score mixing
has lam = 0 a non-keyframe step makes no network call, so such a step is one gate for all
blocks (`step_gated`).

The search, in three parts:
1. Start: structured policies that meet the target (FR between evenly spread keyframes;
   with `per_block`, also whole-block skip from the deepest level outward with the shallow
   blocks computing or using FR; and no call at all between keyframes, i.e. fewer steps),
   each with as many keyframes as the budget affords, scored by how close their real
   accelerated sampler lands to the full-compute output on held-out tuning batches. Two
   families descend from their best start: reuse steps that run the network (FR / skip,
   under the user's score mixing) and reuse steps that make no call (mode N; a third of the
   iterations, one gate per step: a learned step schedule).
2. Gradient: loss = distance of the gated sampler's final latents to the full-compute ones
   (same noise and labels), relative to the start's, plus dual * (counted MACs / budget - 1).
   The dual variable follows dual ascent, so the tuner trades counted compute, not keyframe
   count, and no penalty weight is hand-tuned. With `segment`, back-propagation is truncated
   every `segment` steps, so memory stays bounded for any step count.
3. Projection and selection: every few iterations the gates are projected greedily onto the
   budget (the policy's ideal speedup is always >= target_speedup) and scored like the
   starts; the best policy seen is returned. It is never worse than the start on the
   held-out batches; `TuneResult` says where it came from.

The pipeline runs its own, unmodified sampling loop (its `__call__` without no_grad).
The differentiable pass is built from accelerate's own parts (gated.py), so it optimises
the sampler the policy runs on, DPM-Solver++'s x0 forecast included; one cost model
(`frdiff.cost.CallCosts`) serves both.

Modules: tuner.py (`tune`, `TuneConfig`, `Tuner`: score the starts, descend, select),
gated.py (the soft-gated sampler), search.py (gates, starts, projection).
"""

from .gated import GatedRun, gated_pass, policy_loss, reference_latents
from .search import (as_no_call, candidates, gates_policy, lambdas, max_speedup, project, spread,
                     step_gated, straight_through, templates, whole_letters)
from .tuner import Descent, TuneCheck, TuneConfig, TuneResult, Tuner, count_costs, default_call, tune

__all__ = ["tune", "TuneConfig", "TuneResult", "TuneCheck", "Tuner", "Descent", "GatedRun",
           "gated_pass", "policy_loss", "reference_latents", "count_costs", "default_call",
           "as_no_call", "candidates", "gates_policy", "lambdas", "max_speedup", "project",
           "spread", "step_gated", "straight_through", "templates", "whole_letters"]

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
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .clock import StepClock, drive_clock
from .cost import MacCounter
from .mixing import ScoreMixing, from_prediction, to_prediction
from .policy import KeyframePolicy
from .targets import (PolicyBlock, denoiser_of, expensive_part, find_blocks, map_tensors,
                      model_point, resnet_head, resnet_tail, residual_scale, sample_of,
                      with_sample, wrap_sample)


@dataclass
class Costs:
    """MACs of one model call: in total, per block, and what FR saves in each block."""

    total: float
    block: list[float]
    fr_saving: list[float]

    def per_step(self, k: torch.Tensor, z: torch.Tensor, lam: list[float]) -> torch.Tensor:
        """Counted MACs of every step for gates k (keyframe) and z (skip), both (N, B)."""
        block, saving = torch.tensor(self.block), torch.tensor(self.fr_saving)
        fixed = self.total - float(block.sum())
        gated = fixed + (k * block + (1 - k) * (1 - z) * (block - saving)).sum(1)
        k_step = k.prod(1)
        no_call = torch.tensor([l == 0.0 for l in lam], dtype=k.dtype)
        return no_call * k_step * self.total + (1 - no_call) * gated

    def speedup(self, policy: KeyframePolicy, mixing: ScoreMixing) -> float:
        k, z = policy_gates(policy, len(self.block))
        lam = [policy.reuse_weight(s, mixing) for s in range(policy.num_steps)]
        return policy.num_steps * self.total / float(self.per_step(k, z, lam).sum())


def lambdas(num_steps: int, mixing: ScoreMixing) -> list[float]:
    return [mixing.lam(i, num_steps) for i in range(num_steps)]


def as_no_call(policy: KeyframePolicy) -> KeyframePolicy:
    """Every step that is not a keyframe becomes N (no network call)."""
    return KeyframePolicy(tuple(row if set(row) == {"K"} else "N" * len(row) for row in policy.schedule),
                          policy.blocks)


def policy_gates(policy: KeyframePolicy, num_blocks: int):
    k = torch.tensor([[policy.mode(s, b) == "K" for b in range(num_blocks)]
                      for s in range(policy.num_steps)], dtype=torch.float32)
    z = torch.tensor([[policy.mode(s, b) == "S" for b in range(num_blocks)]
                      for s in range(policy.num_steps)], dtype=torch.float32)
    return k, z


def _straight_through(logits: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    return (p > 0.5).float() + p - p.detach()


class GatedRun:
    """Differentiable stand-in for accelerate's Run while tuning."""

    def __init__(self, blocks: list[PolicyBlock], mixing: ScoreMixing, prediction_type: str,
                 scheduler):
        self.blocks, self.mixing, self.kind, self.scheduler = blocks, mixing, prediction_type, scheduler
        self.clock = StepClock()
        self.k = self.z = None  # (N, B) gates of the current pass
        self.cache: dict = {}
        self.key: dict = {}
        self.branch = 0
        self.signature = None

    def k_now(self, b):
        return self.k[self.clock.step, b]

    def skip_now(self, b):
        return (1 - self.k[self.clock.step, b]) * self.z[self.clock.step, b]

    def gate(self, owner, current):
        """cache = k * current + (1 - k) * cache (k = 1 at the first use)."""
        key = (id(owner), self.branch)
        k = self.k_now(owner.block if hasattr(owner, "block") else self.blocks.index(owner))
        old = self.cache.get(key)
        new = current if old is None else _blend(current, old, k)
        self.cache[key] = new
        return new

    def detach(self) -> None:
        self.cache = {k: map_tensors(lambda t: t.detach(), v) for k, v in self.cache.items()}
        self.key = {k: type(v)(*[None if t is None else t.detach() for t in
                                 (v.eps, v.x0, v.extra)]) for k, v in self.key.items()}


def _blend(current, old, k):
    if isinstance(current, torch.Tensor):
        return k * current + (1 - k) * old
    return tuple(_blend(c, o, k) for c, o in zip(current, old))


def _gated_unit_forward(unit, run: GatedRun, original):
    m = unit.module
    if unit.kind == "resnet":
        def forward(x, temb=None, *args, **kwargs):
            return resnet_tail(m, run.gate(unit, resnet_head(m, x)), x, temb)
    elif unit.kind == "residual":
        scale = residual_scale(m)

        def forward(*args, **kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            branch = sample_of(original(*args, **kwargs)) - x / scale
            return wrap_sample(m, x / scale + run.gate(unit, branch), kwargs)
    else:
        def forward(*args, **kwargs):
            return run.gate(unit, original(*args, **kwargs))
    return forward


def _gated_block_forward(block: PolicyBlock, index: int, run: GatedRun, original):
    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        key = (id(block), run.branch)
        old = run.cache.get(key)
        if old is not None:
            out = _blend(old, out, run.skip_now(index))
        run.cache[key] = out
        return out
    return forward


def _probe_costs(pipe, model, blocks, call) -> Costs:
    """Count MACs of one real model call of the pipeline's own loop (1 step, no grad)."""
    counter = MacCounter(model)
    seen = []

    def first_call_only(module, args, kwargs):
        if not seen:
            seen.append(1)
            counter.__enter__()

    def stop(module, args, kwargs, out):
        counter.__exit__()

    h1 = model.register_forward_pre_hook(first_call_only, with_kwargs=True)
    h2 = model.register_forward_hook(stop, with_kwargs=True)
    try:
        with torch.no_grad():
            call(1)
    finally:
        h1.remove(), h2.remove(), counter.__exit__()
    saving = []
    for b in blocks:
        saving.append(float(sum(counter.total(expensive_part(u)) for u in b.units)))
    return Costs(float(counter.total()), [float(counter.total(b.module)) for b in blocks], saving)


def _detach_state(obj) -> None:
    """Cut the graph held by a scheduler's multistep history (truncated back-propagation)."""
    for name, value in list(vars(obj).items()):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            setattr(obj, name, value.detach())
        elif isinstance(value, list) and any(isinstance(v, torch.Tensor) for v in value):
            setattr(obj, name, [v.detach() if isinstance(v, torch.Tensor) else v for v in value])


def _sample_of_step(out):
    return out[0] if isinstance(out, tuple) else out.prev_sample


def _with_step_sample(out, sample):
    if isinstance(out, tuple):
        return (sample,) + tuple(out[1:])
    out.prev_sample = sample
    return out


def _default_call(pipe, batch_size: int, seed: int):
    """A sampler call for GlyphPipeline-style pipelines (random labels, fixed noise)."""
    if not hasattr(pipe, "labels"):
        raise ValueError("pass call_kwargs for this pipeline (e.g. prompt_embeds or class_labels)")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(pipe.labels), (batch_size,), generator=g).tolist()
    return {"class_labels": labels, "output_type": "pt"}


def max_speedup(costs: Costs, num_steps: int, mixing: ScoreMixing) -> float:
    """The most any policy can save: every non-initial step skips every block."""
    n, b = num_steps, len(costs.block)
    k = torch.zeros(n, b)
    k[0] = 1
    z = torch.ones(n, b)
    return n * costs.total / float(costs.per_step(k, z, lambdas(n, mixing)).sum())


def step_gated(k: torch.Tensor, lam: list[float]) -> torch.Tensor:
    """Where lam = 0 a non-keyframe step makes no network call at all, so no block can
    refresh its cache there: such a step is a keyframe for every block or for none, and
    column 0 of `k` decides. Elsewhere each block has its own gate."""
    no_call = torch.tensor([l == 0.0 for l in lam])[:, None]
    return torch.where(no_call, k[:, :1].expand_as(k), k)


def project(probs_k: torch.Tensor, probs_z: torch.Tensor, costs: Costs, mixing: ScoreMixing,
            target: float, blocks: list[str] | None) -> KeyframePolicy:
    """Round the gates, then drop the least wanted keyframes until the budget holds and add
    back the most wanted ones while it still holds (greedy, by gate probability). A step
    where lam = 0 is one unit (all blocks or none, see `step_gated`)."""
    n, width = probs_k.shape[0], len(costs.block)
    lam = lambdas(n, mixing)
    budget = n * costs.total / target
    probs_k = step_gated(probs_k.expand(n, width), lam)
    k = (probs_k > 0.5).float()
    k[0] = 1.0
    z = (probs_z.expand(n, width) > 0.5).float()
    total = lambda: float(costs.per_step(k, z, lam).sum())  # noqa: E731
    units = []  # (probability, step, block or None for the whole step)
    for s in range(1, n):
        if lam[s] == 0.0:
            units.append((float(probs_k[s, 0]), s, None))
        else:
            units.extend((float(probs_k[s, b]), s, b) for b in range(width))

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
    return gates_policy(k, z, blocks)


def gates_policy(k: torch.Tensor, z: torch.Tensor, blocks: list[str] | None) -> KeyframePolicy:
    """Binary gates (N, B) to a policy: K where k, else S where z, else F."""
    rows = ["".join("K" if k[s, j] else ("S" if z[s, j] else "F") for j in range(k.shape[1]))
            for s in range(k.shape[0])]
    if blocks is None:
        rows = [row[0] for row in rows]
    return KeyframePolicy(tuple(rows), tuple(blocks) if blocks else None)


def spread(num_steps: int, count: int) -> list[int]:
    """`count` keyframes as evenly spread as integers allow, step 0 first (a fractional
    uniform interval)."""
    return sorted({round(i * num_steps / count) for i in range(count)})


def candidates(costs: Costs, n: int, mixing: ScoreMixing, target: float,
               depths: dict[str, int] | None) -> dict[str, KeyframePolicy]:
    """Structured starting points that meet the target: for each non-keyframe template (FR
    everywhere; whole-block skip from the deepest level outward, shallow blocks computing or
    using FR; no call at all, i.e. fewer steps), the most keyframes it can afford, spread
    evenly."""
    names = list(depths) if depths else None
    width = len(names) if names else 1
    templates = {"fr": "F" * width}
    if depths:
        levels = list(depths.values())
        deepest = max(levels)
        middle = levels.index(deepest)  # blocks after it are on the way out (UNet up blocks)
        for keep in range(1, deepest + 1):
            for shallow in ("K", "F"):
                templates[f"skip>={keep}/{shallow}"] = "".join(
                    "S" if d >= keep else shallow for d in levels)
                # DeepCache's shape: only the outgoing shallow blocks run between keyframes
                templates[f"skip>={keep}/out-{shallow}"] = "".join(
                    shallow if d < keep and i > middle else "S" for i, d in enumerate(levels))
    templates["no call"] = "N" * width  # reduced NFE: no call between keyframes (fewer steps)
    found = {}
    for name, row in templates.items():
        for count in range(n, 0, -1):
            keys = set(spread(n, count))
            policy = KeyframePolicy(tuple("K" * width if i in keys else row for i in range(n)),
                                    tuple(names) if names else None)
            if costs.speedup(policy, mixing) >= target:
                found[f"{name} x{count}"] = policy
                break
    return found


@dataclass
class TuneResult:
    """The tuned policy and how it was found. `final_loss` is the selection loss of the
    returned policy (mean squared error of the final latents to the full-compute ones,
    relative to their power, on held-out tuning batches); `start` names the structured
    starting point and `start_loss` its selection loss."""

    policy: KeyframePolicy
    ideal_speedup: float
    final_loss: float
    losses: list[float]
    start: str = ""
    start_loss: float = float("nan")
    selected_at: int = 0  # gradient iteration of the returned policy (0: the start itself)
    starts: dict[str, float] | None = None  # selection loss of every structured start

    def meta(self) -> dict:
        """How the policy was found, for a policy file's `meta`."""
        return {"final_loss": self.final_loss, "ideal_speedup": self.ideal_speedup,
                "start": self.start, "start_loss": self.start_loss, "selected_at": self.selected_at,
                "starts": self.starts}


def tune(pipe, num_inference_steps: int, target_speedup: float, per_block: bool = False,
         iterations: int = 30, seed: int = 0, progress: bool = True,
         mixing: ScoreMixing | None = None, batch_size: int = 2, lr: float = 0.3,
         segment: int | None = None, call_kwargs: dict | None = None,
         tuning_batches: int = 4, selection_batches: int = 2, checks: int = 6) -> TuneResult:
    """Learn a policy whose ideal speedup is >= target_speedup (see the module docstring)."""
    mixing = mixing if mixing is not None else ScoreMixing()
    if not (isinstance(target_speedup, (int, float)) and math.isfinite(target_speedup)
            and target_speedup > 0):
        raise ValueError(f"target_speedup must be a positive number, got {target_speedup!r}")
    if iterations < 0 or tuning_batches < 1 or selection_batches < 1:
        raise ValueError("iterations must be >= 0 and tuning/selection batches >= 1")
    model, n = denoiser_of(pipe), num_inference_steps
    blocks = find_blocks(model)
    if not any(b.units for b in blocks):
        raise ValueError(f"{type(model).__name__} has no module frdiff can reuse")
    pipe.set_progress_bar_config(disable=True)
    raw_call = type(pipe).__call__.__wrapped__  # the pipeline's loop, without no_grad

    def call(steps: int, batch: int = 0):
        kwargs = call_kwargs if call_kwargs is not None else _default_call(pipe, batch_size, seed + batch)
        g = torch.Generator().manual_seed(seed + batch)
        return raw_call(pipe, num_inference_steps=steps, generator=g, **kwargs)

    costs = _probe_costs(pipe, model, blocks, call)
    ceiling = max(max_speedup(costs, n, mixing), max_speedup(costs, n, ScoreMixing.reduced_nfe(mixing.multistep)))
    if target_speedup > ceiling:
        raise ValueError(f"target {target_speedup}x is unreachable: at most {ceiling:.2f}x for {n} "
                         f"steps (step 0 always computes in full)")
    width = len(blocks) if per_block else 1
    names = [b.name for b in blocks] if per_block else None
    # held-out batches (for choosing between policies) and tuning batches (for gradients)
    held_out = [1000 + i for i in range(selection_batches)]
    references = {b: _reference_latents(pipe, call, n, b)
                  for b in list(range(tuning_batches)) + held_out}

    def selection_loss(policy: KeyframePolicy) -> float:
        return _policy_loss(pipe, call, policy, mixing, n, {b: references[b][-1] for b in held_out})

    depths = {b.name: b.depth for b in blocks} if per_block else None
    starts = {name: (p, selection_loss(p))
              for name, p in candidates(costs, n, mixing, target_speedup, depths).items()}
    if not starts:  # no template reaches the target: start from the projected all-reuse gates
        p = project(torch.zeros(n, width), torch.zeros(n, width), costs, mixing, target_speedup, names)
        starts["projected"] = (p, selection_loss(p))
    # two families, each descended from its best start: reuse steps with FR / skip under the
    # user's mixing, and reuse steps with no call at all (learned step selection; under
    # ScoreMixing.reduced_nfe every non-keyframe step makes no call, and `as_no_call` writes
    # those steps as N); the "no call" family gets a third of the iterations (one gate per step)
    families = {}
    for no_call in (False, True):
        mine = [name for name, (p, _) in starts.items() if p.has_no_call == no_call]
        if mine:
            families[no_call] = min(mine, key=lambda name: starts[name][1])
    iters = {no_call: iterations // 3 if no_call else iterations for no_call in families}
    bar = tqdm(total=sum(iters.values()) + 1, desc="auto-fr", disable=not progress)
    bar.update(1)
    budget = n * costs.total / target_speedup
    check_every = {f: max(1, b // max(checks, 1)) for f, b in iters.items()}

    def descend(start: KeyframePolicy, start_loss: float, no_call: bool):
        """Part 2 from one start: (best policy, its selection loss, its iteration, distances)."""
        family = ScoreMixing.reduced_nfe(mixing.multistep) if no_call else mixing
        finish = as_no_call if no_call else (lambda p: p)
        lam = lambdas(n, family)
        k0, z0 = policy_gates(start, len(blocks))
        logits_k = (3.0 * k0[:, :width] - 1.5).clone().requires_grad_(True)
        logits_z = (3.0 * z0[:, :width] - 1.5).clone().requires_grad_(per_block)
        opt = torch.optim.Adam([logits_k, logits_z] if per_block else [logits_k], lr=lr)
        dual, scale = 0.0, None
        best, best_loss, best_at, losses = start, start_loss, 0, []
        for it in range(iters[no_call]):
            batch = it % tuning_batches
            k = _straight_through(logits_k)
            k = torch.cat([torch.ones(1, width), k[1:]])  # step 0 is always a keyframe
            z = _straight_through(logits_z) if per_block else torch.zeros(n, width)
            kb = step_gated(k.expand(n, len(blocks)), lam)
            zb = z.expand(n, len(blocks))
            distance = _gated_pass(pipe, blocks, family, call, batch, kb, zb, references[batch],
                                   segment, 1.0 / scale if scale else 1.0)
            if scale is None:  # losses are relative to the start policy's on the first batch
                scale = max(distance, 1e-6)
                _rescale_grads([logits_k, logits_z], 1.0 / scale)
            distance /= scale
            cost = costs.per_step(kb, zb, lam).sum() / budget
            (dual * cost).backward()
            if not math.isfinite(distance) or not torch.isfinite(logits_k.grad).all():
                raise FloatingPointError(f"non-finite loss or gradient at iteration {it}")
            opt.step()
            opt.zero_grad()
            dual = max(0.0, dual + (float(cost.detach()) - 1.0))  # dual ascent on the budget
            losses.append(distance)
            if (it + 1) % check_every[no_call] == 0 or it + 1 == iters[no_call]:
                with torch.no_grad():
                    policy = finish(project(torch.sigmoid(logits_k), torch.sigmoid(logits_z) if per_block
                                            else torch.zeros(n, width), costs, family, target_speedup, names))
                loss = selection_loss(policy)
                if loss < best_loss:
                    best, best_loss, best_at = policy, loss, it + 1
            bar.update(1)
            bar.set_postfix(dist=f"{distance:.3f}", cost=f"{float(cost.detach()):.2f}",
                            dual=f"{dual:.2f}", best=f"{best_loss:.2e}")
        return best, best_loss, best_at, losses

    best_start = min(starts, key=lambda name: starts[name][1])
    result = TuneResult(starts[best_start][0], 0.0, starts[best_start][1], [], best_start,
                        starts[best_start][1], starts={name: loss for name, (_, loss) in starts.items()})
    model.requires_grad_(False)
    try:
        for no_call, name in families.items():
            found, found_loss, at, losses = descend(*starts[name], no_call)
            if not no_call or not result.losses:  # the reuse family's curve where there is one
                result.losses = losses
            if found_loss < result.final_loss:
                result.policy, result.final_loss, result.selected_at = found, found_loss, at
                result.start, result.start_loss = name, starts[name][1]
    finally:
        model.requires_grad_(True)
        bar.close()
    result.ideal_speedup = costs.speedup(result.policy, mixing)
    return result


def _rescale_grads(params, factor: float) -> None:
    for p in params:
        if p.grad is not None:
            p.grad.mul_(factor)


def _policy_loss(pipe, call, policy: KeyframePolicy, mixing: ScoreMixing, n: int,
                 references: dict[int, torch.Tensor]) -> float:
    """Relative MSE of the final latents of the real accelerated sampler to the reference."""
    from .accelerate import accelerate

    total = 0.0
    with accelerate(pipe, policy, mixing):
        for batch, ref in references.items():
            final = _reference_latents(pipe, call, n, batch)[-1]
            total += float((final.float() - ref).pow(2).mean() / (ref.pow(2).mean() + 1e-12))
    return total / len(references)


def _reference_latents(pipe, call, n: int, it: int) -> list[torch.Tensor]:
    """Latents after every step of the full-compute sampler."""
    latents = []

    def record(out):
        latents.append(_sample_of_step(out).detach().clone())
        return out

    restore = drive_clock(pipe.scheduler, lambda steps: None, record)
    try:
        with torch.no_grad():
            call(n, it)
    finally:
        restore()
    return latents


def _gated_pass(pipe, blocks, mixing, call, batch, k, z, reference, segment, weight=1.0) -> float:
    """One differentiable sampling pass. The loss is the distance of the final latents to
    the reference; with `segment`, back-propagation is truncated every `segment` steps
    (the distance at each segment end is added), so memory stays bounded for long runs."""
    model = denoiser_of(pipe)
    run = GatedRun(blocks, mixing, pipe.scheduler.config.prediction_type, pipe.scheduler)
    run.k, run.z = k, z
    distance = [0.0]
    n = len(reference)
    scale = float(reference[-1].pow(2).mean()) + 1e-8

    def on_step(out):
        s = run.clock.step
        run.clock.advance()
        if s + 1 < n and (segment is None or (s + 1) % segment):
            return out
        x = _sample_of_step(out)
        loss = (x.float() - reference[s]).pow(2).mean() / scale
        if loss.requires_grad:  # the gates' small graph is shared by every segment
            (weight * loss).backward(retain_graph=True)
        distance[0] += float(loss.detach())
        run.detach()
        _detach_state(pipe.scheduler)
        return _with_step_sample(out, x.detach())

    undo = [drive_clock(pipe.scheduler, run.clock.start, on_step)]
    try:
        _install_gated(model, blocks, run, undo)
        with torch.enable_grad():
            call(n, batch)
    finally:
        for restore in reversed(undo):
            restore()
    return distance[0]


def _install_gated(model, blocks, run: GatedRun, undo: list) -> None:
    from .accelerate import _replace_forward

    original = model.forward

    def model_forward(*args, **kwargs):
        run.branch = run.clock.next_call()
        out = original(*args, **kwargs)
        return _gated_mix(run, out, args, kwargs)

    _replace_forward(model, model_forward, undo)
    for index, block in enumerate(blocks):
        _replace_forward(block.module, _gated_block_forward(block, index, run, block.module.forward), undo)
        for unit in block.units:
            _replace_forward(unit.module, _gated_unit_forward(unit, run, unit.module.forward), undo)
    run.signature = inspect.signature(original)


def _gated_mix(run: GatedRun, out, args, kwargs):
    """Score mixing with a soft keyframe: w = k + (1 - k) lam weighs this step's output."""
    s = run.clock.step
    lam = run.mixing.lam(s, run.clock.num_steps)
    if not run.mixing.enabled:
        return out
    x, alpha, sigma = model_point(run.signature, run.scheduler, args, kwargs)
    pred = to_prediction(sample_of(out), x, alpha, sigma, run.kind)
    key = run.key.get(run.branch)
    k_step = run.k[s].prod()
    run.key[run.branch] = pred if key is None else pred.mix(key, k_step)
    if key is None:
        return out
    mixed = pred.mix(key, k_step + (1 - k_step) * lam)
    return with_sample(out, from_prediction(mixed, alpha, sigma, run.kind))

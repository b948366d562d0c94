"""`tune()`: score the structured starts, descend from the best of each family, select.

    result = tune(pipe, 50, 2.0, per_block=True)            # options are TuneConfig fields
    result = tune(pipe, 50, 2.0, TuneConfig(iterations=60))

The three steps are public on `Tuner` (`score_starts`, `descend`, `select`), for callers
that want to watch or drive them (an app showing the policy as it changes: `on_check`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..cost import CallCosts, MacCounter, policy_gates
from ..distributed import run_shared
from ..magnitude import Calibration, calibrate, policy_for_speedup
from ..patching import Patches
from ..mixing import ScoreMixing
from ..policy import KeyframePolicy
from ..targets import denoiser_of, find_blocks, supported_families
from .gated import batch_losses, gated_pass, policy_loss, reference_latents
from .search import (as_no_call, candidates, lambdas, max_speedup, project, step_gated,
                     straight_through, templates, whole_letters)


@dataclass
class TuneCheck:
    """A projected policy scored during descent (what `on_check` gets)."""

    family: str  # "reuse" (FR / skip under the user's mixing) or "no call" (step selection)
    iteration: int
    policy: KeyframePolicy
    loss: float
    best_loss: float


@dataclass
class TuneConfig:
    """How to tune. Gates are per step, or per step x block with `per_block`; `iterations`
    gradient steps for the reuse family (a third of them for the no-call family); `checks`
    projections (scored on the held-out batches) per family; `segment` truncates
    back-propagation every that many steps; batches of `batch_size` images, labels and noise
    from `seed` (`call_kwargs` replaces the labels for pipelines other than GlyphPipeline)."""

    per_block: bool = False
    iterations: int = 30
    seed: int = 0
    mixing: ScoreMixing | None = None  # None: ScoreMixing(), the paper's schedule
    batch_size: int = 2
    lr: float = 0.3
    segment: int | None = None
    call_kwargs: dict | None = None
    tuning_batches: int = 4
    selection_batches: int = 4  # held-out batches that choose between policies: 8 images by default
    checks: int = 6
    # successive halving of the structured starts: all are scored on the first held-out batch,
    # then only the best `prune_starts` of each family (reuse, no call) on the others (None:
    # every start on every batch). The descents and the selection are unchanged.
    prune_starts: int | None = None
    progress: bool = True
    calibration: Calibration | None = None  # magnitude ratios (None: calibrated on the fly)
    on_check: Callable[[TuneCheck], None] | None = field(default=None, repr=False)
    # on_progress(stage, done, total) after each start scored ("starts") and each gradient step
    # ("descent", counted over both families); an exception raised in either callback stops
    # the tuner there, the model restored (how an app cancels or time-limits a run)
    on_progress: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    # accelerate's PartialState (frdiff.distributed.processes()): the structured starts are
    # scored in shares across processes; every process then descends the same way
    state: object | None = field(default=None, repr=False)
    # the budget's unit: "counted" MACs, or "measured" seconds on this device from a cost
    # table (`cost_table`: a frdiff.profile.CostTable or its JSON path; None: profiled first,
    # at `profile_batch` images a call, which is the batch the tuned policy is timed for)
    cost: str = "counted"
    cost_table: object | None = None
    profile_batch: int = 8

    def __post_init__(self):
        self.mixing = self.mixing if self.mixing is not None else ScoreMixing()
        if self.cost not in ("counted", "measured"):
            raise ValueError(f"cost must be 'counted' or 'measured', got {self.cost!r}")
        if self.cost_table is not None and self.cost != "measured":
            raise ValueError("a cost_table is for cost='measured'")
        if isinstance(self.profile_batch, bool) or not isinstance(self.profile_batch, int) or self.profile_batch < 1:
            raise ValueError(f"profile_batch must be an integer >= 1, got {self.profile_batch!r}")
        if not isinstance(self.mixing, ScoreMixing):
            raise TypeError(f"mixing must be a ScoreMixing, got {type(self.mixing).__name__}")
        for name in ("iterations", "batch_size", "tuning_batches", "selection_batches", "checks"):
            value = getattr(self, name)
            low = 0 if name == "iterations" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        keep = self.prune_starts
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"prune_starts must be None or an integer >= 1, got {keep!r}")
        if self.segment is not None and (not isinstance(self.segment, int) or self.segment < 1):
            raise ValueError(f"segment must be None or an integer >= 1, got {self.segment!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")


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
    pruned: dict[str, float] | None = None  # starts scored on the first held-out batch only
    cost: str = "counted"  # ideal_speedup's unit: counted MACs or measured seconds (TuneConfig.cost)

    def meta(self) -> dict:
        """How the policy was found, for a policy file's `meta`."""
        return {"final_loss": self.final_loss, "ideal_speedup": self.ideal_speedup,
                "start": self.start, "start_loss": self.start_loss, "selected_at": self.selected_at,
                "starts": self.starts, "cost": self.cost} | ({"pruned": self.pruned} if self.pruned else {})


@dataclass
class Descent:
    """What one family's gradient descent found."""

    policy: KeyframePolicy
    loss: float
    at: int  # iteration it was seen at (0: the start)
    losses: list[float]


def default_call(pipe, batch_size: int, seed: int) -> dict:
    """A sampler call for GlyphPipeline-style pipelines (random labels; noise from the seed)."""
    if not hasattr(pipe, "labels"):
        raise ValueError("pass call_kwargs for this pipeline (e.g. prompt_embeds or class_labels)")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(pipe.labels), (batch_size,), generator=g).tolist()
    return {"class_labels": labels, "output_type": "pt"}


def count_costs(pipe, blocks, call) -> CallCosts:
    """Count the MACs of the first model call of one real 1-step run of the pipeline's loop."""
    model = denoiser_of(pipe)
    counted = []

    def count(original):
        def forward(*args, **kwargs):
            if counted:
                return original(*args, **kwargs)
            with MacCounter(model) as counter:
                out = original(*args, **kwargs)
            counted.append(CallCosts.count(counter, blocks))
            return out
        return forward

    with Patches() as patches, torch.no_grad():
        patches.forward(model, count)
        call(1)
    return counted[0]


def measured_costs(pipe, num_steps: int, config: TuneConfig) -> CallCosts:
    """The seconds of `config.cost_table` (checked to be this model's, device's and dtype's),
    or of a profile made now (with a progress bar)."""
    from ..profile import CostTable, profile

    table = config.cost_table
    if table is None:
        call = config.call_kwargs if config.call_kwargs is not None else default_call(
            pipe, config.profile_batch, config.seed)
        table = profile(pipe, num_steps, call, progress=config.progress)
    elif isinstance(table, str):
        table = CostTable.from_json(table)
    elif not isinstance(table, CostTable):
        raise TypeError(f"cost_table must be a CostTable or the path of one, got {type(table).__name__}")
    table.check(pipe)
    return table.costs


class Tuner:
    """The tuning problem for one pipeline, step count and target: its cost model, the
    full-compute reference latents, and the three steps of `tune`."""

    def __init__(self, pipe, num_inference_steps: int, target_speedup: float,
                 config: TuneConfig | None = None):
        self.config = config = config or TuneConfig()
        if not (isinstance(target_speedup, (int, float)) and math.isfinite(target_speedup)
                and target_speedup > 0):
            raise ValueError(f"target_speedup must be a positive number, got {target_speedup!r}")
        self.pipe, self.n, self.target = pipe, num_inference_steps, float(target_speedup)
        self.model = denoiser_of(pipe)
        self.blocks = find_blocks(self.model)
        if not any(b.units for b in self.blocks):
            raise ValueError(f"{type(self.model).__name__} has no module frdiff can reuse "
                             f"(supported: {supported_families()})")
        pipe.set_progress_bar_config(disable=True)
        self._raw_call = type(pipe).__call__.__wrapped__  # the pipeline's loop, without no_grad
        self.costs = (measured_costs(pipe, num_inference_steps, config) if config.cost == "measured"
                      else count_costs(pipe, self.blocks, self.call))
        mixing = config.mixing
        ceiling = max(max_speedup(self.costs, self.n, mixing),
                      max_speedup(self.costs, self.n, ScoreMixing.reduced_nfe(mixing.multistep)))
        if self.target > ceiling:
            raise ValueError(f"target {self.target}x is unreachable: at most {ceiling:.2f}x for "
                             f"{self.n} steps (step 0 always computes in full)")
        self.width = len(self.blocks) if config.per_block else 1
        self.names = [b.name for b in self.blocks] if config.per_block else None
        # tuning batches (for gradients) and held-out batches (for choosing between policies)
        self.held_out = [1000 + i for i in range(config.selection_batches)]
        self.references = {b: reference_latents(pipe, self.call, self.n, b)
                           for b in list(range(config.tuning_batches)) + self.held_out}
        # starts left after the first held-out batch (prune_starts): name -> (policy, its loss there)
        self.pruned: dict[str, tuple[KeyframePolicy, float]] = {}
        self._bar = None
        self._done = self._total = 0  # gradient steps taken / to take, over both families

    def call(self, steps: int, batch: int = 0):
        """One run of the pipeline's own loop on batch `batch` (its labels and noise)."""
        c = self.config
        kwargs = c.call_kwargs if c.call_kwargs is not None else default_call(self.pipe, c.batch_size,
                                                                             c.seed + batch)
        g = torch.Generator().manual_seed(c.seed + batch)
        return self._raw_call(self.pipe, num_inference_steps=steps, generator=g, **kwargs)

    def selection_loss(self, policy: KeyframePolicy) -> float:
        """The real accelerated sampler's relative error on the held-out batches."""
        finals = {b: self.references[b][-1] for b in self.held_out}
        return policy_loss(self.pipe, self.call, policy, self.config.mixing, self.n, finals)

    def held_out_losses(self, policy: KeyframePolicy, batches: list[int]) -> list[float]:
        """`selection_loss`'s terms on some of the held-out batches."""
        finals = {b: self.references[b][-1] for b in batches}
        return batch_losses(self.pipe, self.call, policy, self.config.mixing, self.n, finals)

    def iterations(self, no_call: bool) -> int:
        return self.config.iterations // 3 if no_call else self.config.iterations

    # -- step 1 ----------------------------------------------------------------------------
    def score_starts(self) -> dict[str, tuple[KeyframePolicy, float]]:
        """Every structured start that meets the target, with its selection loss: evenly spread
        keyframes for each template, and (per block) the same templates on the schedule the
        calibrated magnitude ratios give (frdiff.magnitude, MagCache's rule)."""
        depths = {b.name: b.depth for b in self.blocks} if self.config.per_block else None
        residual = [b.residual for b in self.blocks]
        found = candidates(self.costs, self.n, self.config.mixing, self.target, depths, residual)
        if self.config.per_block:
            found |= self.magnitude_starts(depths, residual)
        if not found:  # no template reaches the target: the projected all-reuse gates
            zeros = torch.zeros(self.n, self.width)
            found = {"projected": project(zeros, zeros, self.costs, self.config.mixing,
                                          self.target, self.names)}
        keep, first, rest = self.config.prune_starts, self.held_out[:1], self.held_out[1:]
        if keep is None or not rest or len(found) <= keep:
            first, rest = self.held_out, []  # every start on every batch
        done, total = [0], [len(found)]

        def scorer(batches):
            def score(item):
                name, p = item
                losses = self.held_out_losses(p, batches)
                done[0] += 1
                if self.config.on_progress is not None:
                    self.config.on_progress("starts", done[0], total[0])
                return name, (p, losses)
            return score

        scored = dict(run_shared(self.config.state, list(found.items()), scorer(first)))
        if rest:  # the best `keep` of each family go on to the other held-out batches
            survivors = set()
            for no_call in (False, True):
                mine = sorted((name for name, (p, _) in scored.items() if p.has_no_call == no_call),
                              key=lambda name: scored[name][1][0])
                survivors |= set(mine[:keep])
            total[0] += len(survivors)
            more = dict(run_shared(self.config.state, [(n, scored[n][0]) for n in scored if n in survivors],
                                   scorer(rest)))
            self.pruned = {n: (p, losses[0]) for n, (p, losses) in scored.items() if n not in survivors}
            scored = {n: (p, losses + more[n][1]) for n, (p, losses) in scored.items() if n in survivors}
        return {name: (p, sum(losses) / len(losses)) for name, (p, losses) in scored.items()}

    def magnitude_starts(self, depths: dict[str, int], residual: list[bool]) -> dict[str, KeyframePolicy]:
        """Each template row on the magnitude schedule that just meets the target."""
        calibration = self.config.calibration
        if calibration is None or calibration.num_steps != self.n:
            calibration = calibrate(self.pipe, self.n, call=lambda steps: self.call(steps, 0))
        speedup = lambda p: self.costs.speedup(p, self.config.mixing)  # noqa: E731
        found = {}
        for name, row in templates(depths, residual).items():
            hit = policy_for_speedup(calibration, speedup, self.target, row, tuple(depths))
            if hit is not None:
                found[f"magnitude {hit[0]:.3g}/{name}"] = hit[1]
        return found

    @staticmethod
    def families(starts: dict[str, tuple[KeyframePolicy, float]]) -> dict[bool, str]:
        """The best start of each family: reuse steps that call the network (False) and
        reuse steps that make no call (True, learned step selection)."""
        best = {}
        for no_call in (False, True):
            mine = [name for name, (p, _) in starts.items() if p.has_no_call == no_call]
            if mine:
                best[no_call] = min(mine, key=lambda name: starts[name][1])
        return best

    # -- step 2 ----------------------------------------------------------------------------
    def descend(self, start: KeyframePolicy, start_loss: float, no_call: bool) -> Descent:
        """Gradient descent on the gates from `start` (see the package docstring), projecting
        and scoring `checks` times; returns the best policy seen (the start if none beat it)."""
        c, n, width, nb = self.config, self.n, self.width, len(self.blocks)
        family = ScoreMixing.reduced_nfe(c.mixing.multistep) if no_call else c.mixing
        finish = as_no_call if no_call else (lambda p: p)
        lam = lambdas(n, family)
        whole = whole_letters(start, nb)  # what a block's z gate means: S, or R where the start used R
        k0, z0 = (g.float() for g in policy_gates(start, nb))
        logits_k = (3.0 * k0[:, :width] - 1.5).clone().requires_grad_(True)
        logits_z = (3.0 * z0[:, :width] - 1.5).clone().requires_grad_(c.per_block)
        opt = torch.optim.Adam([logits_k, logits_z] if c.per_block else [logits_k], lr=c.lr)
        budget = n * self.costs.full_step / self.target
        total = self.iterations(no_call)
        check_every = max(1, total // c.checks)
        dual, scale = 0.0, None
        best = Descent(start, start_loss, 0, [])
        for it in range(total):
            batch = it % c.tuning_batches
            k = torch.cat([torch.ones(1, width), straight_through(logits_k)[1:]])  # step 0 computes
            z = straight_through(logits_z) if c.per_block else torch.zeros(n, width)
            kb, zb = step_gated(k.expand(n, nb), lam), z.expand(n, nb)
            distance = gated_pass(self.pipe, self.blocks, family.multistep, self.call, batch, kb, zb,
                                  lam, self.references[batch], c.segment, 1.0 / scale if scale else 1.0,
                                  whole)
            if scale is None:  # losses are relative to the start policy's on the first batch
                scale = max(distance, 1e-6)
                for p in (logits_k, logits_z):
                    if p.grad is not None:
                        p.grad.mul_(1.0 / scale)
            distance /= scale
            cost = self.costs.per_step(kb, zb, lam).sum() / budget
            (dual * cost).backward()
            if not math.isfinite(distance) or not torch.isfinite(logits_k.grad).all():
                raise FloatingPointError(f"non-finite loss or gradient at iteration {it}")
            opt.step()
            opt.zero_grad()
            dual = max(0.0, dual + (float(cost.detach()) - 1.0))  # dual ascent on the budget
            best.losses.append(distance)
            if (it + 1) % check_every == 0 or it + 1 == total:
                with torch.no_grad():
                    probs_z = torch.sigmoid(logits_z) if c.per_block else torch.zeros(n, width)
                    policy = finish(project(torch.sigmoid(logits_k), probs_z, self.costs, family,
                                            self.target, self.names, whole))
                loss = self.selection_loss(policy)
                if loss < best.loss:
                    best.policy, best.loss, best.at = policy, loss, it + 1
                if c.on_check is not None:
                    c.on_check(TuneCheck("no call" if no_call else "reuse", it + 1, policy, loss,
                                         best.loss))
            self._done += 1
            if c.on_progress is not None:
                c.on_progress("descent", self._done, self._total)
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(dist=f"{distance:.3f}", cost=f"{float(cost.detach()):.2f}",
                                      dual=f"{dual:.2f}", best=f"{best.loss:.2e}")
        return best

    @contextlib.contextmanager
    def training(self, families: dict[bool, str]):
        """Frozen weights (only the gates learn; each parameter's flag put back after) and a
        progress bar, for the descents."""
        self._total = sum(self.iterations(no_call) for no_call in families)
        self._bar = tqdm(total=self._total, desc="auto-fr", disable=not self.config.progress)
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
            self._bar.close()
            self._bar = None

    # -- step 3 ----------------------------------------------------------------------------
    def select(self, starts: dict[str, tuple[KeyframePolicy, float]], families: dict[bool, str],
               descents: dict[bool, Descent]) -> TuneResult:
        """The best policy any start or descent reached on the held-out batches."""
        name = min(starts, key=lambda s: starts[s][1])
        result = TuneResult(starts[name][0], 0.0, starts[name][1], [], name, starts[name][1],
                            starts={s: loss for s, (_, loss) in starts.items()},
                            pruned={s: loss for s, (_, loss) in self.pruned.items()} or None)
        for no_call, found in descents.items():
            if not no_call or not result.losses:  # the reuse family's curve where there is one
                result.losses = found.losses
            if found.loss < result.final_loss:
                result.policy, result.final_loss, result.selected_at = found.policy, found.loss, found.at
                result.start, result.start_loss = families[no_call], starts[families[no_call]][1]
        result.ideal_speedup = self.costs.speedup(result.policy, self.config.mixing)
        result.cost = self.config.cost
        return result


def tune(pipe, num_inference_steps: int, target_speedup: float, config: TuneConfig | None = None,
         **options) -> TuneResult:
    """Learn a policy whose counted speedup is >= target_speedup. `options` override fields of
    `config` (see TuneConfig), e.g. `tune(pipe, 50, 2.0, per_block=True, iterations=60)`."""
    config = replace(config or TuneConfig(), **options)
    tuner = Tuner(pipe, num_inference_steps, target_speedup, config)
    starts = tuner.score_starts()
    families = tuner.families(starts)
    with tuner.training(families):
        descents = {no_call: tuner.descend(*starts[name], no_call) for no_call, name in families.items()}
    return tuner.select(starts, families, descents)

"""Adaptive keyframes: a probe block decides at run time which steps recompute."""

import math

import pytest
import torch

from frdiff import AdaptivePolicy, KeyframePolicy, ScoreMixing, accelerate, set_scheduler
from frdiff.adaptive import AdaptiveState, relative_change
from frdiff.cost import MacCounter
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from frdiff.targets import find_blocks
from frdiff.units import RESNET
from conftest import LABELS, tiny_unet

N = 10
HUGE = 1e9
NEVER_FR = ScoreMixing(slope=1e4, bias=1.0)  # lam = 0 at every step but the last


def run(pipe, steps=N, seed=0, labels=("A", "7", "K")):
    g = torch.Generator().manual_seed(seed)
    return pipe(list(labels), num_inference_steps=steps, generator=g, output_type="pt").images


def counting_calls(module):
    calls = []
    return calls, module.register_forward_pre_hook(lambda m, a: calls.append(1))


@pytest.mark.parametrize("mixing", [ScoreMixing(), ScoreMixing.off()])
def test_threshold_zero_is_every_step_and_bit_exact(tiny_pipe, mixing):
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, AdaptivePolicy(N, 0.0), mixing) as r:
        out = run(tiny_pipe)
    assert torch.equal(out, base)
    s = r.stats
    assert s.keyframe_steps == [list(range(N))] and s.ideal_speedup == 1.0
    assert (s.network_calls, s.fr_calls, s.probe_calls) == (N, 0, 0)


@pytest.mark.parametrize("mixing", [ScoreMixing(), ScoreMixing.off()])
def test_huge_threshold_keeps_only_forced_keyframes(tiny_pipe, mixing):
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, AdaptivePolicy(N, HUGE), mixing) as r:
        out = run(tiny_pipe)
    s = r.stats
    assert s.keyframe_steps == [[0, N - 1]]  # step 0 (empty caches) and the last step
    assert s.ideal_speedup > 1.1 and s.cache_misses == 0
    assert s.network_calls + s.network_calls_skipped == N
    assert not torch.equal(out, base) and (out - base).abs().mean() < 0.2
    if not mixing.enabled:
        assert s.fr_calls == N - 2 and s.probe_calls == 0


def test_thresholds_are_monotone_in_keyframes(tiny_pipe):
    counts, speedups = [], []
    for threshold in (0.0, 0.1, 0.3, 1.0, 3.0, HUGE):
        with accelerate(tiny_pipe, AdaptivePolicy(N, threshold), ScoreMixing.off()) as r:
            run(tiny_pipe)
        counts.append(len(r.stats.keyframe_steps[0]))
        speedups.append(r.stats.ideal_speedup)
    assert counts == sorted(counts, reverse=True) and counts[0] == N and counts[-1] == 2
    assert len(set(counts)) >= 3  # the threshold really chooses, not only the extremes
    assert speedups == sorted(speedups)


def test_max_reuse_forces_keyframes(tiny_pipe):
    with accelerate(tiny_pipe, AdaptivePolicy(N, HUGE, max_reuse=2), ScoreMixing.off()) as r:
        run(tiny_pipe)
    assert r.stats.keyframe_steps == [[0, 3, 6, 9]]


def test_reuse_steps_recompute_only_the_probe_block(tiny_pipe):
    """FR between keyframes: the probe block runs every step, the others reuse conv1/attn1."""
    blocks = find_blocks(tiny_pipe.denoiser)
    probe_units, other_units = blocks[0].units, blocks[-1].units
    probe_calls, h1 = counting_calls(_expensive(probe_units[0]))
    other_calls, h2 = counting_calls(_expensive(other_units[0]))
    try:
        with accelerate(tiny_pipe, AdaptivePolicy(N, HUGE), ScoreMixing.off()) as r:
            run(tiny_pipe)
    finally:
        h1.remove(), h2.remove()
    assert len(probe_calls) == N and len(other_calls) == 2  # the two keyframes only
    assert "skip_blocks" not in r.stats.modules_reused


def _expensive(unit):
    return unit.module.conv1 if unit.kind is RESNET else unit.module.to_q


def test_lam_zero_steps_run_nothing_after_the_probe_and_count_what_ran(tiny_pipe):
    model = tiny_pipe.denoiser
    blocks = find_blocks(model)
    with MacCounter(model) as counter:
        run(tiny_pipe, steps=1)
    full = counter.total()
    after = sum(counter.total(b.module) for b in blocks[1:])  # the blocks after the probe
    assert 0 < after < full
    inside = next(m for m in blocks[1].module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    computed, h1 = counting_calls(inside)
    ended = []  # a hook after the model's forward sees every call end (none is cut short)
    h2 = model.register_forward_hook(lambda m, a, o: ended.append(1))
    try:
        with MacCounter(model) as ran, accelerate(tiny_pipe, AdaptivePolicy(N, HUGE), NEVER_FR) as r:
            out = run(tiny_pipe)
    finally:
        h1.remove()
        h2.remove()
    s = r.stats
    # steps 1..N-2 reuse at lam = 0: probe only, the output is the keyframe prediction
    assert s.probe_calls == s.network_calls_skipped == N - 2 and s.network_calls == 2
    assert len(computed) == 2 and len(ended) == N
    assert s.baseline_macs == N * full and s.executed_macs == 2 * full + (N - 2) * (full - after)
    assert ran.total() == s.executed_macs  # the ledger counts what ran, operation by operation
    assert torch.isfinite(out).all()


def test_skip_mode_reuses_whole_blocks(tiny_pipe):
    base = run(tiny_pipe)
    policy = KeyframePolicy.parse("adaptive:1e9:skip", N)
    assert policy == AdaptivePolicy(N, HUGE, "skip")
    last = find_blocks(tiny_pipe.denoiser)[-1].module
    inside = next(m for m in last.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    calls, handle = counting_calls(inside)
    try:
        with accelerate(tiny_pipe, policy, ScoreMixing.off()) as r:
            out = run(tiny_pipe)
    finally:
        handle.remove()
    assert r.stats.modules_reused.get("skip_blocks", 0) == len(find_blocks(tiny_pipe.denoiser)) - 1
    assert len(calls) == 2  # the last block runs at the two keyframes only
    assert r.stats.ideal_speedup > 1.1 and (out - base).abs().mean() < 0.2


def test_forwards_and_probe_hook_restored(tiny_pipe):
    base = run(tiny_pipe)
    model = tiny_pipe.denoiser
    probe = find_blocks(model)[0].module
    hooks_before = dict(probe._forward_hooks)
    with pytest.raises(KeyboardInterrupt):
        with accelerate(tiny_pipe, AdaptivePolicy(N, 0.5), ScoreMixing()):
            run(tiny_pipe)
            raise KeyboardInterrupt
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert dict(probe._forward_hooks) == hooks_before and not hasattr(model, "_frdiff_run")
    assert "step" not in tiny_pipe.scheduler.__dict__
    assert torch.equal(run(tiny_pipe), base)


def test_calls_are_independent(tiny_pipe):
    with accelerate(tiny_pipe, AdaptivePolicy(N, 0.5), ScoreMixing()) as r:
        first = run(tiny_pipe)
        assert r.caches.values == {} and r.plan.state.accumulated == 0.0
        run(tiny_pipe, seed=3, labels=("X",))
        again = run(tiny_pipe)
    assert torch.equal(first, again)
    assert len(r.stats.keyframe_steps) == 3 and r.stats.keyframe_steps[0] == r.stats.keyframe_steps[2]
    assert r.stats.mean_keyframes == sum(map(len, r.stats.keyframe_steps)) / 3


def test_decision_is_shared_by_cfg_branches():
    """A loop calling the model once per CFG branch: branch 1 follows branch 0's decision,
    even though its own probe (other labels) would have changed by other amounts."""
    pipe = GlyphPipeline.from_model(tiny_unet(), build_scheduler(), labels=LABELS)
    model, sched = pipe.unet, pipe.scheduler
    labels, null = torch.tensor([8, 0]), torch.full((2,), len(LABELS))
    seen = []  # (step, branch, keyframe, modes) after every model call

    def loop(r):
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        sched.set_timesteps(N)
        for t in sched.timesteps:
            u = model(x, t, class_labels=null).sample
            seen.append((r.clock.step, 0, r.keyframe, r.modes))
            c = model(x, t, class_labels=labels).sample
            seen.append((r.clock.step, 1, r.keyframe, r.modes))
            x = sched.step(u + 3.0 * (c - u), t, x).prev_sample
        return x

    with accelerate(model, AdaptivePolicy(N, 0.3), ScoreMixing(), scheduler=sched) as r:
        out = loop(r)
    assert torch.isfinite(out).all() and r.stats.cache_misses == 0
    by_step = {}
    for step, _, keyframe, modes in seen:
        by_step.setdefault(step, []).append((keyframe, modes))
    assert all(len(v) == 2 and v[0] == v[1] for v in by_step.values())
    keys = r.stats.keyframe_steps[0]
    assert keys == [s for s, v in by_step.items() if v[0][0]] and 2 < len(keys) < N
    s = r.stats
    assert s.network_calls + s.network_calls_skipped == 2 * N
    # at a lam = 0 reuse step branch 0 runs the probe only and branch 1 not at all
    assert s.probe_calls > 0 and s.network_calls_skipped == 2 * s.probe_calls


@pytest.mark.parametrize("name", ["dpmsolver", "euler"])
def test_other_schedulers(tiny_pipe, name):
    set_scheduler(tiny_pipe, name)
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, AdaptivePolicy(N, 0.0), ScoreMixing()):
        assert torch.equal(run(tiny_pipe), base)
    with accelerate(tiny_pipe, AdaptivePolicy(N, 1.0), ScoreMixing(bias=0.3)) as r:
        out = run(tiny_pipe)
    assert torch.isfinite(out).all() and (out - base).abs().mean() < 0.2
    assert r.stats.probe_calls > 0 and len(r.stats.keyframe_steps[0]) < N


def test_stable_diffusion_pipeline():
    """A stock diffusers pipeline (batched CFG, cross-attention UNet)."""
    from test_hub_architectures import sd

    pipe, kwargs = sd()
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.eval()

    def sample():
        return pipe(num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                    output_type="np", **kwargs).images

    base = sample()
    with accelerate(pipe, AdaptivePolicy(N, 0.0), ScoreMixing()):
        assert (sample() == base).all()
    with accelerate(pipe, AdaptivePolicy(N, HUGE), ScoreMixing(bias=0.3)) as r:
        fast = sample()
    assert r.stats.keyframe_steps == [[0, N - 1]] and r.stats.ideal_speedup > 1.2
    assert abs(fast - base).mean() < 0.1


def test_static_policies_record_their_keyframes(tiny_pipe):
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 3), ScoreMixing()) as r:
        run(tiny_pipe)
    assert r.stats.keyframe_steps == [[0, 3, 6, 9]] and r.stats.probe_calls == 0
    assert r.stats.as_dict()["mean_keyframes"] == 4


def test_state_accumulates_the_probe_change():
    state = AdaptiveState(AdaptivePolicy(N, 0.25))
    assert [state.decide(c) for c in (0.1, 0.1, 0.1, 0.2, 0.3)] == [False, False, True, False, True]
    assert state.decide(math.nan) is True  # an unmeasurable change recomputes
    assert relative_change(torch.tensor([1.0, -3.0]), torch.tensor([2.0, -2.0])) == 0.5
    assert relative_change(torch.zeros(2), torch.zeros(2)) == 0.0


def test_parse_and_validation():
    p = KeyframePolicy.parse("adaptive:0.1", 50)
    assert p == AdaptivePolicy(50, 0.1) and p.reuse == "fr" and p.max_reuse is None
    assert KeyframePolicy.parse("adaptive:0.2:skip:4", 50) == AdaptivePolicy(50, 0.2, "skip", 4)
    assert AdaptivePolicy(50, 1, "block").reuse == "skip"
    for spec in ("adaptive:", "adaptive:x", "adaptive:-0.1", "adaptive:nan", "adaptive:inf",
                 "adaptive:0.1:teleport", "adaptive:0.1:fr:x", "adaptive:0.1:fr:-1",
                 "adaptive:0.1:fr:2:9"):
        with pytest.raises(ValueError):
            KeyframePolicy.parse(spec, 50)
    with pytest.raises(ValueError, match="num_steps"):
        AdaptivePolicy(0, 0.1)
    with pytest.raises(ValueError, match="threshold"):
        AdaptivePolicy(10, float("inf"))


def test_policy_length_mismatch_and_one_block_models(tiny_pipe):
    with pytest.raises(ValueError, match="policy covers 6 steps but the sampler runs 10"):
        with accelerate(tiny_pipe, AdaptivePolicy(6, 0.1)):
            run(tiny_pipe)
    with pytest.raises(ValueError, match="probe block"):
        AdaptivePolicy(N, 0.1).check_blocks(["down_blocks.0"])


def test_bench_cli_reports_the_chosen_keyframes(capsys):
    import json

    from frdiff.cli import main

    assert main(["bench", "--model", "glyph-unet", "--steps", "6", "--batch", "2", "--policy",
                 "adaptive:0.1", "--samples", "4", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"]["adaptive"] == {"threshold": 0.1, "reuse": "fr", "max_reuse": None}
    keys = out["stats"]["keyframe_steps"]
    assert keys and all(k[0] == 0 and k[-1] == 5 for k in keys)
    assert out["stats"]["mean_keyframes"] == sum(map(len, keys)) / len(keys)
    assert main(["bench", "--model", "glyph-unet", "--steps", "6", "--policy", "adaptive:-1",
                 "--json"]) == 2
    assert "threshold" in capsys.readouterr().err

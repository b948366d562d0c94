"""Hygiene and semantics of frdiff.accelerate on the glyph pipelines (tiny models)."""

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, set_scheduler
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from conftest import LABELS, tiny_unet

N = 10


def run(pipe, steps=N, seed=0, labels=("A", "7", "K")):
    g = torch.Generator().manual_seed(seed)
    return pipe(list(labels), num_inference_steps=steps, generator=g, output_type="pt").images


def no_instance_forwards(model):
    return all("forward" not in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("mixing", [ScoreMixing(), ScoreMixing.off()])
def test_all_keyframe_policy_is_bit_exact(tiny_pipe, mixing):
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 1), mixing) as r:
        out = run(tiny_pipe)
    assert torch.equal(out, base)
    assert r.stats.ideal_speedup == 1.0 and r.stats.network_calls == N


@pytest.mark.parametrize("reuse", ["fr", "block"])
def test_reuse_changes_output_saves_compute_and_restores(tiny_pipe, reuse):
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2, reuse), ScoreMixing.off()) as r:
        out = run(tiny_pipe)
    assert not torch.equal(out, base)
    assert (out - base).abs().mean() < 0.2  # an approximation of the same sample
    assert r.stats.ideal_speedup > 1.1 and r.stats.fr_calls == N // 2
    assert no_instance_forwards(tiny_pipe.denoiser)
    assert torch.equal(run(tiny_pipe), base)


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_exception_restores_every_forward(tiny_pipe, exc):
    base = run(tiny_pipe)
    scheduler_dict = dict(tiny_pipe.scheduler.__dict__)
    with pytest.raises(exc):
        with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
            run(tiny_pipe, steps=N)
            raise exc()
    assert no_instance_forwards(tiny_pipe.denoiser)
    assert not hasattr(tiny_pipe.denoiser, "_frdiff_run")
    assert "step" not in tiny_pipe.scheduler.__dict__ and "set_timesteps" not in tiny_pipe.scheduler.__dict__
    assert set(tiny_pipe.scheduler.__dict__) == set(scheduler_dict)
    assert torch.equal(run(tiny_pipe), base)


def test_calls_are_independent_and_caches_freed(tiny_pipe):
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 3), ScoreMixing()) as r:
        first = run(tiny_pipe)
        assert r.caches.values == {} and r.mixer.keys == {}
        run(tiny_pipe, seed=5)
        again = run(tiny_pipe)
    assert torch.equal(first, again)
    assert r.stats.peak_cache_bytes > 0


def test_second_accelerate_is_refused(tiny_pipe):
    policy = KeyframePolicy.uniform(N, 2)
    with accelerate(tiny_pipe, policy):
        with pytest.raises(RuntimeError, match="already accelerated"):
            with accelerate(tiny_pipe, policy):
                pass
        assert tiny_pipe.denoiser._frdiff_run is not None  # the first one is intact


def test_two_pipelines_at_once_do_not_interfere():
    def make():
        p = GlyphPipeline.from_model(tiny_unet(), build_scheduler(), labels=LABELS)
        p.set_progress_bar_config(disable=True)
        return p

    a, b = make(), make()
    pa, pb = KeyframePolicy.uniform(N, 2), KeyframePolicy.uniform(N, 3, "block")
    with accelerate(a, pa, ScoreMixing()):
        alone_a = run(a)
    with accelerate(b, pb, ScoreMixing.off()):
        alone_b = run(b)
    with accelerate(a, pa, ScoreMixing()), accelerate(b, pb, ScoreMixing.off()):
        ya, yb = run(a), run(b)  # interleaved: each call between the other's
    assert torch.equal(ya, alone_a) and torch.equal(yb, alone_b)


def test_paper_example_call_counts(tiny_pipe):
    """method.md: N = 50, interval 2, b = 0.5 -> 25 full, 14 FR, 11 with no evaluation."""
    calls = []
    first_layer = next(tiny_pipe.denoiser.children())  # conv_in / pos_embed: runs iff the net does
    handle = first_layer.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with accelerate(tiny_pipe, KeyframePolicy.uniform(50, 2), ScoreMixing()) as r:
            run(tiny_pipe, steps=50)
    finally:
        handle.remove()
    s = r.stats
    assert (s.network_calls - s.fr_calls, s.fr_calls, s.network_calls_skipped) == (25, 14, 11)
    assert len(calls) == 39  # the network really is not called at the 11 skipped steps


def test_fr_skips_the_expensive_part_only(tiny_pipe):
    """ResnetBlock2D: conv1 not run at F steps, conv2 always; DiT: attn1 not run, ff always."""
    model = tiny_pipe.denoiser
    if tiny_pipe.unet is not None:
        resnet = model.down_blocks[0].resnets[0]
        skipped, kept = resnet.conv1, resnet.conv2
    else:
        block = model.transformer_blocks[0]
        skipped, kept = block.attn1.to_q, block.ff  # attn1 itself is called, returns its cache
    counts = {"skipped": 0, "kept": 0}
    h1 = skipped.register_forward_pre_hook(lambda *a, **k: counts.__setitem__("skipped", counts["skipped"] + 1))
    h2 = kept.register_forward_pre_hook(lambda *a, **k: counts.__setitem__("kept", counts["kept"] + 1))
    try:
        with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing.off()):
            run(tiny_pipe)
    finally:
        h1.remove(), h2.remove()
    assert counts == {"skipped": N // 2, "kept": N}


def test_the_reuse_forwards_ask_a_typed_state_and_units_carry_their_kind(tiny_pipe):
    """Run and the tuner's GatedRun answer the two-method contract (reuse.ReuseState); each
    FR unit carries its kind, which installs it and by whose name it is counted."""
    from frdiff.accelerate import Run
    from frdiff.autofr.gated import GatedRun
    from frdiff.reuse import ReuseState
    from frdiff.targets import find_blocks
    from frdiff.units import UnitKind

    assert issubclass(Run, ReuseState) and issubclass(GatedRun, ReuseState)
    units = [u for b in find_blocks(tiny_pipe.denoiser) for u in b.units]
    assert units and all(isinstance(u.kind, UnitKind) for u in units)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing.off()) as r:
        run(tiny_pipe)
    names = [u.kind.name for u in units]
    assert r.stats.modules_reused == {name: names.count(name) for name in names}


def test_lam_zero_phase_is_ddim_on_keyframe_timesteps(tiny_pipe):
    """Holding eps_key between keyframes lands where one larger DDIM step would."""
    tiny_pipe.scheduler = build_scheduler()  # DDIM, trailing: 10 steps contain the 5-step grid
    reduced = run(tiny_pipe, steps=N // 2)
    never_fr = ScoreMixing(slope=1e4, bias=1.0)  # lam = 0 at every non-keyframe
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), never_fr) as r:
        out = run(tiny_pipe)
    assert r.stats.network_calls == N // 2 and r.stats.network_calls_skipped == N // 2
    torch.testing.assert_close(out, reduced, atol=1e-4, rtol=0)


def test_pipeline_calling_the_model_once_per_branch():
    """Two model calls per step (uncond, cond) keep separate caches: same result as batched."""
    pipe = GlyphPipeline.from_model(tiny_unet(), build_scheduler(), labels=LABELS)
    model, sched = pipe.unet, pipe.scheduler
    labels = torch.tensor([8, 0])
    null = torch.full_like(labels, len(LABELS))

    def loop(two_calls: bool):
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        sched.set_timesteps(N)
        for t in sched.timesteps:
            if two_calls:
                u, c = model(x, t, class_labels=null).sample, model(x, t, class_labels=labels).sample
            else:
                u, c = model(torch.cat([x, x]), t, class_labels=torch.cat([null, labels])).sample.chunk(2)
            x = sched.step(u + 3.0 * (c - u), t, x).prev_sample
        return x

    policy = KeyframePolicy.uniform(N, 2)
    with accelerate(model, policy, ScoreMixing(), scheduler=sched) as r2:
        two = loop(True)
    with accelerate(model, policy, ScoreMixing(), scheduler=sched) as r1:
        one = loop(False)
    assert r2.stats.network_calls == 2 * r1.stats.network_calls
    torch.testing.assert_close(two, one, atol=1e-4, rtol=1e-4)
    # and the bare-model loop matches the pipeline under the same policy
    plain = loop(False)
    assert not torch.equal(plain, one)


@pytest.mark.parametrize("name", ["dpmsolver", "euler"])
def test_other_schedulers(tiny_pipe, name):
    set_scheduler(tiny_pipe, name)
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(run(tiny_pipe), base)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing(bias=0.3)) as r:
        out = run(tiny_pipe)
    assert torch.isfinite(out).all() and (out - base).abs().mean() < 0.2
    assert r.stats.network_calls_skipped > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_cache(tiny_pipe, dtype):
    policy = KeyframePolicy.uniform(N, 2)
    with accelerate(tiny_pipe, policy, ScoreMixing.off()) as full:
        ref = run(tiny_pipe)
    with accelerate(tiny_pipe, policy, ScoreMixing.off(), cache_dtype=dtype) as half:
        out = run(tiny_pipe)
    assert half.stats.peak_cache_bytes * 2 == full.stats.peak_cache_bytes
    assert (out - ref).abs().max() < 0.05


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models(tiny_pipe, dtype):
    tiny_pipe.to(dtype=dtype)
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(run(tiny_pipe), base)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
        out = run(tiny_pipe)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["hold", "extrapolate"])
def test_dpmsolver_reuse_steps_hold_or_extrapolate_x0(tiny_pipe, mode):
    """DPM-Solver++ sees at a reuse step exactly the keyframe's x0 (hold) or its linear
    extrapolation in log-SNR from the last two keyframes."""
    set_scheduler(tiny_pipe, "dpmsolver")
    sched = tiny_pipe.scheduler
    seen, convert = [], sched.convert_model_output

    def recording(*args, **kwargs):
        x0 = convert(*args, **kwargs)
        seen.append(x0.clone())
        return x0

    sched.convert_model_output = recording
    never_fr = ScoreMixing(slope=1e4, bias=1.0, multistep=mode)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), never_fr):
        run(tiny_pipe)
    del sched.convert_model_output
    # each step's log-SNR from the scheduler's own sigmas
    alphas, sigmas = [], []
    for s in sched.sigmas[:N]:
        a, sg = sched._sigma_to_alpha_sigma_t(s)
        alphas.append(a), sigmas.append(sg)
    lam = [float(torch.log(a / sg)) for a, sg in zip(alphas, sigmas)]
    assert len(seen) == N
    torch.testing.assert_close(seen[1], seen[0], atol=1e-4, rtol=1e-4)  # one keyframe: held
    if mode == "hold":
        torch.testing.assert_close(seen[3], seen[2], atol=1e-4, rtol=1e-4)
    else:
        slope = (seen[2] - seen[0]) / (lam[2] - lam[0])
        torch.testing.assert_close(seen[3], seen[2] + (lam[3] - lam[2]) * slope, atol=1e-3, rtol=1e-3)


def test_deep_skip_policy_is_deepcache_granularity(tiny_pipe):
    from frdiff import block_depths

    depths = block_depths(tiny_pipe)
    keep = 1 if tiny_pipe.unet is not None else 0  # the tiny DiT has only the two end blocks
    policy = KeyframePolicy.parse(f"deep:2:{keep}", N, depths)
    assert KeyframePolicy.deep_skip(depths, N, 2, keep_levels=keep) == policy
    if tiny_pipe.unet is not None:
        # 2-level tiny UNet: down_blocks.0 and up_blocks.1 (depth 0) compute, the rest skip
        assert policy.schedule[1] == "KSSSK" and policy.schedule[0] == "KKKKK"
    base = run(tiny_pipe)
    with accelerate(tiny_pipe, policy, ScoreMixing.off()) as r:
        out = run(tiny_pipe)
    assert r.stats.ideal_speedup > 1.2 and (out - base).abs().mean() < 0.2
    mixed = KeyframePolicy.deep_skip(depths, N, 2, keep_levels=keep, shallow="F")
    with accelerate(tiny_pipe, mixed, ScoreMixing.off()) as r2:
        run(tiny_pipe)
    assert r2.stats.ideal_speedup >= r.stats.ideal_speedup


def test_mac_counter_charges_a_block_only_for_what_runs_inside_it():
    """DiT's output layer calls block 0's conditioning embedding again, outside block 0."""
    from conftest import tiny_dit

    from frdiff.cost import MacCounter

    model = tiny_dit()
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([10, 10]), torch.tensor([1, 2])
    with torch.no_grad(), MacCounter(model) as counter:
        model(x, t, class_labels=y)
    owned = lambda block: sum(counter.macs.get(id(m), 0) for m in block.modules())  # noqa: E731
    first, second = model.transformer_blocks
    assert counter.total(second) == owned(second)
    assert 0 < counter.total(first) < owned(first)  # the output layer's second emb call
    emb = first.norm1.emb
    assert owned(first) - counter.total(first) == sum(counter.macs.get(id(m), 0) for m in emb.modules()) // 2
    assert counter.total() == sum(counter.macs.values())

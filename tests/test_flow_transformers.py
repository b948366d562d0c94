"""frdiff on stock flow-matching pipelines, built tiny from configs (tests/flow_pipelines.py):
FLUX.1 (schnell-like and guidance-distilled dev), SD3, Qwen-Image, Wan 2.1, Wan 2.2's two
experts, img2img, and families the issue did not name. Exactness against the plain run and
against a reference written here with forward hooks, restoration, bf16, CFG branches."""

import inspect

import pytest
import torch

from flow_pipelines import BUILDERS, MODEL_BUILDERS
from frdiff import KeyframePolicy, ScoreMixing, accelerate, block_depths, describe
from frdiff.targets import denoisers_of, find_blocks

N = 6
PIPELINES = ["flux", "flux-dev", "sd3", "qwen", "wan", "wan22"]


def build(name, dtype=torch.float32):
    pipe, kwargs = BUILDERS[name]() if dtype == torch.float32 else BUILDERS[name](dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    for model in denoisers_of(pipe):
        model.eval()
    return pipe, kwargs


def sample(pipe, kwargs, steps=N, **extra):
    out = pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **kwargs, **extra)
    return out.frames if hasattr(out, "frames") else out.images  # Wan returns video frames


def assert_restored(pipe):
    for model in denoisers_of(pipe):
        assert all("forward" not in m.__dict__ for m in model.modules())
        assert "_frdiff_run" not in model.__dict__
    assert "step" not in pipe.scheduler.__dict__ and "set_timesteps" not in pipe.scheduler.__dict__


@pytest.mark.parametrize("name", PIPELINES)
def test_all_keyframes_is_exact_and_uniform_fr_counts(name):
    pipe, kwargs = build(name)
    base = sample(pipe, kwargs)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(sample(pipe, kwargs), base)  # bit for bit
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()) as run:
        fast = sample(pipe, kwargs)
    assert run.stats.ideal_speedup >= 1.3
    assert run.stats.modules_reused.get("output", 0) >= 2 and run.stats.fr_calls >= 1
    assert fast.shape == base.shape and torch.isfinite(fast).all() and not torch.equal(fast, base)
    assert float((fast - base).abs().mean()) < float(base.abs().mean())
    assert_restored(pipe)
    assert torch.equal(sample(pipe, kwargs), base)
    assert type(denoisers_of(pipe)[0]).__name__ in describe(pipe)


class Reference:
    """FR and residual reuse written independently with forward hooks: at keyframe steps every
    FR unit's output (per model call of the step) and every block's residual per stream are
    kept; at reuse steps the kept values replace what the modules computed."""

    def __init__(self, pipe, policy: KeyframePolicy):
        self.policy, self.calls, self.kept, self.handles = policy, 0, {}, []
        model = denoisers_of(pipe)[0]
        self.handles.append(model.register_forward_pre_hook(self.count))
        self.per_step = None
        for index, block in enumerate(find_blocks(model)):
            for unit in block.units:
                self.handles.append(unit.module.register_forward_hook(self.unit_hook(unit.name, index)))
            self.handles.append(block.module.register_forward_hook(
                self.block_hook(block, index), with_kwargs=True))

    def count(self, module, args):
        self.calls += 1

    def where(self):
        call = self.calls - 1
        return call // self.per_step, call % self.per_step

    def unit_hook(self, name, index):
        def hook(module, args, out):
            step, branch = self.where()
            mode = self.policy.mode(step, index)
            if mode == "K":
                self.kept[(name, branch)] = out
            elif mode == "F":
                return self.kept[(name, branch)]
        return hook

    def block_hook(self, block, index):
        signature = inspect.signature(block.module.forward)

        def hook(module, args, kwargs, out):
            step, branch = self.where()
            mode = self.policy.mode(step, index)
            bound = signature.bind(*args, **kwargs).arguments
            names = block.spec.returns if isinstance(out, tuple) else (next(iter(bound)),)
            outs = out if isinstance(out, tuple) else (out,)
            ins = [bound.get(n) for n in names]
            if mode == "K":
                self.kept[(block.name, branch)] = [None if o is None else o - x for o, x in zip(outs, ins)]
            elif mode == "R":
                new = [None if r is None else x + r for x, r in zip(ins, self.kept[(block.name, branch)])]
                return tuple(new) if isinstance(out, tuple) else new[0]
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("name", ["flux", "flux-dev", "sd3", "qwen", "wan"])
@pytest.mark.parametrize("spec", ["uniform:2", "uniform:2:residual"])
def test_reuse_equals_a_reference_written_with_hooks(name, spec):
    """Both streams, every CFG branch cached on its own (Qwen-Image and Wan call twice a step)."""
    pipe, kwargs = build(name)
    policy = KeyframePolicy.parse(spec, N, block_depths(pipe))
    with accelerate(pipe, policy, ScoreMixing.off()) as run:
        fast = sample(pipe, kwargs)
    calls_per_step = run.stats.network_calls // N
    reference = Reference(pipe, policy)
    reference.per_step = calls_per_step
    try:
        expected = sample(pipe, kwargs)
    finally:
        reference.close()
    assert reference.calls == N * calls_per_step
    assert torch.equal(fast, expected)
    assert calls_per_step == (2 if name in ("qwen", "wan") else 1)


@pytest.mark.parametrize("name", PIPELINES)
def test_bf16_runs_keep_the_model_dtype(name):
    pipe, kwargs = build(name, torch.bfloat16)
    base = sample(pipe, kwargs)
    assert base.dtype == (torch.float32 if name.startswith("wan") else torch.bfloat16)  # Wan's latents
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(sample(pipe, kwargs), base)
    returned = []  # what the (replaced) forward of each denoiser hands the pipeline
    for model in denoisers_of(pipe):
        model.register_forward_hook(lambda m, a, out: returned.append(
            (out[0] if isinstance(out, tuple) else out.sample).dtype))
    for spec in ("uniform:2", "uniform:2:residual"):
        with accelerate(pipe, KeyframePolicy.parse(spec, N, block_depths(pipe)), ScoreMixing()) as run:
            fast = sample(pipe, kwargs)
        assert fast.dtype == base.dtype and torch.isfinite(fast.float()).all()
        assert run.stats.network_calls_skipped >= 1
    assert returned and set(returned) == {torch.bfloat16}


@pytest.mark.parametrize("name", ["flux", "wan22"])
def test_an_exception_mid_run_restores_everything(name):
    pipe, kwargs = build(name)
    base = sample(pipe, kwargs)

    def fail(pipe_, step, timestep, callback_kwargs):
        if step == 3:
            raise KeyboardInterrupt("stop")
        return callback_kwargs

    with pytest.raises(KeyboardInterrupt):
        with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
            sample(pipe, kwargs, callback_on_step_end=fail)
    assert_restored(pipe)
    assert torch.equal(sample(pipe, kwargs), base)


def test_wan22_accelerates_both_experts_with_a_keyframe_at_the_switch():
    pipe, kwargs = build("wan22")
    experts = denoisers_of(pipe)
    assert len(experts) == 2
    seen = []
    for index, expert in enumerate(experts):
        expert.register_forward_pre_hook(lambda m, a, i=index: seen.append(i))
    base = sample(pipe, kwargs)
    order = seen[::2]  # two calls per step (CFG)
    switch = order.index(1)
    assert 0 < switch < N and order == [0] * switch + [1] * (N - switch)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1)):
        assert torch.equal(sample(pipe, kwargs), base)
    # a policy that reuses everywhere but step 0: the second expert's first step computes anyway
    policy = KeyframePolicy(tuple("K" if s == 0 else "F" for s in range(N)))
    with accelerate(pipe, policy, ScoreMixing.off()) as run:
        sample(pipe, kwargs)
        assert [type(r.model).__name__ for r in run.experts] == [type(e).__name__ for e in experts]
    assert run.stats.keyframe_steps[-1] == [0, switch]
    assert run.stats.cache_misses == 0  # the reset expert never read a stale or missing cache
    assert_restored(pipe)


@pytest.mark.parametrize("name", ["flux-img2img", "sd3-img2img"])
def test_img2img_starts_part_way(name):
    pipe, kwargs = build(name)
    base = sample(pipe, kwargs)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(sample(pipe, kwargs), base)
    events = []
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing(bias=0.0)) as run:
        run.observer = events.append
        sample(pipe, kwargs)
    start = run.stats.keyframe_steps[-1][0]
    assert 0 < start < N - 1  # strength 0.5: the run starts part-way, with a keyframe
    sigmas = pipe.scheduler.sigmas
    assert events and all(float(e.sigma.flatten()[0]) == pytest.approx(float(sigmas[e.step]))
                          for e in events)


@pytest.mark.parametrize("name", sorted(MODEL_BUILDERS))
def test_other_families_are_found_and_reused(name):
    """Families the issue did not name: a bare model, one call, all keyframes vs reuse."""
    model, kwargs = MODEL_BUILDERS[name]()
    blocks = find_blocks(model)
    assert blocks and all(b.units and b.residual for b in blocks)
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler()
    with torch.no_grad():
        base = model(**kwargs)
        for spec in ("uniform:1", "uniform:2", "uniform:2:residual"):
            policy = KeyframePolicy.parse(spec, 2, {b.name: b.depth for b in blocks})
            with accelerate(model, policy, scheduler=scheduler) as run:
                scheduler.set_timesteps(2)
                outs = []
                for t in scheduler.timesteps:
                    outs.append(model(**kwargs))
                    scheduler.step(torch.zeros(1), t, torch.zeros(1))
            first = outs[0][0] if isinstance(outs[0], tuple) else outs[0].sample
            expect = base[0] if isinstance(base, tuple) else base.sample
            assert torch.equal(first, expect)  # step 0 is a keyframe: the plain output
            if spec != "uniform:1":
                assert run.stats.ideal_speedup > 1.0
        assert all("forward" not in m.__dict__ for m in model.modules())


def flux_with_vae():
    from flow_pipelines import vae

    pipe, kwargs = build("flux")
    pipe.register_modules(vae=vae())
    kwargs.pop("output_type")
    return pipe, kwargs


def test_analyses_run_on_flux_per_stream():
    from frdiff.analysis import score_spectra, temporal_similarity, trajectory

    pipe, kwargs = flux_with_vae()
    sim = temporal_similarity(pipe, N, output_type="latent", **kwargs)
    assert sim.blocks[0] == "transformer_blocks.0" and sim.blocks[-1] == "single_transformer_blocks.1"
    image, text = sim.streams["hidden_states"], sim.streams["encoder_hidden_states"]
    assert torch.isfinite(image).all() and torch.isfinite(text).all()
    assert torch.equal(image, sim.change)  # the main change is the image stream's
    assert not torch.equal(image, text)
    policy = KeyframePolicy.uniform(N, 2)
    spectra = score_spectra(pipe, policy, ScoreMixing(slope=5.0), N, **kwargs)  # 0 < lam < 1
    assert spectra.space == "eps" and spectra.mean is not None
    traj = trajectory(pipe, N, policy=policy, mixing=ScoreMixing(), **kwargs)
    assert traj.x0.shape[0] == N and torch.isfinite(traj.x0).all()
    # the last x0 is the final latents: x0 = x - s v at the last sigma
    assert traj.kinds[0] == "keyframe" and "no call" in traj.kinds


def test_the_tuner_learns_a_policy_on_tiny_flux():
    from frdiff.autofr import TuneConfig, tune

    pipe, kwargs = build("flux")
    config = TuneConfig(per_block=True, iterations=2, call_kwargs=kwargs, tuning_batches=1,
                        selection_batches=1, checks=1, progress=False)
    result = tune(pipe, 8, target_speedup=1.6, config=config)
    assert result.ideal_speedup >= 1.5
    assert result.policy.blocks == tuple(block_depths(pipe))
    with accelerate(pipe, result.policy, config.mixing) as run:
        sample(pipe, kwargs, steps=8)
    assert run.stats.ideal_speedup == pytest.approx(result.ideal_speedup, rel=1e-6)


def test_magnitude_calibration_and_adaptive_keyframes_run_on_flux():
    from frdiff import AdaptivePolicy
    from frdiff.magnitude import calibrate, magnitude_policy

    pipe, kwargs = build("flux")
    calibration = calibrate(pipe, 8, generator=torch.Generator().manual_seed(0), **kwargs)
    assert calibration.space == "stack residual" and len(calibration.magnitudes) == 8
    policy = magnitude_policy(calibration, 0.5, row="R")
    with accelerate(pipe, policy, ScoreMixing()) as run:
        sample(pipe, kwargs, steps=8)
    assert run.stats.ideal_speedup > 1.0
    with accelerate(pipe, AdaptivePolicy(8, threshold=0.5, reuse="residual"), ScoreMixing()) as run:
        sample(pipe, kwargs, steps=8)
    assert run.stats.sampling_runs == 1 and 1 <= run.stats.mean_keyframes <= 8


def test_single_stream_feeders_do_not_run_at_reuse_steps(monkeypatch):
    """FLUX's single-stream blocks cache proj_out before the gate; attn and proj_mlp, which only
    feed it, are skipped at F (a zero stand-in keeps the block's code running)."""
    pipe, kwargs = build("flux")
    block = pipe.transformer.single_transformer_blocks[0]
    ran, linear = [], torch.nn.Linear.forward
    names = {id(block.attn.to_q): "attn", id(block.proj_mlp): "proj_mlp", id(block.proj_out): "proj_out"}

    def counted(self, x):  # what really runs (a replaced forward never calls the original)
        if id(self) in names:
            ran.append(names[id(self)])
        return linear(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", counted)
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing.off()) as run:
        sample(pipe, kwargs)
    assert ran == ["proj_mlp", "attn", "proj_out"] * 3  # the three keyframes only, in call order
    assert run.stats.modules_reused == {"feeder": 4, "output": 8}
    assert "attn (feeder)" in describe(pipe) and "proj_out (output)" in describe(pipe)


def test_flow_heun_has_one_policy_row_per_evaluation():
    from diffusers import FlowMatchHeunDiscreteScheduler

    from flow_pipelines import sd3

    pipe, kwargs = sd3(scheduler=FlowMatchHeunDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    base = sample(pipe, kwargs, steps=4)
    rows = len(pipe.scheduler.timesteps)  # 2n - 1
    with pytest.raises(ValueError, match="calls step\\(\\) 7 times for num_inference_steps=4"):
        with accelerate(pipe, KeyframePolicy.uniform(4, 2), ScoreMixing()):
            sample(pipe, kwargs, steps=4)
    with accelerate(pipe, KeyframePolicy.uniform(rows, 1), ScoreMixing()):
        assert torch.equal(sample(pipe, kwargs, steps=4), base)
    with accelerate(pipe, KeyframePolicy.uniform(rows, 2), ScoreMixing()) as run:
        fast = sample(pipe, kwargs, steps=4)
    assert rows == 7 and run.stats.ideal_speedup > 1.3 and torch.isfinite(fast).all()

"""The step clock's limits: runs that start part-way (img2img strength, denoising_start) or
stop early (denoising_end), schedulers with more timesteps than steps (Heun, KDPM2), loops
that misuse scheduler.step(), and a long-lived context whose caches and stats stay bounded."""

import pytest
import torch
from diffusers import (DDIMScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2DiscreteScheduler, StableDiffusionImg2ImgPipeline,
                       StableDiffusionXLImg2ImgPipeline)
from diffusers.utils import logging

from frdiff import KeyframePolicy, RunStats, ScoreMixing, accelerate
from frdiff.clock import MAX_CALLS_PER_STEP
from stock_pipelines import build, cond_unet, denoiser, embeds

logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
N = 6
IMAGE = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def restored(model) -> bool:
    return all("forward" not in m.__dict__ for m in model.modules()) and \
        not hasattr(model, "_frdiff_run")


def img2img(scheduler):
    pipe, kwargs = build("sd", scheduler=scheduler)
    pipe = StableDiffusionImg2ImgPipeline(**pipe.components)
    pipe.set_progress_bar_config(disable=True)
    del kwargs["height"], kwargs["width"]

    def sample(**extra):
        return pipe(image=IMAGE, num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                    output_type="np", **kwargs, **extra).images
    return pipe, sample


@pytest.mark.parametrize("scheduler", [DDIMScheduler, EulerDiscreteScheduler])
def test_img2img_strength_starts_the_clock_part_way(scheduler):
    """strength 0.5 runs steps 3..5 of 6: the clock starts at 3 (DDIM: found from the
    timestep; Euler: the scheduler's begin index), step 3 is a keyframe whatever its row."""
    pipe, sample = img2img(scheduler())
    base = sample(strength=0.5)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()) as run:
        assert (sample(strength=0.5) == base).all()
    assert run.stats.keyframe_steps == [[3, 4, 5]]
    outs, events = [], []
    for keys in ([0, 4], [0, 1, 2, 4]):  # the same rows from step 3 on
        with accelerate(pipe, KeyframePolicy.from_steps(N, keys), ScoreMixing()) as run:
            run.observer = events.append
            outs.append(sample(strength=0.5))
            assert run.caches.values == {}  # the run reached its last step: caches freed
        assert run.stats.keyframe_steps == [[3, 4]] and run.stats.cache_misses == 0
    assert (outs[0] == outs[1]).all()  # rows before the start are never read
    assert {e.step for e in events} == {5} and events[0].lam == ScoreMixing().lam(5, N)
    assert abs(outs[0] - base).mean() < 0.05 and restored(pipe.unet)


def sdxl_img2img():
    pipe, kwargs = build("sdxl")
    pipe = StableDiffusionXLImg2ImgPipeline(**pipe.components)
    pipe.set_progress_bar_config(disable=True)
    del kwargs["height"], kwargs["width"]
    return pipe, kwargs


def test_sdxl_denoising_start_and_end():
    pipe, kwargs = sdxl_img2img()  # Euler: the pipeline calls scheduler.set_begin_index()

    def sample(**extra):
        return pipe(image=IMAGE, num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                    output_type="np", **kwargs, **extra).images
    base = sample(denoising_start=0.5)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()) as run:
        assert (sample(denoising_start=0.5) == base).all()
        start = run.stats.keyframe_steps[-1][0]
    assert 0 < start < N - 2 and run.stats.keyframe_steps[-1] == list(range(start, N))
    policy = KeyframePolicy.from_steps(N, [0, start + 2])
    with accelerate(pipe, policy, ScoreMixing.off()) as run:
        fast = sample(denoising_start=0.5)
        assert run.stats.keyframe_steps[-1] == [start, start + 2]
        calls = run.stats.network_calls
        sample(strength=1.0, denoising_end=0.5)  # stops early; the next call starts afresh
        assert run.stats.network_calls - calls == start and run.stats.keyframe_steps[-1] == [0]
        assert (sample(denoising_start=0.5) == fast).all()
    assert restored(pipe.unet)


@pytest.mark.parametrize("scheduler", [HeunDiscreteScheduler, KDPM2DiscreteScheduler])
def test_second_order_schedulers_have_a_row_per_evaluation(scheduler):
    pipe, kwargs = build("sd", scheduler=scheduler())
    n = 4
    pipe.scheduler.set_timesteps(n)
    steps = len(pipe.scheduler.timesteps)
    assert steps == 2 * n - 1  # a predictor and a corrector per step but the last

    def sample():
        return pipe(num_inference_steps=n, generator=torch.Generator().manual_seed(0),
                    output_type="np", **kwargs).images
    with pytest.raises(ValueError, match=f"covers {n} steps but the sampler runs {steps} "
                       f"\\({scheduler.__name__} calls step\\(\\) {steps} times for "
                       f"num_inference_steps={n}.*uniform\\({steps}, 2\\)"):
        with accelerate(pipe, KeyframePolicy.uniform(n, 2), ScoreMixing()):
            sample()
    assert restored(pipe.unet)
    base = sample()
    with accelerate(pipe, KeyframePolicy.uniform(steps, 1), ScoreMixing()):
        assert (sample() == base).all()
    with accelerate(pipe, KeyframePolicy.uniform(steps, 2), ScoreMixing()) as run:
        fast = sample()
    s = run.stats  # one batched CFG call per step() call, each a policy step
    assert s.network_calls + s.network_calls_skipped == steps and s.network_calls_skipped >= 1
    assert s.keyframe_steps == [list(range(0, steps, 2))] and abs(fast - base).mean() < 0.1


def bare_loop():
    """A tiny conditional UNet, DDIM and a denoising step function for hand-written loops."""
    unet, scheduler, ctx = cond_unet().eval(), DDIMScheduler(), embeds(1, 5, 16)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def call(t):
        return unet(x, t, encoder_hidden_states=ctx).sample
    return unet, scheduler, x, call


def test_more_calls_than_in_the_first_step_are_refused():
    unet, scheduler, x, call = bare_loop()
    with pytest.raises(RuntimeError, match="model call 2 in step 1, but the run's first step made 1"):
        with accelerate(unet, KeyframePolicy.uniform(4, 2), ScoreMixing(), scheduler=scheduler):
            scheduler.set_timesteps(4)
            t = scheduler.timesteps
            scheduler.step(call(t[0]), t[0], x)
            call(t[1]), call(t[1])
    assert restored(unet)


def test_fewer_calls_than_in_the_first_step_are_refused():
    unet, scheduler, x, call = bare_loop()
    with pytest.raises(RuntimeError, match="step 1 made 1 model call\\(s\\) but the run's first step made 2"):
        with accelerate(unet, KeyframePolicy.uniform(4, 2), ScoreMixing(), scheduler=scheduler):
            scheduler.set_timesteps(4)
            t = scheduler.timesteps
            call(t[0]), call(t[0])  # per-branch CFG: two calls a step is fine
            scheduler.step(x, t[0], x)
            call(t[1])
            scheduler.step(x, t[1], x)  # but then every step makes two
    assert restored(unet)


def test_calls_without_a_step_are_capped():
    unet, scheduler, x, call = bare_loop()
    with pytest.raises(RuntimeError, match=f"model call {MAX_CALLS_PER_STEP + 1} in step 0, but at "
                       f"most {MAX_CALLS_PER_STEP} are supported; call scheduler.step\\(\\) once"):
        with accelerate(unet, KeyframePolicy.uniform(4, 2), scheduler=scheduler):
            scheduler.set_timesteps(4)
            for _ in range(MAX_CALLS_PER_STEP + 1):  # a loop that never calls step()
                call(scheduler.timesteps[0])
    assert restored(unet)


def test_step_without_a_model_call_is_refused():
    unet, scheduler, x, call = bare_loop()
    with pytest.raises(RuntimeError, match="step\\(\\) called at step 1 without a model call"):
        with accelerate(unet, KeyframePolicy.uniform(4, 2), scheduler=scheduler):
            scheduler.set_timesteps(4)
            t = scheduler.timesteps
            out = call(t[0])
            scheduler.step(out, t[0], x)
            scheduler.step(out, t[1], x)  # twice per model call
    assert restored(unet)


def test_model_call_after_the_last_step_is_refused():
    unet, scheduler, x, call = bare_loop()
    with pytest.raises(RuntimeError, match="model called after the last of 2 steps"):
        with accelerate(unet, KeyframePolicy.uniform(2, 2), scheduler=scheduler):
            scheduler.set_timesteps(2)
            for t in scheduler.timesteps:
                scheduler.step(call(t), t, x)
            call(scheduler.timesteps[-1])
    assert restored(unet)


def test_scheduler_replaced_inside_accelerate_is_refused():
    pipe, kwargs = build("sd")
    with pytest.raises(RuntimeError, match="pipe.scheduler was replaced inside accelerate\\(\\) "
                       "\\(now EulerDiscreteScheduler\\).*before entering accelerate"):
        with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
            pipe(num_inference_steps=N, output_type="np", **kwargs)
            pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
            pipe(num_inference_steps=N, output_type="np", **kwargs)
    assert restored(denoiser(pipe))


def test_long_lived_context_stays_bounded(monkeypatch):
    """Many sampling runs in one context: per-run lists are capped, totals stay exact,
    caches are freed after every run and the cost tables stop growing."""
    monkeypatch.setattr(RunStats, "kept_runs", 3)  # 64 by default; fewer runs here
    unet, scheduler, x, call = bare_loop()
    runs = 8
    with accelerate(unet, KeyframePolicy.uniform(3, 2), ScoreMixing(), scheduler=scheduler) as run:
        for i in range(runs):
            scheduler.set_timesteps(3)
            for t in scheduler.timesteps:
                call(t), scheduler.step(call(t), t, x)  # per-branch CFG: two calls a step
            assert run.caches.values == {} and run.mixer.keys == {}
            if i == 1:
                sizes = (len(run.ledger._macs), len(run.costs))
    s = run.stats
    assert len(s.keyframe_steps) == 3 and s.sampling_runs == runs
    assert s.mean_keyframes == 2 and s.keyframes_total == 2 * runs
    assert sizes == (len(run.ledger._macs), len(run.costs))
    assert s.as_dict()["mean_keyframes"] == 2

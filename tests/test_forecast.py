"""Forecast reuse (KeyframePolicy.forecast): reused values extrapolated linearly from their last
two keyframes, in the step index or the log-SNR; exact where nothing is reused or where only one
keyframe is held, a different sampler otherwise, in every policy format, restored on exit."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from conftest import LABELS, tiny_dit, tiny_unet
from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from frdiff.noise import noise_schedule
from frdiff.sampler import ForecastStore


def pipe_of(model):
    pipe = GlyphPipeline.from_model(model, build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, steps):
    return pipe(["A", "7"], num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                output_type="pt").images


def test_the_store_reads_the_line_through_the_last_two_keyframes():
    store, owner = ForecastStore(), object()
    v0, v1 = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 5.0])
    store.at = 0.0
    store.put(owner, v0)
    store.at = 1.0
    assert torch.equal(store.get(owner), v0)  # one keyframe: held as it is
    store.at = 2.0
    store.put(owner, v1)
    store.at = 3.0
    assert torch.equal(store.get(owner), torch.tensor([2.5, 6.5]))  # v1 + (v1 - v0) * 1 / 2
    store.at = 6.0
    assert torch.equal(store.get(owner), torch.tensor([4.0, 11.0]))  # v1 + (v1 - v0) * 4 / 2
    store.branch = 1  # another CFG branch holds its own values
    assert store.get(owner) is None
    store.clear()
    store.branch = 0
    assert store.get(owner) is None


@pytest.mark.parametrize("build", [tiny_unet, tiny_dit])
@pytest.mark.parametrize("forecast", ["step", "logsnr"])
def test_forecast_is_exact_without_reuse_and_with_one_keyframe_held(build, forecast):
    pipe = pipe_of(build())
    full = sample(pipe, 5)
    with accelerate(pipe, KeyframePolicy.uniform(5, 1).with_forecast(forecast), ScoreMixing.off()):
        assert torch.equal(sample(pipe, 5), full)  # all keyframes: nothing reused
    three = KeyframePolicy.from_steps(3, [0, 2])  # step 1 reuses with only step 0 held
    with accelerate(pipe, three, ScoreMixing.off()):
        hold = sample(pipe, 3)
    with accelerate(pipe, three.with_forecast(forecast), ScoreMixing.off()):
        assert torch.equal(sample(pipe, 3), hold)


@pytest.mark.parametrize("build, reuse", [(tiny_unet, "fr"), (tiny_unet, "block"), (tiny_dit, "residual")])
def test_forecast_changes_the_reuse_steps_after_two_keyframes_and_restores(build, reuse):
    pipe = pipe_of(build())
    model = pipe.denoiser
    policy = KeyframePolicy.uniform(8, 2, reuse)
    with accelerate(pipe, policy, ScoreMixing.off()) as run:
        hold = sample(pipe, 8)
    held_bytes = run.stats.peak_cache_bytes
    with accelerate(pipe, policy.with_forecast("step"), ScoreMixing.off()) as run:
        forecast = sample(pipe, 8)
    assert not torch.equal(forecast, hold) and torch.isfinite(forecast).all()
    assert run.stats.peak_cache_bytes == 2 * held_bytes  # the value before is held too
    assert not any("forward" in vars(m) for m in model.modules())
    with accelerate(pipe, policy, ScoreMixing.off()):
        assert torch.equal(sample(pipe, 8), hold)  # nothing of the forecast left behind


def test_forecast_in_every_policy_format():
    policy = KeyframePolicy.uniform(6, 2).with_forecast("logsnr")
    assert KeyframePolicy.from_dict(policy.to_dict()) == policy
    assert KeyframePolicy.from_json(policy.to_json()) == policy
    assert "forecast" not in KeyframePolicy.uniform(6, 2).to_dict()  # old files stay as they were
    blocks = ["a", "b"]
    text = policy.to_text(blocks)
    assert "@forecast logsnr" in text and KeyframePolicy.from_text(text).forecast == "logsnr"
    parsed = KeyframePolicy.parse("uniform:2:residual+forecast", 6)
    assert parsed.forecast == "step" and parsed.schedule[1] == "R"
    assert KeyframePolicy.parse("uniform:3+forecast:logsnr", 6).forecast == "logsnr"
    for bad, message in [("uniform:2+forecast:nope", "bad policy option"), ("adaptive:0.1+forecast", "keyframe"),
                         ("uniform:2+forecastx", "bad policy")]:
        with pytest.raises(ValueError, match=message):
            KeyframePolicy.parse(bad, 6)
    with pytest.raises(ValueError, match="@forecast"):
        KeyframePolicy.from_text("a KF\n@forecast sideways")
    with pytest.raises(ValueError, match="forecast must be"):
        KeyframePolicy(("K",), forecast="linear")


def test_a_log_snr_forecast_needs_a_schedule_frdiff_can_read():
    class NoSchedule:  # a scheduler with neither alphas_cumprod nor flow sigmas
        config = type("Config", (), {})()

        def set_timesteps(self, n):
            pass

        def step(self, *args):
            pass

    model = tiny_dit()
    with pytest.raises(ValueError, match="neither alphas_cumprod nor flow sigmas"):
        with accelerate(model, KeyframePolicy.uniform(4, 2).with_forecast("logsnr"),
                        scheduler=NoSchedule()):
            pass


def test_a_log_snr_forecast_reads_flow_sigmas():
    """On a flow-matching scheduler the log-SNR is log((1 - s) / s) of its sigmas."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(4)
    s = scheduler.sigmas[:4].double().clamp(1e-6, 1 - 1e-6)
    assert noise_schedule(scheduler).log_snrs() == pytest.approx(torch.log((1 - s) / s).tolist())

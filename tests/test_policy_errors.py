"""Bad input is refused with a clear error before any work, and the pipeline is untouched."""

import pytest
import torch
from diffusers import DDIMPipeline

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.glyphs.models import build_scheduler

N = 6


def untouched(pipe):
    return all("forward" not in m.__dict__ for m in pipe.denoiser.modules()) and \
        "step" not in pipe.scheduler.__dict__


def test_policy_length_mismatch(tiny_pipe):
    calls = []
    handle = tiny_pipe.denoiser.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ValueError, match="policy covers 6 steps but the sampler runs 8"):
        with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2)):
            tiny_pipe(["A"], num_inference_steps=8)
    handle.remove()
    assert calls == [] and untouched(tiny_pipe)


def test_unknown_block_names(tiny_pipe):
    policy = KeyframePolicy.per_block(["down_blocks.9", "nope"], {"down_blocks.9": "KF", "nope": "KS"})
    with pytest.raises(ValueError, match="unknown \\['down_blocks.9', 'nope'\\]"):
        with accelerate(tiny_pipe, policy):
            pass
    assert untouched(tiny_pipe)


@pytest.mark.parametrize("build, match", [
    (lambda: KeyframePolicy.from_steps(6, [1, 3]), "step 0 must be a keyframe"),
    (lambda: KeyframePolicy(("F", "K")), "step 0 must be a keyframe"),
    (lambda: KeyframePolicy(("K", "X")), "modes"),
    (lambda: KeyframePolicy.uniform(6, 0), "interval"),
    (lambda: KeyframePolicy.uniform(0, 2), "num_steps"),
    (lambda: KeyframePolicy.from_steps(6, [0, 9]), "outside"),
    (lambda: KeyframePolicy.uniform(6, 2, reuse="teleport"), "reuse"),
    (lambda: ScoreMixing(slope=0), "slope"),
    (lambda: ScoreMixing(slope=-3), "slope"),
    (lambda: ScoreMixing(bias=1.5), "bias"),
])
def test_invalid_policies_and_mixing(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_policy_json_round_trip(tmp_path):
    p = KeyframePolicy.per_block(["a", "b"], {"a": "KFKS", "b": "KKFF"})
    path = tmp_path / "p.json"
    p.to_json(str(path), model="x")
    assert KeyframePolicy.from_json(str(path)) == p
    u = KeyframePolicy.uniform(7, 3)
    assert KeyframePolicy.parse("uniform:3", 7) == u and u.keyframes == [0, 3, 6]
    assert KeyframePolicy.from_json(u.to_json()) == u
    with pytest.raises(ValueError, match="uniform:K"):
        KeyframePolicy.parse("uniform:x", 7)


def test_model_without_reusable_modules():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="no module frdiff can reuse"):
        with accelerate(model, KeyframePolicy.uniform(N, 2), scheduler=build_scheduler()):
            pass
    assert "forward" not in model.__dict__


def test_unsupported_pipeline():
    class NotAPipeline:
        scheduler = build_scheduler()

    with pytest.raises(ValueError, match="unsupported pipeline NotAPipeline"):
        with accelerate(NotAPipeline(), KeyframePolicy.uniform(N, 2)):
            pass


def test_bare_model_needs_a_scheduler(tiny_pipe):
    with pytest.raises(ValueError, match="scheduler"):
        with accelerate(tiny_pipe.denoiser, KeyframePolicy.uniform(N, 2)):
            pass
    assert untouched(tiny_pipe)


def test_model_called_without_the_clock(tiny_pipe):
    """A scheduler swapped inside the context never starts the clock: a clear error."""
    from frdiff import set_scheduler

    with pytest.raises(RuntimeError, match="set_timesteps"):
        with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2)):
            set_scheduler(tiny_pipe, "euler")
            tiny_pipe(["A"], num_inference_steps=N)
    assert untouched(tiny_pipe)


def test_ddim_pipeline_unet2d(tmp_path):
    from conftest import tiny_unet

    unet = tiny_unet()  # class-conditional; DDIMPipeline passes no labels, so drop them
    model = type(unet)(**{**unet.config, "num_class_embeds": None})
    pipe = DDIMPipeline(unet=model, scheduler=build_scheduler())
    pipe.set_progress_bar_config(disable=True)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base = pipe(batch_size=2, num_inference_steps=N, generator=g(), output_type="np").images
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        same = pipe(batch_size=2, num_inference_steps=N, generator=g(), output_type="np").images
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()) as r:
        fast = pipe(batch_size=2, num_inference_steps=N, generator=g(), output_type="np").images
    assert (same == base).all() and r.stats.ideal_speedup > 1.2
    assert abs(fast - base).mean() < 0.2

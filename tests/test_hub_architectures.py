"""frdiff on stock diffusers pipelines of the hub families, built tiny from configs (offline):
StableDiffusion, StableDiffusionXL, DiT and PixArt-alpha (builders in stock_pipelines.py)."""

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, describe
from stock_pipelines import dit, pixart, sd, sdxl

N = 6
CASES = {"sd": (sd, "resnet"), "sdxl": (sdxl, "residual"), "dit": (dit, "output"),
         "pixart": (pixart, "output")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hub_family(case):
    build, kind = CASES[case]
    pipe, kwargs = build()
    pipe.set_progress_bar_config(disable=True)
    model = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
    model.eval()  # fresh models are in train mode (DiT would drop labels at random)

    def sample():
        return pipe(num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                    output_type="np", **kwargs).images

    base = sample()
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert (sample() == base).all()  # all keyframes: bit for bit
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing(bias=0.3)) as run:
        fast = sample()
    assert abs(fast - base).mean() < 0.1
    assert run.stats.modules_reused.get(kind, 0) >= 2
    assert run.stats.ideal_speedup > 1.2 and run.stats.network_calls_skipped >= 1
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert (sample() == base).all()
    assert type(model).__name__ in describe(pipe)

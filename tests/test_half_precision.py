"""Stock pipelines in bfloat16 / float16 (CPU, and CUDA when present): every output of an
accelerated model keeps the model's dtype, so sampling runs to the end with default mixing."""

import pytest
import torch
from diffusers.utils import logging

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from stock_pipelines import build, denoiser
from frdiff.pytree import sample_of

logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
N = 6
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sample(pipe, kwargs, device):
    g = torch.Generator(device).manual_seed(0)
    return pipe(num_inference_steps=N, generator=g, output_type="np", **kwargs).images


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("case", ["sd", "sdxl", "dit", "pixart"])
def test_half_precision_with_default_mixing(case, dtype, device):
    pipe, kwargs = build(case, dtype, device)
    try:
        base = sample(pipe, kwargs, device)
    except RuntimeError as e:  # an op without a kernel for this dtype on this device
        if "not implemented" in str(e) or "not supported" in str(e):
            pytest.skip(f"{device} has no {dtype} kernel for this pipeline: {e}")
        raise
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert (sample(pipe, kwargs, device) == base).all()  # all keyframes: bit for bit

    dtypes = []  # what the pipeline got from every call of the accelerated model
    handle = denoiser(pipe).register_forward_hook(lambda m, a, out: dtypes.append(sample_of(out).dtype))
    try:
        with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()) as run:
            fast = sample(pipe, kwargs, device)  # steps 1 (lam = 0), 3 (lam = 0.5), 5 (FR)
    finally:
        handle.remove()
    assert run.stats.network_calls_skipped >= 1 and run.stats.fr_calls >= 1
    assert len(dtypes) == N and set(dtypes) == {dtype}  # one batched-CFG call per step
    assert abs(fast - base).mean() < 0.1
    assert (sample(pipe, kwargs, device) == base).all()  # restored


@pytest.mark.parametrize("multistep", ["hold", "extrapolate"])
def test_x0_mixing_keeps_dtype_under_dpm_solver(multistep):
    pipe, kwargs = build("dit", torch.bfloat16)  # DPM-Solver++, learned-variance channels
    with accelerate(pipe, KeyframePolicy.uniform(N, 3, reuse="none"),
                    ScoreMixing(multistep=multistep)) as run:
        images = sample(pipe, kwargs, "cpu")
    assert run.space == "x0" and run.stats.network_calls_skipped == 4
    assert images.shape[0] == 2


def test_cache_dtype_returns_the_modules_own_dtype():
    pipe, kwargs = build("sd", torch.bfloat16)
    base = sample(pipe, kwargs, "cpu")
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing.off(),
                    cache_dtype=torch.float16) as run:
        fast = sample(pipe, kwargs, "cpu")
    assert run.stats.fr_calls == N // 2 and abs(fast - base).mean() < 0.1

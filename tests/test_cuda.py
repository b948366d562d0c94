"""frdiff on a CUDA device: fp32, fp16 and bf16 models, low-precision caches, bench timing.

Skipped where no GPU is visible (CI has none); run on a GPU machine with
`python -m pytest tests/test_cuda.py`.
"""

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline
from frdiff.metrics import psnr

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

N = 20
LABELS = ["A", "7", "K", "3"]


def run(pipe):
    g = torch.Generator().manual_seed(0)
    return pipe(LABELS, num_inference_steps=N, generator=g, output_type="pt").images.float().cpu()


def forwards_are_class_methods(model):
    return all("forward" not in m.__dict__ for m in model.modules())


@pytest.fixture(params=["glyph-unet", "glyph-dit"])
def name(request):
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_all_keyframes_bit_exact_and_reuse_close(name, dtype):
    pipe = load_pipeline(name, device="cuda", torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    model = pipe.unet if name == "glyph-unet" else pipe.transformer
    assert next(model.parameters()).device.type == "cuda"
    base = run(pipe)
    with accelerate(pipe, KeyframePolicy.uniform(N, 1), ScoreMixing()):
        assert torch.equal(run(pipe), base)
    with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()) as r:
        out = run(pipe)
    assert torch.isfinite(out).all()
    assert r.stats.ideal_speedup > 1.0
    # reuse every other step stays close to the full run (measured ~35-45 dB in fp32)
    assert psnr(out, base) > 22.0
    assert forwards_are_class_methods(model)


@pytest.mark.parametrize("cache_dtype", [torch.float16, torch.bfloat16])
def test_low_precision_cache_halves_bytes_on_gpu(name, cache_dtype):
    pipe = load_pipeline(name, device="cuda")
    pipe.set_progress_bar_config(disable=True)
    policy = KeyframePolicy.uniform(N, 2)
    with accelerate(pipe, policy, ScoreMixing.off()) as full:
        ref = run(pipe)
    with accelerate(pipe, policy, ScoreMixing.off(), cache_dtype=cache_dtype) as half:
        out = run(pipe)
    assert half.stats.peak_cache_bytes * 2 == full.stats.peak_cache_bytes
    assert psnr(out, ref) > 30.0


def test_bench_on_gpu_reports_the_device():
    import contextlib
    import io
    import json

    from frdiff.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--model", "glyph-unet", "--steps", "10", "--batch", "4",
                   "--policy", "uniform:2", "--samples", "8", "--repeats", "2",
                   "--device", "cuda", "--json"])
    assert rc == 0
    result = json.loads(buf.getvalue())
    assert result["machine"]["device"] != "cpu"
    assert result["speedup"] > 0 and result["psnr"] > 20

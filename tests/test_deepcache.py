"""DeepCache (PyPI, unmodified) on a diffusers UNet2DModel through frdiff.peers' adapter."""

import pytest
import torch
from conftest import LABELS, tiny_dit, tiny_unet
from DeepCache import DeepCacheSDHelper

from analysis.deepcache import deepcache_row, ideal_speedup, markdown
from frdiff import ScoreMixing
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.bench import fewer_steps_row, policy_row
from frdiff.glyphs.models import GlyphClassifier, build_scheduler
from frdiff.peers import deepcache

N = 6


@pytest.fixture
def unet_pipe() -> GlyphPipeline:
    pipe = GlyphPipeline.from_model(tiny_unet(), build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe) -> torch.Tensor:
    return pipe(["A", "7"], num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                output_type="pt").images


def _forwards(pipe) -> dict:
    return {m: m.__dict__.get("forward") for m in pipe.unet.modules()}


def test_helper_alone_fails_on_per_sample_timesteps(unet_pipe):
    # why the adapter exists: the glyph pipeline passes one timestep per sample (CFG batch)
    helper = DeepCacheSDHelper(pipe=unet_pipe)
    helper.set_params(cache_interval=2, cache_branch_id=0)
    helper.enable()
    try:
        with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
            run(unet_pipe)
    finally:
        helper.disable()


def test_interval_one_is_full_compute_and_forwards_are_restored(unet_pipe):
    before = _forwards(unet_pipe)
    base = run(unet_pipe)
    with deepcache(unet_pipe, interval=1, branch_id=0) as helper:
        assert isinstance(helper, DeepCacheSDHelper)
        assert "forward" in unet_pipe.unet.mid_block.__dict__  # DeepCache really wrapped it
        out = run(unet_pipe)
    torch.testing.assert_close(out, base, atol=1e-6, rtol=0)
    assert _forwards(unet_pipe) == before
    assert torch.equal(run(unet_pipe), base)


@pytest.mark.parametrize("branch_id", [0, 1, 3])
def test_cached_steps_skip_the_deep_blocks_and_change_the_output(unet_pipe, branch_id):
    base = run(unet_pipe)
    mid_conv_calls = []
    handle = unet_pipe.unet.mid_block.resnets[0].conv1.register_forward_hook(
        lambda *_: mid_conv_calls.append(1))
    try:
        with deepcache(unet_pipe, interval=2, branch_id=branch_id):
            out = run(unet_pipe)
    finally:
        handle.remove()
    assert len(mid_conv_calls) == N // 2  # the mid block ran at full steps 0, 2, 4 only
    diff = (out - base).abs()
    assert diff.max() > 1e-4 and diff.mean() < 0.2  # a different sample, close to the full one
    assert 1.0 < ideal_speedup(unet_pipe, lambda: deepcache(unet_pipe, 2, branch_id), N) < 2.0


def test_exception_inside_restores_every_forward(unet_pipe):
    before = _forwards(unet_pipe)
    with pytest.raises(KeyError):
        with deepcache(unet_pipe, interval=3, branch_id=0):
            raise KeyError("boom")
    assert _forwards(unet_pipe) == before


def test_adapter_rejects_what_deepcache_cannot_run(unet_pipe):
    dit = GlyphPipeline.from_model(tiny_dit(), build_scheduler(), labels=LABELS)
    with pytest.raises(ValueError, match="unet"):
        with deepcache(dit, 2):
            pass
    for interval, branch in [(0, 0), (2, 6)]:  # the tiny UNet has 2 levels: branch ids 0..5
        with pytest.raises(ValueError):
            with deepcache(unet_pipe, interval, branch):
                pass
    assert _forwards(unet_pipe) == {m: None for m in unet_pipe.unet.modules()}


def test_rows_have_the_table_columns(unet_pipe):
    torch.manual_seed(0)
    clf = GlyphClassifier(width=4, feature_dim=8).eval()  # untrained: only the plumbing is judged
    common = dict(labels=[0, 1], steps=N, seed=0, samples=4, repeats=1)
    dc = deepcache_row(unet_pipe, clf, 2, 0, **common)
    base = dc.pop("baseline_images")
    assert base.shape == (4, 3, 16, 16)
    fr = policy_row(unet_pipe, clf, "uniform:2", ScoreMixing(), baseline=base, **common)
    assert torch.equal(fr.pop("baseline_images"), base)
    expected = {"method", "setting", "speedup", "baseline_s", "accelerated_s", "repeats",
                "ideal_speedup", "psnr", "ssim", "class_accuracy", "baseline_class_accuracy",
                "fd_to_baseline", "samples"}
    few = fewer_steps_row(unet_pipe, clf, N // 2, baseline=base, **common)
    assert torch.equal(few.pop("baseline_images"), base)
    assert expected <= dc.keys() and expected <= fr.keys() and expected <= few.keys()
    assert dc["method"] == "DeepCache" and dc["cache_interval"] == 2 and fr["method"] == "frdiff"
    assert few["ideal_speedup"] == N / (N // 2) and few["setting"] == f"DDIM {N // 2} steps"
    for row in (dc, fr, few):
        assert row["speedup"] > 0 and row["ideal_speedup"] > 1.0
        assert 0 < row["psnr"] < 100 and 0 < row["ssim"] < 1  # cached runs differ from full
    table = markdown({"model": "tiny", "steps": N, "batch": 2, "samples": 4, "repeats": 1,
                      "quality_seed": 1000, "machine": {"cpu": "x", "threads": 1, "torch": "t"},
                      "rows": [dc, fr]})
    assert "| DeepCache | interval 2, branch 0 |" in table and "| frdiff | uniform:2" in table

"""Shared fixtures: tiny models built from configs (fast, offline), never hub downloads."""

import os
import tempfile

import hypothesis
import pytest
import torch
from diffusers import DiTTransformer2DModel, UNet2DModel

from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the app's first-view cache: this run's own (a cache from another checkout is never read)
os.environ.setdefault("FRDIFF_APP_CACHE", tempfile.mkdtemp(prefix="frdiff-app-cache-"))
torch.set_num_threads(min(2, torch.get_num_threads()))
# property tests: the same examples on every run (a CI run is reproducible); set
# FRDIFF_HYPOTHESIS_EXPLORE=N to draw fresh random examples, N times as many, when hunting bugs
_EXPLORE = int(os.environ.get("FRDIFF_HYPOTHESIS_EXPLORE", "0") or 0)
hypothesis.settings.register_profile(
    "frdiff", deadline=None, database=None, derandomize=not _EXPLORE,
    suppress_health_check=list(hypothesis.HealthCheck),
    # exploring: report the first failing example as found (shrinking reruns slow commands)
    phases=[p for p in hypothesis.Phase if p != hypothesis.Phase.shrink or not _EXPLORE])
hypothesis.settings.load_profile("frdiff")


def examples(n: int) -> int:
    """A property test's example count, scaled up by FRDIFF_HYPOTHESIS_EXPLORE."""
    return n * max(_EXPLORE, 1)

LABELS = "2345679ACEFHKMPRTUWX"


def tiny_unet(num_classes: int = len(LABELS)) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8,
                       norm_num_groups=4, num_class_embeds=num_classes + 1)


def tiny_dit(num_classes: int = len(LABELS)) -> DiTTransformer2DModel:
    torch.manual_seed(0)
    return DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=3,
                                 out_channels=3, num_layers=2, sample_size=16, patch_size=4,
                                 num_embeds_ada_norm=num_classes)


@pytest.fixture(params=["unet", "dit"])
def tiny_pipe(request) -> GlyphPipeline:
    model = tiny_unet() if request.param == "unet" else tiny_dit()
    pipe = GlyphPipeline.from_model(model, build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe

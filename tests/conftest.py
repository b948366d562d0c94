"""Shared fixtures: tiny models built from configs (fast, offline), never hub downloads."""

import os

import pytest
import torch
from diffusers import DiTTransformer2DModel, UNet2DModel

from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))
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

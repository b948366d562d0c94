"""Architectures of the embedded glyph models: three generators and the quality judge.

The generators are stock diffusers models (nothing subclassed), so everything frdiff does to
them it does to hub models of the same families: a pixel UNet and an adaLN DiT on a
v-prediction schedule, and glyph-flux, a FLUX transformer (dual-stream then single-stream
blocks) trained by rectified flow, whose "text" is a learned token sequence per class
(`GlyphLabelEncoder`, the pipeline's text encoder). Index `num_classes` is the null class used
for classifier-free guidance.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import (DDIMScheduler, DiTTransformer2DModel, FlowMatchEulerDiscreteScheduler,
                       FluxTransformer2DModel, UNet2DModel)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .data import GLYPH_CLASSES, RESOLUTION

NUM_CLASSES = len(GLYPH_CLASSES)


def build_glyph_unet(num_classes: int = NUM_CLASSES) -> UNet2DModel:
    """Pixel-space class-conditional UNet: thin at 32x32, attention at 8x8 and 4x4.

    Sized for speed on a 2-core CPU (50 CFG steps of batch 8 in under 3 s): the 32x32 level,
    where convolutions cost most, has 8 channels; GroupNorm keeps 2 channels per group there
    so the norm does not erase each channel's mean (an image's colours)."""
    return UNet2DModel(
        sample_size=RESOLUTION, in_channels=3, out_channels=3,
        block_out_channels=(8, 16, 32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=32, norm_num_groups=4,
        num_class_embeds=num_classes + 1,  # + the null class for CFG
    )


def build_glyph_dit(num_classes: int = NUM_CLASSES) -> DiTTransformer2DModel:
    """Pixel-space DiT (adaLN-zero), 4x4 patches: 64 tokens of width 192, 6 blocks."""
    return DiTTransformer2DModel(
        num_attention_heads=3, attention_head_dim=64, in_channels=3, out_channels=3,
        num_layers=6, sample_size=RESOLUTION, patch_size=4,
        num_embeds_ada_norm=num_classes,  # its label table adds the null row itself
    )


FLUX_PATCH = 4  # glyph-flux tokens are 4x4 pixel patches: 64 image tokens of 48 channels
FLUX_WIDTH = 128
FLUX_TEXT_TOKENS = 4  # the class's "prompt": this many learned tokens


def build_glyph_flux() -> FluxTransformer2DModel:
    """A stock FLUX transformer: 2 dual-stream + 4 single-stream blocks of width 128 (4 heads
    of 32; RoPE over (0, row, column) of each 4x4 patch), no guidance embedding (real CFG)."""
    return FluxTransformer2DModel(
        patch_size=1, in_channels=3 * FLUX_PATCH ** 2, num_layers=2, num_single_layers=4,
        attention_head_dim=32, num_attention_heads=4, joint_attention_dim=FLUX_WIDTH,
        pooled_projection_dim=FLUX_WIDTH, guidance_embeds=False, axes_dims_rope=(8, 12, 12),
    )


class GlyphLabelEncoder(ModelMixin, ConfigMixin):
    """glyph-flux's text encoder: each class (and the null class, the last row) is a learned
    sequence of `num_tokens` conditioning tokens and a pooled vector, as a prompt's T5 tokens
    and CLIP pooled embedding are for FLUX."""

    @register_to_config
    def __init__(self, num_classes: int = NUM_CLASSES, num_tokens: int = FLUX_TEXT_TOKENS,
                 dim: int = FLUX_WIDTH, pooled_dim: int = FLUX_WIDTH):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(num_classes + 1, num_tokens, dim))
        self.pooled = nn.Embedding(num_classes + 1, pooled_dim)

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt embeddings [B, num_tokens, dim], pooled embeddings [B, pooled_dim])."""
        return self.tokens[labels], self.pooled(labels)


class GlyphFlux(nn.Module):
    """What trains as glyph-flux: the transformer and its label encoder, one optimiser."""

    def __init__(self):
        super().__init__()
        self.transformer = build_glyph_flux()
        self.label_encoder = GlyphLabelEncoder()


def build_flow_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """glyph-flux's sampler: Euler on the rectified-flow ODE, no timestep shift (32x32)."""
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def build_scheduler() -> DDIMScheduler:
    """The training noise schedule, saved with each generator (v-prediction, cosine)."""
    return DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction", clip_sample=False,
        set_alpha_to_one=True, timestep_spacing="trailing",
    )


class GlyphClassifier(ModelMixin, ConfigMixin):
    """Small CNN that judges samples: logits and a penultimate feature for Frechet distance."""

    @register_to_config
    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32, feature_dim: int = 128,
                 labels: str = GLYPH_CLASSES):
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU(),
            )

        self.stages = nn.ModuleList([stage(3, width), stage(width, 2 * width),
                                     stage(2 * width, 4 * width)])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * width, feature_dim), nn.SiLU())
        self.fc = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features of images in [-1, 1]."""
        x = images
        for i, stage in enumerate(self.stages):
            x = stage(x)
            x = F.max_pool2d(x, 2) if i < len(self.stages) - 1 else x.mean((2, 3))
        return self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))

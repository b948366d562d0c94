"""Tiny stock diffusers pipelines built from configs (offline): SD, SDXL, DiT, PixArt-alpha.

Text encoders are bypassed with prompt embeddings, as users do when they precompute them.
Each builder returns (pipe, call kwargs); `dtype` casts the pipeline (weights and embeddings).
"""

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel,
                       DPMSolverMultistepScheduler, EulerDiscreteScheduler, PixArtAlphaPipeline,
                       PixArtTransformer2DModel, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)


def vae():
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8,), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",),
                         up_block_types=("UpDecoderBlock2D",), latent_channels=4,
                         norm_num_groups=4, sample_size=16)


def cond_unet(xl: bool = False):
    torch.manual_seed(0)
    kw = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16),
              layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
              attention_head_dim=4, norm_num_groups=4)
    if xl:  # several transformer layers per block and the text-time conditioning of SDXL
        kw.update(transformer_layers_per_block=(1, 2), addition_embed_type="text_time",
                  addition_time_embed_dim=4, projection_class_embeddings_input_dim=16 + 6 * 4)
    return UNet2DConditionModel(**kw)


def embeds(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)))


def sd(scheduler=None):
    pipe = StableDiffusionPipeline(vae=vae(), text_encoder=None, tokenizer=None, unet=cond_unet(),
                                   scheduler=scheduler or DDIMScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    return pipe, dict(prompt_embeds=embeds(1, 5, 16), negative_prompt_embeds=embeds(1, 5, 16) + 1,
                      height=16, width=16)


def sdxl(scheduler=None):
    pipe = StableDiffusionXLPipeline(vae=vae(), text_encoder=None, text_encoder_2=None,
                                     tokenizer=None, tokenizer_2=None, unet=cond_unet(xl=True),
                                     scheduler=scheduler or EulerDiscreteScheduler())
    return pipe, dict(prompt_embeds=embeds(1, 5, 16), negative_prompt_embeds=embeds(1, 5, 16) + 1,
                      pooled_prompt_embeds=embeds(1, 16), negative_pooled_prompt_embeds=embeds(1, 16) + 1,
                      height=16, width=16)


def dit(scheduler=None):
    torch.manual_seed(0)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                  out_channels=8, num_layers=2, sample_size=16, patch_size=4,
                                  num_embeds_ada_norm=1000)  # DiTPipeline's null class is 1000
    pipe = DiTPipeline(transformer=model, vae=vae(), scheduler=scheduler or DPMSolverMultistepScheduler())
    return pipe, dict(class_labels=[1, 3])


def pixart(scheduler=None):
    torch.manual_seed(0)
    model = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                     out_channels=8, num_layers=2, sample_size=16, patch_size=2,
                                     cross_attention_dim=16, caption_channels=16,
                                     norm_type="ada_norm_single", num_embeds_ada_norm=1000,
                                     use_additional_conditions=False)
    pipe = PixArtAlphaPipeline(tokenizer=None, text_encoder=None, vae=vae(), transformer=model,
                               scheduler=scheduler or DPMSolverMultistepScheduler())
    return pipe, dict(prompt_embeds=embeds(1, 5, 16), prompt_attention_mask=torch.ones(1, 5),
                      negative_prompt_embeds=embeds(1, 5, 16) + 1, negative_prompt=None,
                      negative_prompt_attention_mask=torch.ones(1, 5), height=16, width=16,
                      use_resolution_binning=False)


BUILDERS = {"sd": sd, "sdxl": sdxl, "dit": dit, "pixart": pixart}


def build(name: str, dtype: torch.dtype = torch.float32, device: str = "cpu", scheduler=None):
    """A tiny stock pipeline in eval mode on `device` in `dtype`, with its call kwargs."""
    pipe, kwargs = BUILDERS[name](scheduler)
    pipe.set_progress_bar_config(disable=True)
    denoiser(pipe).eval()  # fresh models are in train mode (DiT would drop labels at random)
    pipe.to(device, dtype)
    kwargs = {k: v.to(device, dtype) if isinstance(v, torch.Tensor) and v.is_floating_point()
              else v for k, v in kwargs.items()}
    return pipe, kwargs


def denoiser(pipe):
    return pipe.unet if hasattr(pipe, "unet") else pipe.transformer

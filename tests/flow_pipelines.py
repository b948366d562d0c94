"""Tiny stock flow-matching pipelines built from configs (offline): FLUX.1 (schnell-like and
guidance-distilled dev), FLUX img2img, SD3 and its img2img, Qwen-Image, Wan 2.1 and Wan 2.2
(two experts); and bare transformers of families with no pipeline here (`MODEL_BUILDERS`).

Text encoders are bypassed with prompt embeddings; the pipelines return latents
(`output_type="latent"`), so the txt2img ones need no VAE. Each builder returns
(pipe, call kwargs) and takes `dtype` (weights and embeddings) and `scheduler`.
"""

import torch
from diffusers import (AutoencoderKL, ChromaTransformer2DModel, CogVideoXTransformer3DModel,
                       FlowMatchEulerDiscreteScheduler, FluxImg2ImgPipeline, FluxPipeline,
                       FluxTransformer2DModel, HunyuanVideoTransformer3DModel, LTXVideoTransformer3DModel,
                       Lumina2Transformer2DModel, QwenImagePipeline, QwenImageTransformer2DModel,
                       SanaTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Img2ImgPipeline,
                       StableDiffusion3Pipeline, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel)

D = 16  # text embedding width of every tiny model


def cast(model, dtype):
    """The model in `dtype` (fp32 models stay as built)."""
    return model if dtype == torch.float32 else model.to(dtype)


def embeds(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed + len(shape))).to(dtype)


def vae(dtype=torch.float32):
    """A tiny KL VAE with FLUX/SD3's 8x scale (four levels) and a shift factor."""
    torch.manual_seed(0)
    model = AutoencoderKL(block_out_channels=(8,) * 4, in_channels=3, out_channels=3, latent_channels=4,
                          down_block_types=("DownEncoderBlock2D",) * 4,
                          up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4, sample_size=32,
                          shift_factor=0.1, scaling_factor=1.0)
    return cast(model, dtype)


def image():
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))


def flux_transformer(guidance: bool = False, dtype=torch.float32):
    torch.manual_seed(0)
    return cast(FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2,
                                       attention_head_dim=8, num_attention_heads=2, joint_attention_dim=D,
                                       pooled_projection_dim=D, axes_dims_rope=(2, 2, 4),
                                       guidance_embeds=guidance), dtype)


def _flux(cls, guidance=False, dtype=torch.float32, scheduler=None, **extra):
    pipe = cls(scheduler=scheduler or FlowMatchEulerDiscreteScheduler(), vae=extra.pop("vae", None),
               text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
               transformer=flux_transformer(guidance, dtype))
    kwargs = dict(prompt_embeds=embeds(1, 5, D, dtype=dtype), pooled_prompt_embeds=embeds(1, D, dtype=dtype),
                  height=32, width=32, output_type="latent", **extra)
    return pipe, kwargs


def flux(dtype=torch.float32, scheduler=None):
    """FLUX.1-schnell-like: no guidance input, one call per step."""
    return _flux(FluxPipeline, dtype=dtype, scheduler=scheduler)


def flux_dev(dtype=torch.float32, scheduler=None):
    """FLUX.1-dev-like: distilled guidance is an input of the one call per step."""
    return _flux(FluxPipeline, guidance=True, dtype=dtype, scheduler=scheduler, guidance_scale=3.5)


def flux_img2img(dtype=torch.float32, scheduler=None):
    return _flux(FluxImg2ImgPipeline, dtype=dtype, scheduler=scheduler, vae=vae(dtype),
                 image=image(), strength=0.5)


def _sd3(cls, dtype=torch.float32, scheduler=None, **extra):
    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=4, patch_size=2, in_channels=4, num_layers=2,
                                  attention_head_dim=8, num_attention_heads=2, joint_attention_dim=D,
                                  caption_projection_dim=16, pooled_projection_dim=D, out_channels=4,
                                  pos_embed_max_size=8)
    model = cast(model, dtype)
    pipe = cls(transformer=model, scheduler=scheduler or FlowMatchEulerDiscreteScheduler(shift=3.0),
               vae=extra.pop("vae", None), text_encoder=None, tokenizer=None, text_encoder_2=None,
               tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)
    kwargs = dict(prompt_embeds=embeds(1, 5, D, dtype=dtype), pooled_prompt_embeds=embeds(1, D, dtype=dtype),
                  negative_prompt_embeds=embeds(1, 5, D, dtype=dtype, seed=1),
                  negative_pooled_prompt_embeds=embeds(1, D, dtype=dtype, seed=1), guidance_scale=4.0,
                  height=32, width=32, output_type="latent", **extra)
    return pipe, kwargs


def sd3(dtype=torch.float32, scheduler=None):
    """SD3: CFG batched into one call per step; the last joint block keeps no text output."""
    return _sd3(StableDiffusion3Pipeline, dtype, scheduler)


def sd3_img2img(dtype=torch.float32, scheduler=None):
    return _sd3(StableDiffusion3Img2ImgPipeline, dtype, scheduler, vae=vae(dtype), image=image(), strength=0.5)


def qwen(dtype=torch.float32, scheduler=None):
    """Qwen-Image: true CFG, two model calls per step."""
    torch.manual_seed(0)
    model = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=D,
                                        axes_dims_rope=(2, 2, 4))
    model = cast(model, dtype)
    pipe = QwenImagePipeline(scheduler=scheduler or FlowMatchEulerDiscreteScheduler(), vae=None,
                             text_encoder=None, tokenizer=None, transformer=model)
    mask = torch.ones(1, 5, dtype=torch.long)
    return pipe, dict(prompt_embeds=embeds(1, 5, D, dtype=dtype), prompt_embeds_mask=mask,
                      negative_prompt_embeds=embeds(1, 5, D, dtype=dtype, seed=1),
                      negative_prompt_embeds_mask=mask, true_cfg_scale=4.0, height=32, width=32,
                      output_type="latent")


def wan_transformer(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return cast(WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8,
                                      in_channels=4, out_channels=4, text_dim=D, freq_dim=16, ffn_dim=32,
                                      num_layers=2, rope_max_seq_len=32), dtype)


def wan_scheduler():
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   flow_shift=3.0, num_train_timesteps=1000)


def _wan(dtype, scheduler, **extra):
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=wan_transformer(dtype), vae=None,
                       scheduler=scheduler or wan_scheduler(), **extra)
    return pipe, dict(prompt_embeds=embeds(1, 5, D, dtype=dtype),
                      negative_prompt_embeds=embeds(1, 5, D, dtype=dtype, seed=1), guidance_scale=5.0,
                      height=32, width=32, num_frames=5, output_type="latent")


def wan(dtype=torch.float32, scheduler=None):
    """Wan 2.1: one expert, CFG as two calls per step, UniPC on flow sigmas."""
    return _wan(dtype, scheduler)


def wan22(dtype=torch.float32, scheduler=None):
    """Wan 2.2: `transformer` at high noise, `transformer_2` below the boundary."""
    return _wan(dtype, scheduler, transformer_2=wan_transformer(dtype, seed=1), boundary_ratio=0.9)


BUILDERS = {"flux": flux, "flux-dev": flux_dev, "flux-img2img": flux_img2img, "sd3": sd3,
            "sd3-img2img": sd3_img2img, "qwen": qwen, "wan": wan, "wan22": wan22}


# -- bare transformers: (model, the keyword arguments of one call, hidden_states first) --------
def _t(batch=1):
    return torch.full((batch,), 500.0)


def sana():
    torch.manual_seed(0)
    model = SanaTransformer2DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8,
                                   num_layers=2, num_cross_attention_heads=2, cross_attention_head_dim=8,
                                   cross_attention_dim=16, caption_channels=D, sample_size=8)
    return model, dict(hidden_states=embeds(1, 4, 8, 8), encoder_hidden_states=embeds(1, 5, D), timestep=_t())


def ltx():
    torch.manual_seed(0)
    model = LTXVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8,
                                       cross_attention_dim=16, num_layers=2, caption_channels=D)
    return model, dict(hidden_states=embeds(1, 2 * 4 * 4, 4), encoder_hidden_states=embeds(1, 5, D),
                       timestep=_t(), encoder_attention_mask=torch.ones(1, 5), num_frames=2, height=4, width=4)


def cogvideox():
    torch.manual_seed(0)
    model = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                        time_embed_dim=8, text_embed_dim=D, num_layers=2, sample_width=8,
                                        sample_height=8, sample_frames=9, max_text_seq_length=5)
    return model, dict(hidden_states=embeds(1, 3, 4, 8, 8), encoder_hidden_states=embeds(1, 5, D), timestep=_t())


def hunyuan_video():
    torch.manual_seed(0)
    model = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8,
                                           num_layers=2, num_single_layers=2, num_refiner_layers=1,
                                           text_embed_dim=D, pooled_projection_dim=D, rope_axes_dim=(2, 2, 4))
    return model, dict(hidden_states=embeds(1, 4, 2, 8, 8), timestep=_t(), encoder_hidden_states=embeds(1, 5, D),
                       encoder_attention_mask=torch.ones(1, 5), pooled_projections=embeds(1, D),
                       guidance=torch.full((1,), 3500.0))


def chroma():
    torch.manual_seed(0)
    model = ChromaTransformer2DModel(in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=8,
                                     num_attention_heads=2, joint_attention_dim=D, axes_dims_rope=(2, 2, 4),
                                     approximator_num_channels=16, approximator_hidden_dim=16, approximator_layers=1)
    return model, dict(hidden_states=embeds(1, 4, 16), encoder_hidden_states=embeds(1, 5, D),
                       timestep=torch.full((1,), 0.5), img_ids=torch.zeros(4, 3), txt_ids=torch.zeros(5, 3))


def lumina2():
    torch.manual_seed(0)
    model = Lumina2Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, hidden_size=16, num_layers=2,
                                      num_refiner_layers=1, num_attention_heads=2, num_kv_heads=1, multiple_of=16,
                                      axes_dim_rope=(2, 2, 4), axes_lens=(16, 16, 16), cap_feat_dim=D)
    return model, dict(hidden_states=embeds(1, 4, 8, 8), timestep=torch.full((1,), 0.5),
                       encoder_hidden_states=embeds(1, 5, D), encoder_attention_mask=torch.ones(1, 5, dtype=torch.bool))


MODEL_BUILDERS = {"sana": sana, "ltx-video": ltx, "cogvideox": cogvideox, "hunyuan-video": hunyuan_video,
                  "chroma": chroma, "lumina2": lumina2}

"""The glyph pipeline, the embedded models, and `load_pipeline`, the one way in for every model.

`GlyphPipeline` follows `DiTPipeline`'s calling convention (class labels in, images out) for
pixel-space class-conditional models: a `UNet2DModel` (`pipe.unet`), a `DiTTransformer2DModel`
(`pipe.transformer`), or a `FluxTransformer2DModel` (`pipe.transformer`, with
`pipe.label_encoder` as its text encoder: each class is a sequence of conditioning tokens and a
pooled vector; images go in as packed 4x4 patches with FLUX's (0, row, column) ids, and the
timestep as sigma, as `FluxPipeline` passes them). Classifier-free guidance runs as one batched
model call per step with the batch ordered [uncond, cond].
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Sequence

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

# the embedded models and tuned policies are package data (repo-level assets/ links here)
ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
EMBEDDED_MODELS = {"glyph-unet": "glyph-unet", "glyph-dit": "glyph-dit", "glyph-flux": "glyph-flux"}
DEFAULT_GUIDANCE_SCALE = 3.0
MAX_BATCH = 1024


class GlyphPipeline(DiffusionPipeline):
    """Class-conditional pixel-space sampling with classifier-free guidance."""

    _optional_components = ["unet", "transformer", "label_encoder"]

    def __init__(self, scheduler, unet=None, transformer=None, label_encoder=None,
                 labels: str = "", resolution: int | None = None, patch_size: int = 4):
        super().__init__()
        if (unet is None) == (transformer is None):
            raise ValueError("GlyphPipeline needs exactly one of `unet` or `transformer`")
        tokens = transformer is not None and "joint_attention_dim" in transformer.config
        if tokens != (label_encoder is not None):
            raise ValueError("a FLUX-style transformer needs a `label_encoder` (its text "
                             "encoder), and only such a transformer takes one")
        self.register_modules(unet=unet, transformer=transformer, label_encoder=label_encoder,
                              scheduler=scheduler)
        self.register_to_config(labels=labels, resolution=resolution, patch_size=patch_size)

    @classmethod
    def from_model(cls, model, scheduler, labels: str, label_encoder=None,
                   resolution: int | None = None) -> "GlyphPipeline":
        """Wrap a UNet2DModel, a DiT-style transformer or a FLUX transformer with its label
        encoder (set to eval mode) and its scheduler."""
        model.eval()
        if label_encoder is not None:
            label_encoder.eval()
        if isinstance(model, UNet2DModel):
            return cls(scheduler=scheduler, unet=model, labels=labels)
        return cls(scheduler=scheduler, transformer=model, label_encoder=label_encoder,
                   labels=labels, resolution=resolution)

    @property
    def resolution(self) -> int:
        """The side of the images this model generates."""
        return self.config.resolution or self.denoiser.config.sample_size

    @property
    def image_channels(self) -> int:
        channels = self.denoiser.config.in_channels
        return channels // self.config.patch_size ** 2 if self.label_encoder is not None else channels

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.unet if self.unet is not None else self.transformer

    @property
    def labels(self) -> str:
        return self.config.labels

    @property
    def null_class(self) -> int:
        return len(self.labels)

    def label_ids(self, class_labels: Sequence[str | int] | str | int) -> list[int]:
        """Characters or ids to ids; raises ValueError naming the valid labels."""
        if isinstance(class_labels, (str, int)):
            class_labels = [class_labels] if isinstance(class_labels, int) else list(class_labels)
        ids = []
        for label in class_labels:
            if isinstance(label, str) and len(label) == 1 and label in self.labels:
                ids.append(self.labels.index(label))
            elif isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.labels):
                ids.append(label)
            else:
                raise ValueError(f"unknown class label {label!r}; valid labels are "
                                 f"{' '.join(self.labels)} or ids 0..{len(self.labels) - 1}")
        return ids

    def _condition(self, labels: torch.Tensor, latents: torch.Tensor):
        """What conditions every step's model call: the class labels, or for a FLUX transformer
        its class tokens, pooled vector and ids (made once per call, not per step)."""
        if self.label_encoder is None:
            return labels
        return flux_condition(self.label_encoder, labels, latents, self.config.patch_size)

    def _model_output(self, x: torch.Tensor, t: torch.Tensor, condition) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.ndim else t.repeat(x.shape[0])
        if self.unet is not None:
            return self.unet(x, t, class_labels=condition).sample
        if self.label_encoder is not None:
            sigma = t.to(x.dtype) / self.scheduler.config.num_train_timesteps  # as FluxPipeline
            return flux_velocity(self.transformer, x, sigma, condition, self.config.patch_size)
        out = self.transformer(x, timestep=t, class_labels=condition).sample
        return out[:, : x.shape[1]]  # drop a learned-variance half, if the model has one

    def _check_call(self, ids: list[int], steps: int, resolution: int) -> None:
        if not 1 <= len(ids) <= MAX_BATCH:
            raise ValueError(f"batch size must be 1..{MAX_BATCH}, got {len(ids)}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {steps!r}")
        native = self.resolution
        if resolution != native:
            raise ValueError(f"this model generates {native}x{native} images; "
                             f"resolution {resolution} is not supported")

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Does the running call batch unconditional and conditional halves (guidance > 1)?"""
        return getattr(self, "_guidance_scale", DEFAULT_GUIDANCE_SCALE) > 1.0

    @torch.no_grad()
    def __call__(self, class_labels: Sequence[str | int] | str | int,
                 num_inference_steps: int = 50, guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, resolution: int | None = None,
                 output_type: str = "pil", return_dict: bool = True):
        """Generate one image per class label; output_type is "pil", "np" or "pt"."""
        ids = self.label_ids(class_labels)
        model = self.denoiser
        resolution = resolution or self.resolution
        self._check_call(ids, num_inference_steps, resolution)
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        device, dtype = self._execution_device, model.dtype
        shape = (len(ids), self.image_channels, resolution, resolution)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device, dtype) * getattr(self.scheduler, "init_noise_sigma", 1.0)
        labels = torch.tensor(ids, device=device)
        self._guidance_scale = guidance_scale  # read by do_classifier_free_guidance, as in diffusers
        use_cfg = self.do_classifier_free_guidance
        if use_cfg:
            labels = torch.cat([torch.full_like(labels, self.null_class), labels])
        condition = self._condition(labels, latents)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        step_kwargs = _accepted_kwargs(self.scheduler.step, generator=generator)
        for t in self.progress_bar(self.scheduler.timesteps):
            x = torch.cat([latents, latents]) if use_cfg else latents
            if hasattr(self.scheduler, "scale_model_input"):  # flow schedulers have none
                x = self.scheduler.scale_model_input(x, t)
            out = self._model_output(x, t, condition)
            if use_cfg:
                uncond, cond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            latents = self.scheduler.step(out, t, latents, **step_kwargs).prev_sample.to(dtype)
        images = (latents.float() / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.permute(0, 2, 3, 1).cpu().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)


def flux_condition(label_encoder, labels: torch.Tensor, like: torch.Tensor, patch_size: int) -> dict:
    """The FLUX transformer's conditioning for class `labels` and images shaped like `like`:
    the class tokens and pooled vector (label_encoder) and the text and image ids."""
    text, pooled = label_encoder(labels)
    h, w = like.shape[-2] // patch_size, like.shape[-1] // patch_size
    return {"encoder_hidden_states": text.to(like.dtype), "pooled_projections": pooled.to(like.dtype),
            "img_ids": patch_ids(h, w).to(like.device, like.dtype),
            "txt_ids": torch.zeros(text.shape[1], 3, device=like.device, dtype=like.dtype)}


def flux_velocity(transformer, x: torch.Tensor, sigma: torch.Tensor, condition: dict,
                  patch_size: int) -> torch.Tensor:
    """A FLUX transformer's velocity for images x at noise level sigma (per sample) under
    `flux_condition`'s conditioning: the one call that sampling and training share."""
    out = transformer(hidden_states=patch_tokens(x, patch_size), timestep=sigma, **condition).sample
    return unpack_patches(out, patch_size, x.shape)


def patch_tokens(x: torch.Tensor, p: int) -> torch.Tensor:
    """Images [B, C, H, W] to tokens [B, (H/p)(W/p), C p p], channel-major within a patch."""
    b, c, h, w = x.shape
    tokens = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return tokens.reshape(b, (h // p) * (w // p), c * p * p)


def patch_ids(rows: int, cols: int) -> torch.Tensor:
    """FLUX's ids of a rows x cols patch grid, row-major: (0, row, column)."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([torch.zeros_like(r), r, c], -1).reshape(-1, 3)


def pack_patches(x: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [B, C, H, W] to tokens and their FLUX ids (0, row, col)."""
    ids = patch_ids(x.shape[-2] // p, x.shape[-1] // p)
    return patch_tokens(x, p), ids.to(x.device, x.dtype)


def unpack_patches(tokens: torch.Tensor, p: int, shape: torch.Size) -> torch.Tensor:
    """The inverse of pack_patches: tokens back to images of `shape`."""
    b, c, h, w = shape
    x = tokens.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


def _accepted_kwargs(fn, **kwargs) -> dict:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def load_pipeline(name_or_path: str, device: str | torch.device | None = None,
                  torch_dtype: torch.dtype | None = None) -> DiffusionPipeline:
    """An embedded name ("glyph-unet", "glyph-dit"), a local folder, or a hub id.

    It lives in the testbed because it knows the embedded names and GlyphPipeline folders;
    anything else goes to `DiffusionPipeline.from_pretrained` unchanged."""
    if name_or_path in EMBEDDED_MODELS:
        path = os.path.join(ASSETS_DIR, EMBEDDED_MODELS[name_or_path])
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise FileNotFoundError(f"embedded model {name_or_path!r} is missing from {path}; "
                                    f"train and export it with `python -m frdiff train`")
    elif os.path.isdir(name_or_path):
        path = name_or_path
    elif "/" not in name_or_path or name_or_path.startswith((".", os.sep)):
        raise ValueError(f"unknown model {name_or_path!r}: embedded models are "
                         f"{', '.join(EMBEDDED_MODELS)}; or give a local pipeline folder or a "
                         f"hub id such as 'facebook/DiT-XL-2-256'")
    else:
        path = None
    kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    try:
        pipe = _from_pretrained(path, name_or_path, kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        where = f"folder {path}" if path else f"hub id {name_or_path!r} (is the hub reachable?)"
        raise OSError(f"could not load a pipeline from {where}: {err}") from err
    if name_or_path in EMBEDDED_MODELS and pipe.unet is not None:
        pipe.unet.to(memory_format=torch.channels_last)  # ~20% faster convolutions on CPU
    return pipe.to(device) if device is not None else pipe


def _from_pretrained(path: str | None, name: str, kwargs: dict) -> DiffusionPipeline:
    if path is None:
        return DiffusionPipeline.from_pretrained(name, **kwargs)
    index_file = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_file):
        raise OSError(f"{path} has no model_index.json (not a diffusers pipeline folder)")
    with open(index_file) as f:
        class_name = json.load(f).get("_class_name")
    if class_name == GlyphPipeline.__name__:
        from . import models  # noqa: F401  GlyphLabelEncoder, glyph-flux's component, registers
        return GlyphPipeline.from_pretrained(path, **kwargs)
    return DiffusionPipeline.from_pretrained(path, **kwargs)


def load_classifier(path: str | None = None):
    """The project's quality judge (the embedded classifier), in eval mode."""
    from .models import GlyphClassifier

    path = path or os.path.join(ASSETS_DIR, "classifier")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"no classifier at {path}; train it with "
                                f"`python -m frdiff train --model classifier`")
    return GlyphClassifier.from_pretrained(path).eval()


def load_calibration(model: str, scheduler: str, steps: int):
    """The shipped magnitude calibration of an embedded model for a sampler and step count
    (`frdiff.magnitude.Calibration`; made by `python -m analysis.calibrate`), or None."""
    from ..magnitude import Calibration

    path = os.path.join(ASSETS_DIR, "calibrations", f"{model}-{scheduler}{int(steps)}.json")
    return Calibration.from_json(path) if os.path.isfile(path) else None

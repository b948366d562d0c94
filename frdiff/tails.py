"""The pieces of diffusers' forwards that frdiff runs itself, at FR (F) steps.

Everywhere else frdiff runs diffusers' own code: a keyframe calls the stock forward, an
output unit returns its cached value into its block's own forward. Three places cannot:
  resnet_tail    ResnetBlock2D after conv1 (conv1's output is the cached value), written
                 here from `ResnetBlock2D.forward`: the same operations in the same order,
  residual_scale the output rescale of residual attention, output = (branch + input) / scale,
  wrap_sample    Transformer2DModel's return convention (output object, or a tuple).
tests/test_tail_parity.py runs each against the stock forward on random inputs, over the
configurations the stock classes take; a diffusers release that changes one fails there.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel


def resnet_tail(m: ResnetBlock2D, h: torch.Tensor, x: torch.Tensor, temb) -> torch.Tensor:
    """ResnetBlock2D after conv1, given conv1's output h: fresh time embedding, norm2,
    conv2, shortcut of the current input x and the residual sum (FRDiff section 2)."""
    if m.upsample is not None:
        x = m.upsample(x)
    elif m.downsample is not None:
        x = m.downsample(x)
    if m.time_emb_proj is not None and temb is not None:
        if not m.skip_time_act:
            temb = m.nonlinearity(temb)
        temb = m.time_emb_proj(temb)[:, :, None, None]
    if m.time_embedding_norm == "default":
        if temb is not None:
            h = h + temb
        h = m.norm2(h)
    elif m.time_embedding_norm == "scale_shift":
        scale, shift = torch.chunk(temb, 2, dim=1)
        h = m.norm2(h) * (1 + scale) + shift
    else:
        h = m.norm2(h)
    h = m.conv2(m.dropout(m.nonlinearity(h)))
    if m.conv_shortcut is not None:
        x = m.conv_shortcut(x)
    return (x + h) / m.output_scale_factor


def residual_scale(module: torch.nn.Module) -> float:
    """Output = (branch + input) / scale for residual attention; 1 for Transformer2DModel."""
    return float(getattr(module, "rescale_output_factor", 1.0)) if isinstance(module, Attention) else 1.0


def _uses_tuple_output(module: torch.nn.Module, kwargs: dict) -> bool:
    """Whether this call returns `(sample,)` rather than an output object or a tensor."""
    return isinstance(module, Transformer2DModel) and kwargs.get("return_dict", True) is False


def wrap_sample(module: torch.nn.Module, sample: torch.Tensor, kwargs: dict):
    """Package a tensor the way `module` returns it for this call."""
    if not isinstance(module, Transformer2DModel):
        return sample
    if _uses_tuple_output(module, kwargs):
        return (sample,)
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    return Transformer2DModelOutput(sample=sample)

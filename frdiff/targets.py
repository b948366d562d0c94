"""The only module that knows where diffusers' classes are in a denoiser, and what they are.

It finds, in a denoiser, the *policy blocks* (UNet down/mid/up blocks, the blocks of a
transformer's block lists: the units a policy addresses and that whole-block reuse can skip)
and, inside each, the *FR units*, each given its kind (units.py) from its class:
  resnet    ResnetBlock2D,
  residual  Transformer2DModel in conditional UNets, residual self-attention in UNet2DModel,
  output    self-attention (attn1) of adaLN DiT / PixArt blocks; the attention (joint over
            text + image tokens) and MLP outputs of flow-matching transformer blocks (FLUX,
            SD3, Qwen-Image, Wan, ...), both streams; in single-stream blocks (FLUX,
            HunyuanVideo, Chroma) the fused output projection,
  feeder    what only feeds a cached unit of its block (single-stream blocks: attn and
            proj_mlp feed proj_out).
Transformer families are two tables: `BLOCKS` (per block class: the order of the streams it
returns, its FR units) and `STACKS` (per denoiser class: its block lists in call order). A
denoiser not in `STACKS` gets the general rule: its child `ModuleList`s whose blocks are all
in `BLOCKS`, in registration order. Adding a family is one entry (and one tiny-config test).
Model outputs as nested values are pytree.py's, the few pieces of diffusers' forwards that
frdiff runs itself tails.py's; the solver family of a scheduler is told in schedulers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel

from .pytree import main_tensor
from .units import FEEDER, OUTPUT, RESIDUAL, RESNET, FRUnit

ADALN_NORMS = ("ada_norm_zero", "ada_norm_single")

_ENC_HID = ("encoder_hidden_states", "hidden_states")  # a dual-stream block returns (text, image)
_HID_ENC = ("hidden_states", "encoder_hidden_states")  # HunyuanVideo, CogVideoX: the other order


@dataclass(frozen=True)
class BlockSpec:
    """What frdiff knows of a transformer block class: `returns`, the input arguments its
    tuple output gives back, in order (its residual streams; a tensor output is the first
    argument's stream alone), and `units`, its children cached at F, each before its gate."""

    returns: tuple[str, ...]
    units: tuple[str, ...]
    feeders: tuple[str, ...] = ()  # children consumed only by `units`: skipped at F


BLOCKS: dict[str, BlockSpec] = {  # block class name -> spec (diffusers 0.35-0.42)
    "FluxTransformerBlock": BlockSpec(_ENC_HID, ("attn", "ff", "ff_context")),
    "FluxSingleTransformerBlock": BlockSpec(_ENC_HID, ("proj_out",), ("attn", "proj_mlp")),
    "Flux2TransformerBlock": BlockSpec(_ENC_HID, ("attn", "ff", "ff_context")),
    "Flux2SingleTransformerBlock": BlockSpec(_ENC_HID, ("attn",)),
    "ChromaTransformerBlock": BlockSpec(_ENC_HID, ("attn", "ff", "ff_context")),
    "ChromaSingleTransformerBlock": BlockSpec(("hidden_states",), ("proj_out",), ("attn", "proj_mlp")),
    "JointTransformerBlock": BlockSpec(_ENC_HID, ("attn", "attn2", "ff", "ff_context")),  # SD3
    "SD3SingleTransformerBlock": BlockSpec(("hidden_states",), ("attn", "ff")),
    "QwenImageTransformerBlock": BlockSpec(_ENC_HID, ("attn", "img_mlp", "txt_mlp")),
    "WanTransformerBlock": BlockSpec(("hidden_states",), ("attn1", "attn2", "ffn")),
    "HunyuanVideoTransformerBlock": BlockSpec(_HID_ENC, ("attn", "ff", "ff_context")),
    "HunyuanVideoSingleTransformerBlock": BlockSpec(_HID_ENC, ("proj_out",), ("attn", "proj_mlp")),
    "CogVideoXBlock": BlockSpec(_HID_ENC, ("attn1", "ff")),
    "LTXVideoTransformerBlock": BlockSpec(("hidden_states",), ("attn1", "attn2", "ff")),
    "SanaTransformerBlock": BlockSpec(("hidden_states",), ("attn1", "attn2", "ff")),
    "Lumina2TransformerBlock": BlockSpec(("hidden_states",), ("attn", "feed_forward")),
    "ZImageTransformerBlock": BlockSpec(("x",), ("attention", "feed_forward")),
}

STACKS: dict[str, tuple[str, ...]] = {  # denoiser class name -> its block lists, in call order
    "FluxTransformer2DModel": ("transformer_blocks", "single_transformer_blocks"),
    "Flux2Transformer2DModel": ("transformer_blocks", "single_transformer_blocks"),
    "ChromaTransformer2DModel": ("transformer_blocks", "single_transformer_blocks"),
    "HunyuanVideoTransformer3DModel": ("transformer_blocks", "single_transformer_blocks"),
    "SD3Transformer2DModel": ("transformer_blocks",),
    "QwenImageTransformer2DModel": ("transformer_blocks",),
    "WanTransformer3DModel": ("blocks",),
    "Lumina2Transformer2DModel": ("layers",),  # its refiners run before, on one stream each
    "ZImageTransformer2DModel": ("layers",),
}


@dataclass
class PolicyBlock:
    name: str
    module: torch.nn.Module
    depth: int  # 0 = outermost UNet level / first and last transformer block
    units: list[FRUnit] = field(default_factory=list)
    residual: bool = False  # output = input + residual, same shape (mode R applies)
    spec: BlockSpec | None = None  # a table block: its streams (else one, the first argument)


DENOISER_ATTRS = ("unet", "transformer", "transformer_2")  # Wan 2.2: two experts, one run


def denoisers_of(pipe) -> list[torch.nn.Module]:
    """Every network a pipeline may call at a step (Wan 2.2: `transformer`, `transformer_2`)."""
    models = [getattr(pipe, attr, None) for attr in DENOISER_ATTRS]
    models = [m for m in models if isinstance(m, torch.nn.Module)]
    if not models:
        raise ValueError(f"unsupported pipeline {type(pipe).__name__}: it has no `unet` or "
                         f"`transformer` module to accelerate")
    return list({id(m): m for m in models}.values())


def denoiser_of(pipe) -> torch.nn.Module:
    """The network a pipeline calls each step (its first: `unet` or `transformer`)."""
    return denoisers_of(pipe)[0]


def find_blocks(model: torch.nn.Module) -> list[PolicyBlock]:
    """Policy blocks of a UNet (down, mid, up) or a transformer (its blocks), in call order."""
    blocks: list[PolicyBlock] = []
    if hasattr(model, "down_blocks") and hasattr(model, "up_blocks"):
        levels = len(model.down_blocks)
        blocks += [PolicyBlock(f"down_blocks.{i}", m, i) for i, m in enumerate(model.down_blocks)]
        if getattr(model, "mid_block", None) is not None:  # a residual map: same shape in and out
            blocks.append(PolicyBlock("mid_block", model.mid_block, levels, residual=True))
        blocks += [PolicyBlock(f"up_blocks.{i}", m, levels - 1 - i)
                   for i, m in enumerate(model.up_blocks)]
    elif _stacks(model):
        blocks = _stack_blocks(model)
    elif hasattr(model, "transformer_blocks"):
        n = len(model.transformer_blocks)  # depth: distance from the nearer end of the stack
        blocks = [PolicyBlock(f"transformer_blocks.{i}", m, min(i, n - 1 - i),
                              residual=isinstance(m, BasicTransformerBlock))
                  for i, m in enumerate(model.transformer_blocks)]
    for index, block in enumerate(blocks):
        block.units = list(_find_units(block.module, block.name, index))
    return blocks


def _stacks(model: torch.nn.Module) -> list[str]:
    """The block lists of a transformer: from `STACKS`, else the general rule."""
    named = STACKS.get(type(model).__name__)
    if named is not None:
        return [n for n in named if isinstance(getattr(model, n, None), torch.nn.ModuleList)]
    return [name for name, child in model.named_children()
            if isinstance(child, torch.nn.ModuleList) and len(child)
            and all(type(b).__name__ in BLOCKS for b in child)]


def _stack_blocks(model: torch.nn.Module) -> list[PolicyBlock]:
    """The blocks of every block list, in call order; depth counts from the nearer end."""
    listed = [(f"{name}.{i}", b) for name in _stacks(model) for i, b in enumerate(getattr(model, name))]
    n = len(listed)
    return [PolicyBlock(name, b, min(i, n - 1 - i), residual=True, spec=BLOCKS[type(b).__name__])
            for i, (name, b) in enumerate(listed)]


def supported_families() -> str:
    """One line naming what frdiff can reuse (for errors)."""
    return ("diffusers UNets (ResnetBlock2D / attention blocks), adaLN DiT and PixArt transformers, "
            "and transformers built from these blocks: " + ", ".join(sorted(BLOCKS)))


def describe(pipe_or_model) -> str:
    """A readable summary of what frdiff can reuse in a pipeline's denoisers (or a model)."""
    models = [pipe_or_model] if isinstance(pipe_or_model, torch.nn.Module) else denoisers_of(pipe_or_model)
    lines = []
    for model in models:
        blocks = find_blocks(model)
        width = max([len(b.name) for b in blocks] + [20]) + 2
        lines.append(f"{type(model).__name__}: policy blocks and their FR units")
        for b in blocks:
            kinds = ", ".join(f"{u.name[len(b.name) + 1:]} ({u.kind.name})" for u in b.units) or "none"
            streams = "" if b.spec is None or len(b.spec.returns) < 2 else "  [2 streams]"
            lines.append(f"  {b.name:<{width}} {type(b.module).__name__:<28} {kinds}{streams}")
    return "\n".join(lines)


def block_depths(pipe_or_model) -> dict[str, int]:
    """Policy block names in call order, with their depth (0 = outermost UNet level)."""
    model = pipe_or_model if isinstance(pipe_or_model, torch.nn.Module) else denoiser_of(pipe_or_model)
    return {b.name: b.depth for b in find_blocks(model)}


def _find_units(root: torch.nn.Module, prefix: str, block: int):
    """FR units under `root`, not descending into a unit (its insides are its own)."""
    if isinstance(root, BasicTransformerBlock) and root.norm_type in ADALN_NORMS:
        yield FRUnit(f"{prefix}.attn1", root.attn1, OUTPUT, block)
        return
    spec = BLOCKS.get(type(root).__name__)
    if spec is not None:  # a table block: its attention / MLP outputs, before their gates
        for names, kind in ((spec.feeders, FEEDER), (spec.units, OUTPUT)):
            for name in names:
                child = getattr(root, name, None)
                if isinstance(child, torch.nn.Module):
                    yield FRUnit(f"{prefix}.{name}", child, kind, block)
        return
    for name, child in root.named_children():
        path = f"{prefix}.{name}"
        if isinstance(child, ResnetBlock2D):
            yield FRUnit(path, child, RESNET, block)
        elif isinstance(child, Transformer2DModel) and child.is_input_continuous:
            yield FRUnit(path, child, RESIDUAL, block)
        elif isinstance(child, Attention) and child.residual_connection:
            yield FRUnit(path, child, RESIDUAL, block)
        else:
            yield from _find_units(child, path, block)


def output_streams(block: PolicyBlock, output) -> dict[str, torch.Tensor]:
    """A block output's tensors by stream: "hidden_states" (image / video tokens, or the one
    stream) and, for dual-stream blocks, "encoder_hidden_states" (text tokens)."""
    if block.spec is None or isinstance(output, torch.Tensor) or len(block.spec.returns) < 2:
        return {"hidden_states": main_tensor(output)}
    named = dict(zip(block.spec.returns, output))
    return {name: t for name, t in named.items() if isinstance(t, torch.Tensor)}

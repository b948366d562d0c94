"""Counted compute: multiply-accumulates (MACs) of convolutions, linear layers and the
attention products, recorded by forward hooks during one real model call."""

from __future__ import annotations

from collections import defaultdict

import torch
from diffusers.models.attention_processor import Attention


def _conv_macs(m: torch.nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    return out.numel() * (m.in_channels // m.groups) * kh * kw


def _linear_macs(m: torch.nn.Linear, out: torch.Tensor) -> int:
    return out.numel() * m.in_features


def _attention_core_macs(m: Attention, args: tuple, kwargs: dict) -> int:
    """QK^T and attention-times-V: 2 * batch * queries * keys * inner_dim."""
    x = args[0] if args else kwargs["hidden_states"]
    context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
    queries = x.shape[2] * x.shape[3] if x.ndim == 4 else x.shape[1]
    keys = queries if context is None else context.shape[1]
    return 2 * x.shape[0] * queries * keys * m.inner_dim


class MacCounter:
    """Records MACs per module (by identity) while installed; `with MacCounter(model) as c:`."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.macs: dict[int, int] = defaultdict(int)
        self._handles = []

    def __enter__(self) -> "MacCounter":
        try:
            for m in self.model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    self._handles.append(m.register_forward_hook(self._record(_conv_macs)))
                elif isinstance(m, torch.nn.Linear):
                    self._handles.append(m.register_forward_hook(self._record(_linear_macs)))
                elif isinstance(m, Attention):
                    self._handles.append(m.register_forward_pre_hook(self._attention, with_kwargs=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _record(self, fn):
        def hook(module, inputs, output):
            self.macs[id(module)] += fn(module, output)
        return hook

    def _attention(self, module, args, kwargs):
        self.macs[id(module)] += _attention_core_macs(module, args, kwargs)

    def total(self, module: torch.nn.Module | None = None) -> int:
        """MACs recorded in `module` and everything under it (default: the whole model)."""
        root = module if module is not None else self.model
        return sum(self.macs.get(id(m), 0) for m in root.modules())

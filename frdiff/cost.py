"""Counted compute: multiply-accumulates (MACs) of convolutions, linear layers and the
attention products, recorded by forward hooks during one real model call."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention

from .targets import expensive_part


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
    """Records MACs per module (by identity) while installed; `with MacCounter(model) as c:`.

    `total(module)` is what ran *inside* that module's forward: a submodule that something
    else calls from outside (DiT's output layer reuses block 0's conditioning embedding) is
    not charged to the module that owns it. An attention product is charged only when something
    ran inside the attention call: a forward replaced by a cache (DeepCache wraps UNet2DModel's
    attentions) returns without running it, and is not charged."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.macs: dict[int, int] = defaultdict(int)
        self.inside: dict[int, int] = defaultdict(int)
        self._stack: list[int] = []
        self._calls = 0  # modules entered so far
        self._pending: dict[int, list[tuple[int, int]]] = defaultdict(list)  # attention -> (MACs, calls)
        self._handles = []

    def __enter__(self) -> "MacCounter":
        try:
            for m in self.model.modules():  # the call stack first, so MAC hooks see it
                self._handles.append(m.register_forward_pre_hook(self._push))
                self._handles.append(m.register_forward_hook(self._pop, always_call=True))
            for m in self.model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    self._handles.append(m.register_forward_hook(self._record(_conv_macs)))
                elif isinstance(m, torch.nn.Linear):
                    self._handles.append(m.register_forward_hook(self._record(_linear_macs)))
                elif isinstance(m, Attention):
                    self._handles.append(m.register_forward_pre_hook(self._attention, with_kwargs=True))
                    self._handles.append(m.register_forward_hook(self._attention_done, always_call=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _push(self, module, args):
        self._stack.append(id(module))
        self._calls += 1

    def _pop(self, module, args, output):
        if self._stack and self._stack[-1] == id(module):
            self._stack.pop()

    def _add(self, module, macs: int) -> None:
        self.macs[id(module)] += macs
        for owner in set(self._stack) | {id(module)}:
            self.inside[owner] += macs

    def _record(self, fn):
        def hook(module, inputs, output):
            self._add(module, fn(module, output))
        return hook

    def _attention(self, module, args, kwargs):
        self._pending[id(module)].append((_attention_core_macs(module, args, kwargs), self._calls))

    def _attention_done(self, module, args, output):
        pending = self._pending[id(module)]
        if pending:
            macs, calls = pending.pop()
            if self._calls > calls:  # its projections ran: not a cached output
                self._add(module, macs)

    def total(self, module: torch.nn.Module | None = None) -> int:
        """MACs executed inside `module`'s forward calls (default: everything recorded)."""
        if module is None:
            return sum(self.macs.values())
        return self.inside.get(id(module), 0)


@dataclass
class CallCosts:
    """The one cost model of frdiff, for the runtime's accounting and the tuner's budget.

    MACs of one full model call (`total`), of each policy block (`block`), what feature
    reuse saves in each block (`fr_saving`: its FR units' expensive parts) and, for adaptive
    policies, the network up to the end of the probe block (`probe`). A call's cost under
    keyframe gates k and skip gates z (one per block; 1/0 at run time, soft while tuning):

        fixed + sum_b [ k_b block_b + (1 - k_b) (1 - z_b) (block_b - fr_saving_b) ]

    (a keyframe block computes, a skipped one, S or R, costs nothing (R's one addition is not
    counted), an FR block its cheap part);
    a step where score mixing has lam = 0 and that is not a keyframe makes no call: 0.
    """

    total: float
    block: list[float]
    fr_saving: list[float]
    probe: float = 0.0

    @classmethod
    def count(cls, counter: MacCounter, blocks, probe: float = 0.0) -> "CallCosts":
        """From a MacCounter that saw one full call of the model these policy blocks are in."""
        saving = [sum(counter.total(expensive_part(u)) for u in b.units) for b in blocks]
        return cls(counter.total(), [counter.total(b.module) for b in blocks], saving, probe)

    def call(self, k: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MACs of a call that makes it, for gates k, z of shape (..., blocks)."""
        block = torch.tensor(self.block, dtype=k.dtype)
        saving = torch.tensor(self.fr_saving, dtype=k.dtype)
        fixed = self.total - float(sum(self.block))
        return fixed + (k * block + (1 - k) * (1 - z) * (block - saving)).sum(-1)

    def per_step(self, k: torch.Tensor, z: torch.Tensor, lam: list[float]) -> torch.Tensor:
        """MACs of every step of a run for gates k, z of shape (steps, blocks)."""
        no_call = torch.tensor([l == 0.0 for l in lam], dtype=k.dtype)
        return no_call * k.prod(-1) * self.total + (1 - no_call) * self.call(k, z)

    def of_modes(self, modes: str) -> int:
        """MACs of a call whose blocks run in these modes (K, F, S), as counted at run time."""
        k, z = mode_gates([modes])
        return round(float(self.call(k[0], z[0])))

    def speedup(self, policy, mixing) -> float:
        """Counted speedup of a KeyframePolicy under score mixing (one call per step, batched
        CFG where the policy's uncond has R steps)."""
        k, z = policy_gates(policy, len(self.block))
        lam = [policy.reuse_weight(s, mixing) for s in range(policy.num_steps)]
        share = torch.tensor([0.5 if policy.uncond_reused(s) else 1.0 for s in range(policy.num_steps)],
                             dtype=k.dtype)  # uncond R: a call on the conditional half (CFG)
        return policy.num_steps * self.total / float((share * self.per_step(k, z, lam)).sum())


def mode_gates(rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of mode letters to keyframe gates k (K) and whole-block gates z (S or R), float64."""
    k = torch.tensor([[m == "K" for m in row] for row in rows], dtype=torch.float64)
    z = torch.tensor([[m in ("S", "R") for m in row] for row in rows], dtype=torch.float64)
    return k, z


def policy_gates(policy, num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A KeyframePolicy's gates (steps, blocks): k = 1 at K, z = 1 at S and R (N: reuse)."""
    return mode_gates([[policy.mode(s, b) for b in range(num_blocks)]
                       for s in range(policy.num_steps)])

"""Counted compute: multiply-accumulates (MACs) of convolutions (1D to 3D: video patch
embeddings), linear layers and the attention products, recorded during one real model call:
layers by forward hooks, attention products where they run, at
`torch.nn.functional.scaled_dot_product_attention` (every diffusers attention class calls it:
`Attention`, `FluxAttention`, `WanAttention`, joint attention over text + image tokens...)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import math

import torch
from torch.overrides import TorchFunctionMode

from .modes import Mode

_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_SDPA = torch.nn.functional.scaled_dot_product_attention


def _conv_macs(m: torch.nn.Module, out: torch.Tensor) -> int:
    return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)


def _linear_macs(m: torch.nn.Linear, out: torch.Tensor) -> int:
    return out.numel() * m.in_features


def sdpa_macs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> int:
    """QK^T and attention-times-V of one scaled_dot_product_attention call, (..., L, D)
    layout: batch * heads * queries * keys * (D_qk + D_v)."""
    *lead, queries, dim = query.shape
    return math.prod(lead) * queries * key.shape[-2] * (dim + value.shape[-1])


class _AttentionProducts(TorchFunctionMode):
    """Charges every scaled_dot_product_attention call to the module running it (a torch
    function mode: it sees this thread's calls only, not another request's)."""

    def __init__(self, counter: "MacCounter"):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA:
            q = args[0] if args else kwargs["query"]
            k = args[1] if len(args) > 1 else kwargs["key"]
            v = args[2] if len(args) > 2 else kwargs["value"]
            self.counter.add_attention(sdpa_macs(q, k, v))
        return func(*args, **kwargs)


class MacCounter:
    """Records MACs per module (by identity) while installed; `with MacCounter(model) as c:`.

    `total(module)` is what ran *inside* that module's forward: a submodule that something
    else calls from outside (DiT's output layer reuses block 0's conditioning embedding) is
    not charged to the module that owns it. An attention product is charged where it runs, to
    the innermost module running: a forward replaced by a cache (DeepCache wraps UNet2DModel's
    attentions) returns without running it, and is not charged."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.macs: dict[int, int] = defaultdict(int)
        self.inside: dict[int, int] = defaultdict(int)
        self._stack: list[int] = []
        self._handles = []
        self._mode: _AttentionProducts | None = None

    def __enter__(self) -> "MacCounter":
        try:
            for m in self.model.modules():  # the call stack first, so MAC hooks see it
                self._handles.append(m.register_forward_pre_hook(self._push))
                self._handles.append(m.register_forward_hook(self._pop, always_call=True))
            for m in self.model.modules():
                if isinstance(m, _CONVS):
                    self._handles.append(m.register_forward_hook(self._record(_conv_macs)))
                elif isinstance(m, torch.nn.Linear):
                    self._handles.append(m.register_forward_hook(self._record(_linear_macs)))
            self._mode = _AttentionProducts(self)
            self._mode.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _push(self, module, args):
        self._stack.append(id(module))

    def _pop(self, module, args, output):
        if self._stack and self._stack[-1] == id(module):
            self._stack.pop()

    def _add(self, module, macs: int) -> None:
        self._add_id(id(module), macs)

    def _add_id(self, key: int, macs: int) -> None:
        self.macs[key] += macs
        for owner in set(self._stack) | {key}:
            self.inside[owner] += macs

    def add_attention(self, macs: int) -> None:
        """An attention product ran: charge it to the innermost module running."""
        self._add_id(self._stack[-1] if self._stack else id(self.model), macs)

    def _record(self, fn):
        def hook(module, inputs, output):
            self._add(module, fn(module, output))
        return hook

    def total(self, module: torch.nn.Module | None = None) -> int:
        """MACs executed inside `module`'s forward calls (default: everything recorded)."""
        if module is None:
            return sum(self.macs.values())
        return self.inside.get(id(module), 0)


@dataclass
class CallCosts:
    """The one cost model of frdiff, for the runtime's accounting and the tuner's budget.

    MACs of one full model call (`total`), of each policy block (`block`), what feature
    reuse saves in each block (`fr_saving`: its FR units' expensive parts). A call's cost under
    keyframe gates k and skip gates z (one per block; 1/0 at run time, soft while tuning):

        fixed + sum_b [ k_b block_b + (1 - k_b) (1 - z_b) (block_b - fr_saving_b) ]

    (a keyframe block computes, a skipped one, S or R, costs nothing (R's one addition is not
    counted), an FR block its cheap part; a measured table (frdiff.profile) adds
    (1 - k_b) z_b skip_b, and `step` to every step);
    a step where score mixing has lam = 0 and that is not a keyframe makes no call: 0 (an
    adaptive policy's still runs its probe: `probe_only`).
    """

    total: float
    block: list[float]
    fr_saving: list[float]
    # measured tables only (frdiff.profile: seconds, not MACs): what a block in S or R mode
    # still costs (its cache lookup; counted: nothing), and each step's work outside the
    # model (the scheduler's step, the pipeline's loop), which a step that makes no call pays too
    skip: list[float] | None = None
    step: float = 0.0

    @property
    def full_step(self) -> float:
        """One step of full compute: the call and the step's work around it."""
        return self.total + self.step

    @property
    def probe_only(self) -> float:
        """An adaptive call at lam = 0: everything but the blocks after the probe (the first
        policy block), which return zeros (reuse.Unneeded)."""
        return self.total - sum(self.block[1:])

    @classmethod
    def count(cls, counter: MacCounter, blocks) -> "CallCosts":
        """From a MacCounter that saw one full call of the model these policy blocks are in."""
        saving = [sum(counter.total(u.kind.expensive_part(u.module)) for u in b.units) for b in blocks]
        return cls(counter.total(), [counter.total(b.module) for b in blocks], saving)

    def call(self, k: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MACs of a call that makes it, for gates k, z of shape (..., blocks)."""
        block = torch.tensor(self.block, dtype=k.dtype)
        saving = torch.tensor(self.fr_saving, dtype=k.dtype)
        fixed = self.total - float(sum(self.block))
        cost = k * block + (1 - k) * (1 - z) * (block - saving)
        if self.skip is not None:
            cost = cost + (1 - k) * z * torch.tensor(self.skip, dtype=k.dtype)
        return fixed + cost.sum(-1)

    def per_step(self, k: torch.Tensor, z: torch.Tensor, lam: list[float]) -> torch.Tensor:
        """MACs of every step of a run for gates k, z of shape (steps, blocks)."""
        no_call = torch.tensor([l == 0.0 for l in lam], dtype=k.dtype)
        return no_call * k.prod(-1) * self.total + (1 - no_call) * self.call(k, z) + self.step

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
        return policy.num_steps * self.full_step / float((share * self.per_step(k, z, lam)).sum())


def mode_gates(rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of mode letters to keyframe gates k (K) and whole-block gates z (`Mode.whole_block`:
    S or R), float64; F and N are neither."""
    k = torch.tensor([[m == Mode.KEYFRAME for m in row] for row in rows], dtype=torch.float64)
    z = torch.tensor([[m in _WHOLE_BLOCK for m in row] for row in rows], dtype=torch.float64)
    return k, z


_WHOLE_BLOCK = frozenset(m for m in Mode if m.whole_block)


def policy_gates(policy, num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A KeyframePolicy's gates (steps, blocks): k = 1 at K, z = 1 at S and R (N: reuse)."""
    return mode_gates([[policy.mode(s, b) for b in range(num_blocks)]
                       for s in range(policy.num_steps)])

"""Observe, change nothing: how much each block's output changes from one step to the next.

    sim = frdiff.analysis.temporal_similarity(pipe, num_inference_steps=50, class_labels=["A", "7"])
    sim.change      # (steps - 1, blocks): mean|h_t - h_prev| / mean|h_prev| per policy block
    sim.cosine      # (steps - 1, blocks): cosine similarity of consecutive outputs
    sim.streams     # dual-stream transformers (FLUX, SD3, Qwen-Image...): the change per
                    # stream, {"hidden_states": image tokens, "encoder_hidden_states": text}

This is the picture behind feature reuse: where a block's output barely changes between
steps, reusing it costs little. The step index comes from the scheduler-driven step clock,
as in `accelerate`; only the first model call of each step is recorded (batched CFG is one
call). Forward hooks are removed when the call returns, whatever happens.

With `pairwise=True` every block's output at every step is kept and compared with every
other step's (`sim.pairwise`, blocks x steps x steps): how far a cache taken at step i is
from what the block would compute at step j, for any keyframe placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adaptive import relative_change
from ..clock import StepClock, drive_clock
from ..pytree import main_tensor
from ..targets import denoiser_of, find_blocks, output_streams


@dataclass
class TemporalSimilarity:
    blocks: list[str]
    depths: list[int]
    change: torch.Tensor  # (steps - 1, blocks)
    cosine: torch.Tensor  # (steps - 1, blocks)
    pairwise: torch.Tensor | None = None  # (blocks, steps, steps), with pairwise=True
    magnitude: torch.Tensor | None = None  # (steps, blocks): mean|h|, with pairwise=True
    streams: dict[str, torch.Tensor] | None = None  # stream -> (steps - 1, blocks), NaN: none

    def as_dict(self) -> dict:
        data = {"blocks": self.blocks, "depths": self.depths, "change": self.change.tolist(),
                "cosine": self.cosine.tolist()}
        if self.streams is not None:
            data["streams"] = {name: t.tolist() for name, t in self.streams.items()}
        if self.pairwise is not None:
            data |= {"pairwise": self.pairwise.tolist(), "magnitude": self.magnitude.tolist()}
        return data


def symmetric_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """mean|a - b| / (0.5 (mean|a| + mean|b|)): relative L1 distance, symmetric in a and b."""
    scale = 0.5 * (float(a.abs().mean()) + float(b.abs().mean()))
    return float((a - b).abs().mean()) / scale if scale > 0 else 0.0  # scale 0: both are 0


def pairwise_change(outputs: list[torch.Tensor | None]) -> torch.Tensor:
    """(steps, steps) `symmetric_change` between a block's outputs at any two steps; zero on
    the diagonal, NaN where a step is missing or the shapes differ."""
    n = len(outputs)
    table = torch.full((n, n), float("nan"))
    for i, a in enumerate(outputs):
        if a is None:
            continue
        table[i, i] = 0.0
        for j in range(i):
            b = outputs[j]
            if b is not None and b.shape == a.shape:
                table[i, j] = table[j, i] = symmetric_change(a, b)
    return table


def temporal_similarity(pipe, num_inference_steps: int = 50, pairwise: bool = False,
                        **call_kwargs) -> TemporalSimilarity:
    """Run the pipeline once at full compute and measure every policy block's step-to-step
    change. `call_kwargs` go to the pipeline (labels or prompt embeddings, generator...).

    pairwise=True also keeps every block's output at every step and returns
    `pairwise[b, i, j] = mean|h_i - h_j| / (0.5 (mean|h_i| + mean|h_j|))` (symmetric, zero
    diagonal, at most 2) and `magnitude[s, b] = mean|h_s|`; with them, exactly,
    `pairwise[b, s, s - 1] = change[s - 1, b] * 2 m_{s-1} / (m_s + m_{s-1})`, m = magnitude[:, b]."""
    model = denoiser_of(pipe)
    blocks = find_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no UNet or transformer blocks to observe")
    clock = StepClock()
    previous: dict[int, torch.Tensor] = {}
    change = torch.full((num_inference_steps - 1, len(blocks)), float("nan"))
    cosine = torch.full_like(change, float("nan"))
    dual = any(b.spec is not None and len(b.spec.returns) > 1 for b in blocks)
    streams = {n: torch.full_like(change, float("nan"))
               for n in ("hidden_states", "encoder_hidden_states")} if dual else None
    previous_streams: dict[tuple[int, str], torch.Tensor] = {}
    kept: list[dict[int, torch.Tensor]] = [{} for _ in blocks]  # pairwise: block -> step -> h

    def model_pre_hook(module, args, kwargs):
        clock.next_call()

    def block_hook(index):
        def hook(module, args, output):
            if clock.calls_in_step != 1:  # record the first call of each step only
                return
            named = output_streams(blocks[index], output)
            h = (named.get("hidden_states") if dual else main_tensor(output)).detach().float()
            s = clock.step
            for name, t in named.items() if dual else ():
                t, before = t.detach().float(), previous_streams.get((index, name))
                if before is not None and s >= 1 and before.shape == t.shape:
                    streams[name][s - 1, index] = relative_change(t, before)
                previous_streams[(index, name)] = t
            prev = previous.get(index)
            if prev is not None and s >= 1 and prev.shape == h.shape:
                change[s - 1, index] = relative_change(h, prev)
                cosine[s - 1, index] = torch.nn.functional.cosine_similarity(
                    h.flatten(1), prev.flatten(1), dim=1).mean()
            previous[index] = h
            if pairwise:
                kept[index][s] = h
        return hook

    handles = [model.register_forward_pre_hook(model_pre_hook, with_kwargs=True)]
    handles += [b.module.register_forward_hook(block_hook(i)) for i, b in enumerate(blocks)]
    restore = drive_clock(pipe.scheduler, clock.start, lambda out: (clock.advance(), out)[1])
    try:
        with torch.no_grad():
            pipe(num_inference_steps=num_inference_steps, **call_kwargs)
    finally:
        restore()
        for h in handles:
            h.remove()
    if clock.num_steps != num_inference_steps:
        raise RuntimeError(f"the pipeline ran {clock.num_steps} steps, not {num_inference_steps}")
    sim = TemporalSimilarity([b.name for b in blocks], [b.depth for b in blocks], change, cosine,
                             streams=streams)
    if pairwise:
        sim.pairwise, sim.magnitude = _pairwise_tables(kept, num_inference_steps)
    return sim


def _pairwise_tables(kept: list[dict[int, torch.Tensor]], steps: int):
    """(blocks, steps, steps) distances and (steps, blocks) mean magnitudes of kept outputs."""
    per_block = [[outputs.get(s) for s in range(steps)] for outputs in kept]
    table = torch.stack([pairwise_change(outputs) for outputs in per_block])
    magnitude = torch.tensor([[float("nan") if h is None else float(h.abs().mean()) for h in outputs]
                              for outputs in per_block]).T
    return table, magnitude

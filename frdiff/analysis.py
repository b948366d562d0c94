"""Observe, change nothing: how much each block's output changes from one step to the next.

    sim = frdiff.analysis.temporal_similarity(pipe, num_inference_steps=50, class_labels=["A", "7"])
    sim.change      # (steps - 1, blocks): mean|h_t - h_prev| / mean|h_prev| per policy block
    sim.cosine      # (steps - 1, blocks): cosine similarity of consecutive outputs

This is the picture behind feature reuse: where a block's output barely changes between
steps, reusing it costs little. The step index comes from the scheduler-driven step clock,
as in `accelerate`; only the first model call of each step is recorded (batched CFG is one
call). Forward hooks are removed when the call returns, whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .adaptive import relative_change
from .clock import StepClock, drive_clock
from .targets import denoiser_of, find_blocks


@dataclass
class TemporalSimilarity:
    blocks: list[str]
    depths: list[int]
    change: torch.Tensor  # (steps - 1, blocks)
    cosine: torch.Tensor  # (steps - 1, blocks)

    def as_dict(self) -> dict:
        return {"blocks": self.blocks, "depths": self.depths, "change": self.change.tolist(),
                "cosine": self.cosine.tolist()}


def _main_tensor(output) -> torch.Tensor:
    """A block's hidden states (UNet down blocks also return their skip features)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return getattr(output, "sample", output)


def temporal_similarity(pipe, num_inference_steps: int = 50, **call_kwargs) -> TemporalSimilarity:
    """Run the pipeline once at full compute and measure every policy block's step-to-step
    change. `call_kwargs` go to the pipeline (labels or prompt embeddings, generator...)."""
    model = denoiser_of(pipe)
    blocks = find_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no UNet or transformer blocks to observe")
    clock = StepClock()
    previous: dict[int, torch.Tensor] = {}
    change = torch.full((num_inference_steps - 1, len(blocks)), float("nan"))
    cosine = torch.full_like(change, float("nan"))

    def model_pre_hook(module, args, kwargs):
        clock.next_call()

    def block_hook(index):
        def hook(module, args, output):
            if clock.calls_in_step != 1:  # record the first call of each step only
                return
            h = _main_tensor(output).detach().float()
            s = clock.step
            prev = previous.get(index)
            if prev is not None and s >= 1 and prev.shape == h.shape:
                change[s - 1, index] = relative_change(h, prev)
                cosine[s - 1, index] = torch.nn.functional.cosine_similarity(
                    h.flatten(1), prev.flatten(1), dim=1).mean()
            previous[index] = h
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
    return TemporalSimilarity([b.name for b in blocks], [b.depth for b in blocks], change, cosine)

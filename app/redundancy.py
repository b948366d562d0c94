"""The temporal-redundancy view: how much every block's output changes from step to step."""

from __future__ import annotations

import torch

from frdiff.analysis import temporal_similarity
from frdiff.pipelines import set_scheduler

from .compare import glyphs
from .plots import similarity_figure
from .presets import SCHEDULERS, pipeline


def redundancy(model: str, labels: str, scheduler: str, steps: int, seed: int):
    """(heatmap, Markdown summary) of one full-compute run's per-block step-to-step change."""
    pipe = set_scheduler(pipeline(model), SCHEDULERS[scheduler])
    chars = glyphs(pipe, labels)
    sim = temporal_similarity(pipe, int(steps), class_labels=chars, output_type="pt",
                              generator=torch.Generator().manual_seed(int(seed)))
    change = sim.change.nan_to_num()
    fig = similarity_figure(sim.blocks, change, f"{model}, {scheduler} {int(steps)} steps: relative "
                                                f"change of each block's output vs the previous step")
    mean = change.mean(0)
    order = mean.argsort(descending=True).tolist()
    busiest = change.mean(1).argmax().item() + 1
    lines = [f"Median change over all blocks and steps: **{change.median().item():.1%}** of a "
             "block's output: consecutive steps are close, and that redundancy is what feature "
             "reuse spends.",
             f"Most active block: **{sim.blocks[order[0]]}** (mean {mean[order[0]]:.1%} per step); "
             f"most stable: **{sim.blocks[order[-1]]}** ({mean[order[-1]]:.1%}).",
             f"The step with the largest average change is step **{busiest}**."]
    return fig, "\n\n".join(lines)

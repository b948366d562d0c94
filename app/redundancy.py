"""The temporal-redundancy view: how much every block's output changes from step to step."""

from __future__ import annotations

import torch

from frdiff.analysis import temporal_similarity

from . import inputs
from .models import POOL
from .plots import pairwise_figure, similarity_figure


def measure(model, glyphs, scheduler, steps, seed) -> dict:
    """One full-compute run's per-block change (consecutive and step x step), as plain data."""
    model = inputs.model_name(model)
    scheduler = inputs.sampler(scheduler, model)
    steps, seed = inputs.steps_of(steps), inputs.seed_of(seed)
    chars = inputs.glyphs_of(model, glyphs)
    with POOL.borrow(model, scheduler) as pipe:
        sim = temporal_similarity(pipe, steps, pairwise=True, class_labels=chars, output_type="pt",
                                  generator=torch.Generator().manual_seed(seed))
    return {"model": model, "scheduler": scheduler, "steps": steps, "seed": seed,
            "glyphs": "".join(chars)} | sim.as_dict()


def summary(data: dict) -> str:
    change = torch.tensor(data["change"]).nan_to_num()
    blocks = data["blocks"]
    mean = change.mean(0)
    order = mean.argsort(descending=True).tolist()
    busiest = change.mean(1).argmax().item() + 1
    return "\n\n".join([
        f"Median change over all blocks and steps: **{change.median().item():.1%}** of a block's "
        "output: consecutive steps are close, and that redundancy is what feature reuse spends.",
        f"Most active block: **{blocks[order[0]]}** (mean {mean[order[0]]:.1%} per step); most "
        f"stable: **{blocks[order[-1]]}** ({mean[order[-1]]:.1%}).",
        f"The step with the largest average change is step **{busiest}**.", *_streams(data)])


STREAM_NAMES = {"hidden_states": "image", "encoder_hidden_states": "text"}


def _streams(data: dict) -> list[str]:
    """For dual-stream transformers (glyph-flux): each stream's change, and the dual-stream
    blocks against the single-stream ones."""
    streams = data.get("streams")
    if not streams:
        return []
    parts = []
    for name, values in streams.items():
        t = torch.tensor(values)
        seen = ~t.isnan()
        if seen.any():
            parts.append(f"**{STREAM_NAMES.get(name, name)}** tokens ({name}) change "
                         f"{t[seen].mean().item():.1%} per step")
    lines = ["Per stream: " + "; ".join(parts) + "."] if parts else []
    change = torch.tensor(data["change"]).nan_to_num().mean(0)
    dual = [i for i, b in enumerate(data["blocks"]) if b.startswith("transformer_blocks")]
    single = [i for i, b in enumerate(data["blocks"]) if b.startswith("single_transformer_blocks")]
    if dual and single:
        lines.append(f"Dual-stream blocks (text and image keep separate weights) change "
                     f"**{change[dual].mean().item():.1%}** per step, single-stream blocks "
                     f"**{change[single].mean().item():.1%}**.")
    return lines


PALETTES = ("Viridis", "Cividis", "Magma")  # perceptually uniform and colour-blind safe; Viridis the default


def palette_of(name) -> str:
    if name not in PALETTES:
        raise ValueError(f"unknown palette {name!r}; choose from {', '.join(PALETTES)}")
    return name


def heatmap(data: dict, keyframes: list[int] | None = None, palette: str = PALETTES[0]):
    title = (f"{data['model']}, {data['scheduler']} {data['steps']} steps: relative change of each "
             "block's output vs the previous step")
    return similarity_figure(data["blocks"], torch.tensor(data["change"]).nan_to_num(), title, keyframes,
                             palette_of(palette))


def matrix(data: dict, block: str, keyframes: list[int] | None = None, palette: str = PALETTES[0]):
    """The step x step distance matrix of one block, the policy's keyframes marked."""
    if block not in data["blocks"]:
        raise ValueError(f"unknown block {block!r}; choose from {', '.join(data['blocks'])}")
    values = data["pairwise"][data["blocks"].index(block)]
    return pairwise_figure(values, block, keyframes, palette_of(palette))

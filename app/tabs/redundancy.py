"""The Temporal redundancy tab: each block's change per step, and step x step."""

from __future__ import annotations

import gradio as gr

from .. import first, grid, redundancy
from ..errors import safe
from ..files import plot_data_file
from ..inputs import policy_of
from ..models import blocks_of
from ..texts import REDUNDANCY_HELP
from .common import CHEAP, DEFAULT, Controls


def build(demo, c: Controls, runs):
    gr.Markdown(REDUNDANCY_HELP)
    measure = gr.Button("Measure", variant="primary", elem_id="measure")
    heatmap = gr.Plot(label="per-block change", elem_id="heatmap")
    summary = gr.Markdown(elem_id="redundancy-summary")
    # any model's block names are accepted (API callers pick a DiT block without a measurement
    # first); an unknown one falls back to the first block of the measured model
    block = gr.Dropdown(list(blocks_of(DEFAULT[0])), value=list(blocks_of(DEFAULT[0]))[0], allow_custom_value=True,
                        label="block for the step x step matrix", elem_id="block")
    matrix = gr.Plot(label="step x step distance", elem_id="pairwise")
    palette = gr.Radio(list(redundancy.PALETTES), value=redundancy.PALETTES[0], elem_id="palette",
                       label="heatmap colours (all three perceptually uniform and colour-blind safe)")
    exports = gr.File(label="download: the two plots' data (JSON; each plot's camera button saves its PNG)",
                      interactive=False, elem_id="redundancy-exports")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="similarity-json")
    data = gr.State({})

    def keyframes(model, steps, editor):
        try:
            return policy_of(model, int(steps), editor).keyframes
        except (ValueError, TypeError):
            return None

    def similarity(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, block, palette="Viridis",
                   progress=gr.Progress()):
        progress(0, desc="one full-compute run, every block observed")
        d = first.remember(redundancy.measure, model, glyphs, scheduler, steps, seed)
        marks = keyframes(model, steps, editor)
        chosen = block if block in d["blocks"] else d["blocks"][0]
        summary_ = ((first.NOTE + "\n\n") if first.FIRST.get() else "") + redundancy.summary(d)
        change, pairwise = redundancy.heatmap(d, marks, palette), redundancy.matrix(d, chosen, marks, palette)
        return (change, summary_, gr.Dropdown(choices=d["blocks"], value=chosen), pairwise, d, d,
                grid.change_matrix(d),
                plot_data_file({"per-block change": change, "step x step distance": pairwise}, "redundancy"))

    outputs = [heatmap, summary, block, matrix, numbers, data, c.change, exports]
    measure.click(safe(similarity), [*c.all, block, palette], outputs, api_name="similarity",
                  show_progress_on=[heatmap], **runs)
    first.register("redundancy", safe(similarity), [*c.all, block, palette], outputs, demo, button=measure)

    def redraw(d, block, model, steps, editor, palette):
        if not d or block not in d.get("blocks", []):
            return gr.skip(), gr.skip()
        marks = keyframes(model, steps, editor)
        return redundancy.heatmap(d, marks, palette), redundancy.matrix(d, block, marks, palette)

    for control in (block, palette):
        control.input(safe(redraw), [data, block, c.model, c.steps, c.editor, palette], [heatmap, matrix], **CHEAP)

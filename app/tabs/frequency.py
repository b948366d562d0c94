"""The Frequency tab: the spectra of the mixed scores, and lam(r)."""

from __future__ import annotations

import gradio as gr

from .. import first, frequency
from ..errors import safe
from ..files import plot_data_file
from ..inputs import mixing_of, policy_of
from ..plots import lam_figure
from ..texts import FREQUENCY_HELP
from .common import CHEAP, Controls


def build(demo, c: Controls, runs):
    gr.Markdown(FREQUENCY_HELP)
    run = gr.Button("Measure spectra", variant="primary", elem_id="spectra-run")
    lam = gr.Plot(label="lam(r)", elem_id="lam")
    scores = gr.Plot(label="spectra of the mixed predictions", elem_id="score-spectra")
    summary = gr.Markdown(elem_id="spectra-summary")
    final = gr.Plot(label="spectra of the final images", elem_id="image-spectra")
    exports = gr.File(label="download: the three plots' data (JSON; each plot's camera button saves its PNG)",
                      interactive=False, elem_id="spectra-exports")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="spectra-json")

    def spectra(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, progress=gr.Progress()):
        progress(0, desc="one FRDiff run observed, then the image spectra")
        d = first.remember(frequency.spectra, model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed)
        score_fig, lam_fig, final_fig = frequency.figures(d)
        summary_ = ((first.NOTE + "\n\n") if first.FIRST.get() else "") + frequency.summary(d)
        files = plot_data_file({"spectra of the mixed predictions": score_fig, "lam(r)": lam_fig,
                                "spectra of the final images": final_fig}, "spectra")
        return score_fig, lam_fig, final_fig, summary_, d, files

    outputs = [scores, lam, final, summary, numbers, exports]
    run.click(safe(spectra), c.all, outputs, api_name="spectra", show_progress_on=[scores], **runs)
    first.register("frequency", safe(spectra), c.all, outputs, demo, button=run)

    def lam_now(model, steps, editor, mixing, slope, bias):
        try:
            p, m = policy_of(model, int(steps), editor), mixing_of(mixing, slope, bias)
        except (ValueError, TypeError):
            return gr.skip()
        return lam_figure([m.lam(i, p.num_steps) for i in range(p.num_steps)],
                          [p.step_kind(i, m) for i in range(p.num_steps)])

    for control in c.policy:
        control.change(lam_now, list(c.check), [lam], **CHEAP)
    return lam_now, lam

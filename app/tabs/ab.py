"""The A/B tab: two policies side by side on the same noise."""

from __future__ import annotations

import gradio as gr

from frdiff.images import make_grid

from .. import ab, first
from .. import compare as cmp
from ..errors import safe
from ..files import data_file, gif_file, image_file, plot_data_file
from ..inputs import LIMITS
from ..texts import AB_HELP
from .common import CHEAP, Controls


def build(demo, c: Controls, runs):
    gr.Markdown(AB_HELP)
    with gr.Row():
        policy_a = gr.Textbox("uniform:2", label="policy A: a name or a text grid", lines=2, max_lines=20,
                              max_length=LIMITS.text, elem_id="ab-a", scale=2)
        policy_b = gr.Textbox("uniform:4", label="policy B", lines=2, max_lines=20, max_length=LIMITS.text,
                              elem_id="ab-b", scale=2)
        with gr.Column(scale=1, min_width=160):
            take = gr.Button("A = the editor's policy", size="sm", elem_id="ab-take")
            run = gr.Button("Compare A and B", variant="primary", elem_id="ab-run")
    gallery = gr.Gallery(label="full compute, A and B: the same noise and glyphs", columns=3, height="auto",
                         object_fit="contain", elem_id="ab-gallery", format="png")
    with gr.Row():
        slider = gr.ImageSlider(label="A | B: drag to compare", type="filepath", elem_id="ab-slider",
                                max_height=360, format="png")
        diff = gr.Image(label=f"|A - B| x {cmp.DIFF_GAIN} per pixel (white: identical)", type="filepath",
                        format="png", interactive=False, elem_id="ab-diff",
                        alt_text="where policies A and B differ: white pixels are identical, darker ones differ more")
    text = gr.Markdown(elem_id="ab-summary")
    table = gr.Dataframe(headers=cmp.HEADERS, interactive=False, elem_id="ab-results", wrap=True)
    curve = gr.Plot(label="x0 PSNR per step", elem_id="ab-curve")
    exports = gr.File(label="downloads: A and B blinking (GIF), both grids (PNG), the table (CSV), "
                      "the plot's data (JSON)",
                      file_count="multiple", interactive=False, elem_id="ab-exports")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="ab-json")

    def compare_ab(model, glyphs, scheduler, steps, policy_a, policy_b, mixing, slope, bias, seed,
                   progress=gr.Progress()):
        """Two keyframe policies side by side on the same noise: images, |A - B|, each one's speed
        and distance to full compute, and their predicted x0 per step.

        Args:
            model: glyph-unet, glyph-dit or glyph-flux
            glyphs: the characters to draw, e.g. "A7K3"
            scheduler: DDIM, DPM-Solver++ or Euler
            steps: sampling steps
            policy_a: the first policy: a name (uniform:2, tuned:2.0, ...) or a text grid
            policy_b: the second policy, the same forms
            mixing: score mixing on (true) or off, for both
            slope: score mixing's slope k
            bias: score mixing's bias b
            seed: the noise seed
        """
        progress(0, desc="full compute, A and B, then their trajectories")
        d = ab.compare_two(model, glyphs, scheduler, steps, policy_a, policy_b, mixing, slope, bias, seed)
        shown, _ = cmp.grids(d["runs"], len(d["glyphs"]))
        ncol = cmp.columns(len(d["glyphs"]))
        blink = make_grid(d["a_vs_b"].images, ncol=ncol, scale=4)
        files = {n: image_file(g) for n, g in shown.items()}
        caption = {r["method"]: f"{r['method']}: {r['counted_speedup']:.2f}x counted, {r['psnr']:.1f} dB"
                   for r in d["rows"]}
        downloads = [gif_file([shown[ab.A], shown[ab.B]], "a-b-blink", 0.6),
                     image_file(shown[ab.A], "policy-a"), image_file(shown[ab.B], "policy-b"),
                     data_file(cmp.table_csv(d["rows"]), "a-b.csv")]
        curve_ = ab.per_step_figure(d)
        downloads.append(plot_data_file({"x0 PSNR per step": curve_}, "a-b-per-step"))
        return ([(f, caption[n]) for n, f in files.items()], (files[ab.A], files[ab.B]), image_file(blink),
                ab.summary(d), {"headers": cmp.HEADERS, "data": cmp.table_rows(d["rows"])}, curve_,
                downloads, ab.numbers(d))

    take.click(lambda text: text, c.editor, policy_a, **CHEAP)
    inputs = [c.model, c.glyphs, c.scheduler, c.steps, policy_a, policy_b, c.mixing, c.slope, c.bias, c.seed]
    outputs = [gallery, slider, diff, text, table, curve, exports, numbers]
    run.click(safe(compare_ab), inputs, outputs, api_name="ab", show_progress_on=[gallery], **runs)
    first.register("ab", safe(compare_ab), inputs, outputs, demo, on_load=False)  # a link to the tab runs it

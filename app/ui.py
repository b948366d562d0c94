"""Layout of the Space: pick a model, labels and a policy; see the three runs side by side."""

from __future__ import annotations

import gradio as gr

from .compare import compare

INTRO = """# frdiff: feature reuse for diffusion models
The same glyphs generated three ways from the same noise: **full compute**, **fewer steps**
(the usual shortcut), and **FRDiff** (feature reuse between keyframes + score mixing).
Models are small class-conditional glyph generators trained by this project; everything runs on CPU."""


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="frdiff") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(["glyph-unet", "glyph-dit"], value="glyph-unet", label="model")
            labels = gr.Textbox("A7K3", label="glyphs to draw (2-7, 9, A C E F H K M P R T U W X)")
            seed = gr.Number(0, label="seed", precision=0)
        with gr.Row():
            steps = gr.Slider(10, 100, value=50, step=1, label="DDIM steps")
            interval = gr.Slider(1, 5, value=2, step=1, label="keyframe interval")
            mixing = gr.Checkbox(True, label="score mixing")
        run = gr.Button("Generate", variant="primary")
        with gr.Row():
            full = gr.Image(label="full compute", type="pil")
            reduced = gr.Image(label="fewer steps", type="pil")
            fast = gr.Image(label="FRDiff", type="pil")
        table = gr.Markdown()
        run.click(_safe(compare), [model, labels, steps, interval, mixing, seed],
                  [full, reduced, fast, table])
    return demo


def _safe(fn):
    def wrapped(*args):
        try:
            return fn(*args)
        except ValueError as err:  # bad labels or settings: show the message, not a trace
            raise gr.Error(str(err)) from err
    return wrapped

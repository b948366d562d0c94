"""Layout of the Space: generate beside baselines with an editable policy; see the redundancy."""

from __future__ import annotations

import gradio as gr

from .compare import compare
from .editor import check_policy
from .presets import SCHEDULERS, preset_names, preset_text
from .redundancy import redundancy

CSS = "#policy-editor textarea { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre; }"

INTRO = """# frdiff: feature reuse for diffusion models
The same glyphs generated three ways from the same noise: **full compute**, **FRDiff** (feature
reuse between keyframes + score mixing) with a policy you can edit, and **fewer steps** at the
same counted compute (the usual shortcut). Models are small class-conditional glyph generators
trained by this project; everything runs on the CPU."""

EDITOR_HELP = """One row per block, one letter per step: **K** compute (keyframe), **F** feature reuse
(reuse the block's expensive part, recompute the rest), **S** skip the block (reuse its whole
output), **N** no network call at this step (a whole column: the keyframe's prediction is
reused, as with fewer steps). Spaces are ignored; step 0 must be all K. With score mixing,
early non-keyframe steps (lam = 0) make no call either (white in the grid)."""

REDUNDANCY_HELP = """Feature reuse works because a block's output barely changes between neighbouring
steps. This runs the model once at full compute and measures, for every block, how much its
output changes from the previous step (mean absolute change / mean magnitude). Dark cells are
cheap to reuse; bright ones are where a policy should keep keyframes."""

DEFAULT = ("glyph-unet", "DDIM", 50, "uniform, interval 2")


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="frdiff") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(["glyph-unet", "glyph-dit"], value=DEFAULT[0], label="model")
            labels = gr.Textbox("A7K3", label="glyphs to draw (2-7, 9, A C E F H K M P R T U W X)",
                                elem_id="glyphs")
            scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT[1], label="sampler")
            steps = gr.Slider(4, 100, value=DEFAULT[2], step=1, label="steps", elem_id="steps")
            seed = gr.Number(0, label="seed", precision=0)
        with gr.Tabs():
            with gr.Tab("Generate and compare"):
                check_inputs, check_outputs = _compare_tab(model, labels, scheduler, steps, seed)
            with gr.Tab("Temporal redundancy"):
                gr.Markdown(REDUNDANCY_HELP)
                measure = gr.Button("Measure", elem_id="measure")
                heatmap = gr.Plot(label="per-block change", elem_id="heatmap")
                summary = gr.Markdown(elem_id="redundancy-summary")
                measure.click(_safe(redundancy), [model, labels, scheduler, steps, seed], [heatmap, summary])
        demo.load(check_policy, check_inputs, check_outputs)
    return demo


def _compare_tab(model, labels, scheduler, steps, seed):
    """The compare tab; returns the editor check's inputs and outputs (drawn again on page load)."""
    with gr.Row():
        with gr.Column(scale=3):
            preset = gr.Dropdown(preset_names(*DEFAULT[:3]), value=DEFAULT[3], label="policy preset "
                                 "(fills the editor)", elem_id="preset")
            editor = gr.Textbox(preset_text(*DEFAULT), lines=12, max_lines=40, label="keyframe policy",
                                elem_id="policy-editor", info=EDITOR_HELP)
        with gr.Column(scale=2):
            mixing = gr.Checkbox(True, label="score mixing")
            slope = gr.Slider(1, 100, value=30, step=1, label="mixing slope k")
            bias = gr.Slider(0, 1, value=0.5, step=0.05, label="mixing bias b")
            status = gr.Markdown(elem_id="policy-status")
    grid = gr.Plot(label="policy", elem_id="policy-grid")
    run = gr.Button("Generate", variant="primary", elem_id="generate")
    with gr.Row():
        full = gr.Image(label="full compute", type="pil", elem_id="img-full")
        fast = gr.Image(label="FRDiff", type="pil", elem_id="img-fast")
        fewer = gr.Image(label="fewer steps, same counted compute", type="pil",
                         elem_id="img-fewer")
    table = gr.Markdown(elem_id="results")
    spectrum = gr.Plot(label="error spectrum", elem_id="spectrum")

    def presets_for(model, scheduler, steps, current):
        names = preset_names(model, scheduler, steps)
        value = current if current in names else names[1]
        return gr.Dropdown(choices=names, value=value), preset_text(model, scheduler, steps, value)

    settings = [model, scheduler, steps]
    for control in settings:
        control.change(_safe(presets_for), [*settings, preset], [preset, editor])
    preset.input(_safe(preset_text), [*settings, preset], [editor])
    check = [model, steps, editor, mixing, slope, bias]
    for control in (editor, mixing, slope, bias):
        control.change(check_policy, check, [grid, status])
    run.click(_safe(compare), [model, labels, scheduler, steps, editor, mixing, slope, bias, seed],
              [full, fast, fewer, table, spectrum])
    return check, [grid, status]


def serve_locally() -> tuple[gr.Blocks, str]:
    """Build the demo and serve it on a free localhost port without blocking: (demo, url)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def _safe(fn):
    def wrapped(*args):
        try:
            return fn(*args)
        except ValueError as err:  # bad labels or settings: show the message, not a trace
            raise gr.Error(str(err)) from err
    return wrapped

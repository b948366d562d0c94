"""The Trajectory tab: predicted x0 of full compute and FRDiff, step by step."""

from __future__ import annotations

import os

import gradio as gr

from .. import first, trajectory
from ..errors import safe
from ..files import gif_file, image_file, plot_data_file, side_by_side
from ..plots import distance_figure
from ..texts import TRAJECTORY_HELP
from .common import CHEAP, DEFAULT, Controls


def build(demo, c: Controls, runs):
    gr.Markdown(TRAJECTORY_HELP)
    with gr.Row():
        record = gr.Button("Record both runs", variant="primary", elem_id="trajectory-run")
        play = gr.Checkbox(False, label="play", elem_id="play")
    step = gr.Slider(0, DEFAULT[2] - 1, value=0, step=1, label="step", elem_id="trajectory-step")
    with gr.Row():
        full = gr.Image(label="full compute: predicted x0", type="pil", elem_id="x0-full", format="png",
                        alt_text="full compute's predicted clean glyphs at the chosen step")
        fast = gr.Image(label="FRDiff: predicted x0", type="pil", elem_id="x0-frdiff", format="png",
                        alt_text="FRDiff's predicted clean glyphs at the chosen step")
    text = gr.Markdown(elem_id="trajectory-text")
    curve = gr.Plot(label="distance per step", elem_id="trajectory-curve")
    exports = gr.File(label="download: both predicted x0, step by step, as an animation (GIF; left: full compute, "
                      "right: FRDiff), and the plot's data (JSON)", file_count="multiple", interactive=False,
                      elem_id="trajectory-exports")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="trajectory-json")
    data = gr.State({})
    timer = gr.Timer(0.3, active=False)

    def record_trajectory(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, progress=gr.Progress()):
        progress(0, desc="full compute and FRDiff, every predicted x0 kept")
        d = first.remember(trajectory.record, model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed)
        frames = [trajectory.frame(d, i) for i in range(d["steps"])]  # rendered once: scrubbing only reads
        stored = {"frames": [(image_file(a), image_file(b), md) for a, b, md in frames],
                  "psnr": d["psnr"], "kinds": d["kinds"], "steps": d["steps"]}
        left, right, md = stored["frames"][0]
        animation = gif_file([side_by_side(a, b) for a, b, _ in frames], "trajectory-full-vs-frdiff",
                             min(0.25, 8.0 / d["steps"]))
        curve_ = distance_figure(d["psnr"], d["kinds"], 0)
        exported = [animation, plot_data_file({"distance per step": curve_}, "trajectory-distance")]
        return (stored, gr.Slider(maximum=d["steps"] - 1, value=0), left, right, md, curve_, exported,
                trajectory.numbers(d))

    outputs = [data, step, full, fast, text, curve, exports, numbers]
    record.click(safe(record_trajectory), c.all, outputs, api_name="trajectory", show_progress_on=[full, fast], **runs)
    first.register("trajectory", safe(record_trajectory), c.all, outputs, demo, button=record)

    def scrub(d, s):
        if not d:
            return gr.skip(), gr.skip(), "Record a trajectory first.", gr.skip()
        step = min(max(int(s), 0), d["steps"] - 1)
        left, right, md = d["frames"][step]
        if not (os.path.exists(left) and os.path.exists(right)):  # swept after files.KEEP_S
            return gr.skip(), gr.skip(), "This recording has expired: press Record again.", gr.skip()
        return left, right, md, distance_figure(d["psnr"], d["kinds"], step)

    step.change(safe(scrub), [data, step], [full, fast, text, curve], **CHEAP)
    play.change(lambda on: gr.Timer(active=on), play, timer, **CHEAP)
    timer.tick(lambda d, s: (int(s) + 1) % d["steps"] if d else gr.skip(), [data, step], step, **CHEAP)

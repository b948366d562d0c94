"""The Hub models tab: real pipelines from an allow-list, where a GPU is attached."""

from __future__ import annotations

import gradio as gr

from frdiff.images import make_grid

from .. import hub
from ..errors import safe
from ..files import image_file
from ..texts import HUB_HELP
from .common import CHEAP


def build(runs):
    gr.Markdown(HUB_HELP)
    reason = hub.unavailable()
    if reason:  # offline or on a CPU: say why, and offer nothing that cannot run
        gr.Markdown(f"**Not offered on this server:** {reason}.", elem_id="hub-unavailable")
        return
    first = next(iter(hub.HUB_MODELS))
    with gr.Row():
        model = gr.Dropdown(list(hub.HUB_MODELS), value=first, label="model", elem_id="hub-model")
        prompt = gr.Textbox("a watercolor lighthouse at dawn", label="prompt (DiT: an ImageNet class, e.g. 'golden "
                            "retriever')", max_length=hub.MAX_PROMPT, elem_id="hub-prompt", scale=3)
    defaults = gr.Markdown(hub.HUB_MODELS[first].defaults(), elem_id="hub-defaults")
    with gr.Row():
        steps = gr.Slider(4, 100, value=hub.HUB_MODELS[first].steps, step=1, label="steps", elem_id="hub-steps")
        interval = gr.Slider(1, 10, value=hub.HUB_MODELS[first].interval, step=1,
                             label="keyframe interval (uniform FR)", elem_id="hub-interval")
        mixing = gr.Checkbox(True, label="score mixing", elem_id="hub-mixing")
        seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="hub-seed")
        run = gr.Button("Generate", variant="primary", elem_id="hub-run")
    with gr.Row():
        full = gr.Image(label="full compute", type="filepath", format="png", elem_id="hub-full",
                        alt_text="the image sampled with full compute")
        fast = gr.Image(label="FRDiff", type="filepath", format="png", elem_id="hub-frdiff",
                        alt_text="the same image sampled with FRDiff")
    text = gr.Markdown(elem_id="hub-numbers")

    def generate(model, prompt, steps, interval, mixing, seed):
        d = hub.generate(model, prompt, steps, interval, mixing, seed)
        s = d["stats"]
        return (image_file(make_grid(d["full"], ncol=1, scale=1)), image_file(make_grid(d["frdiff"], ncol=1, scale=1)),
                f"FRDiff: {d['full_seconds'] / d['frdiff_seconds']:.2f}x measured ({d['frdiff_seconds']:.1f} s vs "
                f"{d['full_seconds']:.1f} s, one run each), {s['ideal_speedup']:.2f}x counted, PSNR "
                f"{d['psnr']:.1f} dB to full compute, {s['network_calls']} network calls.")

    def chosen(model_id):  # a model's own steps and recommended interval
        spec = hub.model_spec(model_id)
        return spec.defaults(), spec.steps, spec.interval

    model.change(safe(chosen), model, [defaults, steps, interval], **CHEAP)
    run.click(safe(generate), [model, prompt, steps, interval, mixing, seed], [full, fast, text], api_name="hub",
              **runs)

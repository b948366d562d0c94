"""The Learn tab: Auto-FR on this server, drawn as it goes."""

from __future__ import annotations

import gradio as gr

from .. import compare as cmp
from .. import first
from .. import learn as learning
from ..errors import safe
from ..files import image_file
from ..inputs import mixing_of
from ..models import blocks_of
from ..plots import policy_figure
from ..presets import shipped_policy
from ..texts import LEARN_HELP
from .common import CHEAP, Controls


def build(demo, c: Controls, runs):
    gr.Markdown(LEARN_HELP)
    with gr.Row(equal_height=True):
        target = gr.Slider(*learning.TARGETS, value=2.0, step=0.1, label="target speedup (time on this server)",
                           elem_id="learn-target")
        start = gr.Button("Learn a policy", variant="primary", elem_id="learn-run", scale=0, min_width=160)
        stop = gr.Button("Stop", elem_id="learn-stop", scale=0, min_width=100)
    status = gr.Markdown(elem_id="learn-status")
    figure = gr.Plot(label="the policy the tuner holds now (each check projects its gates to a policy)",
                     elem_id="learn-policy")
    gallery = gr.Gallery(label="on your glyphs and seed (never seen by the tuner)", columns=4, height="auto",
                         object_fit="contain", elem_id="learn-gallery", format="png")
    table = gr.Dataframe(headers=cmp.HEADERS, interactive=False, elem_id="learn-results", wrap=True)
    stages = {"profile": "timing each block on this server (once per model and glyph count)",
              "starts": "scoring the structured starts", "descent": "gradient descent on the gates",
              "compare": "comparing on your glyphs"}

    def learn(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, target, progress=gr.Progress()):
        s, goal = learning.settings(model, glyphs, scheduler, steps, mixing, slope, bias, seed, target)
        blocks = list(blocks_of(s.model))
        skip = gr.skip()
        progress(0, desc="timing block costs and the full-compute references")
        for event in learning.run(s, goal):
            if isinstance(event, learning.Progress):
                progress((event.done, event.total), desc=stages[event.stage], unit="steps")
                # a yield at every step: a Stop (or a cancelled API call) closes this generator at
                # its next yield, so it acts within one tuner step, not at the next drawn policy
                yield skip, skip, skip, skip, skip
            elif isinstance(event, learning.Start):
                yield (policy_figure(event.policy, s.mixing, blocks),
                       f"Best structured start: **{event.name}**. Now descending on its gates...", skip, skip, skip)
            elif isinstance(event, learning.Check):
                c = event.check
                yield (policy_figure(c.policy, s.mixing, blocks),
                       f"{c.family} family, iteration {c.iteration}: held-out loss {c.loss:.2e} "
                       f"(best so far {c.best_loss:.2e})", skip, skip, skip)
            elif isinstance(event, learning.Failed):
                if isinstance(event.error, learning.Stopped):
                    raise gr.Error(f"Learning stopped ({event.error}): nothing was loaded into the editor.")
                raise event.error
            else:
                result, rows = event.result, event.rows
                shown, _ = cmp.grids(event.runs, len(s.glyphs))
                caption = {r["method"]: f"{r['method']}: {r['measured_speedup']:.2f}x measured, {r['psnr']:.1f} dB"
                           for r in rows}
                text = learning.summary(result, rows, event.seconds)
                yield (policy_figure(result.policy, s.mixing, blocks), text,
                       [(image_file(g), caption[n]) for n, g in shown.items()],
                       {"headers": cmp.HEADERS, "data": cmp.table_rows(rows)}, result.policy.to_text(blocks))

    event = start.click(safe(learn), [*c.all, target], [figure, status, gallery, table, c.editor],
                        api_name="learn", show_progress_on=[figure], **runs)
    stop.click(None, None, None, cancels=[event], **CHEAP)

    def shipped_view(model, scheduler, steps, mixing, slope, bias):
        """The first view: the policy shipped for these settings, until one is learned here."""
        try:
            label, shipped = shipped_policy(model, scheduler, int(steps), 2.0)
            mix = mixing_of(mixing, slope, bias)
        except (ValueError, TypeError):
            return gr.skip(), gr.skip()
        return (policy_figure(shipped, mix, list(blocks_of(model))),
                f"*For a start, the Auto-FR policy shipped for these settings ({label}), learned offline. "
                "Press **Learn a policy** to learn one for your target, timed on this server.*")

    first.register("learn", shipped_view, [c.model, c.scheduler, c.steps, c.mixing, c.slope, c.bias], [figure, status],
                   demo)

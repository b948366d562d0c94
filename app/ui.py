"""Layout of the Space and the wiring of its events; the callbacks live in the tab modules.

Every button that runs a model shares one concurrency group ("model", limit
FRDIFF_APP_CONCURRENCY); what a page load starts (first views, a link's run) has a group of its
own (`first.ON_LOAD`); each borrows its own pipeline from the pool, which has as many as the
limit. Cheap events (drawing the policy, choosing the slider's pair, scrubbing a stored
trajectory) skip the queue.
"""

from __future__ import annotations

import gradio as gr

from . import first, grid, links
from .editor import check_policy, export_policy, import_policy
from .errors import safe
from .inputs import LIMITS, MIN_STEPS, policy_of
from .models import MODELS, POOL, SCHEDULERS, app_concurrency, model_defaults
from .presets import preset_label, preset_names, preset_text
from .specs import spec_in, spec_text
from .tabs import ab as ab_tab
from .tabs import compare as compare_tab
from .tabs import frequency as frequency_tab
from .tabs import hub as hub_tab
from .tabs import learn as learn_tab
from .tabs import redundancy as redundancy_tab
from .tabs import trajectory as trajectory_tab
from .tabs.common import CHEAP, DEFAULT, Controls
from .texts import EDITOR_HELP, GUIDE, INTRO

CSS = """#policy-editor textarea { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre; }
#guide { border-left: 4px solid #f4a261; padding-left: 12px; }"""


def build_demo(concurrency: int | None = None) -> gr.Blocks:
    """The app; `concurrency` model runs at once (default: env FRDIFF_APP_CONCURRENCY, else 1)."""
    concurrency = concurrency or app_concurrency()
    POOL.ensure(concurrency)
    # every event that runs a model: one group, so together they never exceed the limit
    runs = dict(concurrency_id="model", concurrency_limit=concurrency, trigger_mode="once")
    with gr.Blocks(title="frdiff: feature reuse for diffusion models") as demo:
        gr.Markdown(INTRO, elem_id="guide")
        with gr.Row(elem_id="guide-steps"):
            steps_of_guide = [gr.Button(label, size="sm", elem_id=f"guide-{tab}") for tab, label, _ in GUIDE]
        guide_text = gr.Markdown(elem_id="guide-text")
        with gr.Row():
            model = gr.Dropdown(list(MODELS), value=DEFAULT[0], label="model", elem_id="model")
            glyphs = gr.Textbox("A7K3", label="glyphs to draw (2-7, 9, A C E F H K M P R T U W X)",
                                max_length=4 * LIMITS.glyphs, elem_id="glyphs")
            scheduler = gr.Dropdown(list(SCHEDULERS), value=DEFAULT[1], label="sampler", elem_id="sampler")
            steps = gr.Slider(MIN_STEPS, LIMITS.steps, value=DEFAULT[2], step=1, label="steps", elem_id="steps")
            seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="seed")
        policy = _policy_editor(model, scheduler, steps)
        c = Controls(model, glyphs, scheduler, steps, *policy["run"], seed, preset=policy["preset"],
                     check=tuple(policy["check"]), change=policy["change"])
        # a flow model (glyph-flux) samples with Euler at 28 steps, the others with DDIM at 50
        model.input(lambda name: model_defaults(name) if name in MODELS else (gr.skip(), gr.skip()),
                    model, [scheduler, steps], **CHEAP)  # a user's pick (a link sets all three itself)
        with gr.Row(equal_height=True, elem_id="link-row"):
            copy = gr.Button("Copy link to this view", size="sm", scale=0, min_width=200, elem_id="copy-link")
            shared = gr.Textbox(show_label=False, placeholder="a link restoring the tab, model, policy, mixing, "
                                "seed, steps and glyphs", buttons=["copy"], elem_id="link", scale=4)
        link_notice = gr.Markdown(elem_id="link-notice")
        current = gr.State("compare")  # the open tab, for the link
        with gr.Tabs() as tabs:
            tab_list = []
            with gr.Tab("Compare", id="compare") as t:
                tab_list.append(t)
                compare_tab.build(demo, c, runs)
            with gr.Tab("A/B: two policies", id="ab") as t:
                tab_list.append(t)
                ab_tab.build(demo, c, runs)
            with gr.Tab("Temporal redundancy", id="redundancy") as t:
                tab_list.append(t)
                redundancy_tab.build(demo, c, runs)
            with gr.Tab("Frequency", id="frequency") as t:
                tab_list.append(t)
                lam_now, lam_plot = frequency_tab.build(demo, c, runs)
            with gr.Tab("Learn (Auto-FR)", id="learn") as t:
                tab_list.append(t)
                learn_tab.build(demo, c, runs)
            with gr.Tab("Trajectory", id="trajectory") as t:
                tab_list.append(t)
                trajectory_tab.build(demo, c, runs)
            with gr.Tab("Hub models (GPU)", id="hub") as t:
                tab_list.append(t)
                hub_tab.build(runs)
        for t, name in zip(tab_list, links.TABS, strict=True):
            t.select(lambda name=name: name, None, [current], **CHEAP)
        for button, (tab, _, text) in zip(steps_of_guide, GUIDE):  # a step of the path: its tab and what to try
            button.click(lambda tab=tab, text=text: (gr.Tabs(selected=tab), text, tab), None,
                         [tabs, guide_text, current], **CHEAP)
        loaded = _links(demo, c, tabs, current, copy, shared, link_notice)
        # the policy's status and lam(r) drawn after a link's values landed (drawn beside the
        # restore instead, the defaults' status could land last and stay)
        loaded.then(check_policy, policy["check"], policy["status"], **CHEAP)
        loaded.then(lam_now, policy["check"], [lam_plot], **CHEAP)
    demo.queue(max_size=LIMITS.queue, default_concurrency_limit=concurrency)
    return demo


def _links(demo, c: Controls, tabs, current, copy, shared, notice):
    """A link's query parameters restore its view on load (and run its tab); Copy link writes one.
    Returns the restore's load event (what must see the link's values chains after it)."""

    def restore(request: gr.Request):
        view = links.parse(dict(request.query_params) if request is not None else {})
        if not view.given:
            return [gr.skip()] * 13
        label = preset_label(view.model, view.sampler, view.steps, view.policy)
        return (view.model, view.glyphs, view.sampler, view.steps, view.policy, view.mixing, view.slope,
                view.bias, view.seed, gr.Dropdown(choices=preset_names(view.model, view.sampler, view.steps),
                                                  value=label), gr.Tabs(selected=view.tab), view.tab,
                links.notice(view) + ("" if view.runs else "\n\nPress the tab's button to run it."))

    outputs = [*c.all, c.preset, tabs, current, notice]
    loaded = demo.load(restore, None, outputs, **CHEAP)
    # then the linked tab runs, as its button would, on the values the link set (a chained event
    # reads the page's values once the restore's have landed); the other tabs' runs skip
    for view in first.views(demo):
        loaded.then(linked(view), view.inputs, view.outputs, api_visibility="private", **first.ON_LOAD)

    def make(tab, model_, scheduler_, steps_, glyphs_, seed_, mixing_, slope_, bias_, editor_):
        return links.query(tab, model_, scheduler_, steps_, glyphs_, seed_, mixing_, slope_, bias_, editor_)

    copy.click(make, [current, c.model, c.scheduler, c.steps, c.glyphs, c.seed, c.mixing, c.slope, c.bias, c.editor],
               [shared],
               **CHEAP).then(None, [shared], [shared], js="(q) => { const u = window.location.origin + "
                             "window.location.pathname + q; navigator.clipboard?.writeText(u).catch(() => {}); "
                             "return u; }")
    return loaded


def linked(view):
    """A load callback: `view`'s handler where the page's link names its tab, else nothing."""

    def run_linked(request: gr.Request, *values):  # Gradio passes the request to a leading parameter
        if not links.from_link(request) or links.parse(dict(request.query_params)).tab != view.name:
            return first.skipped(len(view.outputs))  # a plain page parses nothing
        return view.handler(*values)

    run_linked.__name__ = f"linked_{view.name}"
    return run_linked


def _policy_editor(model, scheduler, steps) -> dict:
    """The policy shared by every tab: presets, the text grid, the mixing sliders, its drawing."""
    with gr.Group():
        with gr.Row(equal_height=True):
            preset = gr.Dropdown(preset_names(*DEFAULT[:3]), value=DEFAULT[3], elem_id="preset", scale=2,
                                 label="keyframe policy (used by every tab): a preset fills the editor")
            mixing = gr.Checkbox(True, label="score mixing", elem_id="mixing", scale=0, min_width=140)
            status = gr.Markdown(elem_id="policy-status")
        with gr.Accordion("edit the policy cell by cell, and the mixing ramp", open=False, elem_id="edit-policy"):
            with gr.Row():
                editor = gr.Textbox(preset_text(*DEFAULT), lines=10, max_lines=40, label="keyframe policy",
                                    elem_id="policy-editor", info=EDITOR_HELP, max_length=LIMITS.text, scale=3)
                with gr.Column(scale=1):
                    slope = gr.Slider(1, 100, value=30, step=1, label="mixing slope k", elem_id="slope")
                    bias = gr.Slider(0, 1, value=0.5, step=0.05, label="mixing bias b", elem_id="bias")
                    upload = gr.UploadButton("import a policy (.json or .txt)", file_types=[".json", ".txt"],
                                             file_count="single", size="sm", elem_id="policy-import")
                    export = gr.Button("export the policy", size="sm", elem_id="policy-export")
                    exported = gr.File(label="policy files", file_count="multiple", interactive=False,
                                       elem_id="policy-files", height=90)
        paint = gr.HTML(grid.grid_value(DEFAULT[0], DEFAULT[2], preset_text(*DEFAULT), True, 30, 0.5),
                        html_template='<div class="frgrid"></div>', css_template=grid.CSS, js_on_load=grid.JS,
                        elem_id="policy-paint", label="policy grid")
        with gr.Accordion("the policy as a figure", open=False):
            figure = gr.Plot(show_label=False, elem_id="policy-grid")
        change = gr.State(None)  # the redundancy tab's measurement, for the grid's hover text

    def presets_for(model, scheduler, steps, current, text):
        """New settings: a policy made from a name is made again for them (and the preset that
        names it shown); a hand-made one stays while it applies, else gives way to the preset."""
        names = preset_names(model, scheduler, steps)
        spec = spec_in(text) if isinstance(text, str) else None
        if spec is not None:
            try:
                derived = spec_text(model, int(steps), spec, scheduler)
                return gr.Dropdown(choices=names, value=preset_label(model, scheduler, steps, derived)), derived
            except ValueError:
                pass  # the name does not apply to the new settings (a shipped policy): the preset
        else:
            try:
                policy_of(model, int(steps), text, scheduler)
                return gr.Dropdown(choices=names, value=current if current in names else None), gr.skip()
            except (ValueError, TypeError):
                pass
        value = current if current in names else DEFAULT[3]
        return gr.Dropdown(choices=names, value=value), preset_text(model, scheduler, steps, value)

    setting = [model, scheduler, steps]
    for control in setting:
        control.change(safe(presets_for), [*setting, preset, editor], [preset, editor], **CHEAP)
    preset.input(safe(preset_text), [*setting, preset], [editor], **CHEAP)
    check = [model, steps, editor, mixing, slope, bias]
    for control in (editor, mixing, slope, bias):
        control.change(check_policy, check, [figure, status], queue=False, api_name="check_policy")
    for control in (editor, mixing, slope, bias, change):  # the text (typed, a preset) redraws the grid
        control.change(safe(grid.grid_value), [*check, change], [paint], show_progress="hidden", **CHEAP)
    paint.input(safe(grid.text_of), [paint], [editor], show_progress="hidden", **CHEAP)  # a painted edit: the text
    upload.upload(safe(import_policy), [model, steps, upload], [editor], api_name="import_policy", queue=False)
    export.click(safe(export_policy), [model, steps, editor], [exported], api_name="export_policy", queue=False)
    return {"run": [editor, mixing, slope, bias], "check": check, "status": [figure, status], "change": change,
            "preset": preset}


def mcp_available() -> bool:
    """Is Gradio's MCP server usable here (the `mcp` package, gradio's [mcp] extra)?"""
    try:
        import mcp  # noqa: F401
    except ImportError:
        return False
    return True


def serve_locally(concurrency: int | None = None, mcp_server: bool = False) -> tuple[gr.Blocks, str]:
    """Build the demo and serve it on a free localhost port without blocking: (demo, url);
    `mcp_server`: also as an MCP server (its tools: the named endpoints)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(concurrency)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True,
                mcp_server=mcp_server)
    return demo, f"http://127.0.0.1:{port}/"

"""Layout of the Space and the wiring of its events; the callbacks live in the tab modules.

Every event that runs a model shares one concurrency group ("model", limit
FRDIFF_APP_CONCURRENCY) and borrows its own pipeline from the pool; cheap events (drawing the
policy, choosing the slider's pair, scrubbing a stored trajectory) skip the queue.
"""

from __future__ import annotations

import os
import time

import gradio as gr

from . import compare as cmp
from . import frequency, grid, redundancy, trajectory
from . import hub
from . import learn as learning
from .editor import check_policy, export_policy, import_policy
from .errors import safe
from .files import data_file, image_file
from .inputs import LIMITS, MIN_STEPS, mixing_of, policy_of
from .methods import DEFAULT_METHODS, FRDIFF, FULL, OPTIONAL
from .models import MODELS, POOL, SCHEDULERS, app_concurrency, blocks_of, model_defaults
from .plots import distance_figure, lam_figure, policy_figure
from .presets import preset_names, preset_text
from .texts import (COMPARE_HELP, EDITOR_HELP, FREQUENCY_HELP, GUIDE, HUB_HELP, INTRO, LEARN_HELP,
                    REDUNDANCY_HELP, TRAJECTORY_HELP)

CSS = """#policy-editor textarea { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre; }
#guide { border-left: 4px solid #f4a261; padding-left: 12px; }"""
DEFAULT = ("glyph-unet", "DDIM", 50, "uniform, interval 2")
CHEAP = dict(queue=False, api_visibility="private")


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
        settings = [model, glyphs, scheduler, steps, *policy["run"], seed]
        # a flow model (glyph-flux) samples with Euler at 28 steps, the others with DDIM at 50
        model.change(lambda name: model_defaults(name) if name in MODELS else (gr.skip(), gr.skip()),
                     model, [scheduler, steps], **CHEAP)
        with gr.Tabs() as tabs:
            with gr.Tab("Compare", id="compare"):
                _compare_tab(settings, runs)
            with gr.Tab("Temporal redundancy", id="redundancy"):
                _redundancy_tab(settings, policy, runs)
            with gr.Tab("Frequency", id="frequency"):
                lam_now, lam_plot = _frequency_tab(settings, policy, runs)
            with gr.Tab("Learn (Auto-FR)", id="learn"):
                _learn_tab(settings, policy, runs)
            with gr.Tab("Trajectory", id="trajectory"):
                _trajectory_tab(settings, runs)
            with gr.Tab("Hub models (GPU)", id="hub"):
                _hub_tab(runs)
        for button, (tab, _, text) in zip(steps_of_guide, GUIDE):  # a step of the path: its tab and what to try
            button.click(lambda tab=tab, text=text: (gr.Tabs(selected=tab), text), None, [tabs, guide_text], **CHEAP)
        demo.load(check_policy, policy["check"], policy["status"], **CHEAP)
        demo.load(lam_now, policy["check"], [lam_plot], **CHEAP)
    demo.queue(max_size=LIMITS.queue, default_concurrency_limit=concurrency)
    return demo


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

    def presets_for(model, scheduler, steps, current):
        names = preset_names(model, scheduler, steps)
        value = current if current in names else DEFAULT[3]
        return gr.Dropdown(choices=names, value=value), preset_text(model, scheduler, steps, value)

    setting = [model, scheduler, steps]
    for control in setting:
        control.change(safe(presets_for), [*setting, preset], [preset, editor], **CHEAP)
    preset.input(safe(preset_text), [*setting, preset], [editor], **CHEAP)
    check = [model, steps, editor, mixing, slope, bias]
    for control in (editor, mixing, slope, bias):
        control.change(check_policy, check, [figure, status], queue=False, api_name="check_policy")
    for control in (editor, mixing, slope, bias, change):  # the text (typed, a preset) redraws the grid
        control.change(safe(grid.grid_value), [*check, change], [paint], show_progress="hidden", **CHEAP)
    paint.input(safe(grid.text_of), [paint], [editor], show_progress="hidden", **CHEAP)  # a painted edit: the text
    upload.upload(safe(import_policy), [model, steps, upload], [editor], api_name="import_policy", queue=False)
    export.click(safe(export_policy), [model, steps, editor], [exported], api_name="export_policy", queue=False)
    return {"run": [editor, mixing, slope, bias], "check": check, "status": [figure, status], "change": change}


def _compare_tab(settings, runs: dict):
    gr.Markdown(COMPARE_HELP)
    with gr.Row():
        methods = gr.CheckboxGroup([(label, key) for key, label in OPTIONAL.items()], value=list(DEFAULT_METHODS),
                                   label=f"also run ({FULL} and {FRDIFF} always run)", elem_id="methods")
        run = gr.Button("Generate", variant="primary", elem_id="generate", scale=0, min_width=160)
    gallery = gr.Gallery(label="every run, same noise and glyphs", columns=4, height="auto",
                         object_fit="contain", elem_id="gallery", format="png")
    with gr.Row():
        left = gr.Dropdown([FULL], value=FULL, label="slider: left", elem_id="slider-left")
        right = gr.Dropdown([FRDIFF], value=FRDIFF, label="slider: right", elem_id="slider-right")
    slider = gr.ImageSlider(label="drag to compare", type="pil", elem_id="slider", max_height=360, format="png")
    diffs = gr.Gallery(label=f"|run - full compute| x {cmp.DIFF_GAIN} per pixel (white: identical)", columns=4,
                       height="auto", object_fit="contain", elem_id="diffs", format="png")
    table = gr.Dataframe(headers=cmp.HEADERS, interactive=False, elem_id="results", wrap=True)
    notes = gr.Markdown(elem_id="compare-notes")
    with gr.Row(equal_height=True):
        live_on = gr.Checkbox(True, label="live: redo FRDiff at every edit of the policy, the mixing or the seed "
                              "(full compute is reused while the noise is the same)", elem_id="live-on")
        live_text = gr.Markdown(elem_id="live-numbers")
    with gr.Row():
        live_image = gr.Image(label="FRDiff, live", type="filepath", format="png", interactive=False,
                              elem_id="live-image")
        live_diff = gr.Image(label=f"|FRDiff - full compute| x {cmp.DIFF_GAIN}, live", type="filepath",
                             format="png", interactive=False, elem_id="live-diff")
    reference = gr.State(None)  # this session's last full-compute run, reused by the live runs
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="compare-json")
    exports = gr.File(label="downloads: every run's images (PNG), the policy (JSON), the table (CSV)",
                      file_count="multiple", interactive=False, elem_id="compare-exports")
    images = gr.State({})

    def generate(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, methods,
                 progress=gr.Progress()):
        runs, notes_, settings_ = cmp.compare(model, glyphs, scheduler, steps, editor, mixing, slope,
                                              bias, seed, methods, progress)
        rows = cmp.score(runs, settings_["model"], settings_["glyphs"])
        grids, diff_grids = cmp.grids(runs, len(settings_["glyphs"]))
        names = list(grids)
        caption = {r["method"]: f"{r['method']}: {r['network_calls']} calls, {r['psnr']:.1f} dB" for r in rows}
        text = "\n\n".join(notes_ + [
            "Times are one run each on the machine serving this app (shared CPU): measured speedups "
            "are indicative; `python -m frdiff bench` measures properly (warm-up, interleaved pairs, "
            "median). Counted speedup = full-compute MACs / MACs this run executed."])
        files = {n: image_file(g) for n, g in grids.items()}  # by path: see app/files.py
        key = [settings_[k] for k in ("model", "glyphs", "scheduler", "steps", "seed")]
        downloads = [image_file(g, cmp.file_stem(n)) for n, g in grids.items()] + [
            data_file(cmp.policy_json(model, steps, editor, settings_), "policy.json"),
            data_file(cmp.table_csv(rows), "metrics.csv")]
        return ([(f, caption[n]) for n, f in files.items()], (files[FULL], files[FRDIFF]),
                gr.Dropdown(choices=names, value=FULL), gr.Dropdown(choices=names, value=FRDIFF),
                [(image_file(g), caption[n]) for g, n in diff_grids],
                {"headers": cmp.HEADERS, "data": cmp.table_rows(rows)},
                text, settings_ | {"runs": rows, "notes": notes_}, files, {"key": key, "full": runs[0]}, downloads)

    run.click(safe(generate), [*settings, methods], [gallery, slider, left, right, diffs, table, notes,
                                                     numbers, images, reference, exports], api_name="generate",
              show_progress_on=[gallery], **runs)

    def live(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, on, ref):
        if not on:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        start = time.perf_counter()
        fr, full, row, ref = cmp.live(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, ref)
        shown, diff = cmp.grids([full, fr], row["glyphs"])
        text = (f"**FRDiff, live:** PSNR **{row['psnr']:.1f} dB**, SSIM {row['ssim']:.3f}, counted speedup "
                f"{row['counted_speedup']:.2f}x, {row['network_calls']} network calls, class agreement "
                f"{row['class_agreement']}/{row['glyphs']}; {time.perf_counter() - start:.2f} s for this update")
        return image_file(shown[FRDIFF]), image_file(diff[0][0]), text, ref

    # the FRDiff run only, redone at every edit; always_last: a burst of edits runs once, last
    gr.on([c.change for c in settings[4:]], safe(live), [*settings, live_on, reference],
          [live_image, live_diff, live_text, reference], api_name="live", api_visibility="undocumented",
          show_progress="minimal", **(runs | {"trigger_mode": "always_last"}))

    def pair(grids, a, b):
        if a not in grids or b not in grids:
            return gr.skip()
        return grids[a], grids[b]

    for dd in (left, right):
        dd.input(pair, [images, left, right], [slider], **CHEAP)


def _redundancy_tab(settings, policy, runs):
    gr.Markdown(REDUNDANCY_HELP)
    measure = gr.Button("Measure", variant="primary", elem_id="measure")
    heatmap = gr.Plot(label="per-block change", elem_id="heatmap")
    summary = gr.Markdown(elem_id="redundancy-summary")
    # any model's block names are accepted (API callers pick a DiT block without a measurement
    # first); an unknown one falls back to the first block of the measured model
    block = gr.Dropdown(list(blocks_of(DEFAULT[0])), value=list(blocks_of(DEFAULT[0]))[0], allow_custom_value=True,
                        label="block for the step x step matrix", elem_id="block")
    matrix = gr.Plot(label="step x step distance", elem_id="pairwise")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="similarity-json")
    data = gr.State({})
    model, steps, editor = settings[0], settings[3], settings[4]

    def keyframes(model, steps, editor):
        try:
            return policy_of(model, int(steps), editor).keyframes
        except (ValueError, TypeError):
            return None

    def similarity(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, block,
                   progress=gr.Progress()):
        progress(0, desc="one full-compute run, every block observed")
        d = redundancy.measure(model, glyphs, scheduler, steps, seed)
        marks = keyframes(model, steps, editor)
        chosen = block if block in d["blocks"] else d["blocks"][0]
        return (redundancy.heatmap(d, marks), redundancy.summary(d), gr.Dropdown(choices=d["blocks"], value=chosen),
                redundancy.matrix(d, chosen, marks), d, d, grid.change_matrix(d))

    measure.click(safe(similarity), [*settings, block],
                  [heatmap, summary, block, matrix, numbers, data, policy["change"]],
                  api_name="similarity", show_progress_on=[heatmap], **runs)

    def redraw(d, block, model, steps, editor):
        if not d or block not in d.get("blocks", []):
            return gr.skip()
        return redundancy.matrix(d, block, keyframes(model, steps, editor))

    block.input(redraw, [data, block, model, steps, editor], [matrix], **CHEAP)


def _frequency_tab(settings, policy, runs):
    gr.Markdown(FREQUENCY_HELP)
    run = gr.Button("Measure spectra", variant="primary", elem_id="spectra-run")
    lam = gr.Plot(label="lam(r)", elem_id="lam")
    scores = gr.Plot(label="spectra of the mixed predictions", elem_id="score-spectra")
    summary = gr.Markdown(elem_id="spectra-summary")
    final = gr.Plot(label="spectra of the final images", elem_id="image-spectra")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="spectra-json")

    def spectra(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, progress=gr.Progress()):
        progress(0, desc="one FRDiff run observed, then the image spectra")
        d = frequency.spectra(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed)
        score_fig, lam_fig, final_fig = frequency.figures(d)
        return score_fig, lam_fig, final_fig, frequency.summary(d), d

    run.click(safe(spectra), settings, [scores, lam, final, summary, numbers], api_name="spectra",
              show_progress_on=[scores], **runs)

    def lam_now(model, steps, editor, mixing, slope, bias):
        try:
            p, m = policy_of(model, int(steps), editor), mixing_of(mixing, slope, bias)
        except (ValueError, TypeError):
            return gr.skip()
        return lam_figure([m.lam(i, p.num_steps) for i in range(p.num_steps)],
                          [p.step_kind(i, m) for i in range(p.num_steps)])

    for control in policy["run"]:
        control.change(lam_now, policy["check"], [lam], **CHEAP)
    return lam_now, lam


def _learn_tab(settings, policy, runs):
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
    editor = settings[4]
    stages = {"profile": "timing each block on this server (once per model and glyph count)",
              "starts": "scoring the structured starts", "descent": "gradient descent on the gates",
              "compare": "comparing on your glyphs"}

    def learn(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, target, progress=gr.Progress()):
        s, goal = learning.settings(model, glyphs, scheduler, steps, mixing, slope, bias, seed, target)
        blocks = list(blocks_of(s.model))
        skip = gr.skip()
        progress(0, desc="timing block costs and the full-compute references")
        for event in learning.run(s, goal):
            kind = event[0]
            if kind == "progress":
                progress((event[2], event[3]), desc=stages[event[1]], unit="steps")
                # a yield at every step: a Stop (or a cancelled API call) closes this generator at
                # its next yield, so it acts within one tuner step, not at the next drawn policy
                yield skip, skip, skip, skip, skip
            elif kind == "start":
                yield (policy_figure(event[2], s.mixing, blocks),
                       f"Best structured start: **{event[1]}**. Now descending on its gates...", skip, skip, skip)
            elif kind == "check":
                c = event[1]
                yield (policy_figure(c.policy, s.mixing, blocks),
                       f"{c.family} family, iteration {c.iteration}: held-out loss {c.loss:.2e} "
                       f"(best so far {c.best_loss:.2e})", skip, skip, skip)
            elif kind == "error":
                if isinstance(event[1], learning.Stopped):
                    raise gr.Error(f"Learning stopped ({event[1]}): nothing was loaded into the editor.")
                raise event[1]
            else:
                d = event[1]
                result, rows = d["result"], d["rows"]
                shown, _ = cmp.grids(d["runs"], len(s.glyphs))
                caption = {r["method"]: f"{r['method']}: {r['measured_speedup']:.2f}x measured, {r['psnr']:.1f} dB"
                           for r in rows}
                text = learning.summary(result, rows, d["seconds"])
                yield (policy_figure(result.policy, s.mixing, blocks), text,
                       [(image_file(g), caption[n]) for n, g in shown.items()],
                       {"headers": cmp.HEADERS, "data": cmp.table_rows(rows)}, result.policy.to_text(blocks))

    event = start.click(safe(learn), [*settings, target], [figure, status, gallery, table, editor],
                        api_name="learn", show_progress_on=[figure], **runs)
    stop.click(None, None, None, cancels=[event], **CHEAP)


def _trajectory_tab(settings, runs):
    gr.Markdown(TRAJECTORY_HELP)
    with gr.Row():
        record = gr.Button("Record both runs", variant="primary", elem_id="trajectory-run")
        play = gr.Checkbox(False, label="play", elem_id="play")
    step = gr.Slider(0, DEFAULT[2] - 1, value=0, step=1, label="step", elem_id="trajectory-step")
    with gr.Row():
        full = gr.Image(label="full compute: predicted x0", type="pil", elem_id="x0-full", format="png")
        fast = gr.Image(label="FRDiff: predicted x0", type="pil", elem_id="x0-frdiff", format="png")
    text = gr.Markdown(elem_id="trajectory-text")
    curve = gr.Plot(label="distance per step", elem_id="trajectory-curve")
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="trajectory-json")
    data = gr.State({})
    timer = gr.Timer(0.3, active=False)

    def run(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, progress=gr.Progress()):
        progress(0, desc="full compute and FRDiff, every predicted x0 kept")
        d = trajectory.record(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed)
        frames = [trajectory.frame(d, i) for i in range(d["steps"])]  # rendered once: scrubbing only reads
        stored = {"frames": [(image_file(a), image_file(b), md) for a, b, md in frames],
                  "psnr": d["psnr"], "kinds": d["kinds"], "steps": d["steps"]}
        left, right, md = stored["frames"][0]
        return (stored, gr.Slider(maximum=d["steps"] - 1, value=0), left, right, md,
                distance_figure(d["psnr"], d["kinds"], 0), trajectory.numbers(d))

    record.click(safe(run), settings, [data, step, full, fast, text, curve, numbers],
                 api_name="trajectory", show_progress_on=[full, fast], **runs)

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


def _hub_tab(runs):
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
        full = gr.Image(label="full compute", type="filepath", format="png", elem_id="hub-full")
        fast = gr.Image(label="FRDiff", type="filepath", format="png", elem_id="hub-frdiff")
    text = gr.Markdown(elem_id="hub-numbers")

    def generate(model, prompt, steps, interval, mixing, seed):
        from frdiff.images import make_grid

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


def serve_locally(concurrency: int | None = None) -> tuple[gr.Blocks, str]:
    """Build the demo and serve it on a free localhost port without blocking: (demo, url)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(concurrency)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"

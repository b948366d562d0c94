"""The Compare tab: full compute, FRDiff and the baselines from the same noise; live FRDiff at every edit."""

from __future__ import annotations

import time

import gradio as gr

from .. import compare as cmp
from .. import first
from ..errors import safe
from ..files import data_file, image_file
from ..methods import DEFAULT_METHODS, FRDIFF, FULL, OPTIONAL
from ..texts import COMPARE_HELP
from .common import CHEAP, Controls


def build(demo, c: Controls, runs: dict):
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
                              elem_id="live-image",
                              alt_text="the glyphs sampled with FRDiff under the current policy")
        live_diff = gr.Image(label=f"|FRDiff - full compute| x {cmp.DIFF_GAIN}, live", type="filepath",
                             format="png", interactive=False, elem_id="live-diff",
                             alt_text="where FRDiff differs from full compute: white is identical")
    reference = gr.State(None)  # this session's last full-compute run, reused by the live runs
    with gr.Accordion("numbers (JSON)", open=False):
        numbers = gr.JSON(elem_id="compare-json")
    exports = gr.File(label="downloads: every run's images (PNG), the policy (JSON), the table (CSV)",
                      file_count="multiple", interactive=False, elem_id="compare-exports")
    images = gr.State({})

    def generate(model, glyphs, scheduler, steps, editor, mixing, slope, bias, seed, methods,
                 progress=gr.Progress()):
        """Sample glyphs with full compute, with FRDiff under a keyframe policy and with the chosen
        baselines, from the same noise; returns the images and each run's calls, time, speedups,
        PSNR, SSIM and class agreement.

        Args:
            model: glyph-unet, glyph-dit or glyph-flux
            glyphs: the characters to draw, e.g. "A7K3" (at most 8)
            scheduler: DDIM, DPM-Solver++ or Euler
            steps: sampling steps (4 to 100)
            editor: the keyframe policy: a name (uniform:2, deep:2, tuned:2.0, magnitude:0.2, mask:fast) or a text grid
            mixing: score mixing on (true) or off
            slope: score mixing's slope k (1 to 100; default 30)
            bias: score mixing's bias b (0 to 1; default 0.5)
            seed: the noise seed
            methods: optional runs beside full compute and FRDiff: fr-only, reduced-nfe, fewer-steps, auto-fr, peer
        """
        runs, notes_, settings_ = first.remember(cmp.compare, model, glyphs, scheduler, steps, editor, mixing,
                                                 slope, bias, seed, methods, progress)
        rows = cmp.score(runs, settings_["model"], settings_["glyphs"])
        grids, diff_grids = cmp.grids(runs, len(settings_["glyphs"]))
        names = list(grids)
        caption = {r["method"]: f"{r['method']}: {r['network_calls']} calls, {r['psnr']:.1f} dB" for r in rows}
        text = "\n\n".join(([first.NOTE] if first.FIRST.get() else []) + notes_ + [
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

    outputs = [gallery, slider, left, right, diffs, table, notes, numbers, images, reference, exports]
    run.click(safe(generate), [*c.all, methods], outputs, api_name="generate", show_progress_on=[gallery], **runs)
    first.register("compare", safe(generate), [*c.all, methods], outputs, demo, button=run)

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
    gr.on([x.change for x in [*c.policy, c.seed]], safe(live), [*c.all, live_on, reference],
          [live_image, live_diff, live_text, reference], api_name="live", api_visibility="undocumented",
          show_progress="minimal", **(runs | {"trigger_mode": "always_last"}))

    def pair(grids, a, b):
        if a not in grids or b not in grids:
            return gr.skip()
        return grids[a], grids[b]

    for dd in (left, right):
        dd.input(pair, [images, left, right], [slider], **CHEAP)

"""The words of the app: the guided path and each tab's explanation."""

INTRO = """# frdiff: feature reuse for diffusion models
A diffusion model runs the same network 50 times, and from one step to the next most of its
blocks barely change. **FRDiff** caches each block's expensive part at *keyframe* steps and
reuses it in between, keeping the time conditioning and the residual paths fresh; **score
mixing** blends in the keyframe's own prediction early on, where it is the better guess.
Everything here runs on small glyph generators trained by this project, on the CPU: a pixel
UNet and an adaLN DiT (v-prediction, DDIM), and **glyph-flux**, a FLUX transformer (2 dual-stream
blocks, where text and image tokens keep separate weights, then 4 single-stream blocks) trained
by rectified flow and sampled with Euler: pick it to see the same ideas on a 2026-style model.

**First time here?** Follow the four steps below: each opens its tab and says what to try.
Edit the policy (the grid under the settings) at any point: every tab uses it."""

# the guided path: (tab id, button, what to try there)
GUIDE = (
    ("redundancy", "1. See the redundancy",
     "**1. See the redundancy.** Press **Measure**: one full-compute run, every block watched. Dark "
     "cells changed little since the step before: those blocks could have reused their last output. "
     "Notice which blocks stay dark longest, and that the change is largest near the end of sampling."),
    ("compare", "2. Reuse it (FR)",
     "**2. Reuse it.** Tick *FR only (mixing off)* and press **Generate**: feature reuse computes the "
     "expensive part of each block only at keyframes. Compare it with *Fewer steps* at the same counted "
     "compute, then paint some cells of the grid (click cycles K / F / S) and watch the live result."),
    ("frequency", "3. Mix it (score mixing)",
     "**3. Mix it.** Press **Measure spectra**. The keyframe's own prediction (reduced NFE) is right "
     "about the coarse shapes and wrong about detail; feature reuse is the other way round. Score mixing "
     "blends the two along lam(t): move the *mixing slope* and *bias* sliders and watch lam and the error."),
    ("learn", "4. Learn it (Auto-FR)",
     "**4. Learn it.** Pick a target speedup and press **Learn a policy**. The tuner starts from the "
     "best structured policy and descends on per-step, per-block gates; the grid shows each policy it "
     "checks. The result lands in the editor, compared with uniform reuse and fewer steps of the same cost."),
)

EDITOR_HELP = """One row per block, one letter per step: K compute (keyframe), F feature reuse
(reuse the block's expensive part, recompute the rest), S skip the block (reuse its whole
output), R residual reuse (DiT and FLUX blocks and a UNet's mid block: the block's current
input plus its cached residual, per stream, as MagCache does), N no network call at this step
(a whole column: the keyframe's prediction is reused, as with fewer steps). Spaces are
ignored; step 0 must be all K. With score mixing, early non-keyframe steps (lam = 0) make no
call either (white in the grid). Or name a policy: uniform:3, deep:2, inner-residual:3,
magnitude:0.2, mask:fast or tuned:2.0 (made for the run's steps)."""

AB_HELP = """**Two policies, side by side.** Type a name (uniform:3, deep:2, tuned:2.0, magnitude:0.2,
mask:fast) or paste a text grid for each (*A = the editor's policy* copies what you painted or
learned). Both run from the same noise and glyphs with the mixing above, beside full compute:
their images, the slider between them, where they differ, what each costs, and, step by step,
how far each one's predicted x0 is from full compute's and from the other's."""

COMPARE_HELP = """Every run starts from the same noise and glyphs. **Full compute** is the reference;
**FRDiff** uses the policy above. Add *FR only* and *reduced NFE only* to see the two halves
of FRDiff apart, *fewer steps* at FRDiff's counted compute (the shortcut most users pick),
the *Auto-FR* policy shipped for this sampler and step count, and the peer that applies to
the model (DeepCache on the UNet, diffusers' MagCache hook on the DiT and on glyph-flux). A cached run is a
different sample close to the full one, not the same sample faster: the PSNR, SSIM and the
classifier's agreement say how close."""

REDUNDANCY_HELP = """Feature reuse works because a block's output barely changes between neighbouring
steps. **Measure** runs the model once at full compute and records every block's output at
every step. The heatmap shows each block's change from the previous step (dark: cheap to
reuse); the matrix shows, for one block, the distance between its outputs at *any* two steps,
so you can see how far a cache can be carried (dotted lines: your policy's keyframes)."""

FREQUENCY_HELP = """Why mix? At every reuse step of one FRDiff run, frdiff records the keyframe's
prediction (what reduced NFE would use), the feature-reuse output, the mix the sampler actually
used, and, for this analysis only, the full-compute prediction at the same input. The spectra
show each one's error per spatial frequency. The paper's argument: the keyframe's prediction
keeps the coarse structure but misses detail, feature reuse keeps detail, so a mix beats both.
The table under the plot says whether that holds for *this* run. The lam curve follows your
mixing sliders live; the last plot is the final images' error spectra."""

LEARN_HELP = """**Auto-FR** learns which cells to compute: it scores structured starts (uniform keyframes,
whole-block and residual reuse, the magnitude schedule of MagCache's rule, no-call steps), then
does gradient descent on soft per-step, per-block gates through the real sampler, with the time
held to your target: each block is timed once on this server (a few seconds, the first time a
model and glyph count is learned), so the target is a speedup of the clock, not of counted
operations. Each check projects the gates to a policy (shown below) and scores it on held-out
images. It stops after a capped number of iterations (*Stop* ends it within a step, and nothing
is loaded). The result is compared on your glyphs and seed, which the tuner never saw, with
uniform FR of the same estimated time and with fewer steps."""

TRAJECTORY_HELP = """The sample x_t looks like static for half the run, so this shows the **predicted
x0** (what the network thinks the clean image is) at every step, for full compute and FRDiff
from the same noise. **Record** runs both once; the slider and *play* then only read the
stored run, so scrubbing is instant. Watch the distance dip at reuse steps and recover at
keyframes."""

HUB_HELP = """Real models from the Hugging Face Hub: Stable Diffusion 1.5, SDXL, PixArt-alpha and
class-conditional DiT-XL/2 in fp16; the flow-matching transformers FLUX.1-schnell, FLUX.1-dev,
SD3.5-medium, Qwen-Image and the text-to-video Wan 2.1 1.3B (shown as a strip of frames) in bf16;
each at its native resolution, full compute beside FRDiff (uniform feature reuse, with or without
score mixing) from the same noise. Picking a model sets its steps and recommended keyframe
interval (FLUX.1-schnell's 4 steps leave caching little room: full compute is recommended). They
are offered where this Space has a GPU (ZeroGPU included) and can reach the Hub; only these ids
load, with their diffusers pipeline class named in the code and no remote code."""

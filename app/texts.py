"""The words of the app: the guided path and each tab's explanation."""

INTRO = """# frdiff: feature reuse for diffusion models
A diffusion model runs the same network 50 times, and from one step to the next most of its
blocks barely change. **FRDiff** caches each block's expensive part at *keyframe* steps and
reuses it in between, keeping the time conditioning and the residual paths fresh; **score
mixing** blends in the keyframe's own prediction early on, where it is the better guess.
Everything here runs on small glyph generators trained by this project, on the CPU.

**First time here?** 1. **Compare**: press *Generate* and see full compute, FRDiff and the
shortcuts people use instead, from the same noise. 2. **Temporal redundancy**: see *why*
reuse works (which blocks change little, and when). 3. **Frequency**: see what each shortcut
gets wrong, and why mixing the two predictions beats both. 4. **Trajectory**: scrub through the
predicted images of both runs, step by step. Edit the policy below at any point and re-run."""

EDITOR_HELP = """One row per block, one letter per step: K compute (keyframe), F feature reuse
(reuse the block's expensive part, recompute the rest), S skip the block (reuse its whole
output), R residual reuse (DiT blocks and a UNet's mid block: the block's current input plus
its cached residual, as MagCache does), N no network call at this step (a whole column: the keyframe's prediction is
reused, as with fewer steps). Spaces are ignored; step 0 must be all K. With score mixing,
early non-keyframe steps (lam = 0) make no call either (white in the grid)."""

COMPARE_HELP = """Every run starts from the same noise and glyphs. **Full compute** is the reference;
**FRDiff** uses the policy above. Add *FR only* and *reduced NFE only* to see the two halves
of FRDiff apart, *fewer steps* at FRDiff's counted compute (the shortcut most users pick),
the *Auto-FR* policy shipped for this sampler and step count, and the peer that applies to
the model (DeepCache on the UNet, diffusers' MagCache hook on the DiT). A cached run is a
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

TRAJECTORY_HELP = """The sample x_t looks like static for half the run, so this shows the **predicted
x0** (what the network thinks the clean image is) at every step, for full compute and FRDiff
from the same noise. **Record** runs both once; the slider and *play* then only read the
stored run, so scrubbing is instant. Watch the distance dip at reuse steps and recover at
keyframes."""

"""The Frequency tab: which frequencies each shortcut gets wrong, where score mixing happens."""

from __future__ import annotations

from frdiff.analysis import frequency_comparison, score_spectra
from frdiff.metrics import band_errors

from . import inputs
from .models import POOL
from .plots import lam_figure, score_spectra_figure, spectrum_figure


def spectra(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed) -> dict:
    """Error spectra of eps_key, eps_FR and the mix per reuse step, and of the final images."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed)
    interval = max(2, round(s.steps / len(s.policy.keyframes)))  # the uniform one nearest the policy
    with POOL.borrow(s.model, s.scheduler) as pipe:
        scores = score_spectra(pipe, s.policy, s.mixing, s.steps, seed=s.seed, class_labels=s.glyphs)
        images = frequency_comparison(pipe, s.steps, interval=interval, seed=s.seed, class_labels=s.glyphs)
    score_data = scores.as_dict()
    score_data["per_step"] = {str(k): v for k, v in score_data["per_step"].items()}  # JSON keys
    return {"scores": score_data, "images": images.as_dict(),
            "lam_curve": [s.mixing.lam(i, s.steps) for i in range(s.steps)], "kinds": scores.kinds}


def figures(data: dict):
    s = data["scores"]
    score_fig = score_spectra_figure(s["bands"], s["mean"], s["space"])
    lam_fig = lam_figure(data["lam_curve"], s["kinds"])
    img = data["images"]
    final = spectrum_figure(img["bands"], {k: v["error_spectrum"] for k, v in img["runs"].items()},
                            "final images: error power per frequency vs full compute")
    return score_fig, lam_fig, final


LABELS = {"eps_key": "the keyframe's prediction (reduced NFE)", "eps_fr": "feature reuse (FR)",
          "mixed": "score mixing (what the sampler used)"}


def prediction_band_errors(mean: dict) -> dict[str, tuple[float, float]]:
    """Each prediction's mean relative error power in the low and high bands (metrics.BANDS)."""
    return {name: tuple(band_errors(mean[name])[b] for b in ("low", "high")) for name in LABELS}


def summary(data: dict) -> str:
    """The table of low/high-band errors and what it says, measured, not assumed."""
    s = data["scores"]
    if not s["mean"]:
        return ("No step of this policy mixes (0 < lam < 1): every reuse step is pure FR or pure "
                "reduced NFE. Move the mixing bias or slope so the ramp crosses reuse steps.")
    errors = prediction_band_errors(s["mean"])
    rows = ["| prediction | low-frequency error | high-frequency error |", "|---|---|---|"]
    rows += [f"| {LABELS[n]} | {lo:.3g} | {hi:.3g} |" for n, (lo, hi) in errors.items()]
    best = {band: min(errors, key=lambda n: errors[n][i]) for i, band in enumerate(("low", "high"))}
    paper = errors["eps_key"][0] < errors["eps_fr"][0] and errors["eps_fr"][1] < errors["eps_key"][1]
    verdict = (f"Here the lowest low-frequency error is {LABELS[best['low']]}'s and the lowest "
               f"high-frequency error {LABELS[best['high']]}'s. The paper's picture (the keyframe's "
               "prediction better at low frequencies, FR better at high ones) "
               + ("**holds** for this run." if paper else "**does not hold** for this run: see the plot "
                  "for where each one errs."))
    steps = sum(1 for v in s["lam"] if 0 < v < 1)
    return ("Error power relative to the full-compute prediction at the same input, averaged over "
            f"the {steps} steps where 0 < lam < 1 (low: the lowest quarter of the bands; high: the "
            "upper half).\n\n" + "\n".join(rows) + "\n\n" + verdict)

"""The Frequency tab: which frequencies each shortcut gets wrong, where score mixing happens."""

from __future__ import annotations

from frdiff.analysis import frequency_comparison, score_spectra

from . import inputs
from .models import POOL
from .plots import lam_figure, score_spectra_figure, spectrum_figure


def spectra(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed) -> dict:
    """Error spectra of eps_key, eps_FR and the mix per reuse step, and of the final images."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_text, mixing_on, slope, bias, seed)
    model, chars, scheduler, steps, policy, mixing, seed = (s.model, s.glyphs, s.scheduler, s.steps,
                                                            s.policy, s.mixing, s.seed)
    with POOL.borrow(model, scheduler) as pipe:
        scores = score_spectra(pipe, policy, mixing, steps, seed=seed, class_labels=chars)
        images = frequency_comparison(pipe, steps, interval=max(2, round(steps / max(1, len(policy.keyframes)))),
                                      seed=seed, class_labels=chars)
    score_data = scores.as_dict()
    score_data["per_step"] = {str(k): v for k, v in score_data["per_step"].items()}  # JSON keys
    return {"scores": score_data, "images": images.as_dict(),
            "lam_curve": [mixing.lam(i, steps) for i in range(steps)], "kinds": scores.kinds}


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


def band_errors(mean: dict, bands: int) -> dict[str, tuple[float, float]]:
    """Mean relative error power of each prediction in the low (lowest quarter) and high (upper half) bands."""
    lo, hi = slice(0, max(1, bands // 4)), slice(bands // 2, bands)
    avg = lambda values: sum(values) / len(values)  # noqa: E731
    return {name: (avg(mean[name][lo]), avg(mean[name][hi])) for name in LABELS}


def summary(data: dict) -> str:
    """The table of low/high-band errors and what it says, measured, not assumed."""
    s = data["scores"]
    if not s["mean"]:
        return ("No step of this policy mixes (0 < lam < 1): every reuse step is pure FR or pure "
                "reduced NFE. Move the mixing bias or slope so the ramp crosses reuse steps.")
    errors = band_errors(s["mean"], len(s["bands"]))
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

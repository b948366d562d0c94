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


def summary(data: dict) -> str:
    s = data["scores"]
    if not s["mean"]:
        return ("No step of this policy mixes (0 < lam < 1): every reuse step is pure FR or pure "
                "reduced NFE. Move the mixing bias or slope so the ramp crosses reuse steps.")
    bands = len(s["bands"])
    lo, hi = slice(0, max(1, bands // 4)), slice(bands // 2, bands)

    def mean(name, part):
        values = s["mean"][name][part]
        return sum(values) / len(values)

    rows = ["| prediction | low-frequency error | high-frequency error |", "|---|---|---|"]
    for name, label in (("eps_key", "keyframe's (reduced NFE)"), ("eps_fr", "feature reuse (FR)"),
                        ("mixed", "score mixing (used)")):
        rows.append(f"| {label} | {mean(name, lo):.3g} | {mean(name, hi):.3g} |")
    return ("Error power relative to the full-compute prediction at the same input, averaged over "
            f"the {sum(1 for v in s['lam'] if 0 < v < 1)} steps where 0 < lam < 1 (low: the lowest "
            "quarter of the bands; high: the upper half).\n\n" + "\n".join(rows))

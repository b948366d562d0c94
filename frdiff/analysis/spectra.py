"""Where in frequency each shortcut loses detail (method.md section 3).

    freq = frdiff.analysis.frequency_comparison(pipe, 50, interval=2, class_labels=["A", "7"])
    freq.runs["FR only"]["error_spectrum"]   # P(images - full) / P(full) per radial band

The frequency picture of score mixing on the final images: from the same noise, full
compute is the reference, and "fewer steps" (N / interval steps), "reduced NFE" (lam = 0 at
every non-keyframe step), "FR only", "FRDiff" (FR + score mixing) and the plain sampler with
as many steps as FRDiff's counted compute buys are each compared with it band by band
(`frdiff.metrics.error_spectrum`).

    spec = frdiff.analysis.score_spectra(pipe, policy, ScoreMixing(), 50, class_labels=["A", "7"])
    spec.mean["eps_key"], spec.mean["eps_fr"], spec.mean["mixed"]

The same argument where it happens: along one FRDiff run, at every reuse step, the keyframe's
prediction eps_key (reduced NFE), the FR output eps_FR and their mix are each compared with
the full-compute prediction at the same input. Reduced NFE should err at high frequencies,
FR at low ones, and the mix below both.

Both use `accelerate`, which restores every replaced forward when it returns; the pipeline
itself is not changed.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import torch

from ..accelerate import accelerate
from ..metrics import error_spectrum, psnr, radial_power_spectrum
from ..mixing import MixEvent, ScoreMixing, in_space
from ..policy import KeyframePolicy
from ..noise import noise_schedule
from ..pytree import sample_of
from ..targets import denoiser_of

MATCHED = "fewer steps, FRDiff's compute"
PREDICTIONS = ("eps_key", "eps_fr", "mixed")  # named as the paper, whatever the space


@dataclass
class FrequencyComparison:
    bands: list[int]  # radial frequency, cycles per image
    runs: dict[str, dict]  # name -> error_spectrum (per band), psnr (dB vs full), ideal_speedup
    reference_spectrum: list[float]  # radial power of the full-compute images

    def as_dict(self) -> dict:
        return {"bands": self.bands, "runs": self.runs, "reference_spectrum": self.reference_spectrum}


def _images_tensor(images) -> torch.Tensor:
    """Pipeline images as (N, C, H, W) floats (a "pt" output, or an (N, H, W, C) array)."""
    if isinstance(images, torch.Tensor):
        return images.detach().float().cpu()
    return torch.as_tensor(images).float().permute(0, 3, 1, 2)


def _refuse_own_kwargs(call_kwargs: dict, name: str) -> None:
    for key in ("generator", "output_type"):
        if key in call_kwargs:
            raise ValueError(f"{name} sets {key!r} itself (every run starts from `seed`)")


def frequency_comparison(pipe, num_inference_steps: int = 50, interval: int = 2, seed: int = 0,
                         **call_kwargs) -> FrequencyComparison:
    """Full compute vs fewer steps, reduced NFE, FR only and FRDiff, band by band, all from the
    same noise (a fresh generator seeded with `seed` per run). `call_kwargs` go to the pipeline
    (labels or prompt embeddings...); images are requested with output_type="pt"."""
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be an integer >= 1, got {interval!r}")
    _refuse_own_kwargs(call_kwargs, "frequency_comparison")

    def sample(steps: int) -> torch.Tensor:
        out = pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                   output_type="pt", **call_kwargs)
        return _images_tensor(out.images)

    reference = sample(num_inference_steps)
    fewer = max(1, round(num_inference_steps / interval))
    results = {"fewer steps": (sample(fewer), num_inference_steps / fewer)}
    policy = KeyframePolicy.uniform(num_inference_steps, interval)
    mixings = {"reduced NFE (lam = 0)": ScoreMixing.reduced_nfe(),
               "FR only": ScoreMixing.off(), "FRDiff (FR + mixing)": ScoreMixing()}
    for name, mixing in mixings.items():
        with accelerate(pipe, policy, mixing) as run:
            images = sample(num_inference_steps)
        results[name] = (images, run.stats.ideal_speedup)
    # the shortcut a user would pick instead of FRDiff: as many plain steps as FRDiff's compute buys
    matched = max(1, round(num_inference_steps / results["FRDiff (FR + mixing)"][1]))
    results[MATCHED] = (sample(matched), num_inference_steps / matched)
    runs = {name: {"error_spectrum": error_spectrum(images, reference).tolist(),
                   "psnr": psnr(images, reference), "ideal_speedup": float(speedup)}
            for name, (images, speedup) in results.items()}
    spectrum = radial_power_spectrum(reference)
    return FrequencyComparison(list(range(len(spectrum))), runs, spectrum.tolist())


@dataclass
class ScoreSpectra:
    """Error spectra of eps_key, eps_FR and the mix vs full compute, per reuse step."""

    bands: list[int]  # radial frequency, cycles per image ([] when no step reuses)
    lam: list[float]  # per step; 1.0 at keyframes, 0.0 where no call is made
    kinds: list[str]  # per step: "keyframe", "reuse" or "no call" (KeyframePolicy.step_kind)
    per_step: dict[int, dict[str, list[float]]]  # reuse step -> name in PREDICTIONS -> per band
    mean: dict[str, list[float]] | None  # over the steps with 0 < lam < 1 (None: no such step)
    space: str  # "eps" or "x0": the space score mixing blends in (x0 for DPM-Solver++)
    images: torch.Tensor  # the run's final images (output_type="pt")

    def as_dict(self) -> dict:
        return {"bands": self.bands, "lam": self.lam, "kinds": self.kinds,
                "per_step": self.per_step, "mean": self.mean, "space": self.space}


def full_compute_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` sharing its parameters and buffers, whose forwards nothing replaces."""
    if getattr(model, "_frdiff_run", None) is not None:
        raise RuntimeError("the model is inside an accelerate() context; leave it first")
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo=shared)


def score_spectra(pipe, policy: KeyframePolicy, mixing: ScoreMixing | None,
                  num_inference_steps: int, seed: int = 0, **call_kwargs) -> ScoreSpectra:
    """One accelerated run (seeded with `seed`); at every model call of every reuse step, the
    error spectrum P(pred - full) / P(full) of eps_key, eps_FR and the mixed prediction against
    the full-compute prediction at the same input, over the first x.shape[1] channels. At
    lam = 0 steps eps_FR comes from an analysis-only FR forward that leaves the run as it was
    (none at N steps: "eps_fr" is absent there). `call_kwargs` go to the pipeline."""
    if not isinstance(policy, KeyframePolicy):
        raise TypeError(f"score_spectra needs a KeyframePolicy, got {type(policy).__name__}")
    if policy.num_steps != num_inference_steps:
        raise ValueError(f"the policy covers {policy.num_steps} steps, not {num_inference_steps}")
    noise_schedule(pipe.scheduler)  # a ValueError where outputs cannot be split into eps, x0
    _refuse_own_kwargs(call_kwargs, "score_spectra")
    mixing = mixing if mixing is not None else ScoreMixing.off()
    full = full_compute_twin(denoiser_of(pipe))
    calls: dict[int, list[dict[str, torch.Tensor]]] = {}

    def observe(event: MixEvent) -> None:
        with torch.no_grad():
            reference = sample_of(full(*event.args, **event.kwargs))
        c = event.x.shape[1]
        preds = {"full": in_space(event.space, reference, event.x, event.alpha, event.sigma,
                                  event.prediction_type),
                 "eps_key": event.key, "eps_fr": event.fr, "mixed": event.mixed}
        calls.setdefault(event.step, []).append(
            {k: v[:, :c].detach().float().cpu() for k, v in preds.items() if v is not None})

    with accelerate(pipe, policy, mixing) as run:
        run.observer = observe
        out = pipe(num_inference_steps=num_inference_steps, output_type="pt",
                   generator=torch.Generator().manual_seed(seed), **call_kwargs)
    lam = [1.0 if policy.is_keyframe(s) else policy.reuse_weight(s, mixing)
           for s in range(num_inference_steps)]
    per_step = {step: _step_spectra(records) for step, records in sorted(calls.items())}
    bands = len(next(iter(per_step.values()))["eps_key"]) if per_step else 0
    return ScoreSpectra(list(range(bands)), lam,
                        [policy.step_kind(s, mixing) for s in range(num_inference_steps)],
                        per_step, _mean_spectra(per_step, lam), run.space,
                        _images_tensor(out.images))


def _step_spectra(records: list[dict[str, torch.Tensor]]) -> dict[str, list[float]]:
    """Per prediction, the error spectrum over every model call (CFG branch) of one step."""
    spectra = {}
    for name in PREDICTIONS:
        calls = [r for r in records if name in r]
        if calls:
            pred = torch.cat([r[name] for r in calls])
            spectra[name] = error_spectrum(pred, torch.cat([r["full"] for r in calls])).tolist()
    return spectra


def _mean_spectra(per_step: dict[int, dict[str, list[float]]],
                  lam: list[float]) -> dict[str, list[float]] | None:
    """Band by band mean over the steps where score mixing blends (0 < lam < 1)."""
    mixing = [per_step[s] for s in per_step if 0.0 < lam[s] < 1.0]
    if not mixing:
        return None
    names = [n for n in PREDICTIONS if all(n in spectra for spectra in mixing)]
    return {n: torch.tensor([spectra[n] for spectra in mixing], dtype=torch.float64).mean(0).tolist()
            for n in names}

"""Radial power spectra, the frequency comparison of section 3, and its figure."""

import math

import pytest
import torch

from frdiff.metrics import error_spectrum, radial_power_spectrum

torch.set_num_threads(1)


def _sinusoid(k: int, h: int, w: int) -> torch.Tensor:
    """cos(2 pi k x / W): k cycles across the image, constant along y."""
    x = torch.arange(w, dtype=torch.float64)
    return torch.cos(2 * math.pi * k * x / w).expand(1, 1, h, w).float()


@pytest.mark.parametrize("h, w", [(32, 32), (24, 40), (33, 17)])
def test_sinusoid_puts_its_power_in_its_band(h, w):
    bands = min(h, w) // 2 + 1
    for k in (1, 3, bands - 2):
        spec = radial_power_spectrum(_sinusoid(k, h, w))
        assert spec.shape == (bands,)
        assert int(spec.argmax()) == k
        others = torch.cat([spec[:k], spec[k + 1:]])
        assert float(others.max()) < 1e-9 * float(spec[k])
        along_y = _sinusoid(k, w, h).transpose(-1, -2)  # k cycles down the image
        assert int(radial_power_spectrum(along_y).argmax()) == k


def test_spectrum_averages_images_and_channels_and_parseval():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 2, 16, 16, generator=g)
    spec = radial_power_spectrum(a)
    singles = torch.stack([radial_power_spectrum(a[i:i + 1, c:c + 1]) for i in range(3) for c in range(2)])
    assert torch.allclose(spec, singles.mean(0), rtol=1e-5)
    # a constant image: all of its power (H W c^2 with the orthonormal FFT) in band 0
    const = torch.full((1, 1, 8, 8), 0.5)
    assert torch.allclose(radial_power_spectrum(const), torch.tensor([16.0, 0, 0, 0, 0]))


def _textured(seed: int = 0) -> torch.Tensor:
    """Images with power in every band: smooth structure plus fine noise, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4, generator=g), size=32,
                                             mode="bilinear", align_corners=False)
    return (0.8 * coarse + 0.2 * torch.rand(4, 3, 32, 32, generator=g)).clamp(0, 1)


def test_error_spectrum_locates_the_error():
    ref = _textured()
    assert torch.equal(error_spectrum(ref, ref), torch.zeros(17))
    # fine noise: Laplacian-filtered white noise, its power rising with frequency
    g = torch.Generator().manual_seed(1)
    white = torch.randn(ref.shape, generator=g)
    lap = 4 * white - sum(white.roll(s, d) for s in (1, -1) for d in (-1, -2))
    high = error_spectrum(ref + 0.01 * lap, ref)
    assert float(high[12:].mean()) > 100 * float(high[:4].mean())
    # a blur removes the fine detail: its error is in the high bands too
    blurred = torch.nn.functional.avg_pool2d(ref, 3, stride=1, padding=1, count_include_pad=False)
    blur = error_spectrum(blurred, ref)
    assert float(blur[12:].mean()) > 10 * float(blur[:4].mean())
    assert int(blur.argmax()) >= 10
    # a brightness offset is a band-0 error only
    offset = error_spectrum(ref + 0.05, ref)
    assert float(offset[0]) > 1e-4 and float(offset[1:].abs().max()) < 1e-9


def test_frequency_comparison_runs(tiny_pipe):
    from frdiff.analysis import frequency_comparison

    labels = ["A", "7", "2"]
    cmp = frequency_comparison(tiny_pipe, 6, interval=2, class_labels=labels)
    assert cmp.bands == list(range(9))  # 16 x 16 images
    assert set(cmp.runs) == {"fewer steps", "reduced NFE (lam = 0)", "FR only", "FRDiff (FR + mixing)",
                            "fewer steps, FRDiff's compute"}
    assert "full compute" not in cmp.runs and len(cmp.reference_spectrum) == 9
    for run in cmp.runs.values():
        assert len(run["error_spectrum"]) == 9 and all(math.isfinite(e) and e >= 0 for e in run["error_spectrum"])
        assert run["psnr"] < 100 and run["ideal_speedup"] > 1
    assert cmp.runs["fewer steps"]["ideal_speedup"] == 2.0
    matched = cmp.runs["fewer steps, FRDiff's compute"]["ideal_speedup"]
    assert matched == 6 / round(6 / cmp.runs["FRDiff (FR + mixing)"]["ideal_speedup"])
    assert cmp.as_dict()["runs"] == cmp.runs
    # interval 1: every step a keyframe, so FR and FRDiff reproduce full compute bit for bit
    exact = frequency_comparison(tiny_pipe, 6, interval=1, class_labels=labels)
    for name in exact.runs:
        assert exact.runs[name]["error_spectrum"] == [0.0] * 9
        assert exact.runs[name]["psnr"] == 100.0
    assert exact.reference_spectrum == cmp.reference_spectrum
    # accelerate undid everything
    assert all("forward" not in m.__dict__ for m in tiny_pipe.denoiser.modules())
    assert "step" not in tiny_pipe.scheduler.__dict__ and "set_timesteps" not in tiny_pipe.scheduler.__dict__
    with pytest.raises(ValueError, match="generator"):
        frequency_comparison(tiny_pipe, 6, class_labels=labels, generator=torch.Generator())


def test_spectra_figure_is_written(tmp_path):
    from analysis.spectra import draw, table

    runs = {name: {"error_spectrum": [1e-4 * (1 + b) ** p for b in range(17)], "psnr": 30.0 + p,
                   "ideal_speedup": 2.5}
            for p, name in enumerate(["fewer steps", "reduced NFE (lam = 0)", "FR only", "FRDiff (FR + mixing)"])}
    model = {"bands": list(range(17)), "runs": runs, "reference_spectrum": [10.0 / (1 + b) for b in range(17)]}
    results = {"models": {"glyph-unet": model, "glyph-dit": model}, "steps": 50, "interval": 3,
               "samples": 4, "machine": {"cpu": "cpu", "threads": 1}}
    out = tmp_path / "s.png"
    draw(results, str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = table(model)
    assert text.count("\n") == 5 and "FR only" in text and "32.0" in text

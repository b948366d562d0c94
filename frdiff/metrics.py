"""Quality maths as pure functions of tensors: PSNR, SSIM, Frechet distance, accuracy, spectra.

Images are float tensors in [0, 1], shape (N, C, H, W), unless a function says otherwise.
"""

from __future__ import annotations

import numpy as np
import torch


def psnr(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over images of 10 log10(1 / MSE), capped at 100 dB for identical images."""
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    values = 10 * torch.log10(1.0 / mse.clamp(min=1e-10))
    return float(values.clamp(max=100.0).mean())


def radial_power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean |FFT2|^2 (ortho) over images and channels, per integer radial frequency 0..min(H, W)//2."""
    h, w = images.shape[-2:]
    power = torch.fft.fft2(images.double(), norm="ortho").abs().pow(2).flatten(0, -3).mean(0)
    fy = torch.fft.fftfreq(h, dtype=torch.float64) * h  # cycles per image, along each axis
    fx = torch.fft.fftfreq(w, dtype=torch.float64) * w
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).round().long().flatten()
    bands = min(h, w) // 2 + 1
    keep = radius < bands  # the corners beyond the inscribed circle are dropped
    total = torch.zeros(bands, dtype=torch.float64).index_add_(0, radius[keep], power.flatten()[keep])
    count = torch.zeros(bands, dtype=torch.float64).index_add_(
        0, radius[keep], torch.ones_like(power.flatten()[keep]))
    return (total / count.clamp(min=1)).float()


def error_spectrum(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Relative error power per radial band: P(images - reference) / P(reference)."""
    error = radial_power_spectrum(images.double() - reference.double())
    return error / radial_power_spectrum(reference).clamp(min=1e-20)


BANDS = {"low": "the lowest quarter of the radial bands", "mid": "the second quarter",
         "high": "the upper half"}


def band_groups(num_bands: int) -> dict[str, range]:
    """The one split of radial frequency bands frdiff reports (see BANDS)."""
    quarter, half = max(1, num_bands // 4), max(1, num_bands // 2)
    return {"low": range(0, quarter), "mid": range(quarter, max(quarter, half)),
            "high": range(max(quarter, half), num_bands)}


def band_errors(spectrum) -> dict[str, float]:
    """Mean of a relative error spectrum (error_spectrum's P(err) / P(ref), per band) over
    each group of `band_groups`; a group with no band (tiny images) is NaN."""
    values = [float(v) for v in spectrum]
    return {name: (sum(values[i] for i in group) / len(group) if len(group) else float("nan"))
            for name, group in band_groups(len(values)).items()}


def ssim(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean SSIM (scikit-image, colour, 7x7 window) over images."""
    from skimage.metrics import structural_similarity

    a = images.float().permute(0, 2, 3, 1).cpu().numpy()
    b = reference.float().permute(0, 2, 3, 1).cpu().numpy()
    return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=1.0)
                          for x, y in zip(a, b)]))


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D).

    tr sqrt(C_a C_b) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix sqrt(C_a) C_b sqrt(C_a): stable for singular covariances and free of
    scipy's sqrtm, whose signature changed across releases."""
    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 samples per set, got "
                         f"{len(features_a)} and {len(features_b)}")
    a = features_a.double().cpu().numpy()
    b = features_b.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ cov_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


@torch.no_grad()
def classify(classifier: torch.nn.Module, images: torch.Tensor, batch_size: int = 256):
    """Logits and penultimate features of images in [0, 1]."""
    logits, feats = [], []
    device = next(classifier.parameters()).device
    for chunk in images.split(batch_size):
        f = classifier.features(chunk.to(device).float() * 2 - 1)
        feats.append(f)
        logits.append(classifier.fc(f))
    return torch.cat(logits), torch.cat(feats)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(speed, quality) points that no other point beats on both, sorted by speed."""
    return sorted(p for p in points if not any(q[0] >= p[0] and q[1] > p[1] or q[0] > p[0] and q[1] >= p[1]
                                               for q in points))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())

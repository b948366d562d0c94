import torch

from frdiff.metrics import accuracy, frechet_distance, psnr, ssim


def test_psnr_identical_and_known_value():
    a = torch.rand(2, 3, 8, 8)
    assert psnr(a, a) == 100.0
    b = (a + 0.1).clamp(0, 1)
    c = a.clone()
    c += 0.1  # uniform error of 0.1 -> 20 dB
    assert abs(psnr(c, a) - 20.0) < 1e-3
    assert psnr(b, a) > 20.0 - 1e-3


def test_ssim_identical_is_one_and_noise_lowers_it():
    a = torch.rand(2, 3, 16, 16)
    assert abs(ssim(a, a) - 1.0) < 1e-6
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    assert ssim(noisy, a) < 0.9


def test_frechet_distance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 4, generator=g)
    y = torch.randn(2000, 4, generator=g)
    assert frechet_distance(x, x) < 1e-6
    assert frechet_distance(x, y) < 0.05
    # shifting the mean by 2 in every one of 4 dims adds 16
    assert abs(frechet_distance(x, y + 2) - 16.0) < 0.5


def test_frechet_distance_of_known_gaussians_and_rank_deficient_features():
    # N(0, diag(1, 4)) against N(0, diag(4, 1)): (1 + 4 + 4 + 1) - 2 * (2 + 2) = 2
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200_000, 2, generator=g)
    a, b = z * torch.tensor([1.0, 2.0]), z * torch.tensor([2.0, 1.0])
    assert abs(frechet_distance(a, b) - 2.0) < 0.05
    # features confined to a 2-d subspace of 8 (singular covariances): finite, near zero
    basis = torch.randn(2, 8, generator=g)
    x = torch.randn(5000, 2, generator=g) @ basis
    y = torch.randn(5000, 2, generator=g) @ basis
    d = frechet_distance(x, y)
    assert 0.0 <= d < 0.1


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert abs(accuracy(logits, torch.tensor([0, 1, 1])) - 2 / 3) < 1e-6


def test_band_groups_split_every_band_once_and_band_errors_average_them():
    from frdiff.metrics import band_errors, band_groups

    for n in (1, 2, 3, 8, 17):
        groups = band_groups(n)
        assert sorted(i for g in groups.values() for i in g) == list(range(n))
    assert band_groups(8) == {"low": range(0, 2), "mid": range(2, 4), "high": range(4, 8)}
    errors = band_errors([1.0, 3.0, 10.0, 20.0, 0.0, 0.0, 0.0, 4.0])
    assert errors == {"low": 2.0, "mid": 15.0, "high": 1.0}

import pytest
import torch

from frdiff.mixing import (ScoreMixing, forecast_x0, from_prediction, output_for_x0,
                           to_prediction, x0_of)


def test_lam_schedule_matches_the_paper():
    m = ScoreMixing(slope=30.0, bias=0.5)
    assert m.lam(25, 50) == 0.5  # centred at b
    assert m.lam(21, 50) == 0.0 and m.lam(22, 50) > 0.0  # lam > 0 iff r > b - 2/k
    assert m.lam(29, 50) == 1.0 and m.lam(28, 50) < 1.0  # lam = 1 iff r >= b + 2/k
    assert ScoreMixing.off().lam(0, 50) == 1.0


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_prediction_round_trip_and_hold(kind):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    a, s = torch.tensor(0.6), torch.tensor(0.8)
    x = a * x0 + s * eps
    out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[kind]
    p = to_prediction(out, x, a, s, kind)
    torch.testing.assert_close(from_prediction(p, a, s, kind), out)
    # at another point on the same DDIM line, the held prediction means the same eps and x0
    a2, s2 = torch.tensor(0.8), torch.tensor(0.6)
    held = from_prediction(p, a2, s2, kind)
    expect = {"epsilon": eps, "sample": x0, "v_prediction": a2 * eps - s2 * x0}[kind]
    torch.testing.assert_close(held, expect)
    torch.testing.assert_close(x0_of(out, x, a, s, kind), x0)
    torch.testing.assert_close(output_for_x0(x0, x, a, s, kind), out)


def test_learned_variance_channels_ride_along():
    out = torch.randn(1, 6, 2, 2)
    x = torch.randn(1, 3, 2, 2)
    p = to_prediction(out, x, torch.tensor(0.6), torch.tensor(0.8), "epsilon")
    assert torch.equal(from_prediction(p, torch.tensor(0.6), torch.tensor(0.8), "epsilon"), out)


def test_forecast_is_exact_for_linear_x0():
    x_a, x_b = torch.ones(2), torch.full((2,), 3.0)  # x0(lambda) = 1 + 2 lambda
    history = [(0.0, x_a), (1.0, x_b)]
    torch.testing.assert_close(forecast_x0(history, 1.5, "extrapolate"), torch.full((2,), 4.0))
    assert torch.equal(forecast_x0(history, 1.5, "hold"), x_b)
    assert torch.equal(forecast_x0(history[:1], 1.5, "extrapolate"), x_a)


def test_mixing_validation():
    with pytest.raises(ValueError, match="multistep"):
        ScoreMixing(multistep="quadratic")

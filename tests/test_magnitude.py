"""Calibrated magnitude schedules (MagCache's rule, frdiff's code) and the tuner starts built from them."""

import pytest
import torch

from frdiff import ScoreMixing, accelerate
from frdiff.autofr import tune
from frdiff.magnitude import Calibration, calibrate, magnitude_policy, policy_for_speedup, reuse_steps
from frdiff.targets import find_blocks

N = 10


def test_calibration_observes_a_full_compute_run_without_changing_it(tiny_pipe):
    def run():
        return tiny_pipe(["A", "7"], num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                         output_type="pt").images

    plain = run()
    cal = calibrate(tiny_pipe, N, class_labels=["A", "7"], generator=torch.Generator().manual_seed(0),
                    output_type="pt")
    assert cal.num_steps == N and all(m > 0 for m in cal.magnitudes) and cal.ratios[0] == 1.0
    residual = all(b.residual for b in find_blocks(tiny_pipe.denoiser))
    assert cal.space == ("stack residual" if residual else "model output")
    assert torch.equal(run(), plain) and "forward" not in tiny_pipe.denoiser.__dict__
    assert Calibration.from_json(cal.to_json()).magnitudes == cal.magnitudes


def test_reuse_steps_follow_the_accumulated_error():
    cal = Calibration(tuple(0.9 ** t for t in range(10)), "stack residual")  # ratio 0.9 each step
    assert cal.ratios[1] == pytest.approx(0.9)
    # error after j reuse steps: sum_i |1 - 0.9^i| = 0.1, 0.29, ...; threshold 0.2 allows one
    assert reuse_steps(cal, 0.2, max_reuse=5, retain=0.0) == [False, True, False, True, False, True,
                                                             False, True, False, False]
    assert reuse_steps(cal, 100.0, max_reuse=2, retain=0.5)[:6] == [False] * 5 + [True]
    assert not any(reuse_steps(cal, 0.0))
    policy = magnitude_policy(cal, 0.2, "RF", ("a", "b"), max_reuse=5, retain=0.0)
    assert policy.schedule[:3] == ("KK", "RF", "KK")
    for bad in (dict(threshold=-1), dict(threshold=float("nan")), dict(threshold=0.1, max_reuse=-1),
                dict(threshold=0.1, retain=2.0)):
        with pytest.raises(ValueError):
            reuse_steps(cal, **bad)
    with pytest.raises(ValueError, match="magnitudes"):
        Calibration.from_json('{"magnitudes": "x"}')


def test_policy_for_speedup_reaches_the_target_with_the_smallest_threshold():
    cal = Calibration(tuple(0.97 ** t for t in range(30)), "stack residual")
    speed = lambda p: 30 / len(p.keyframes)  # noqa: E731
    threshold, policy = policy_for_speedup(cal, speed, 1.8, "S")
    assert speed(policy) >= 1.8 and threshold > 0
    assert speed(magnitude_policy(cal, threshold / 1.2, "S")) < 1.8
    assert policy_for_speedup(cal, speed, 50.0, "S") is None


def test_the_tuner_searches_from_magnitude_starts(tiny_pipe):
    result = tune(tiny_pipe, N, 1.5, per_block=True, iterations=0, progress=False)
    assert any(name.startswith("magnitude") for name in result.starts)
    with accelerate(tiny_pipe, result.policy, ScoreMixing()) as run:
        tiny_pipe(["A"], num_inference_steps=N, output_type="pt")
    assert run.stats.ideal_speedup >= 1.5

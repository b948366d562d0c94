"""Mode N: a step with no network call (reduced NFE) as part of a policy, with or without mixing."""

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.glyphs.models import build_scheduler
from test_accelerate import N, no_instance_forwards, run


def test_n_is_a_whole_step_mode():
    policy = KeyframePolicy.uniform(6, 3, reuse="none")
    assert policy.schedule == ("K", "N", "N", "K", "N", "N") and policy.no_call(1) and not policy.no_call(3)
    with pytest.raises(ValueError, match="N .no network call. holds for a whole step"):
        KeyframePolicy(("KK", "NF"), ("a", "b"))
    assert KeyframePolicy.parse("uniform:2:none", 4).schedule == ("K", "N", "K", "N")
    text = KeyframePolicy(("KK", "NN", "FS"), ("a", "b")).to_text()
    assert KeyframePolicy.from_text(text).schedule == ("KK", "NN", "FS")


def test_reuse_weight_and_calls_follow_n_and_mixing():
    policy = KeyframePolicy(("K", "N", "F", "F"))
    mixing = ScoreMixing()
    assert policy.reuse_weight(1, ScoreMixing.off()) == 0.0 and policy.reuse_weight(3, ScoreMixing.off()) == 1.0
    assert [policy.makes_call(s, mixing) for s in range(4)] == [True, False, mixing.lam(2, 4) > 0, True]


@pytest.mark.parametrize("mixing", [ScoreMixing.off(), ScoreMixing()])
def test_no_call_policy_is_fewer_ddim_steps_whatever_the_mixing(tiny_pipe, mixing):
    """With DDIM (trailing), N between every second step lands where 5 plain steps would."""
    tiny_pipe.scheduler = build_scheduler()
    reduced = run(tiny_pipe, steps=N // 2)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2, reuse="none"), mixing) as r:
        out = run(tiny_pipe)
    assert r.stats.network_calls == N // 2 and r.stats.network_calls_skipped == N // 2
    assert r.stats.fr_calls == 0 and r.stats.ideal_speedup == pytest.approx(2.0, rel=1e-6)
    torch.testing.assert_close(out, reduced, atol=1e-4, rtol=0)
    assert no_instance_forwards(tiny_pipe.denoiser)


def test_n_steps_late_in_sampling_override_mixing(tiny_pipe):
    """lam > 0 late in sampling would run an FR forward; an N step there makes no call."""
    rows = ["K"] * N
    rows[N - 2] = "N"  # lam(8/10) = 1 with the default mixing
    with accelerate(tiny_pipe, KeyframePolicy(tuple(rows)), ScoreMixing()) as r:
        out = run(tiny_pipe)
    assert r.stats.network_calls == N - 1 and r.stats.fr_calls == 0
    assert torch.isfinite(out).all() and not torch.equal(out, run(tiny_pipe))


def test_dpmsolver_forecasts_x0_at_n_steps(tiny_pipe):
    from frdiff import set_scheduler

    set_scheduler(tiny_pipe, "dpmsolver")
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2, reuse="none"), ScoreMixing.off()) as r:
        out = run(tiny_pipe)
    assert r.stats.network_calls == N // 2 and torch.isfinite(out).all()
    held = ScoreMixing(slope=1e4, bias=1.0)  # the same schedule spelled as lam = 0 everywhere
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), held):
        same = run(tiny_pipe)
    assert torch.equal(out, same)

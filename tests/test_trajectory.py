"""trajectory: the predicted x0 behind every step of one run, observed without changing it."""

import json

import pytest
import torch

from frdiff import AdaptivePolicy, KeyframePolicy, ScoreMixing, accelerate, set_scheduler
from frdiff.analysis import observe_steps, predicted_x0, trajectory
from test_accelerate import no_instance_forwards

N = 6
LABELS = ["A", "7"]


def decode(x0):
    return (x0.float() / 2 + 0.5).clamp(0, 1)


def plain(pipe, steps=N):
    return pipe(LABELS, num_inference_steps=steps, output_type="pt",
                generator=torch.Generator().manual_seed(0)).images


def test_full_compute_on_ddim_ends_at_the_image(tiny_pipe):
    sched = tiny_pipe.scheduler
    keys = set(sched.__dict__)
    traj = trajectory(tiny_pipe, N, class_labels=LABELS)
    assert traj.x0.shape == (N, 2, 3, 16, 16) and traj.x0.dtype == torch.float32
    assert traj.x0.device.type == "cpu" and not traj.decoded
    assert traj.kinds == ["keyframe"] * N and traj.timesteps == sched.timesteps.tolist()
    assert all(isinstance(t, int) for t in traj.timesteps)
    assert torch.equal(traj.images, plain(tiny_pipe))  # observed, not changed
    # DDIM's last step goes to timestep 0, where sigma = sqrt(1 - alphas_cumprod[0]) ~ 0.006:
    # its x0 is the final sample up to that little noise, and closer than any earlier x0
    sigma_0 = float((1 - sched.alphas_cumprod[0]).sqrt())
    errors = [float((decode(x0) - traj.images).abs().max()) for x0 in traj.x0]
    assert errors[-1] < 5 * sigma_0 < 0.05 and errors[-1] < min(errors[:-1]) / 3
    assert set(sched.__dict__) == keys and "step" not in sched.__dict__
    assert json.loads(json.dumps(traj.as_dict()))["shape"] == [N, 2, 3, 16, 16]


def test_x0_from_alpha_sigma_matches_ddims_own(tiny_pipe):
    """The path DPM-Solver needs (no pred_original_sample), checked on DDIM's steps."""
    sched, pairs = tiny_pipe.scheduler, []

    def record(args, kwargs, out):
        mine = predicted_x0(sched, None, args[0], args[1], args[2], len(pairs))
        pairs.append((mine, out.pred_original_sample))

    restore = observe_steps(sched, record)
    try:
        plain(tiny_pipe)
    finally:
        restore()
    assert len(pairs) == N and "step" not in sched.__dict__
    for mine, theirs in pairs:
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_policy_runs_give_their_step_kinds(tiny_pipe):
    policy, mixing = KeyframePolicy.uniform(N, 2), ScoreMixing(bias=0.4)
    traj = trajectory(tiny_pipe, N, policy=policy, mixing=mixing, decode=decode, class_labels=LABELS)
    assert traj.kinds == [policy.step_kind(s, mixing) for s in range(N)]
    assert traj.kinds == ["keyframe", "no call", "keyframe", "reuse", "keyframe", "reuse"]
    assert traj.decoded and traj.x0.min() >= 0 and traj.x0.max() <= 1
    with accelerate(tiny_pipe, policy, mixing):
        assert torch.equal(traj.images, plain(tiny_pipe))
    assert no_instance_forwards(tiny_pipe.denoiser) and "step" not in tiny_pipe.scheduler.__dict__
    assert (traj.x0[-1] - traj.images).abs().max() < 0.05
    # no-call steps hold eps and x0: on DDIM their x0 is the keyframe's (5 steps: DDIM's
    # previous timestep t - 1000 // 5 is exactly the next step's, unlike for 6 steps)
    none = trajectory(tiny_pipe, 5, policy=KeyframePolicy.uniform(5, 3, reuse="none"), class_labels=LABELS)
    assert none.kinds == ["keyframe", "no call", "no call", "keyframe", "no call"]
    for s in (1, 2):
        torch.testing.assert_close(none.x0[s], none.x0[0], atol=1e-5, rtol=1e-5)
    adaptive = trajectory(tiny_pipe, N, policy=AdaptivePolicy(N, 0.5), class_labels=LABELS)
    assert adaptive.kinds[0] == adaptive.kinds[-1] == "keyframe"
    assert set(adaptive.kinds) <= {"keyframe", "reuse"}


@pytest.mark.parametrize("with_policy", [False, True])
def test_dpmsolver_x0_is_the_solvers_own(tiny_pipe, with_policy):
    set_scheduler(tiny_pipe, "dpmsolver")
    sched = tiny_pipe.scheduler
    seen, convert = [], sched.convert_model_output
    sched.convert_model_output = lambda *a, **k: (lambda x0: (seen.append(x0.clone()), x0)[1])(convert(*a, **k))
    policy = KeyframePolicy.uniform(N, 2) if with_policy else None
    try:
        traj = trajectory(tiny_pipe, N, policy=policy, mixing=ScoreMixing(bias=0.4), class_labels=LABELS)
    finally:
        del sched.convert_model_output
    assert len(seen) == N and set(sched.__dict__).isdisjoint({"step", "set_timesteps"})
    for s in range(N):
        torch.testing.assert_close(traj.x0[s], seen[s].float(), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(traj.images).all()


def test_euler_reports_its_own_x0_and_float_timesteps(tiny_pipe):
    set_scheduler(tiny_pipe, "euler")
    traj = trajectory(tiny_pipe, N, class_labels=LABELS)
    assert traj.timesteps == [float(t) for t in tiny_pipe.scheduler.timesteps]
    assert torch.equal(traj.images, plain(tiny_pipe))
    # Euler's last step goes to sigma = 0, i.e. onto its x0
    torch.testing.assert_close(decode(traj.x0[-1]), traj.images, atol=1e-5, rtol=0)

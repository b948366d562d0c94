"""Auto-FR on tiny models: the learned policy meets its target, and bad input is refused."""

import json

import pytest
import torch

from frdiff import ScoreMixing, accelerate
from frdiff import KeyframePolicy
from frdiff.autofr import TuneConfig, candidates, lambdas, project, spread, step_gated, tune
from frdiff.cost import CallCosts
from frdiff.cli import main

N = 8


@pytest.mark.parametrize("per_block", [False, True])
def test_tuned_policy_meets_target_and_runs(tiny_pipe, per_block):
    result = tune(tiny_pipe, N, 1.5, per_block=per_block, iterations=3, progress=False, segment=4)
    assert result.ideal_speedup >= 1.5 and len(result.losses) == 3
    assert result.policy.num_steps == N and result.policy.is_keyframe(0)
    assert (result.policy.blocks is not None) == per_block
    # the returned policy is the best one the held-out batches saw, never worse than the start
    assert result.final_loss <= result.start_loss and result.start
    with accelerate(tiny_pipe, result.policy, ScoreMixing()) as run:
        tiny_pipe(["A"], num_inference_steps=N, output_type="pt")
    # the tuner's cost model is the one accelerate measures
    assert abs(run.stats.ideal_speedup - result.ideal_speedup) < 1e-6
    assert all(p.requires_grad for p in tiny_pipe.denoiser.parameters())


def _tiny_call(pipe):
    from frdiff.autofr import default_call

    raw = type(pipe).__call__.__wrapped__

    def call(steps, batch=0):
        return raw(pipe, num_inference_steps=steps, generator=torch.Generator().manual_seed(batch),
                   **default_call(pipe, 2, batch))
    return call


def test_all_keyframe_gated_pass_reproduces_the_reference(tiny_pipe):
    """Gates at 1 everywhere: the differentiable sampler is the full-compute one."""
    from frdiff.autofr import gated_pass, reference_latents
    from frdiff.targets import find_blocks

    call = _tiny_call(tiny_pipe)
    blocks = find_blocks(tiny_pipe.denoiser)
    lam = lambdas(N, ScoreMixing())
    reference = reference_latents(tiny_pipe, call, N, 0)
    ones, zeros = torch.ones(N, len(blocks)), torch.zeros(N, len(blocks))
    assert gated_pass(tiny_pipe, blocks, "extrapolate", call, 0, ones, zeros, lam, reference, None) < 1e-10
    skipping = ones.clone()
    skipping[1:] = 0.0
    assert gated_pass(tiny_pipe, blocks, "extrapolate", call, 0, skipping, zeros, lam, reference, 3) > 1e-4


def test_target_one_keeps_every_keyframe(tiny_pipe):
    result = tune(tiny_pipe, N, 1.0, iterations=0, progress=False)
    assert result.policy.keyframes == list(range(N)) and result.final_loss == 0.0


def test_no_call_steps_are_all_or_nothing():
    lam = [0.0, 0.0, 0.5, 1.0]
    k = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    gated = step_gated(k, lam)
    assert gated[1].tolist() == [0.0, 0.0]  # lam = 0: column 0 decides for the whole step
    assert gated[2].tolist() == [0.0, 1.0] and gated[3].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("target", [1.3, 2.0])
def test_projection_meets_the_budget_and_cannot_add_a_keyframe(target):
    n, width = 12, 3
    costs = CallCosts(total=10.0, block=[3.0, 2.0, 1.0], fr_saving=[2.0, 1.0, 0.5])
    mixing = ScoreMixing()
    torch.manual_seed(0)
    policy = project(torch.rand(n, width), torch.rand(n, width), costs, mixing, target, ["a", "b", "c"])
    assert costs.speedup(policy, mixing) >= target and policy.is_keyframe(0)
    lam = lambdas(n, mixing)
    for s in range(1, n):
        for b in range(width):
            if policy.mode(s, b) != "K":
                rows = list(policy.schedule)
                rows[s] = "KKK" if lam[s] == 0.0 else rows[s][:b] + "K" + rows[s][b + 1:]
                richer = KeyframePolicy(tuple(rows), policy.blocks)
                assert costs.speedup(richer, mixing) < target  # greedy fill left no room


@pytest.mark.parametrize("seed", range(4))
def test_per_step_projection_keeps_whole_steps_within_the_budget(seed):
    # per-step gates (blocks None) write one letter per step: a step is one unit, never a
    # row whose blocks were kept in part (the policy would compute more than was counted)
    n = 6
    costs = CallCosts(total=10.0, block=[1.0, 4.0, 1.0, 2.0, 1.0], fr_saving=[0.2, 3.5, 0.1, 1.5, 0.3],
                      skip=[0.1] * 5, step=0.5)
    torch.manual_seed(seed)
    policy = project(torch.rand(n, 1), torch.zeros(n, 1), costs, ScoreMixing(), 1.3, None)
    assert policy.blocks is None and costs.speedup(policy, ScoreMixing()) >= 1.3


def test_candidates_meet_the_target_and_include_block_skips():
    costs = CallCosts(total=10.0, block=[3.0, 2.0, 3.0], fr_saving=[2.0, 1.0, 2.0])
    depths = {"down": 0, "mid": 1, "up": 0}
    found = candidates(costs, 20, ScoreMixing(), 1.8, depths)
    assert any(name.startswith("fr") for name in found)
    assert any(name.startswith("skip>=1") for name in found)
    for policy in found.values():
        assert costs.speedup(policy, ScoreMixing()) >= 1.8
    assert spread(10, 4) == [0, 2, 5, 8] and spread(6, 6) == list(range(6))


@pytest.mark.parametrize("target, match", [(0.0, "positive"), (-1.0, "positive"),
                                           (float("nan"), "positive"), (1e6, "unreachable")])
def test_bad_targets(tiny_pipe, target, match):
    with pytest.raises(ValueError, match=match):
        tune(tiny_pipe, N, target, iterations=1, progress=False)


def test_tune_cli_writes_policy_with_provenance(tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = main(["tune", "--model", "glyph-unet", "--steps", "6", "--target-speedup", "1.3",
               "--iterations", "1", "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed["ideal_speedup"] >= 1.3 and printed["out"] == str(out)
    assert saved["meta"]["model"] == "glyph-unet" and saved["meta"]["iterations"] == 1
    assert not (tmp_path / "p.json.partial").exists()


def test_unreachable_target_writes_no_file(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["tune", "--model", "glyph-unet", "--steps", "6", "--target-speedup", "99",
                 "--out", str(out), "--json"]) == 2
    assert not out.exists() and "unreachable" in capsys.readouterr().err


def test_candidates_include_fewer_steps_and_a_no_call_start_tunes_step_selection(tiny_pipe):
    """The search space holds "no call between keyframes" (reduced NFE, fewer steps): beyond what
    feature reuse can reach, the tuner learns which steps to compute."""
    result = tune(tiny_pipe, N, 3.0, iterations=2, progress=False)
    assert result.start.startswith("no call x")
    assert set("".join(result.policy.schedule)) == {"K", "N"} and result.ideal_speedup >= 3.0
    with accelerate(tiny_pipe, result.policy, ScoreMixing()) as run:
        tiny_pipe(["A"], num_inference_steps=N, output_type="pt")
    assert run.stats.fr_calls == 0 and abs(run.stats.ideal_speedup - result.ideal_speedup) < 1e-6
    assert run.stats.network_calls == len(result.policy.keyframes)


@pytest.mark.parametrize("scheduler", ["ddim", "dpmsolver"])
@pytest.mark.parametrize("multistep", ["hold", "extrapolate"])
def test_the_gated_pass_with_binary_gates_is_the_sampler_the_policy_runs(tiny_pipe, scheduler, multistep):
    """One sampler state: the tuner's differentiable pass, with a policy's gates, follows the
    real accelerated run step by step (FR, whole-block skip, no-call steps and score mixing;
    DPM-Solver++ mixes in x0 space with the keyframes' x0 held or extrapolated)."""
    from frdiff import set_scheduler
    from frdiff.autofr import gated_pass, reference_latents
    from frdiff.cost import policy_gates
    from frdiff.targets import find_blocks

    set_scheduler(tiny_pipe, scheduler)
    blocks = find_blocks(tiny_pipe.denoiser)
    width = len(blocks)
    rows = ["K" * width, "F" * width, "S" * (width - 1) + "F", "K" * width, "N" * width,
            "F" * width, "K" * width, "S" * width]
    policy = KeyframePolicy(tuple(rows), tuple(b.name for b in blocks))
    mixing = ScoreMixing(multistep=multistep)
    call = _tiny_call(tiny_pipe)
    with accelerate(tiny_pipe, policy, mixing) as run:
        accelerated = reference_latents(tiny_pipe, call, N, 0)
    assert run.stats.fr_calls > 0 and run.stats.network_calls_skipped > 0
    full = reference_latents(tiny_pipe, call, N, 0)
    assert float((full[-1] - accelerated[-1]).pow(2).mean()) > 1e-6  # the policy does change it
    k, z = (g.float() for g in policy_gates(policy, width))
    lam = [policy.reuse_weight(s, mixing) for s in range(N)]
    with torch.no_grad():
        distance = gated_pass(tiny_pipe, blocks, multistep, call, 0, k, z, lam, accelerated, 1)
    assert distance < 1e-10  # summed over every step's latents (segment=1)


def test_tune_config_validates_and_options_override_it(tiny_pipe):
    with pytest.raises(ValueError, match="iterations"):
        TuneConfig(iterations=-1)
    with pytest.raises(ValueError, match="segment"):
        TuneConfig(segment=0)
    with pytest.raises(TypeError):
        tune(tiny_pipe, N, 1.2, no_such_option=1)
    seen = []
    result = tune(tiny_pipe, N, 1.5, TuneConfig(iterations=2, checks=2, progress=False),
                  on_check=seen.append)
    assert result.ideal_speedup >= 1.5 and seen and seen[-1].best_loss <= seen[0].loss
    assert all(c.policy.num_steps == N for c in seen)


def test_pruned_starts_keep_the_best_of_each_family_scored_on_every_held_out_batch(tiny_pipe):
    """prune_starts=k: every start is scored on the first held-out batch, only the best k of
    each family on the rest; the survivors' losses are their full selection losses."""
    from frdiff.autofr import Tuner

    with pytest.raises(ValueError, match="prune_starts"):
        TuneConfig(prune_starts=0)
    seen = []
    config = TuneConfig(per_block=True, iterations=0, selection_batches=2, prune_starts=1,
                        progress=False, on_progress=lambda *a: seen.append(a))
    tuner = Tuner(tiny_pipe, N, 1.5, config)
    starts = tuner.score_starts()
    families = [p.has_no_call for p, _ in starts.values()]
    assert len(starts) == len(set(families)) and tuner.pruned  # one survivor per family
    assert seen[-1][1] == seen[-1][2] == len(starts) + len(tuner.pruned) + len(starts)
    for policy, loss in starts.values():
        assert loss == tuner.selection_loss(policy)
        first = tuner.held_out_losses(policy, tuner.held_out[:1])[0]
        rivals = [v for p, v in tuner.pruned.values() if p.has_no_call == policy.has_no_call]
        assert all(first <= v for v in rivals)
    result = tuner.select(starts, tuner.families(starts), {})
    assert set(result.pruned) == set(tuner.pruned) and set(result.starts) == set(starts)

"""Auto-FR on tiny models: the learned policy meets its target, and bad input is refused."""

import json

import pytest
import torch

from frdiff import ScoreMixing, accelerate
from frdiff.autofr import tune
from frdiff.cli import main

N = 8


@pytest.mark.parametrize("per_block", [False, True])
def test_tuned_policy_meets_target_and_runs(tiny_pipe, per_block):
    result = tune(tiny_pipe, N, 1.5, per_block=per_block, iterations=3, progress=False, segment=4)
    assert result.ideal_speedup >= 1.5 and len(result.losses) == 3
    assert result.policy.num_steps == N and result.policy.is_keyframe(0)
    assert (result.policy.blocks is not None) == per_block
    with accelerate(tiny_pipe, result.policy, ScoreMixing()) as run:
        tiny_pipe(["A"], num_inference_steps=N, output_type="pt")
    # the tuner's cost model is the one accelerate measures
    assert abs(run.stats.ideal_speedup - result.ideal_speedup) < 1e-6
    assert all(p.requires_grad for p in tiny_pipe.denoiser.parameters())


def test_all_keyframe_gated_pass_reproduces_the_reference(tiny_pipe):
    """Gates at 1 everywhere: the differentiable sampler is the full-compute one."""
    result = tune(tiny_pipe, N, 1.01, iterations=1, progress=False, segment=3)
    assert result.losses[0] < 1e-8


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

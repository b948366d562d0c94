"""The measured cost model: `frdiff.profile` tables, their checks, and tuning to seconds."""

import json

import pytest
import torch

import frdiff
from frdiff.autofr import tune
from frdiff.cli import main
from frdiff.cost import CallCosts
from frdiff.profile import CostTable, profile
from frdiff.targets import denoiser_of, find_blocks

STEPS = 4


@pytest.fixture
def table(tiny_pipe):
    return profile(tiny_pipe, STEPS, {"class_labels": ["A", "K"], "output_type": "pt"}, repeats=1,
                   progress=False)


def test_profile_times_every_block_in_every_mode(tiny_pipe, table):
    blocks = find_blocks(denoiser_of(tiny_pipe))
    assert table.blocks == [b.name for b in blocks]
    assert table.batch == 2 and table.steps == STEPS and table.device == "cpu" and table.dtype == "float32"
    for mode in "KFS":
        assert len(table.seconds[mode]) == len(blocks)
        assert all(t > 0 for t in table.seconds[mode]), (mode, table.seconds[mode])
    assert table.call >= sum(table.seconds["K"]) * 0.5  # the blocks are inside the call
    costs = table.costs
    assert costs.total == table.call and costs.skip == table.seconds["S"] and costs.step == table.step
    table.check(tiny_pipe)  # its own model passes


def test_round_trip_and_bad_tables(tiny_pipe, table, tmp_path):
    path = tmp_path / "costs.json"
    table.to_json(str(path))
    again = CostTable.from_json(str(path))
    assert again.costs == table.costs
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read cost table"):
        CostTable.from_json(str(path))
    path.write_text(json.dumps({"kind": "a policy"}))
    with pytest.raises(ValueError, match="not a frdiff cost table"):
        CostTable.from_json(str(path))
    data = json.loads(json.dumps({"kind": "frdiff cost table"} | table.__dict__))
    del data["seconds"]["S"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not a complete"):
        CostTable.from_json(str(path))


def test_another_model_or_dtype_is_refused(tiny_pipe, table):
    other = "UNet2DModel" if table.model != "UNet2DModel" else "DiTTransformer2DModel"
    with pytest.raises(ValueError, match=f"measured for model {other}"):
        CostTable(**(table.__dict__ | {"model": other})).check(tiny_pipe)
    half = CostTable(**(table.__dict__ | {"dtype": "bfloat16"}))
    with pytest.raises(ValueError, match="measured for dtype bfloat16, not float32"):
        half.check(tiny_pipe)
    with pytest.raises(ValueError, match="blocks"):
        CostTable(**(table.__dict__ | {"blocks": table.blocks[:-1]})).check(tiny_pipe)


def test_step_overhead_and_skip_cost_lower_the_speedup():
    free = CallCosts(total=10.0, block=[4.0, 4.0], fr_saving=[3.0, 3.0])
    paid = CallCosts(total=10.0, block=[4.0, 4.0], fr_saving=[3.0, 3.0], skip=[0.5, 0.5], step=2.0)
    fr, skip = frdiff.KeyframePolicy.uniform(6, 2), frdiff.KeyframePolicy.uniform(6, 2, reuse="block")
    off = frdiff.ScoreMixing.off()
    assert free.speedup(frdiff.KeyframePolicy.uniform(6, 1), off) == pytest.approx(1.0)
    assert paid.speedup(frdiff.KeyframePolicy.uniform(6, 1), off) == pytest.approx(1.0)
    # FR steps cost 10 - 6 = 4 (+ 2 around the call); skip steps 2 + 1 (+ 2)
    assert free.speedup(fr, off) == pytest.approx(60 / (30 + 12))
    assert paid.speedup(fr, off) == pytest.approx(72 / (36 + 18))
    assert paid.speedup(skip, off) == pytest.approx(72 / (36 + 15))


def test_tune_to_measured_seconds(tiny_pipe, table):
    result = tune(tiny_pipe, 6, 1.3, iterations=1, checks=1, tuning_batches=1, selection_batches=1,
                  progress=False, cost="measured", cost_table=table)
    assert result.cost == "measured" and result.meta()["cost"] == "measured"
    assert result.ideal_speedup == pytest.approx(table.costs.speedup(result.policy, frdiff.ScoreMixing()))
    assert result.ideal_speedup >= 1.3 - 1e-6
    with pytest.raises(ValueError, match="measured for model"):
        tune(tiny_pipe, 6, 1.3, iterations=1, progress=False, cost="measured",
             cost_table=CostTable(**(table.__dict__ | {"model": "SomethingElse"})))
    with pytest.raises(ValueError, match="cost must be"):
        tune(tiny_pipe, 6, 1.3, cost="wall")
    with pytest.raises(ValueError, match="cost_table is for cost='measured'"):
        tune(tiny_pipe, 6, 1.3, cost_table=table)


def test_profile_refuses_too_few_steps(tiny_pipe):
    with pytest.raises(ValueError, match="at least 3 steps"):
        profile(tiny_pipe, 2, {"class_labels": ["A"]})


def test_cli_profile_then_tune(tmp_path, capsys):
    out = tmp_path / "costs.json"
    assert main(["profile", "--model", "glyph-dit", "--steps", "3", "--batch", "1", "--repeats", "1",
                 "--out", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["out"] == str(out) and set(row["seconds"]) == {"K", "F", "S"}
    assert CostTable.from_json(str(out)).model == "DiTTransformer2DModel"
    # a table of another model: one clear error
    code = main(["tune", "--model", "glyph-unet", "--steps", "4", "--target-speedup", "1.2",
                 "--iterations", "1", "--cost", "measured", "--cost-table", str(out),
                 "--out", str(tmp_path / "p.json")])
    assert code == 2 and "measured for model DiTTransformer2DModel" in capsys.readouterr().err
    torch.set_num_threads(min(2, torch.get_num_threads()))

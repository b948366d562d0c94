import json

import torch

from frdiff import load_pipeline
from frdiff.cli import main
from frdiff.glyphs.train import TrainConfig, export, train


def _weights(run_dir):
    return torch.load(f"{run_dir}/checkpoint.pt", weights_only=False)["model"]


def test_resume_equals_uninterrupted_training(tmp_path):
    straight = TrainConfig(model="classifier", steps=4, batch_size=8, checkpoint_every=2)
    train(straight, str(tmp_path / "a"), progress=False)
    first_half = TrainConfig(model="classifier", steps=2, batch_size=8, checkpoint_every=2)
    train(first_half, str(tmp_path / "b"), progress=False)
    train(straight, str(tmp_path / "b"), progress=False)  # resumes at step 2
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config(tmp_path):
    train(TrainConfig(model="classifier", steps=1, batch_size=4), str(tmp_path), progress=False)
    try:
        train(TrainConfig(model="classifier", steps=2, batch_size=8), str(tmp_path), progress=False)
    except ValueError as err:
        assert "another config" in str(err)
    else:
        raise AssertionError("resuming with another batch size must fail")


def test_generator_trains_exports_and_loads(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "glyph-unet"
    rc = main(["train", "--model", "glyph-unet", "--steps", "2", "--batch", "4",
               "--run-dir", str(run), "--export", str(out), "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"] == 2 and info["out"] == str(out)
    pipe = load_pipeline(str(out))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["A"], num_inference_steps=2, output_type="pt").images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()


def test_warm_start_continues_from_exported_weights(tmp_path, capsys):
    first, out = tmp_path / "first", tmp_path / "export"
    assert main(["train", "--model", "glyph-unet", "--steps", "2", "--batch", "4",
                 "--run-dir", str(first), "--export", str(out), "--json"]) == 0
    capsys.readouterr()
    exported = load_pipeline(str(out)).unet.state_dict()
    cfg = TrainConfig(model="glyph-unet", steps=1, batch_size=4, init_from=str(out), lr=0.0)
    train(cfg, str(tmp_path / "second"), progress=False)
    state = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=False)
    # lr 0: the step leaves the warm-started weights unchanged, so they must be the export's
    assert all(torch.equal(state["model"][k], exported[k]) for k in exported)
    assert state["init_steps"] == 2
    info = export(str(tmp_path / "second"), str(tmp_path / "export2"))
    assert info["total_steps"] == 3 and info["init_steps"] == 2


def test_warm_start_refuses_another_architecture(tmp_path):
    export_dir = tmp_path / "unet"
    load_pipeline("glyph-unet").save_pretrained(str(export_dir))
    cfg = TrainConfig(model="glyph-dit", steps=1, batch_size=4, init_from=str(export_dir))
    try:
        train(cfg, str(tmp_path / "run"), progress=False)
    except FileNotFoundError as err:
        assert "no glyph-dit weights" in str(err)
    else:
        raise AssertionError("a UNet folder cannot warm-start the DiT")


def test_max_minutes_stops_with_a_checkpoint_and_resumes(tmp_path):
    cfg = TrainConfig(model="classifier", steps=50, batch_size=4, checkpoint_every=1000)
    train(cfg, str(tmp_path), progress=False, max_minutes=0.0)  # out of time after one step
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == 1
    train(TrainConfig(model="classifier", steps=3, batch_size=4, checkpoint_every=1000),
          str(tmp_path), progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3

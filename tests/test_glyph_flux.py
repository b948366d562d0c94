"""glyph-flux: a stock FluxTransformer2DModel in GlyphPipeline (class tokens as its prompt,
4x4 pixel patches as its image tokens, FlowMatchEuler), its training, scheduler swaps, and
frdiff on it. Tiny configs here; the shipped model has its own checks in test_pipeline."""

import json

import pytest
import torch
from diffusers import FluxTransformer2DModel

from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline
from frdiff.cli import main
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import GlyphLabelEncoder, build_flow_scheduler
from frdiff.glyphs.pipeline import pack_patches, unpack_patches
from frdiff.glyphs.train import TrainConfig, export, train
from frdiff.schedulers import scheduler_names, set_scheduler

LABELS = "2345679ACEFHKMPRTUWX"


def tiny_flux_pipe() -> GlyphPipeline:
    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=48, num_layers=1, num_single_layers=2,
                                   attention_head_dim=8, num_attention_heads=2,
                                   joint_attention_dim=16, pooled_projection_dim=16,
                                   axes_dims_rope=(2, 2, 4))
    encoder = GlyphLabelEncoder(num_classes=len(LABELS), num_tokens=3, dim=16, pooled_dim=16)
    pipe = GlyphPipeline.from_model(model, build_flow_scheduler(), labels=LABELS,
                                    label_encoder=encoder, resolution=16)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sample(pipe, steps=6, labels="2A7X"):
    return pipe(list(labels), num_inference_steps=steps, output_type="pt",
                generator=torch.Generator().manual_seed(0)).images


def test_patches_round_trip_and_ids():
    x = torch.randn(2, 3, 16, 16)
    tokens, ids = pack_patches(x, 4)
    assert tokens.shape == (2, 16, 48) and ids.shape == (16, 3)
    assert ids[5].tolist() == [0, 1, 1] and ids[:, 0].abs().sum() == 0  # (0, row, column)
    assert torch.equal(unpack_patches(tokens, 4, x.shape), x)
    assert torch.equal(tokens[0, 0], x[0, :, :4, :4].reshape(-1))  # channel-major within a patch


def test_samples_and_round_trips_through_a_folder(tmp_path):
    pipe = tiny_flux_pipe()
    images = _sample(pipe)
    assert images.shape == (4, 3, 16, 16) and torch.isfinite(images).all()
    pipe.save_pretrained(str(tmp_path))
    loaded = load_pipeline(str(tmp_path))
    loaded.set_progress_bar_config(disable=True)
    assert loaded.resolution == 16 and loaded.image_channels == 3
    assert torch.equal(_sample(loaded), images)


def test_a_flux_transformer_needs_its_label_encoder():
    pipe = tiny_flux_pipe()
    with pytest.raises(ValueError, match="label_encoder"):
        GlyphPipeline(scheduler=pipe.scheduler, transformer=pipe.transformer, labels=LABELS)


def test_all_keyframe_is_exact_and_uniform_reuse_counts_a_speedup():
    pipe = tiny_flux_pipe()
    plain = _sample(pipe)
    with accelerate(pipe, KeyframePolicy.uniform(6, 1), ScoreMixing()) as run:
        same = _sample(pipe)
    assert torch.equal(same, plain) and run.stats.ideal_speedup == pytest.approx(1.0)
    with accelerate(pipe, KeyframePolicy.uniform(6, 2), ScoreMixing()) as run:
        fast = _sample(pipe)
    assert run.stats.ideal_speedup > 1.3
    assert torch.isfinite(fast).all() and not torch.equal(fast, plain)
    assert torch.equal(_sample(pipe), plain)  # every forward restored


@pytest.mark.parametrize("name", ["euler", "heun", "unipc", "dpmsolver"])
def test_flow_samplers_swap_and_frdiff_runs_on_each(name):
    pipe = set_scheduler(tiny_flux_pipe(), name)
    plain = _sample(pipe)
    pipe.scheduler.set_timesteps(6)
    n = len(pipe.scheduler.timesteps)  # Heun: one row per step() call
    with accelerate(pipe, KeyframePolicy.uniform(n, 1), ScoreMixing()):
        assert torch.equal(_sample(pipe), plain)
    with accelerate(pipe, KeyframePolicy.uniform(n, 2), ScoreMixing()):
        assert torch.isfinite(_sample(pipe)).all()


def test_a_cumprod_sampler_name_is_refused_on_a_flow_model():
    pipe = tiny_flux_pipe()
    assert scheduler_names(pipe) == ("euler", "heun", "unipc", "dpmsolver")
    with pytest.raises(ValueError, match="flow-matching model; choose from euler"):
        set_scheduler(pipe, "ddim")


def test_flow_training_resumes_exactly_and_exports_a_pipeline(tmp_path):
    straight = TrainConfig(model="glyph-flux", steps=2, batch_size=2, checkpoint_every=1)
    train(straight, str(tmp_path / "a"), progress=False)
    half = TrainConfig(model="glyph-flux", steps=1, batch_size=2, checkpoint_every=1)
    train(half, str(tmp_path / "b"), progress=False)
    train(straight, str(tmp_path / "b"), progress=False)
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["model"] for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("label_encoder.") for k in a)  # the class tokens train too
    info = export(str(tmp_path / "a"), str(tmp_path / "out"))
    assert info["model"] == "glyph-flux" and info["steps"] == 2
    pipe = load_pipeline(str(tmp_path / "out"))
    assert type(pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert pipe.resolution == 32


def test_warm_start_loads_both_parts(tmp_path):
    train(TrainConfig(model="glyph-flux", steps=1, batch_size=2), str(tmp_path / "a"), progress=False)
    export(str(tmp_path / "a"), str(tmp_path / "out"))
    exported = load_pipeline(str(tmp_path / "out"))
    cfg = TrainConfig(model="glyph-flux", steps=1, batch_size=2, lr=0.0, init_from=str(tmp_path / "out"))
    train(cfg, str(tmp_path / "b"), progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    enc = exported.label_encoder.state_dict()
    assert all(torch.equal(state[f"label_encoder.{k}"], v) for k, v in enc.items())


def test_cli_defaults_to_euler_and_28_steps_on_a_flow_folder(tmp_path, capsys):
    tiny_flux_pipe().save_pretrained(str(tmp_path / "m"))
    out = tmp_path / "s.png"
    assert main(["sample", "--model", str(tmp_path / "m"), "--labels", "2A", "--steps", "4",
                 "--policy", "uniform:2", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.exists() and result["stats"]["ideal_speedup"] > 1.0
    assert main(["sample", "--model", str(tmp_path / "m"), "--scheduler", "ddim",
                 "--out", str(out)]) == 2
    assert "choose from euler" in capsys.readouterr().err


def test_sweep_runs_every_flow_peer_on_a_flux_model(tmp_path, capsys):
    tiny_flux_pipe().save_pretrained(str(tmp_path / "m"))
    assert main(["sweep", "--model", str(tmp_path / "m"), "--steps", "6", "--batch", "2",
                 "--policies", "uniform:2", "--fewer-steps", "3", "--samples", "2", "--repeats", "1",
                 "--peers", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scheduler"] == "euler" and out["steps"] == 6
    rows = out["rows"]
    measured = {r["method"] for r in rows if "status" not in r}
    assert {"frdiff", "fewer steps", "MagCache (diffusers)", "FirstBlockCache (diffusers)",
            "TaylorSeer (diffusers)", "SeaCache (diffusers)", "cache-dit DBCache",
            "PyramidAttentionBroadcast (diffusers)",
            "cache-dit DBCache + TaylorSeer"} <= measured
    assert any(m.endswith("(other sampler)") for m in measured)
    reported = {r["method"]: r for r in rows if "status" in r}
    assert set(reported) == {"deepcache", "fastercache"}
    assert "packed tokens" in reported["fastercache"]["reason"]
    assert all(r["speedup"] > 0 and r["psnr"] == r["psnr"] for r in rows if "status" not in r)


def test_the_redundancy_tab_compares_streams_and_block_kinds_on_glyph_flux():
    from app.redundancy import measure, summary

    text = summary(measure("glyph-flux", "A7", "Euler", 6, 0))
    assert "**image** tokens (hidden_states)" in text and "**text** tokens" in text
    assert "Dual-stream blocks" in text and "single-stream blocks" in text
    assert "Per stream" not in summary(measure("glyph-dit", "A7", "DDIM", 6, 0))


def test_a_corrupt_checkpoint_or_another_models_policy_is_one_clear_error(tmp_path, capsys):
    tiny_flux_pipe().save_pretrained(str(tmp_path / "m"))
    weights = tmp_path / "m" / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["sample", "--model", str(tmp_path / "m"), "--steps", "4", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "error: could not load a pipeline from folder" in err and "Traceback" not in err
    assert main(["sample", "--model", "glyph-flux", "--steps", "50", "--labels", "A", "--out", str(tmp_path / "x.png"),
                 "--policy", "frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json"]) == 2
    assert "the model's reusable blocks are, in order: transformer_blocks.0" in capsys.readouterr().err

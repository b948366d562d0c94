import json
import os

import pytest
import torch

from frdiff import load_pipeline
from frdiff.glyphs import GlyphPipeline
from frdiff.schedulers import SCHEDULERS, set_scheduler


def _run(pipe, labels=("A", "7"), steps=4, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return pipe(list(labels), num_inference_steps=steps, generator=g, output_type="pt", **kw).images


def test_runs_end_to_end_and_is_deterministic(tiny_pipe):
    a = _run(tiny_pipe)
    assert a.shape == (2, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, _run(tiny_pipe))
    assert not torch.equal(a, _run(tiny_pipe, seed=1))


def test_labels_as_ids_equal_labels_as_characters(tiny_pipe):
    ids = tiny_pipe.label_ids(["A", "7"])
    assert torch.equal(_run(tiny_pipe, labels=ids), _run(tiny_pipe))


def test_cfg_is_one_batched_model_call_per_step(tiny_pipe):
    calls = []
    handle = tiny_pipe.denoiser.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        _run(tiny_pipe, steps=3, guidance_scale=3.0)
        assert calls == [4, 4, 4]  # [uncond, cond] for 2 labels, one call per step
        calls.clear()
        _run(tiny_pipe, steps=3, guidance_scale=1.0)
        assert calls == [2, 2, 2]
    finally:
        handle.remove()


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_swap(tiny_pipe, name):
    set_scheduler(tiny_pipe, name)
    assert isinstance(tiny_pipe.scheduler, SCHEDULERS[name][0])
    assert tiny_pipe.scheduler.config.prediction_type == "v_prediction"
    images = _run(tiny_pipe, steps=5)
    assert torch.isfinite(images).all() and images.shape == (2, 3, 16, 16)


def test_output_types(tiny_pipe):
    g = torch.Generator().manual_seed(0)
    pil = tiny_pipe(["A"], num_inference_steps=2, generator=g).images
    assert pil[0].size == (16, 16)
    arr = tiny_pipe(["A"], num_inference_steps=2, output_type="np").images
    assert arr.shape == (1, 16, 16, 3)


def test_save_and_load_local_folder(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    loaded = load_pipeline(str(tmp_path))
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded, GlyphPipeline) and loaded.labels == tiny_pipe.labels
    assert torch.equal(_run(loaded), _run(tiny_pipe))


@pytest.mark.parametrize("name", ["glyph-unet", "glyph-dit"])
def test_embedded_models_load_offline(name):
    pipe = load_pipeline(name)
    pipe.set_progress_bar_config(disable=True)
    images = _run(pipe, steps=3)
    assert images.shape == (2, 3, 32, 32)
    assert pipe.denoiser.config.sample_size == 32


def test_unknown_model_name_lists_embedded_names():
    with pytest.raises(ValueError, match="glyph-unet, glyph-dit"):
        load_pipeline("glyph-vae")


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="hub"):
        load_pipeline("nobody-here/no-such-model")


def test_unknown_label_names_valid_labels(tiny_pipe):
    with pytest.raises(ValueError, match="valid labels are 2 3 4"):
        _run(tiny_pipe, labels=["A", "0"])
    with pytest.raises(ValueError, match="valid labels"):
        _run(tiny_pipe, labels=[20])


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "num_inference_steps"),
    ({"resolution": 64}, "resolution"),
    ({"labels": []}, "batch size"),
])
def test_bad_call_arguments(tiny_pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(tiny_pipe, **kwargs)


def test_missing_weight_file_is_a_clear_error(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    sub = "unet" if tiny_pipe.unet is not None else "transformer"
    os.remove(tmp_path / sub / "diffusion_pytorch_model.safetensors")
    with pytest.raises(OSError, match=f"could not load a pipeline from folder {tmp_path}"):
        load_pipeline(str(tmp_path))


def test_corrupt_weight_file_is_a_clear_error(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    sub = "unet" if tiny_pipe.unet is not None else "transformer"
    (tmp_path / sub / "diffusion_pytorch_model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(OSError, match="could not load a pipeline"):
        load_pipeline(str(tmp_path))


def test_folder_without_index_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({}))
    with pytest.raises(OSError, match="model_index.json"):
        load_pipeline(str(tmp_path))

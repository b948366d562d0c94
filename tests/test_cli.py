"""The measuring CLI commands print one JSON object with the documented keys."""

import json

import pytest

from frdiff.cli import main


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_json(capsys):
    out = _json(capsys, ["evaluate", "--model", "glyph-unet", "--samples", "8", "--steps", "3",
                         "--json"])
    assert 0.0 <= out["class_accuracy"] <= 1.0 and out["fd"] >= 0.0 and out["samples"] == 8
    # --device names where the pipeline runs: the same figures on the CPU named explicitly
    same = _json(capsys, ["evaluate", "--model", "glyph-unet", "--samples", "8", "--steps", "3",
                          "--device", "cpu", "--json"])
    assert same["class_accuracy"] == out["class_accuracy"] and same["fd"] == out["fd"]


def test_unknown_device_is_an_error():
    with pytest.raises(RuntimeError):
        main(["evaluate", "--model", "glyph-unet", "--samples", "2", "--steps", "1",
              "--device", "no-such-device", "--json"])


@pytest.mark.parametrize("model", ["glyph-unet", "glyph-dit"])
def test_bench_json(capsys, model):
    out = _json(capsys, ["bench", "--model", model, "--steps", "6", "--batch", "2",
                         "--policy", "uniform:2", "--samples", "4", "--repeats", "1", "--json"])
    for key in ("speedup", "ideal_speedup", "psnr", "ssim", "class_accuracy",
                "baseline_class_accuracy"):
        assert key in out
    assert out["ideal_speedup"] > 1.0 and out["speedup"] > 0 and out["machine"]["cpu"]


def test_sample_writes_a_grid(capsys, tmp_path):
    path = tmp_path / "grid.png"
    out = _json(capsys, ["sample", "--model", "glyph-unet", "--steps", "4", "--labels", "A7",
                         "--policy", "deep:2", "--out", str(path), "--json"])
    assert path.exists() and out["labels"] == "A7" and out["stats"]["ideal_speedup"] > 1.0


def test_bad_policy_is_a_clean_error(capsys):
    assert main(["bench", "--model", "glyph-unet", "--steps", "6", "--policy", "uniform:0",
                 "--json"]) == 2
    assert "interval" in capsys.readouterr().err

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


def test_sweep_marks_the_pareto_front(capsys, tmp_path):
    path = tmp_path / "sweep.json"
    out = _json(capsys, ["sweep", "--model", "glyph-unet", "--steps", "6", "--batch", "2",
                         "--policies", "uniform:2,deep:3", "--samples", "4", "--repeats", "1",
                         "--out", str(path), "--json"])
    assert [r["setting"] for r in out["rows"]] == ["uniform:2, mixing on", "deep:3, mixing on",
                                                   "DDIM 3 steps", "DDIM 2 steps"]
    assert json.loads(path.read_text())["rows"] == out["rows"]
    for r in out["rows"]:  # a row is on the counted front iff no other row beats it on both
        beaten = any(o["ideal_speedup"] >= r["ideal_speedup"] and o["psnr"] > r["psnr"] or
                     o["ideal_speedup"] > r["ideal_speedup"] and o["psnr"] >= r["psnr"] for o in out["rows"])
        assert r["front_ideal_speedup"] == (not beaten)
    assert out["rows"][2]["ideal_speedup"] == 2.0 and out["rows"][3]["ideal_speedup"] == 3.0
    # without --json: a Markdown table, one line per setting
    assert main(["sweep", "--model", "glyph-unet", "--steps", "6", "--batch", "2", "--policies",
                 "uniform:2", "--fewer-steps", "3", "--samples", "2", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    assert table.count("\n| ") == 2 and "| DDIM 3 steps |" in table  # two rows under the header


def test_sweep_checks_every_policy_before_measuring(capsys):
    assert main(["sweep", "--model", "glyph-unet", "--steps", "6", "--policies", "uniform:2,nope.json",
                 "--json"]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_analyze_reports_blocks_and_bands(capsys):
    out = _json(capsys, ["analyze", "--model", "glyph-dit", "--steps", "5", "--labels", "A7",
                         "--interval", "2", "--json"])
    sim, freq = out["temporal_similarity"], out["frequency"]
    assert len(sim["change"]) == 4 and len(sim["change"][0]) == len(sim["blocks"]) == 6
    assert set(freq["runs"]) == {"fewer steps", "reduced NFE (lam = 0)", "FR only", "FRDiff (FR + mixing)",
                            "fewer steps, FRDiff's compute"}
    assert all(len(r["error_spectrum"]) == len(freq["bands"]) == 17 for r in freq["runs"].values())
    assert main(["analyze", "--model", "glyph-unet", "--steps", "4", "--labels", "K"]) == 0
    text = capsys.readouterr().out
    assert "mid_block" in text and "FR only" in text and "PSNR" in text


@pytest.mark.parametrize("args, message", [
    (["bench", "--policy", "uniform:2", "--samples", "0"], "--samples: must be >= 1"),
    (["evaluate", "--samples", "-3"], "--samples: must be >= 1"),
    (["bench", "--policy", "uniform:2", "--repeats", "x"], "whole number")])
def test_non_positive_counts_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_context_row_measures_any_accelerator_like_a_policy_row():
    """frdiff's accelerate as a context, under the same protocol as policy_row: the same counted
    speedup and the same images (PSNR), whatever wraps it."""
    from frdiff import KeyframePolicy, ScoreMixing, accelerate, load_pipeline
    from frdiff.glyphs import load_classifier
    from frdiff.glyphs.bench import context_row, policy_row

    pipe = load_pipeline("glyph-unet")
    pipe.set_progress_bar_config(disable=True)
    clf = load_classifier()
    common = dict(labels=[0, 1], steps=6, seed=0, samples=4, repeats=1)
    policy = KeyframePolicy.uniform(6, 2)
    ours = context_row(pipe, clf, "frdiff", "uniform:2", lambda: accelerate(pipe, policy, ScoreMixing()), **common)
    ref = policy_row(pipe, clf, "uniform:2", ScoreMixing(), **common)
    assert ours["method"] == "frdiff" and ours["setting"] == "uniform:2"
    assert abs(ours["ideal_speedup"] - ref["ideal_speedup"]) < 1e-3 and abs(ours["psnr"] - ref["psnr"]) < 1e-6
    assert ours["speedup"] > 0 and "baseline_images" in ours

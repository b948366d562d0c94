"""The measuring CLI commands print one JSON object with the documented keys."""

import json
import sys

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


@pytest.mark.parametrize("device, message", [("no-such-device", "is not a device"),
                                             ("", "is not a device"), ("meta", "not available")])
def test_unknown_device_is_a_clear_error_before_any_work(device, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--model", "glyph-unet", "--samples", "2", "--steps", "1",
              "--device", device, "--json"])
    assert stop.value.code == 2 and message in capsys.readouterr().err


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


ROW_KEYS = {"method", "setting", "speedup", "ideal_speedup", "psnr", "ssim", "class_accuracy", "fd", "peak_memory"}


def test_sweep_with_peers_has_a_row_per_setting_and_reports_what_cannot_run(capsys):
    out = _json(capsys, ["sweep", "--model", "glyph-dit", "--steps", "6", "--batch", "2", "--policies", "uniform:2",
                         "--fewer-steps", "3", "--samples", "2", "--repeats", "1", "--json",
                         "--peers", "magcache,firstblockcache,taylorseer,pab,deepcache,dpmsolver,fewer-steps"])
    rows = out["rows"]
    measured = [r for r in rows if "status" not in r]
    methods = {r["method"] for r in measured}
    assert {"frdiff", "fewer steps", "DPM-Solver++ (other sampler)", "MagCache (diffusers)",
            "FirstBlockCache (diffusers)", "TaylorSeer (diffusers)", "PyramidAttentionBroadcast (diffusers)"} == methods
    assert all(ROW_KEYS <= set(r) and r["speedup"] > 0 and r["ideal_speedup"] >= 1.0 - 1e-9 for r in measured)
    assert len([r for r in measured if r["method"].startswith("MagCache")]) == 4
    # the peer's fewer-steps rows (6 / 1.5 .. 6 / 3) without a second copy of the sweep's own 3 steps
    assert sorted(r["fewer_steps"] for r in measured if r["method"] == "fewer steps") == [2, 3, 4]
    (deep,) = [r for r in rows if r["method"] == "deepcache"]
    assert deep["status"] == "not applicable" and "UNet" in deep["reason"] and "psnr" not in deep
    assert all(("front_speedup" in r) == ("status" not in r) for r in rows)


def test_sweep_peer_errors_come_before_any_measuring(capsys, monkeypatch):
    assert main(["sweep", "--model", "glyph-dit", "--steps", "6", "--peers", "magcache,teacache", "--json"]) == 2
    err = capsys.readouterr().err
    assert "unknown peer 'teacache'" in err and "known peers: all, deepcache, fewer-steps" in err
    monkeypatch.setitem(sys.modules, "cache_dit", None)  # as if not installed
    assert main(["sweep", "--model", "glyph-dit", "--steps", "6", "--peers", "dbcache", "--json"]) == 2
    assert "pip install 'frdiff[peers]'" in capsys.readouterr().err


def test_all_peers_report_a_missing_package_as_a_row(monkeypatch):
    from frdiff.glyphs.peer_rows import peer_jobs, resolve

    monkeypatch.setitem(sys.modules, "cache_dit", None)
    from frdiff import load_pipeline

    pipe = load_pipeline("glyph-dit")
    chosen, every = resolve(["all"])
    assert every and len(chosen) == 11
    common = dict(labels=[0, 1], steps=6, seed=0, samples=2, repeats=1)
    jobs, reported = peer_jobs(pipe, None, chosen, "ddim", common)
    by_name = {r["method"]: r for r in reported}
    assert by_name["dbcache"]["status"] == by_name["dbcache-taylorseer"]["status"] == "not installed"
    assert "pip install" in by_name["dbcache"]["reason"] and by_name["deepcache"]["status"] == "not applicable"
    # SeaCache reads a flow sigma: on DDIM diffusers would run it fail-open (full compute), so it is refused
    assert by_name["seacache"]["status"] == "not applicable" and "fail-open" in by_name["seacache"]["reason"]
    # fewer steps and DPM-Solver++ at 6 / 1.5, 2, 2.5, 3 = 4, 3, 2, 2 steps; MagCache, FBC,
    # TaylorSeer, PAB, FasterCache
    assert len(jobs) == 3 + 3 + 4 + 3 + 3 + 2 + 2
    _, on_dpm = peer_jobs(pipe, None, [c for c in chosen if c.name == "dpmsolver"], "dpmsolver", common)
    assert on_dpm[0]["status"] == "not applicable" and "DPM-Solver++ already" in on_dpm[0]["reason"]


def test_magnitude_policy_spec_uses_the_shipped_calibration():
    import argparse

    from frdiff import block_depths, load_pipeline
    from frdiff.cli import _policy
    from frdiff.glyphs import load_calibration
    from frdiff.magnitude import magnitude_policy

    pipe = load_pipeline("glyph-dit")
    names = tuple(block_depths(pipe))
    args = argparse.Namespace(model="glyph-dit", scheduler="ddim", steps=50, policy="magnitude:0.12")
    expected = magnitude_policy(load_calibration("glyph-dit", "ddim", 50), 0.12, "R" * len(names), names)
    assert _policy(args, pipe) == expected and "R" in "".join(expected.schedule)
    inner = _policy(argparse.Namespace(**{**vars(args), "policy": "magnitude:0.12:KRRRRK"}), pipe)
    assert {row for row in inner.schedule} == {"K" * 6, "KRRRRK"}
    for bad, match in (("magnitude:x", "expected magnitude:THRESHOLD"), ("magnitude:-1", "THRESHOLD >= 0"),
                       ("magnitude:0.1:RR", "has 2 modes for 6 blocks")):
        with pytest.raises(ValueError, match=match):
            _policy(argparse.Namespace(**{**vars(args), "policy": bad}), pipe)
    with pytest.raises(ValueError, match="no shipped magnitude calibration for glyph-dit ddim 7 steps"):
        _policy(argparse.Namespace(**{**vars(args), "steps": 7}), pipe)


def test_budget_rows_compare_frdiff_with_every_peer_at_least_as_fast():
    from frdiff.glyphs.bench import budget_rows, budget_table

    def row(method, speed, db):
        return {"method": method, "setting": f"{method} {speed}", "speedup": speed, "ideal_speedup": speed,
                "psnr": db, "class_accuracy": 0.9, "baseline_class_accuracy": 0.9, "fd": 1.0, "baseline_fd": 1.0}

    rows = [row("frdiff", 1.6, 40.0), row("frdiff", 2.1, 33.0), row("MagCache", 1.7, 38.0),
            row("MagCache", 2.2, 35.0), row("fewer steps", 1.55, 45.0),
            {"method": "deepcache", "setting": "-", "status": "not applicable", "reason": "a DiT"}]
    by_budget = {r["budget"]: r for r in budget_rows({"rows": rows}, budgets=(1.5, 2.0, 3.0))}
    # 1.5x: frdiff's best is 1.6x at 40 dB; the 45 dB row is slower (1.55x), MagCache 1.7x has 38 dB
    assert by_budget[1.5]["frdiff"]["psnr"] == 40.0 and by_budget[1.5]["peer"]["psnr"] == 38.0
    assert by_budget[1.5]["ahead"]
    assert by_budget[2.0]["peer"]["speedup"] == 2.2 and not by_budget[2.0]["ahead"]  # 33 < 35 dB
    assert by_budget[3.0]["frdiff"] is None and not by_budget[3.0]["ahead"]
    table = budget_table({"rows": rows}, budgets=(1.5, 2.0, 3.0))
    assert "+2.0 dB" in table and "-2.0 dB" in table and "| 3.0x | none this fast |" in table
    from frdiff.glyphs.bench import verdict_table

    line = verdict_table([{"rows": rows, "model": "m", "scheduler": "ddim", "steps": 50}], budgets=(1.5, 2.0, 3.0))
    assert line.splitlines()[-1] == ("| m, ddim 50 | +2.0 dB | -2.0 dB (behind MagCache, MagCache 2.2: 2.20x, "
                                     "35.0 dB) | no row this fast |")
    # read at the budget: against every peer at least 1.5x, the slower 1.55x row at 45 dB counts
    at_budget = {r["budget"]: r for r in budget_rows({"rows": rows}, budgets=(1.5, 2.0), against="budget")}
    assert at_budget[1.5]["peer"]["psnr"] == 45.0 and not at_budget[1.5]["ahead"]
    assert at_budget[2.0]["peer"]["speedup"] == 2.2
    line = verdict_table([{"rows": rows, "model": "m", "scheduler": "ddim", "steps": 50}], budgets=(1.5,),
                         against="budget")
    assert line.splitlines()[-1] == "| m, ddim 50 | -5.0 dB (behind fewer steps, fewer steps 1.55: 1.55x, 45.0 dB) |"
    with pytest.raises(ValueError, match="against must be 'row' or 'budget'"):
        budget_rows({"rows": rows}, against="peer")


def test_a_policy_on_another_sampler_is_measured_against_the_sweeps_full_compute(capsys):
    out = _json(capsys, ["sweep", "--model", "glyph-unet", "--steps", "6", "--batch", "2", "--samples", "2",
                         "--repeats", "1", "--policies", "uniform:2,dpmsolver@4:uniform:2", "--fewer-steps", "3",
                         "--json"])
    here, other = out["rows"][0], out["rows"][1]
    assert other["setting"] == "DPM-Solver++ 4 steps + dpmsolver@4:uniform:2, mixing on"
    assert other["sampler"] == "DPM-Solver++" and other["run_steps"] == 4
    # 6 / 4 steps, times uniform:2's own counted speedup on 4 steps (3 keyframes of 4 with mixing)
    assert 6 / 4 < other["ideal_speedup"] < 6 / 4 * here["ideal_speedup"] + 0.5 and other["psnr"] < 100
    for bad, message in (("nope@4:uniform:2", "SAMPLER@STEPS:SPEC"), ("ddim@x:uniform:2", "SAMPLER@STEPS:SPEC"),
                         ("ddim@4:", "SAMPLER@STEPS:SPEC"), ("ddim@4:uniform:0", "interval")):
        assert main(["sweep", "--model", "glyph-unet", "--steps", "6", "--policies", bad, "--json"]) == 2
        assert message in capsys.readouterr().err

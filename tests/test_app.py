"""The app's callbacks on the embedded models, called directly (the served app and the browser
tests drive the same through gradio_client and Chromium)."""

import gradio as gr
import pytest
import torch

from app import compare as cmp
from app import frequency, redundancy, trajectory
from app.editor import check_policy
from app.errors import GENERIC, safe
from app.methods import FRDIFF, FULL
from app.models import POOL, blocks_of, replica
from app.plots import VALUE
from app.presets import preset_names, preset_policy, preset_text
from app.ui import build_demo
from frdiff import KeyframePolicy


def policy_text(model="glyph-unet", steps=6, preset="uniform, interval 2", scheduler="DDIM"):
    return preset_text(model, scheduler, steps, preset)


def run_compare(model="glyph-unet", glyphs="A7", steps=6, methods=(), text=None, scheduler="DDIM", seed=0):
    text = text or policy_text()
    return cmp.compare(model, glyphs, scheduler, steps, text, True, 30, 0.5, seed, list(methods))


def test_demo_builds():
    assert isinstance(build_demo(), gr.Blocks)


def test_compare_runs_every_method_from_the_same_noise():
    runs, notes, settings = run_compare(methods=["fr-only", "reduced-nfe", "fewer-steps"])
    assert [r.name for r in runs] == [FULL, FRDIFF, "FR only (mixing off)", "Reduced NFE only (lam = 0)",
                                      "Fewer steps (4)"]
    rows = cmp.score(runs, "glyph-unet", settings["glyphs"])
    assert rows[0]["psnr"] == 100.0 and rows[0]["counted_speedup"] == 1.0
    assert all(r["psnr"] < 100.0 for r in rows[1:])
    assert rows[1]["network_calls"] + rows[1]["network_calls_skipped"] == 6
    assert rows[3]["network_calls"] == 3  # reduced NFE: only the keyframes call the network
    assert rows[2]["network_calls"] == 6  # FR only: every step calls (with reused features)
    assert all(0 <= r["class_agreement"] <= 2 for r in rows)
    images, diffs = cmp.grids(runs, 2)
    assert list(images) == [r.name for r in runs] and len(diffs) == len(runs) - 1
    assert not notes


def test_all_keyframe_policy_reproduces_full_compute_bit_for_bit():
    runs, _, _ = run_compare("glyph-dit", "K", 4, text=policy_text("glyph-dit", 4, "uniform, interval 1"))
    assert torch.equal(runs[0].images, runs[1].images)
    assert cmp.difference(runs[1].images, runs[0].images).min() == 1.0  # an all-white difference


def test_shipped_auto_fr_runs_where_it_ships_and_is_a_note_elsewhere():
    runs, notes, _ = run_compare(steps=6, methods=["auto-fr"])
    assert len(runs) == 2 and "no shipped Auto-FR policy" in notes[0]


def test_a_failing_or_missing_peer_is_a_note_and_the_other_methods_run(monkeypatch):
    import app.methods

    def broken(*args):
        raise RuntimeError("the package blew up")
    monkeypatch.setattr(app.methods, "run_peer", broken)  # the name the methods call it by
    runs, notes, _ = run_compare(methods=["peer", "fewer-steps"])
    assert [r.name for r in runs][-1] == "Fewer steps (4)"
    assert "failed (RuntimeError: the package blew up)" in notes[0]
    monkeypatch.undo()
    monkeypatch.setattr("frdiff.peers.registry._probe", lambda module, package: f"{package} is not installed")
    runs, notes, _ = run_compare(methods=["peer"])
    assert len(runs) == 2 and "DeepCache (interval 3) is unavailable here" in notes[0]


def test_the_peer_that_applies_runs_with_its_counted_compute():
    for model, name in (("glyph-unet", "DeepCache (interval 3) (peer)"), ("glyph-dit", "MagCache (peer)")):
        runs, notes, _ = run_compare(model, "A7", 8, methods=["peer"], text=policy_text(model, 8))
        assert not notes and runs[-1].name == name
        assert runs[-1].calls == 8 and runs[-1].counted >= 1.0
        assert not torch.equal(runs[-1].images, runs[0].images) or runs[-1].counted == 1.0


@pytest.mark.parametrize("glyphs, message", [("A0", "valid glyphs"), ("", "at least one"),
                                             ("A" * 9, "at most 8"), (None, "must be text")])
def test_compare_rejects_bad_glyphs(glyphs, message):
    with pytest.raises(ValueError, match=message):
        run_compare(glyphs=glyphs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=2), "steps must be from 4"), (dict(steps=float("nan")), "whole number"),
    (dict(steps=6.5), "whole number"), (dict(seed=-1), "seed must be from 0"),
    (dict(scheduler="PLMS"), "unknown sampler"), (dict(model="sd15"), "unknown model"),
    (dict(methods=["magic"]), "unknown method"), (dict(text="K" * 30_000), "at most 20000")])
def test_compare_rejects_bad_settings_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_compare(**kwargs)


def test_compare_rejects_a_hand_made_policy_of_another_length_and_rederives_a_named_one():
    hand = "\n".join(line for line in policy_text(steps=5).splitlines() if not line.startswith("# spec:"))
    with pytest.raises(ValueError, match="covers 5 steps but the run has 4"):
        run_compare(steps=4, text=hand)
    runs, _, _ = run_compare(steps=4, text=policy_text(steps=5))  # made from uniform:2: made again for 4
    assert runs[1].calls <= 4 and runs[1].counted > 1.0


def test_errors_reach_the_page_as_messages():
    with pytest.raises(gr.Error, match="unknown sampler"):
        safe(run_compare)(scheduler="PLMS")

    def broken():
        raise RuntimeError("internal detail")
    with pytest.raises(gr.Error) as info:
        safe(broken)()
    assert info.value.message == GENERIC


def test_pool_replicas_share_weights_but_not_modules_or_schedulers():
    base = POOL.peek("glyph-unet")
    twin = replica(base)
    assert twin.unet is not base.unet
    assert all(a is b for a, b in zip(twin.unet.parameters(), base.unet.parameters()))
    with POOL.borrow("glyph-unet", "DPM-Solver++") as pipe:
        dpm = pipe.scheduler
        assert dpm.config.algorithm_type == "dpmsolver++"
    with POOL.borrow("glyph-unet", "DDIM") as pipe:  # a fresh scheduler, nothing left from DPM
        assert pipe.scheduler is not dpm and "algorithm_type" not in pipe.scheduler.config


def test_presets_offer_tuned_policies_where_they_ship():
    assert "Auto-FR tuned, 2.0x" in preset_names("glyph-unet", "DDIM", 50)
    assert "Auto-FR tuned, 2.5x" in preset_names("glyph-dit", "DPM-Solver++", 20)
    assert not [n for n in preset_names("glyph-unet", "DDIM", 30) if n.startswith("Auto-FR")]
    with pytest.raises(ValueError, match="no preset"):
        preset_text("glyph-unet", "DDIM", 30, "Auto-FR tuned, 2.0x")


@pytest.mark.parametrize("preset", ["uniform, interval 3", "whole-block skip, interval 2",
                                    "Auto-FR tuned, 2.0x"])
def test_every_preset_round_trips_through_the_editor(preset):
    policy = preset_policy("glyph-unet", "DDIM", 50, preset)
    parsed = KeyframePolicy.from_text(preset_text("glyph-unet", "DDIM", 50, preset))
    blocks = len(blocks_of("glyph-unet"))
    assert [[parsed.mode(s, b) for b in range(blocks)] for s in range(50)] == \
        [[policy.mode(s, b) for b in range(blocks)] for s in range(50)]


def test_editor_check_draws_valid_policies_and_explains_bad_ones():
    text = policy_text(steps=10)
    fig, status = check_policy("glyph-unet", 10, text, True, 30, 0.5)
    assert status.startswith("Valid: 5 keyframe steps, 2 steps with no network call")
    assert len(fig.data[0].z) == len(blocks_of("glyph-unet")) and len(fig.data[0].z[0]) == 10
    assert fig.data[0].z[0][1] == 0 and fig.data[0].z[0][9] == VALUE["F"]  # no call early, FR late
    fig, status = check_policy("glyph-unet", 10, text.replace("KF", "FK", 1), True, 30, 0.5)
    assert fig is None and "step 0 must be a keyframe" in status
    fig, status = check_policy("glyph-dit", 10, text, True, 30, 0.5)
    assert fig is None and "do not match the model" in status
    fig, status = check_policy("glyph-unet", 10, text, True, float("nan"), 0.5)
    assert fig is None and "finite number" in status


def test_redundancy_measures_every_block_and_the_step_matrix():
    data = redundancy.measure("glyph-dit", "A7", "DDIM", 5, 0)
    blocks = list(blocks_of("glyph-dit"))
    assert data["blocks"] == blocks
    fig = redundancy.heatmap(data, [0, 2, 4])
    assert len(fig.data[0].z) == len(blocks) and len(fig.data[0].z[0]) == 4
    matrix = redundancy.matrix(data, blocks[1], [0, 2, 4])
    assert len(matrix.data[0].z) == 5 and matrix.data[0].z[2][2] == 0
    assert "Most active block" in redundancy.summary(data)
    with pytest.raises(ValueError, match="unknown block"):
        redundancy.matrix(data, "nope")


def test_trajectory_is_recorded_once_and_scrubbed_from_the_store():
    data = trajectory.record("glyph-unet", "A7", "DDIM", 6, policy_text(), True, 30, 0.5, 0)
    assert data["kinds"][0] == "keyframe" and set(data["kinds"]) <= {"keyframe", "reuse", "no call"}
    assert data["full"].shape[:2] == (6, 2) and data["psnr"][0] == 100.0  # step 0: both compute
    left, right, text = trajectory.frame(data, 3)
    assert left.size == right.size and "Step **3** of 6" in text
    with pytest.raises(ValueError, match="step must be from 0 to 5"):
        trajectory.frame(data, 6)


def test_frequency_tab_returns_mixed_score_and_image_spectra():
    data = frequency.spectra("glyph-unet", "A7", "DDIM", 10, policy_text(steps=10), True, 30, 0.5, 0)
    scores, lam, final = frequency.figures(data)
    assert {t.name for t in scores.data} == {"keyframe's prediction (reduced NFE)", "feature reuse (FR)",
                                             "score mixing (what the sampler used)"}
    assert len(data["lam_curve"]) == 10 and "low-frequency error" in frequency.summary(data)
    assert "the paper's picture" in frequency.summary(data).lower()
    assert "FRDiff (FR + mixing)" in data["images"]["runs"]


@pytest.mark.parametrize("key, fr, verdict", [([1e-3] * 4 + [1e-2] * 4, [1e-2] * 4 + [1e-3] * 4, "**holds**"),
                                              ([1e-3] * 8, [1e-2] * 8, "**does not hold**")])
def test_frequency_summary_states_what_the_numbers_show(key, fr, verdict):
    mixed = [(a + b) / 2 for a, b in zip(key, fr)]
    data = {"scores": {"bands": list(range(8)), "lam": [1.0, 0.5, 1.0],
                       "mean": {"eps_key": key, "eps_fr": fr, "mixed": mixed}}}
    assert verdict in frequency.summary(data)


def test_identical_images_from_two_requests_get_their_own_files():
    from PIL import Image

    from app.files import image_file

    image = Image.new("RGB", (8, 8), "white")
    a, b = image_file(image), image_file(image)
    assert a != b and Image.open(a).tobytes() == Image.open(b).tobytes() == image.tobytes()


def test_the_grid_speaks_the_cost_model_and_round_trips_the_text():
    from app.grid import block_costs, grid_value, text_of
    from frdiff import ScoreMixing
    from frdiff.cost import CallCosts

    text = preset_text("glyph-unet", "DDIM", 50, "uniform, interval 2")
    value = grid_value("glyph-unet", 50, text, True, 30, 0.5)
    costs = block_costs("glyph-unet")
    assert all(c > 0 for c in costs["block"]) and costs["total"] > sum(costs["block"])
    policy = KeyframePolicy.from_text(text)
    assert abs(CallCosts(**costs).speedup(policy, ScoreMixing()) - 1.54) < 0.01  # the bench's counted 1.54x
    assert KeyframePolicy.from_text(text_of(value)) == policy
    assert value["lam"][1] == 0.0 and value["rows"][0] == "K" * len(value["blocks"])
    bad = grid_value("glyph-unet", 50, "nonsense", True, 30, 0.5)
    assert bad["rows"] == [] and bad["error"]
    with pytest.raises(ValueError):
        text_of({"rows": ["KK", "QQ"], "blocks": ["a", "b"]})
    # what is not a block's modes (a forecast, the unconditional half's schedule) survives painting
    both = policy.with_forecast("logsnr").with_uncond_every(2)
    value = grid_value("glyph-unet", 50, both.to_text(), True, 30, 0.5)
    assert value["uncond"] == both.uncond and value["forecast"] == "logsnr"
    assert KeyframePolicy.from_text(text_of(value)) == both
    with pytest.raises(ValueError, match="uncond"):
        text_of(value | {"uncond": "R" * 50})


def test_the_grid_costs_run_on_a_replica_no_request_borrows():
    """block_costs counts a call on the pool's spare replica: its own modules (so a request's
    patched forwards are never copied or run), the weights shared."""
    spare = POOL.spare("glyph-unet")
    with POOL.borrow("glyph-unet") as lent:
        assert spare is not lent and spare.denoiser is not lent.denoiser
        assert next(spare.denoiser.parameters()) is next(lent.denoiser.parameters())
        assert "forward" not in spare.denoiser.__dict__

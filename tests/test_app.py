"""The app's callbacks on the embedded models (the browser test drives the same through the page)."""

import gradio as gr
import pytest

from app.compare import compare
from app.editor import check_policy
from app.presets import blocks_of, preset_names, preset_policy, preset_text
from app.redundancy import redundancy
from app.ui import build_demo
from frdiff import KeyframePolicy


def test_demo_builds():
    assert isinstance(build_demo(), gr.Blocks)


def test_compare_runs_three_ways_and_reports():
    text = preset_text("glyph-unet", "DDIM", 6, "uniform, interval 2")
    full, fast, fewer, table, spectrum = compare("glyph-unet", "A7", "DDIM", 6, text, True, 30, 0.5, 0)
    assert full.size == fast.size == fewer.size
    rows = [r for r in table.splitlines() if r.startswith("| ")][1:]
    assert [r.split("|")[1].strip() for r in rows] == [
        "Full compute", "FRDiff (edited policy)", "Fewer steps, same counted compute"]
    assert "100.0 dB" in rows[0] and "100.0 dB" not in rows[1]
    assert [t.name for t in spectrum.data] == ["FRDiff", "fewer steps (4)"]


def test_all_keyframe_policy_reproduces_full_compute():
    text = preset_text("glyph-dit", "DDIM", 4, "uniform, interval 1")
    *_, table, _ = compare("glyph-dit", "K", "DDIM", 4, text, True, 30, 0.5, 3)
    assert table.splitlines()[3].count("100.0 dB") == 1  # the FRDiff row, bit for bit


@pytest.mark.parametrize("labels, message", [("A0", "valid labels"), ("", "at least one"),
                                             ("A" * 9, "at most 8")])
def test_compare_rejects_bad_glyphs(labels, message):
    text = preset_text("glyph-unet", "DDIM", 4, "uniform, interval 2")
    with pytest.raises(ValueError, match=message):
        compare("glyph-unet", labels, "DDIM", 4, text, True, 30, 0.5, 0)


def test_compare_rejects_a_policy_of_another_length_before_any_work():
    text = preset_text("glyph-unet", "DDIM", 5, "uniform, interval 2")
    with pytest.raises(ValueError, match="covers 5 steps but the run has 4"):
        compare("glyph-unet", "A", "DDIM", 4, text, True, 30, 0.5, 0)


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
    text = preset_text("glyph-unet", "DDIM", 10, "uniform, interval 2")
    fig, status = check_policy("glyph-unet", 10, text, True, 30, 0.5)
    assert status.startswith("Valid: 5 keyframe steps, 2 steps with no network call")
    assert len(fig.data[0].z) == len(blocks_of("glyph-unet")) and len(fig.data[0].z[0]) == 10
    assert fig.data[0].z[0][1] == 0 and fig.data[0].z[0][9] == 2  # no call early, FR late
    fig, status = check_policy("glyph-unet", 10, text.replace("KF", "FK", 1), True, 30, 0.5)
    assert fig is None and "step 0 must be a keyframe" in status
    fig, status = check_policy("glyph-dit", 10, text, True, 30, 0.5)
    assert fig is None and "do not match the model" in status


def test_redundancy_view_measures_every_block():
    fig, summary = redundancy("glyph-dit", "A7", "DDIM", 5, 0)
    assert len(fig.data[0].z) == len(blocks_of("glyph-dit")) and len(fig.data[0].z[0]) == 4
    assert "Most active block" in summary

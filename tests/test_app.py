import gradio as gr
import pytest

from app.compare import compare
from app.ui import build_demo


def test_demo_builds():
    assert isinstance(build_demo(), gr.Blocks)


def test_compare_runs_three_ways_and_reports():
    full, reduced, fast, table = compare("glyph-unet", "A7", 4, 2, True, 0)
    assert full.size == reduced.size == fast.size
    assert "Full compute" in table and "FRDiff" in table and "ideal speedup" in table


def test_compare_rejects_unknown_glyphs():
    with pytest.raises(ValueError, match="valid labels"):
        compare("glyph-unet", "A0", 4, 2, True, 0)

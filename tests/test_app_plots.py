"""Every plot of the app fits its data: no empty axes, no clipped points, the step x step
matrix square with its axes the step range. The figures come from real (short) runs of the
app's own measurements, the way the tabs make them."""

import math

import plotly.graph_objects as go
import pytest

from app import frequency, redundancy, trajectory
from app.plots import distance_figure, lam_figure, policy_figure
from app.presets import preset_text
from frdiff import KeyframePolicy, ScoreMixing

STEPS = 8
TEXT = preset_text("glyph-unet", "DDIM", STEPS, "uniform, interval 2")
SETTINGS = ("glyph-unet", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 0)


def _explained(fig: go.Figure) -> bool:
    """A figure without data that says why, on hidden axes."""
    return bool(fig.layout.annotations) and fig.layout.xaxis.visible is False


def _numbers(values):
    out = []
    for v in values if values is not None else []:
        if isinstance(v, (list, tuple)):
            out += _numbers(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def check_fits(fig: go.Figure, slack: float = 0.6) -> None:
    """Each trace has data; where an axis range is set, every point of every trace is inside
    it and the data spans at least `slack` of it (not a plot of mostly empty axes)."""
    layout = fig.layout
    traces = [t for t in fig.data if _numbers(t.x) or _numbers(t.y) or _numbers(getattr(t, "z", None))]
    if not traces and _explained(fig):
        return
    assert traces, "a figure with no data"
    for axis in ("x", "y"):
        span = getattr(layout, f"{axis}axis").range
        values = []
        for t in fig.data:
            coords = _numbers(getattr(t, axis))
            if not coords and getattr(t, "z", None) is not None:  # a heatmap without coordinates: indices
                z = t.z
                coords = list(range(len(z[0]) if axis == "x" else len(z)))
            values += coords
        if span is None or not values:
            continue
        low, high = sorted(span)
        assert low <= min(values) and max(values) <= high, (axis, span, min(values), max(values))
        if high > low:
            assert (max(values) - min(values)) / (high - low) >= slack, (axis, span, min(values), max(values))


@pytest.fixture(scope="module")
def similarity():
    return redundancy.measure("glyph-unet", "A7", "DDIM", STEPS, 0)


def test_the_step_by_step_matrix_is_square_over_the_step_range(similarity):
    fig = redundancy.matrix(similarity, "mid_block", [0, 2, 4, 6])
    check_fits(fig, slack=0.8)
    assert list(fig.layout.xaxis.range) == [-0.5, STEPS - 0.5]
    assert sorted(fig.layout.yaxis.range) == [-0.5, STEPS - 0.5]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.xaxis.constrain == "domain"
    heatmap = fig.data[0]
    assert len(heatmap.z) == len(heatmap.z[0]) == STEPS and list(heatmap.x) == list(range(STEPS))


def test_the_change_heatmap_covers_every_step_and_block(similarity):
    fig = redundancy.heatmap(similarity, [0, 2])
    check_fits(fig, slack=0.8)
    assert len(fig.data[0].z) == len(similarity["blocks"]) and len(fig.data[0].z[0]) == STEPS - 1


def test_the_trajectory_plot_shows_every_point_identical_steps_included():
    data = trajectory.record(*SETTINGS)
    assert data["psnr"][0] == 100.0 and min(data["psnr"]) < 100.0  # identical at step 0, then apart
    fig = distance_figure(data["psnr"], data["kinds"], 3)
    check_fits(fig)
    markers = [y for t in fig.data[1:] for y in t.y]
    assert len(markers) == STEPS and max(markers) < fig.layout.yaxis.range[1]


def test_the_frequency_and_policy_figures_have_their_data():
    text = preset_text("glyph-unet", "DDIM", 20, "uniform, interval 2")
    data = frequency.spectra("glyph-unet", "A7", "DDIM", 20, text, True, 10, 0.5, 0)  # a gentle ramp: mixed steps
    for fig in frequency.figures(data)[:3]:
        assert isinstance(fig, go.Figure) and fig.data
        check_fits(fig)
    empty = frequency.figures(frequency.spectra(*SETTINGS))[0]  # 8 steps, k = 30: no mixed step
    assert not empty.data and "no reuse step of this run mixes" in empty.layout.annotations[0].text
    check_fits(empty)
    policy = KeyframePolicy.uniform(STEPS, 2)
    check_fits(lam_figure([ScoreMixing().lam(i, STEPS) for i in range(STEPS)],
                          [policy.step_kind(i, ScoreMixing()) for i in range(STEPS)]))
    check_fits(policy_figure(policy, ScoreMixing(), ["a", "b"]))


def test_the_checker_fails_on_clipped_and_mostly_empty_axes():
    clipped = go.Figure(go.Scatter(x=[0, 1, 2], y=[10, 20, 100]))
    clipped.update_layout(yaxis_range=[5, 30])
    with pytest.raises(AssertionError):
        check_fits(clipped)
    empty = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
    empty.update_layout(xaxis_range=[-60, 110])
    with pytest.raises(AssertionError):
        check_fits(empty)
    with pytest.raises(AssertionError):
        check_fits(go.Figure(go.Scatter(x=[], y=[])))

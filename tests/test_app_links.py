"""Links that restore a view (app/links.py): what a link holds is checked like typed input,
a bad or hostile parameter falls back to its default with a notice that never echoes it,
and the link the page writes restores the same view."""

from urllib.parse import parse_qsl

import pytest

from app import inputs, links
from app.specs import spec_text


def test_a_link_restores_tab_model_policy_and_seed():
    view = links.parse({"tab": "trajectory", "model": "glyph-dit", "policy": "uniform:3", "seed": "5"})
    assert (view.tab, view.model, view.seed, view.sampler, view.steps) == ("trajectory", "glyph-dit", 5, "DDIM", 50)
    assert view.policy == spec_text("glyph-dit", 50, "uniform:3") and not view.notices
    assert view.runs and not links.parse({"tab": "learn"}).runs  # learning waits for its button
    flux = links.parse({"model": "glyph-flux"})
    assert (flux.sampler, flux.steps) == ("Euler", 28) and inputs.policy_of("glyph-flux", 28, flux.policy)


def test_the_written_link_restores_the_same_view():
    text = spec_text("glyph-unet", 20, "deep:2")
    query = links.query("frequency", "glyph-unet", "DPM-Solver++", 20, "AK", 9, False, 12, 0.25, text)
    view = links.parse(dict(parse_qsl(query[1:])))
    assert (view.tab, view.model, view.sampler, view.steps, view.glyphs, view.seed) == \
        ("frequency", "glyph-unet", "DPM-Solver++", 20, "AK", 9)
    assert (view.mixing, view.slope, view.bias, view.policy) == (False, 12, 0.25, text) and not view.notices
    grid = "\n".join(line for line in text.splitlines() if not line.startswith("# spec"))  # painted by hand
    again = links.parse(dict(parse_qsl(links.query("compare", "glyph-unet", "DDIM", 20, "A", 0, True, 30, 0.5,
                                                   grid)[1:])))
    assert inputs.policy_of("glyph-unet", 20, again.policy) == inputs.policy_of("glyph-unet", 20, grid)


SCRIPT = "<script>alert(1)</script>"


@pytest.mark.parametrize("params, bad", [
    ({"tab": "nowhere"}, "tab"), ({"model": "sdxl"}, "model"), ({"steps": "100000"}, "steps"),
    ({"steps": "nan"}, "steps"), ({"seed": "-4"}, "seed"), ({"glyphs": SCRIPT}, "glyphs"),
    ({"mixing": "maybe"}, "mixing"), ({"slope": "inf"}, "slope"), ({"bias": "2"}, "bias"),
    ({"sampler": "Euler", "model": "glyph-unet"}, None), ({"sampler": "DDIM", "model": "glyph-flux"}, "sampler"),
    ({"policy": "x" * 100_000}, "policy"), ({"policy": SCRIPT}, "policy"), ({"policy": "/etc/passwd"}, "policy"),
    ({"model": SCRIPT, "tab": SCRIPT}, "model")])
def test_bad_or_hostile_parameters_fall_back_with_a_notice_that_echoes_nothing(params, bad):
    view = links.parse(params | {"unknown": SCRIPT})
    note = links.notice(view)
    assert "<script" not in note and "x" * 300 not in note and "/etc/passwd" not in note
    if bad is None:
        assert not view.notices
        return
    assert f"`{bad}`" in note or (bad == "policy" and "policy is not a valid policy" in note)
    default = links.View()
    for name in ("tab", "model", "steps", "seed", "glyphs", "mixing", "slope", "bias"):
        if name == bad:
            assert getattr(view, name) == getattr(default, name)
    assert inputs.policy_of(view.model, view.steps, view.policy, view.sampler)  # a valid policy always


def test_no_parameters_restore_nothing():
    assert not links.parse({}).given and links.notice(links.parse({})) == ""

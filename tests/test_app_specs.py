"""Policies by name (app/specs.py): every spec kind makes a policy for any step count, a grid
made from a spec is re-derived at another step count, and what is not a spec is refused
without the server reading any file it names."""

import pytest

from app import inputs
from app.presets import preset_names, preset_policy, preset_spec, preset_text
from app.models import blocks_of
from app.specs import is_spec, spec_in, spec_policy, spec_text


def cells(policy, model):
    """Every step's modes, block by block (a grid and a per-step policy compare equal)."""
    return [[policy.mode(s, b) for b in range(len(blocks_of(model)))] for s in range(policy.num_steps)], \
        policy.uncond, policy.forecast


@pytest.mark.parametrize("spec, steps, keyframes", [("uniform:2", 20, 10), ("uniform:3", 50, 17),
                                                    ("uniform:2:none", 20, 10), ("deep:2", 21, 11),
                                                    ("uniform:3+cfg:2", 30, 10)])
def test_interval_specs_make_the_policy_for_the_runs_steps(spec, steps, keyframes):
    policy = inputs.policy_of("glyph-unet", steps, spec)
    assert policy.num_steps == steps and len(policy.keyframes) == keyframes


def test_every_preset_is_a_spec_and_its_text_says_so():
    for model, scheduler, steps in (("glyph-unet", "DDIM", 50), ("glyph-dit", "DDIM", 50), ("glyph-flux", "Euler", 28)):
        for label in preset_names(model, scheduler, steps):
            spec = preset_spec(model, scheduler, steps, label)
            text = preset_text(model, scheduler, steps, label)
            assert is_spec(spec) and spec_in(text) == spec
            preset = cells(preset_policy(model, scheduler, steps, label), model)
            assert cells(inputs.policy_of(model, steps, text, scheduler), model) == preset
            assert cells(inputs.policy_of(model, steps, spec, scheduler), model) == preset


def test_a_grid_made_from_a_spec_is_rederived_at_other_steps_and_a_hand_grid_is_not():
    text = preset_text("glyph-unet", "DDIM", 50, "uniform, interval 2")
    assert inputs.policy_of("glyph-unet", 20, text) == spec_policy("glyph-unet", 20, "uniform:2")
    hand = "\n".join(line for line in text.splitlines() if not line.startswith("# spec:"))
    assert cells(inputs.policy_of("glyph-unet", 50, hand), "glyph-unet") == \
        cells(spec_policy("glyph-unet", 50, "uniform:2"), "glyph-unet")
    with pytest.raises(ValueError, match="covers 50 steps but the run has 20"):
        inputs.policy_of("glyph-unet", 20, hand)


def test_shipped_masks_magnitude_and_residual_specs():
    tuned = inputs.policy_of("glyph-unet", 50, "tuned:2.0", "DDIM")
    assert cells(tuned, "glyph-unet") == cells(preset_policy("glyph-unet", "DDIM", 50, "Auto-FR tuned, 2.0x"),
                                               "glyph-unet")
    assert len(inputs.policy_of("glyph-unet", 28, "mask:fast").keyframes) < 28
    magnitude = inputs.policy_of("glyph-dit", 50, "magnitude:0.2", "DDIM")
    assert "R" in "".join(magnitude.schedule) and len(magnitude.keyframes) < 50
    assert "F" in "".join(inputs.policy_of("glyph-unet", 50, "magnitude:0.2", "DDIM").schedule)  # no R on a UNet
    inner = inputs.policy_of("glyph-dit", 12, "inner-residual:3")
    assert inner.schedule[1][0] == "K" and inner.schedule[1][1] == "R"
    assert spec_text("glyph-unet", 6, "uniform:2").startswith("# spec: uniform:2\n")


@pytest.mark.parametrize("text, message", [
    ("uniform:0", "at least 1"), ("uniform:x", "not a whole number"), ("deep:", "expected deep"),
    ("tuned:9.9", "shipped for these settings: tuned:1.5"), ("magnitude:-1", "THRESHOLD >= 0"),
    ("mask:warp", "the masks are slow"), ("inner-residual:2", "transformer blocks"),
    ("/etc/passwd", "or name a policy"), ("assets/policies/glyph-unet-ddim50-2.0x.json", "or name a policy"),
    ("uniform:2+cfg:2\nmore", "no modes")])
def test_what_is_not_a_spec_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        inputs.policy_of("glyph-unet", 50, text, "DDIM")


APP_BAD = {"uniform": "uniform:x", "deep": "deep:x", "inner-residual": "inner-residual:x",
           "magnitude": "magnitude:x", "mask": "mask:warp", "tuned": "tuned"}


def test_the_apps_registry_is_the_libraries_prefixes_and_its_own():
    from frdiff.specs import LIBRARY

    from app.specs import SPECS

    assert SPECS.names == ("uniform", "deep", "inner-residual", "magnitude", "mask", "tuned")
    assert SPECS["uniform"] is LIBRARY["uniform"] and SPECS["deep"] is LIBRARY["deep"]
    assert SPECS["magnitude"].parse is LIBRARY["magnitude"].parse and not SPECS.files
    for prefix in SPECS:  # every example makes a policy for the run's steps
        assert spec_policy("glyph-dit", 50, prefix.example, "DDIM").num_steps == 50
        with pytest.raises(ValueError) as error:
            spec_policy("glyph-dit", 50, APP_BAD[prefix.name], "DDIM")
        message = str(error.value)
        assert repr(APP_BAD[prefix.name]) in message and prefix.grammar in message
        assert f"e.g. {prefix.example}" in message
    with pytest.raises(ValueError, match="apply to keyframe policies \\(uniform:, deep:\\), not magnitude:"):
        spec_policy("glyph-dit", 50, "magnitude:0.2+forecast", "DDIM")
    with pytest.raises(ValueError) as error:
        spec_policy("glyph-dit", 50, "adaptive:0.1", "DDIM")  # the app runs keyframe policies only
    assert all(p.grammar in str(error.value) for p in SPECS) and "JSON" not in str(error.value)


def test_the_guide_lists_every_app_prefix():
    import pathlib

    from app.specs import SPECS

    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    assert [p.name for p in SPECS if p.row() not in guide] == []

"""The one spec parser (frdiff/specs.py): every prefix parses its example, a bad spec of each
names the spec, its grammar and an example, an unknown one lists what is known; the mode
letters and reuse names are defined once (frdiff/modes.py)."""

import pathlib

import pytest

from frdiff import AdaptivePolicy, KeyframePolicy
from frdiff.magnitude import Calibration
from frdiff.modes import Mode
from frdiff.specs import LIBRARY, Parsed, SpecContext, parse_policy, parse_spec

STEPS = 12
BLOCKS = {"a": 0, "b": 1, "c": 1, "d": 0}
BAD = {"uniform": "uniform:x", "deep": "deep:2:x", "adaptive": "adaptive:x", "magnitude": "magnitude:x",
       "SAMPLER@STEPS": "nope@4:uniform:2"}


def calibration(model, sampler, steps):
    """A made-up calibration for any sampler: magnitudes that shrink a little each step."""
    return Calibration(tuple(1.0 - 0.01 * i for i in range(steps)), "stack residual")


CONTEXT = SpecContext(blocks=BLOCKS, residual=True, model="toy", sampler="ddim", calibration=calibration,
                      samplers=("ddim", "dpmsolver"))


@pytest.mark.parametrize("prefix", list(LIBRARY), ids=LIBRARY.names)
def test_every_prefix_parses_its_example_and_grammar_names_it(prefix):
    assert LIBRARY.find(prefix.example, CONTEXT) is prefix
    parsed = parse_spec(prefix.example, STEPS, CONTEXT)
    assert isinstance(parsed, Parsed) and isinstance(parsed.policy, (KeyframePolicy, AdaptivePolicy))
    assert parsed.policy.num_steps == parsed.steps


@pytest.mark.parametrize("prefix", list(LIBRARY), ids=LIBRARY.names)
def test_a_bad_spec_of_every_prefix_names_the_spec_the_grammar_and_an_example(prefix):
    spec = BAD[prefix.name]
    with pytest.raises(ValueError) as error:
        parse_spec(spec, STEPS, CONTEXT)
    message = str(error.value)
    assert repr(spec) in message and prefix.grammar in message and f"e.g. {prefix.example}" in message


def test_an_unknown_prefix_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        parse_policy("unifrom:2", STEPS, CONTEXT)
    message = str(error.value)
    assert "'unifrom:2'" in message and "e.g. uniform:2" in message and "JSON" in message
    assert all(p.grammar in message for p in LIBRARY)
    with pytest.raises(ValueError) as error:  # where no other sampler can run, SAMPLER@ is not one
        parse_policy("dpmsolver@4:uniform:2", STEPS)
    assert "SAMPLER@STEPS" not in str(error.value) and "uniform:K" in str(error.value)


def test_the_library_specs_make_the_constructors_policies():
    assert KeyframePolicy.parse("uniform:3:block", STEPS) == KeyframePolicy.uniform(STEPS, 3, "block")
    assert parse_policy("deep:2:1:F", STEPS, CONTEXT) == KeyframePolicy.deep_skip(BLOCKS, STEPS, 2, 1, "F")
    assert parse_policy("adaptive:0.2:block:3", STEPS) == AdaptivePolicy(STEPS, 0.2, "skip", 3)
    assert parse_policy("uniform:2+cfg:3+forecast:logsnr", STEPS) == \
        KeyframePolicy.uniform(STEPS, 2).with_uncond_every(3).with_forecast("logsnr")
    magnitude = parse_policy("magnitude:0.5", STEPS, CONTEXT)  # residual blocks: R by default
    assert set("".join(magnitude.schedule)) == {"K", "R"} and magnitude.blocks == tuple(BLOCKS)
    unet = SpecContext(blocks=BLOCKS, calibration=calibration, model="toy", sampler="ddim")
    assert set("".join(parse_policy("magnitude:0.5", STEPS, unet).schedule)) == {"K", "F"}
    other = parse_spec("dpmsolver@6:uniform:2+forecast", STEPS, CONTEXT)
    assert (other.sampler, other.steps) == ("dpmsolver", 6)
    assert other.policy == KeyframePolicy.uniform(6, 2).with_forecast("step")
    with pytest.raises(ValueError, match="parse_spec"):
        parse_policy("dpmsolver@6:uniform:2", STEPS, CONTEXT)


@pytest.mark.parametrize("spec, context, words", [
    ("deep:2", None, "needs the model's blocks"),
    ("magnitude:0.1", None, "needs the model's shipped calibration"),
    ("magnitude:0.1", SpecContext(blocks=BLOCKS, model="toy", sampler="euler", calibration=lambda *a: None),
     "no shipped magnitude calibration for toy euler 12 steps"),
    ("magnitude:-1", CONTEXT, "THRESHOLD >= 0"),
    ("magnitude:0.1:RR", CONTEXT, "has 2 modes for 4 blocks"),
    ("uniform:0", None, "the interval must be at least 1"),
    ("uniform:2:teleport", None, "reuse must be one of fr, block, residual, none"),
    ("uniform:2:fr:extra", None, "expected uniform:K[:fr|block|residual|none]"),
    ("adaptive:0.1+forecast", None, "not adaptive: ones"),
    ("uniform:2+cfg:0", None, "bad policy option '+cfg:0' in 'uniform:2+cfg:0'"),
    ("dpmsolver@x:uniform:2", CONTEXT, "expected SAMPLER@STEPS:SPEC"),
    ("ddim@4:ddim@2:uniform:2", CONTEXT, "bad policy 'ddim@2:uniform:2'"),  # not nested
    ("dpmsolver@4:uniform:0", CONTEXT, "bad policy 'uniform:0': the interval"),
])
def test_refusals_say_what_is_wrong(spec, context, words):
    with pytest.raises(ValueError) as error:
        parse_spec(spec, STEPS, context)
    assert words in str(error.value) and str(error.value).startswith("bad policy")


def test_policy_files_are_read_where_the_registry_reads_files(tmp_path):
    path = tmp_path / "p.json"
    policy = KeyframePolicy.uniform(STEPS, 4)
    policy.to_json(str(path))
    assert parse_policy(str(path), STEPS) == policy
    assert parse_policy(f"{path}+cfg:2", STEPS) == policy.with_uncond_every(2)
    assert parse_policy(policy.to_json(), STEPS) == policy


def test_one_mode_vocabulary():
    assert [m.value for m in Mode] == ["K", "F", "S", "R", "N"] and Mode.SKIP == "S"
    assert f"{Mode.RESIDUAL}" == str(Mode.RESIDUAL) == "R" and Mode.KEYFRAME * 2 + "F" == "KKF"
    assert {name: Mode.from_reuse(name) for name in ("fr", "block", "skip", "residual", "none")} == {
        "fr": "F", "block": "S", "skip": "S", "residual": "R", "none": "N"}
    assert [m for m in Mode if m.whole_block] == [Mode.SKIP, Mode.RESIDUAL]
    assert Mode.legend() == "K keyframe, F feature reuse, S skip block, R residual reuse, N no call"
    assert AdaptivePolicy(4, 0.1, "block").reuse_mode is Mode.SKIP


def test_the_guide_lists_every_library_prefix():
    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    missing = [p.name for p in LIBRARY if p.row() not in guide]
    assert missing == []

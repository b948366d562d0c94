"""The library's public constructors and parsers under hypothesis: KeyframePolicy (and its
uniform / from_steps / deep_skip / per_block / from_text / parse), AdaptivePolicy and
ScoreMixing, given random values of every type. Each call builds a valid object or raises a
ValueError with a message; never another exception, and what it builds behaves (a policy round
trips through JSON and text, lam stays in [0, 1], an adaptive policy serialises)."""

import math

import hypothesis
import pytest

from conftest import examples
from frdiff import AdaptivePolicy, KeyframePolicy, ScoreMixing

st = hypothesis.strategies

ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["K", "F", "S", "R", "N", "KF", "KK", "FS", "NN", "fr", "skip", "block",
                       "residual", "none", "hold", "extrapolate", "", "\x00", "k"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10)
NUMBER = st.one_of(st.integers(-10**30, 10**30), st.floats(), st.booleans(), st.none(),
                   st.text(max_size=6), st.sampled_from([0, 1, 2, 3, 50, -1, math.nan, math.inf]))
TEXT = st.one_of(st.text(max_size=60), st.sampled_from([
    "uniform:2", "uniform:", "uniform:0", "uniform:2:bogus", "uniform:2:none", "uniform:99999999",
    "deep:2", "deep:2:1:F", "deep:2:x", "deep:-1", "adaptive:0.1", "adaptive:nan", "adaptive:inf",
    "adaptive:0.1:skip:3", "adaptive:0.1:skip:-3", "adaptive:", "{}", "[]", '{"schedule": ["K"]}',
    "down_blocks.0 KFKF\nmid_block KSKS", "mid_block K F\nmid_block K F", "a KX", "# only\n",
    "a " + "K" * 5000, "\n" * 50]))
DEPTHS = {"down_blocks.0": 0, "mid_block": 1, "up_blocks.0": 0}


def _valid_or_value_error(build):
    try:
        return build()
    except ValueError as err:
        assert str(err).strip(), "a ValueError without a message"
        return None


def _check_policy(policy):
    assert isinstance(policy, KeyframePolicy)
    assert KeyframePolicy.from_dict(policy.to_dict()) == policy
    assert set(policy.schedule[0]) == {"K"}
    if policy.blocks is not None:
        again = KeyframePolicy.from_text(policy.to_text())
        assert again.blocks == policy.blocks and again.num_steps == policy.num_steps
        assert all(again.mode(i, b) == policy.mode(i, b) for i in range(policy.num_steps)
                   for b in range(len(policy.blocks)))


@hypothesis.settings(max_examples=examples(200))
@hypothesis.given(schedule=ANY, blocks=ANY)
def test_keyframe_policy_constructor(schedule, blocks):
    policy = _valid_or_value_error(lambda: KeyframePolicy(schedule, blocks))
    if policy is not None:
        _check_policy(policy)


@hypothesis.settings(max_examples=examples(200))
@hypothesis.given(num_steps=NUMBER, interval=NUMBER, reuse=ANY, keyframes=ANY, keep=NUMBER,
                  shallow=ANY)
def test_keyframe_policy_classmethods(num_steps, interval, reuse, keyframes, keep, shallow):
    hypothesis.assume(not (isinstance(num_steps, int) and num_steps > 10**5))
    for build in (lambda: KeyframePolicy.uniform(num_steps, interval, reuse),
                  lambda: KeyframePolicy.from_steps(num_steps, keyframes, reuse),
                  lambda: KeyframePolicy.deep_skip(DEPTHS, num_steps, interval, keep, shallow),
                  lambda: KeyframePolicy.per_block(list(DEPTHS), keyframes)):
        policy = _valid_or_value_error(build)
        if policy is not None:
            _check_policy(policy)


@hypothesis.settings(max_examples=examples(200))
@hypothesis.given(text=TEXT, num_steps=NUMBER)
def test_policy_text_and_specs(text, num_steps):
    hypothesis.assume(not (isinstance(num_steps, int) and num_steps > 10**5))
    policy = _valid_or_value_error(lambda: KeyframePolicy.from_text(text))
    if policy is not None:
        _check_policy(policy)
    parsed = _valid_or_value_error(lambda: KeyframePolicy.parse(text, num_steps, DEPTHS))
    if isinstance(parsed, KeyframePolicy):
        _check_policy(parsed)
    elif parsed is not None:
        assert isinstance(parsed, AdaptivePolicy) and parsed.num_steps == num_steps


@hypothesis.settings(max_examples=examples(200))
@hypothesis.given(num_steps=NUMBER, threshold=NUMBER, reuse=ANY, max_reuse=NUMBER)
def test_adaptive_policy_constructor(num_steps, threshold, reuse, max_reuse):
    policy = _valid_or_value_error(lambda: AdaptivePolicy(num_steps, threshold, reuse, max_reuse))
    if policy is not None:
        assert math.isfinite(policy.threshold) and policy.threshold >= 0
        assert policy.reuse_mode in "FSR" and policy.to_dict()["num_steps"] == num_steps
        assert policy.forced_keyframe(0) and policy.summary()


@hypothesis.settings(max_examples=examples(200))
@hypothesis.given(slope=NUMBER, bias=NUMBER, enabled=ANY, multistep=ANY, step=st.integers(0, 60),
                  num_steps=st.integers(1, 60))
def test_score_mixing_constructor(slope, bias, enabled, multistep, step, num_steps):
    mixing = _valid_or_value_error(lambda: ScoreMixing(slope, bias, enabled, multistep))
    if mixing is not None:
        lam = mixing.lam(min(step, num_steps - 1), num_steps)
        assert 0.0 <= lam <= 1.0 and isinstance(mixing.enabled, bool)


@pytest.mark.parametrize("args", [("2", 0.5), (30.0, "0.5"), ([1], 0.5), (30.0, None)])
def test_score_mixing_wrong_types_are_value_errors(args):
    with pytest.raises(ValueError, match="slope|bias"):
        ScoreMixing(*args)

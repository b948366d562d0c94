"""The policy editor's text format: one row per block, round trips, clear errors."""

import pytest

from frdiff import KeyframePolicy

BLOCKS = ["down.0", "mid", "up.0"]


def test_round_trip_of_a_per_block_policy():
    policy = KeyframePolicy.per_block(BLOCKS, {"down.0": "KFSKKFSK" * 2, "mid": "KSSKKSSK" * 2,
                                               "up.0": "KFFKKFFK" * 2})
    text = policy.to_text(group=5)
    assert text.splitlines()[2].split() == ["down.0", "KFSKK", "FSKKF", "SKKFS", "K"]
    assert KeyframePolicy.from_text(text) == policy


def test_policy_without_block_names_is_laid_out_over_the_models_blocks():
    policy = KeyframePolicy.uniform(7, 3)
    with pytest.raises(ValueError, match="needs the model's blocks"):
        policy.to_text()
    parsed = KeyframePolicy.from_text(policy.to_text(BLOCKS))
    assert parsed.blocks == tuple(BLOCKS) and parsed.keyframes == [0, 3, 6]
    assert all(parsed.mode(s, b) == policy.mode(s, b) for s in range(7) for b in range(3))


def test_spaces_comments_and_lower_case_are_accepted():
    policy = KeyframePolicy.from_text("# a comment\n\n a  kf Kf\n b  KS KS\n")
    assert policy.schedule == ("KK", "FS", "KK", "FS") and policy.blocks == ("a", "b")


@pytest.mark.parametrize("text, message", [
    ("", "no block lines"),
    ("a\n", "has no modes"),
    ("a KFX\n", r"unknown mode\(s\) X"),
    ("a KF\na KF\n", "appears twice"),
    ("a KFK\nb KF\n", "same number of steps; got a: 3, b: 2"),
    ("a FK\n", "step 0 must be a keyframe"),
])
def test_bad_text_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        KeyframePolicy.from_text(text)


def test_text_for_other_blocks_is_refused():
    policy = KeyframePolicy.per_block(["a", "b"], {"a": "KF", "b": "KS"})
    with pytest.raises(ValueError, match="unknown"):
        policy.to_text(["a", "c"])

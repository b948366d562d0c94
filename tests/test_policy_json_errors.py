"""Policy JSON with wrong types, bad paths or bad text: a ValueError saying what was expected."""

import json
import os

import pytest

from frdiff import KeyframePolicy


@pytest.mark.parametrize("data, match", [
    ({"schedule": 5}, "'schedule' must be a list of mode strings"),
    ({"schedule": "KFK"}, "'schedule' must be a list of mode strings"),
    ({"schedule": None}, "'schedule' must be a list"),
    ({"schedule": {"0": "K"}}, "'schedule' must be a list"),
    ({"schedule": ["K", 5]}, "step 1: expected a string of modes"),
    ({"schedule": [["K"], "F"]}, "step 0: expected a string of modes"),
    ({"schedule": ["K", None]}, "step 1: expected a string"),
    ({"schedule": []}, "at least one step"),
    ({"schedule": ["K", "X"]}, "modes"),
    ({"schedule": ["KK", "FS"], "blocks": "ab"}, "'blocks' must be null or a list of block names"),
    ({"schedule": ["KK", "FS"], "blocks": 3}, "'blocks' must be null or a list"),
    ({"schedule": ["KK", "FS"], "blocks": ["a", 2]}, "blocks 1: expected a block name"),
    ({"schedule": ["KK", "FS"], "blocks": ["a", "a"]}, "unique"),
    ({"schedule": ["K"], "steps": 3}, "unknown policy JSON key.*'steps'.*allowed: schedule"),
    ({"blocks": ["a"]}, "object with a 'schedule' list.*keys \\['blocks'\\]"),
    ([["K", "F"]], "object with a 'schedule' list.*got list"),
    ("KFK", "object with a 'schedule' list.*got str"),
    (5, "object with a 'schedule' list.*got int"),
])
def test_from_dict_wrong_types(data, match):
    with pytest.raises(ValueError, match=match):
        KeyframePolicy.from_dict(data)


@pytest.mark.parametrize("text, match", [
    ('{"schedule": 5}', "'schedule' must be a list"),
    ('{"schedule": "KF"}', "'schedule' must be a list"),
    ('{"schedule": [1, 2]}', "step 0: expected a string"),
    ('["K", "F"]', "object with a 'schedule' list.*got list"),
    ('{"schedule": ["K", "F"]', "not valid JSON.*expected an object like"),
    ("{not json}", "not valid JSON"),
    ("uniform:2", "neither policy JSON text .* nor the path of an existing policy JSON file"),
    ("", "neither policy JSON text"),
    ("no/such/policy.json", "neither policy JSON text"),
])
def test_from_json_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        KeyframePolicy.from_json(text)


@pytest.mark.parametrize("value", [5, None, b'{"schedule": ["K"]}', ["K"]])
def test_from_json_wrong_argument_type(value):
    with pytest.raises(ValueError, match="given as text or a file path"):
        KeyframePolicy.from_json(value)


def test_from_json_paths(tmp_path):
    with pytest.raises(ValueError, match="is a directory; expected a policy JSON file"):
        KeyframePolicy.from_json(str(tmp_path))
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            KeyframePolicy.from_json("/dev/null")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schedule": "KFK"}')
    with pytest.raises(ValueError, match="'schedule' must be a list"):
        KeyframePolicy.from_json(str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text("{ oops")
    with pytest.raises(ValueError, match="broken.json' is not valid JSON"):
        KeyframePolicy.from_json(broken)  # a pathlib.Path works too
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="cannot read policy file"):
        KeyframePolicy.from_json(str(binary))
    good = tmp_path / "good.json"
    policy = KeyframePolicy.per_block(["a", "b"], {"a": "KFN", "b": "KSN"})
    policy.to_json(str(good), note="kept")
    assert KeyframePolicy.from_json(good) == policy == KeyframePolicy.from_json(good.read_text())


def test_parse_names_the_accepted_forms():
    with pytest.raises(ValueError, match="expected uniform:K.*deep:K.*adaptive:THRESHOLD.*JSON"):
        KeyframePolicy.parse("unifrom:2", 6)


def test_constructor_refuses_a_string_schedule():
    with pytest.raises(ValueError, match="schedule must be a list or tuple of mode strings"):
        KeyframePolicy("KFK")
    with pytest.raises(ValueError, match="schedule must be a list or tuple"):
        KeyframePolicy(5)


import hypothesis  # noqa: E402 - in requirements-dev.txt: a missing install must fail, not skip
from conftest import examples  # noqa: E402
st = hypothesis.strategies

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    | st.sampled_from(["K", "F", "S", "N", "KF", "KK", "FS", "NN"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
POLICYISH = st.fixed_dictionaries({}, optional={"schedule": JSONISH, "blocks": JSONISH, "meta": JSONISH})


@hypothesis.settings(max_examples=examples(150))
@hypothesis.given(st.one_of(JSONISH, POLICYISH))
def test_random_json_values_raise_only_value_error(data):
    for load in (lambda: KeyframePolicy.from_dict(data),
                 lambda: KeyframePolicy.from_json(json.dumps(data))):
        try:
            policy = load()
        except ValueError:
            continue
        assert KeyframePolicy.from_dict(policy.to_dict()) == policy

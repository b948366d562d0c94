"""The live policy editor: parse the text, draw the grid, say what is wrong."""

from __future__ import annotations

import os

from frdiff import KeyframePolicy

from . import inputs
from .errors import user_message
from .files import data_file
from .models import blocks_of
from .plots import policy_figure


def check_policy(model: str, steps, text: str, mixing: bool, slope: float, bias: float):
    """(figure or None, status Markdown) for the editor's current text."""
    try:
        model, steps = inputs.model_name(model), inputs.steps_of(steps)
        policy = inputs.policy_of(model, steps, text)
        mix = inputs.mixing_of(mixing, slope, bias)
    except (ValueError, TypeError) as err:
        return None, f"**Policy not valid:** {user_message(err)}"
    blocks = list(blocks_of(model))
    kinds = [policy.step_kind(s, mix) for s in range(policy.num_steps)]
    cells = "".join(policy.mode(s, b) for s in range(policy.num_steps) for b in range(len(blocks)))
    status = (f"Valid: {len(policy.keyframes)} keyframe steps, {kinds.count('no call')} steps with no "
              f"network call (N, or score mixing's lam = 0), {cells.count('F')} feature-reuse, "
              f"{cells.count('S')} skipped and {cells.count('R')} residual-reuse block-steps.")
    return policy_figure(policy, mix, blocks), status


def import_policy(model, steps, path) -> str:
    """The editor text of an uploaded policy file: policy JSON (`KeyframePolicy.to_json`, the
    Compare tab's download) or the editor's text grid. Size-checked before it is read, parsed as
    data only, and checked against the model and the step count; a ValueError says what is wrong."""
    model, steps = inputs.model_name(model), inputs.steps_of(steps)
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValueError("choose a policy file (.json or .txt) to import")
    size = os.path.getsize(path)
    if size > inputs.LIMITS.upload:
        raise ValueError(f"the file is {size} bytes; at most {inputs.LIMITS.upload} (FRDIFF_APP_MAX_UPLOAD)")
    with open(path, "rb") as f:
        raw = f.read(inputs.LIMITS.upload + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8 text: expected policy JSON or the editor's text grid") from None
    blocks = list(blocks_of(model))
    if text.lstrip().startswith("{"):
        policy = KeyframePolicy.from_json(text)
        text = policy.to_text(blocks) if policy.blocks is None else policy.to_text()
    inputs.policy_of(model, steps, text)  # the same checks as a typed policy
    return text


def export_policy(model, steps, text) -> list[str]:
    """The editor's policy as a policy JSON file and as its text grid (two downloads)."""
    model, steps = inputs.model_name(model), inputs.steps_of(steps)
    policy = inputs.policy_of(model, steps, text)
    return [data_file(policy.to_json(), "policy.json"), data_file(policy.to_text() + "\n", "policy.txt")]

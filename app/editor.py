"""The live policy editor: parse the text, draw the grid, say what is wrong."""

from __future__ import annotations

from . import inputs
from .errors import user_message
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

"""The live policy editor: parse the text, draw the grid, say what is wrong."""

from __future__ import annotations

from frdiff import KeyframePolicy, ScoreMixing

from .plots import policy_figure
from .presets import blocks_of


def mixing_of(enabled: bool, slope: float, bias: float) -> ScoreMixing:
    return ScoreMixing(slope=float(slope), bias=float(bias)) if enabled else ScoreMixing.off()


def parse_policy(model: str, steps: int, text: str) -> KeyframePolicy:
    """The editor's text as a policy for this model and step count, or a ValueError saying why not."""
    policy = KeyframePolicy.from_text(text)
    policy.check_blocks(list(blocks_of(model)))
    if policy.num_steps != int(steps):
        raise ValueError(f"the policy covers {policy.num_steps} steps but the run has {int(steps)}: "
                         f"pick a preset or edit the rows")
    return policy


def check_policy(model: str, steps: int, text: str, mixing: bool, slope: float, bias: float):
    """(figure or None, status Markdown) for the editor's current text."""
    try:
        policy = parse_policy(model, steps, text)
        mix = mixing_of(mixing, slope, bias)
    except ValueError as err:
        return None, f"**Policy not valid:** {err}"
    blocks = list(blocks_of(model))
    no_call = sum(1 for s in range(policy.num_steps) if not policy.makes_call(s, mix))
    cells = "".join(policy.mode(s, b) for s in range(policy.num_steps) for b in range(len(blocks)))
    status = (f"Valid: {len(policy.keyframes)} keyframe steps, {no_call} steps with no network call "
              f"(N, or score mixing's lam = 0), {cells.count('F')} feature-reuse and {cells.count('S')} "
              f"skipped block-steps.")
    return policy_figure(policy, mix, blocks), status

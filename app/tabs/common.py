"""What every tab shares: the default settings, the cheap-event options, the controls by name."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = ("glyph-unet", "DDIM", 50, "uniform, interval 2")  # model, sampler, steps, preset
CHEAP = dict(queue=False, api_visibility="private")  # drawing, picking, scrubbing: no queue, not in the API


@dataclass(frozen=True)
class Controls:
    """The settings row and the policy editor: the components every tab reads, by name."""

    model: object
    glyphs: object
    scheduler: object
    steps: object
    editor: object
    mixing: object
    slope: object
    bias: object
    seed: object
    preset: object = None
    check: tuple = ()  # what the editor's check reads: model, steps, editor, mixing, slope, bias
    change: object = None  # the redundancy measurement, for the grid's hover text

    @property
    def all(self) -> list:
        """The nine settings in the order every model-running callback takes them."""
        return [self.model, self.glyphs, self.scheduler, self.steps, self.editor, self.mixing, self.slope,
                self.bias, self.seed]

    @property
    def policy(self) -> list:
        """The policy and its mixing: what a live edit changes."""
        return [self.editor, self.mixing, self.slope, self.bias]

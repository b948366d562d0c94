"""FR units and their kinds: what a cached module does at F, how that is installed, what it saves.

targets.py finds the units in a denoiser and gives each its kind once, from the module's
class; from then on the kind travels with the unit and nothing dispatches on it again:
`install_reuse` asks it to install itself, the cost model asks it for its expensive part,
statistics and `describe` show its name.
  resnet    ResnetBlock2D: cache conv1's output (after norm1, SiLU, resampling); at F only
            the tail after conv1 runs (tails.resnet_tail),
  residual  Transformer2DModel in conditional UNets, residual self-attention in UNet2DModel:
            cache the residual branch, output = current input + cached branch,
  output    a submodule whose output is cached before its gate (an attention, an MLP): at F
            it returns the cached value into its block's own forward,
  feeder    a submodule whose output only feeds a cached unit of its block: at F it does not
            run; only its output's shape is needed, so the runtime keeps a stand-in of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from .patching import Patches
from .reuse import (Capture, ReuseState, conv1_capture_hook, output_forward, residual_forward,
                    resnet_forward)


class UnitKind:
    """How one kind of FR unit is reused. Stateless: one instance per kind (below)."""

    name: ClassVar[str]  # as statistics count it (`RunStats.modules_reused`) and describe shows it
    shape_only: ClassVar[bool] = False  # at F only the shape of its output is used

    def forward(self, unit: FRUnit, state: ReuseState, original: Callable) -> Callable:
        """The forward to install in place of `original` (reuse.py)."""
        raise NotImplementedError

    def install(self, unit: FRUnit, state: ReuseState, patches: Patches) -> None:
        """Replace the unit's forward (and whatever else its kind needs), undone by `patches`."""
        patches.forward(unit.module, lambda f: self.forward(unit, state, f))

    def expensive_part(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module whose compute the unit saves at an F step (the cost model counts it)."""
        return module

    def __repr__(self) -> str:
        return f"<unit kind {self.name}>"


class ResnetKind(UnitKind):
    """ResnetBlock2D: conv1's output is cached, kept by a hook on conv1 at keyframes."""

    name = "resnet"

    def install(self, unit: FRUnit, state: ReuseState, patches: Patches) -> None:
        capture = Capture()  # this unit's own: which call's conv1 output to keep
        patches.forward(unit.module, lambda f: resnet_forward(unit, state, f, capture))
        conv1 = unit.module.conv1
        patches.hook(conv1.register_forward_hook(conv1_capture_hook(unit, state, capture)), conv1)

    def expensive_part(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.conv1  # norm1, SiLU and resampling before it are not counted


class ResidualKind(UnitKind):
    """A residual branch: output = input (rescaled) + cached branch."""

    name = "residual"

    def forward(self, unit: FRUnit, state: ReuseState, original: Callable) -> Callable:
        return residual_forward(unit, state, original)


class OutputKind(UnitKind):
    """A submodule whose output is cached before its gate."""

    name = "output"

    def forward(self, unit: FRUnit, state: ReuseState, original: Callable) -> Callable:
        return output_forward(unit, state, original)


class FeederKind(OutputKind):
    """A submodule consumed only by a cached unit: reused like an output, its value a stand-in."""

    name = "feeder"
    shape_only = True  # Run.keep holds a zero stand-in of it (reuse.stand_in), no memory


RESNET, RESIDUAL, OUTPUT, FEEDER = ResnetKind(), ResidualKind(), OutputKind(), FeederKind()


@dataclass
class FRUnit:
    """One module whose expensive part is cached at keyframes and reused in between."""

    name: str
    module: torch.nn.Module
    kind: UnitKind
    block: int  # index of its policy block

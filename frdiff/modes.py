"""The modes a policy block takes at a step: one letter each, named once here.

Schedules store the letters themselves (one per block per step, in JSON files and text grids),
so `Mode` is a `str` enum: `Mode.SKIP == "S"`, `"".join(modes)` is plain text and a member
formats as its letter. The reuse names the constructors take ("fr", "block" or "skip",
"residual", "none") map to a mode here and nowhere else (`Mode.from_reuse`); each policy type
says which of the names it accepts.
"""

from __future__ import annotations

import enum


class Mode(str, enum.Enum):
    """K keyframe, F feature reuse, S skip block, R residual reuse, N no call (policy.py says
    what each does)."""

    KEYFRAME = "K"
    FEATURE_REUSE = "F"
    SKIP = "S"
    RESIDUAL = "R"
    NO_CALL = "N"

    def __str__(self) -> str:  # the letter, as a schedule stores it (Python 3.10 to 3.12 alike)
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def label(self) -> str:
        """What the letter means, in the words the text grid and error messages use."""
        return _LABELS[self]

    @property
    def whole_block(self) -> bool:
        """Is the block not run at all (S, R): the cost model's whole-block gate z."""
        return self in (Mode.SKIP, Mode.RESIDUAL)

    @classmethod
    def from_reuse(cls, name: str) -> "Mode":
        """The mode a reuse name stands for: "fr" F, "block"/"skip" S, "residual" R, "none" N.
        KeyError for any other name (callers say which names they take)."""
        return REUSE[name]

    @classmethod
    def legend(cls, parenthesised: bool = False) -> str:
        """Every mode and its meaning: "K keyframe, F feature reuse, ..." or, parenthesised,
        "K (keyframe), F (feature reuse), ..." (the text grid's header, error messages)."""
        return ", ".join(f"{m} ({m.label})" if parenthesised else f"{m} {m.label}" for m in cls)

_LABELS = {Mode.KEYFRAME: "keyframe", Mode.FEATURE_REUSE: "feature reuse", Mode.SKIP: "skip block",
           Mode.RESIDUAL: "residual reuse", Mode.NO_CALL: "no call"}
REUSE = {"fr": Mode.FEATURE_REUSE, "block": Mode.SKIP, "skip": Mode.SKIP, "residual": Mode.RESIDUAL,
         "none": Mode.NO_CALL}

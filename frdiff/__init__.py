"""frdiff: training-free acceleration of diffusion models by feature reuse (FRDiff).

The library (this package) never imports the glyph testbed (`frdiff.glyphs`); `load_pipeline`
and `GlyphPipeline` come from it on first use, so `import frdiff` does not load it.
"""

from .accelerate import RunStats, accelerate, block_depths, describe
from .adaptive import AdaptivePolicy
from .mixing import ScoreMixing
from .modes import Mode
from .policy import KeyframePolicy
from .schedulers import set_scheduler
from .specs import SpecContext, parse_policy  # also makes KeyframePolicy.parse delegate to it

__all__ = ["AdaptivePolicy", "KeyframePolicy", "Mode", "RunStats", "ScoreMixing", "accelerate",
           "SpecContext", "block_depths", "describe", "load_pipeline", "parse_policy", "set_scheduler"]
__version__ = "0.1.0"

_FROM_TESTBED = ("GlyphPipeline", "load_pipeline")


def __getattr__(name: str):
    if name in _FROM_TESTBED:
        from . import glyphs

        return getattr(glyphs, name)
    raise AttributeError(f"module 'frdiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_TESTBED))

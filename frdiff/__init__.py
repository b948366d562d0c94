"""frdiff: training-free acceleration of diffusion models by feature reuse (FRDiff)."""

from .adaptive import AdaptivePolicy
from .accelerate import RunStats, accelerate, block_depths, describe
from .mixing import ScoreMixing
from .pipelines import GlyphPipeline, load_pipeline, set_scheduler
from .policy import KeyframePolicy

__all__ = ["AdaptivePolicy", "GlyphPipeline", "KeyframePolicy", "RunStats", "ScoreMixing",
           "accelerate", "block_depths", "describe", "load_pipeline", "set_scheduler"]
__version__ = "0.1.0"

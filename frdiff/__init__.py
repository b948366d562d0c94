"""frdiff: training-free acceleration of diffusion models by feature reuse (FRDiff)."""

from .pipelines import GlyphPipeline, load_pipeline, set_scheduler

__all__ = ["GlyphPipeline", "load_pipeline", "set_scheduler"]
__version__ = "0.1.0"

"""The glyph testbed, a client of the frdiff library: everything needed to try feature reuse
offline on a CPU, and nothing the library itself depends on.

    data       procedural 32x32 glyphs rendered from matplotlib's fonts
    models     the embedded generators' and the classifier's architectures
    train      training (resumable) and export in diffusers layout
    pipeline   GlyphPipeline, the embedded models (package data in assets/), load_pipeline
    evaluate   class accuracy and Frechet distance in the classifier's feature space
    bench      a policy's measured speedup and quality against full compute
    peer_rows  the peers of a sweep (frdiff.peers' registry) at the settings it measures
    sweep      policies, fewer steps and peers as rows under one protocol, with the Pareto front
"""

from .pipeline import (ASSETS_DIR, EMBEDDED_MODELS, GlyphPipeline, load_calibration, load_classifier,
                       load_pipeline)

__all__ = ["ASSETS_DIR", "EMBEDDED_MODELS", "GlyphPipeline", "load_calibration", "load_classifier",
           "load_pipeline"]

"""Observe, change nothing: the pictures behind feature reuse and score mixing.

    temporal_similarity(pipe, 50, pairwise=True, ...)   # per-block change between steps
    frequency_comparison(pipe, 50, interval=2, ...)     # final images' error per frequency band
    score_spectra(pipe, policy, mixing, 50, ...)        # eps_key, eps_FR, mix vs full, per step
    trajectory(pipe, 50, policy=policy, mixing=...)     # predicted x0 at every step

Every function runs the pipeline it is given and leaves it as it was: hooks are removed,
replaced forwards and scheduler methods restored, whatever happens.
"""

from .similarity import TemporalSimilarity, pairwise_change, symmetric_change, temporal_similarity
from .spectra import (MATCHED, PREDICTIONS, FrequencyComparison, ScoreSpectra, frequency_comparison,
                      full_compute_twin, score_spectra)
from .trajectories import Trajectory, observe_steps, predicted_x0, trajectory

__all__ = ["MATCHED", "PREDICTIONS", "FrequencyComparison", "ScoreSpectra", "TemporalSimilarity",
           "Trajectory", "frequency_comparison", "full_compute_twin", "observe_steps",
           "pairwise_change", "predicted_x0", "score_spectra", "symmetric_change",
           "temporal_similarity", "trajectory"]

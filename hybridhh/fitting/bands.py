"""Error bands: a 90 % band per voltage for each rate, x_inf and tau of a fitted model.

(Stub; being written.)
"""

from __future__ import annotations

__all__ = ["fit_bands"]


def fit_bands(model, data, *, step, adaptive, node_step, smoothness, noise=0.0,
              level=0.9):
    """Bands of ``model`` fitted on ``data`` (a TraceData, along the denoised path when
    there is one); None where they cannot be computed. Stub: returns None."""
    return None

"""Linear interpolation on a uniform voltage grid: the weights, computed once per V."""

from __future__ import annotations

import torch

__all__ = ["grid_weights"]


def grid_weights(V: torch.Tensor, start: float, step: float, n: int):
    """Linear-interpolation weights of ``V`` (mV) on the uniform grid ``start + step * k``
    (mV), ``k < n`` (clamped to the ends): node index ``j`` and weight ``w`` of node
    ``j + 1``."""
    s = ((V - start) / step).clamp(0.0, n - 1 - 1e-9)
    j = s.floor().long()
    return j, s - j

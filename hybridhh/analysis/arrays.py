"""One conversion of array-likes to numpy for the analysis and the figures.

Torch tensors are detached and moved to the CPU; torch itself is not imported here, so the
modules that use this stay importable without it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_numpy"]


def as_numpy(x) -> np.ndarray | None:
    """``x`` (numpy array, torch tensor, sequence) as a float64 ndarray; None stays None."""
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)

"""Within-sample reconstruction: a coarsely sampled clean recording, interpolated before
the fit.

Teacher forcing steps the gates along the recorded V by exponential Euler, V held at the
midpoint of each step. At 0.05 ms a spike's upstroke spans a few samples and that step is
too crude: on the suite's "dt 0.05" case the fit lands in a wrong basin (worst tau p90
208 %). A cubic spline through the samples is far more accurate than the step (its error
scales as dt⁴: about 0.02 mV during a 6.3 °C spike at 0.05 ms), so the fit runs on V
interpolated to :attr:`~hybridhh.fitting.FitConfig.interpolate_to` (0.01 ms) and the
adaptive teacher-forcing steps (:func:`~hybridhh.fitting.teacher.adaptive_samples`) can
follow the spike inside a sample. The current is interpolated linearly, as NEURON's
``Vector.play(..., continuous=1)`` plays it.

The cost grows with the samples (suite, one thread: 10⁵ samples after interpolation
~130 s, 3–4·10⁵ ~300–360 s, 7·10⁵ ~615 s), so at most
:attr:`~hybridhh.fitting.FitConfig.interpolate_budget` samples (2·10⁵, all traces) are
made: a longer recording is interpolated by less, and one of 10⁵ samples or more not at
all.

Only a clean recording is interpolated: a spline through noisy samples passes through the
noise, whose interpolated values are correlated, and stage 1b (:mod:`.denoise`) models the
samples as independent. The noise SD is estimated on the samples as recorded.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from .data import TraceData

__all__ = ["factor", "interpolate"]


def factor(dt: float, target: float | None, samples: int | None = None,
           budget: int | None = None) -> int:
    """Samples per recorded sample after interpolation: the smallest whole ``k`` with
    ``dt / k <= target`` (1: no interpolation, for ``target`` None or ``dt <= target``),
    and at most ``budget // samples`` when both are given (``samples``: the recording's,
    all traces): a long recording is interpolated by less, or not at all."""
    if target is None or dt <= target * (1 + 1e-9):
        return 1
    k = int(math.ceil(dt / target - 1e-9))
    if samples and budget is not None:
        k = min(k, max(1, budget // samples))
    return k


def interpolate(data: TraceData, k: int) -> TraceData:
    """``data`` on a grid ``k`` times finer (``dt / k``, the same first and last sample):
    V by a not-a-knot cubic spline through each trace's samples, I linearly. The recorded
    samples are kept exactly (every ``k``-th sample of the result)."""
    if k <= 1:
        return data
    n = data.V.shape[1]
    t = np.arange(n, dtype=np.float64)
    fine = np.arange((n - 1) * k + 1, dtype=np.float64) / k
    V = data.V.detach().cpu().numpy()
    I = data.I.detach().cpu().numpy()
    Vf = CubicSpline(t, V, axis=1)(fine)
    If = np.stack([np.interp(fine, t, i) for i in I])
    Vf[:, ::k], If[:, ::k] = V, I  # exactly the recorded samples (no rounding)
    as_t = lambda a: torch.as_tensor(a, dtype=data.V.dtype, device=data.V.device)
    return TraceData(as_t(Vf), as_t(If), data.dt / k, data.bio, data.names)

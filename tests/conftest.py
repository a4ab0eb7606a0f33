"""Shared fixtures of the tests."""

from __future__ import annotations

import numpy as np
import pytest

from hybridhh.biophysics import Biophysics
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording


def _spike_times(V, time, threshold: float = 0.0) -> list[np.ndarray]:
    """Upward crossings of ``threshold`` (mV) per trace, linearly interpolated (ms)."""
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    time = np.asarray(time, dtype=np.float64)
    out = []
    for v in V:
        k = np.nonzero((v[:-1] < threshold) & (v[1:] >= threshold))[0]
        frac = (threshold - v[k]) / (v[k + 1] - v[k])
        out.append(time[k] + frac * (time[k + 1] - time[k]))
    return out


@pytest.fixture(scope="session")
def spike_times():
    """``spike_times(V [B, T] or [T], time [T], threshold=0.0) -> list of arrays (ms)``."""
    return _spike_times


@pytest.fixture(scope="session")
def hh_modern():
    """NEURON ``hh`` rates (modern convention, 6.3 °C)."""
    return HHKinetics("modern")


@pytest.fixture(scope="session")
def bio_modern():
    """Standard squid-axon biophysics, modern convention."""
    return Biophysics.standard("modern")


@pytest.fixture(scope="session")
def tiny_recording():
    """6 traces x 40 ms at dt 0.025 ms: steps and OU noise, modern convention (the fitter's
    small test recording)."""
    t = time_grid(40.0, 0.025)
    stim = Stimulus.concat([steps(t, [3.0, 10.0, 30.0, -8.0], start=2.0),
                            ou_noise(t, 3.0, 10.0, 2.0, seed=3, n=2)])
    return simulate_recording(stim, Biophysics.standard("modern"), method="rk4")

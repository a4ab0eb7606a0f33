"""Shared fixtures of the tests."""

from __future__ import annotations

import dataclasses

import pytest

from hybridhh.analysis.spikes import spike_times as _spike_times
from hybridhh.biophysics import Biophysics
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording, write_recording


@pytest.fixture(scope="session")
def spike_times():
    """``spike_times(V [B, T] or [T], time [T], threshold=0.0) -> list of arrays (ms)``:
    :func:`hybridhh.analysis.spikes.spike_times` with a 0 mV default threshold."""

    def spikes(V, time, threshold: float = 0.0):
        return _spike_times(V, time, threshold)

    return spikes


class ScaledKinetics:
    """All six rates of ``base`` times ``factor``: tau / factor, x_inf unchanged."""

    def __init__(self, base, factor):
        self.base, self.factor, self.name = base, factor, f"{base.name} x{factor}"

    def rates(self, V):
        a, b = self.base.rates(V)
        return a * self.factor, b * self.factor


@pytest.fixture(scope="session")
def scaled():
    """``scaled(kinetics, factor)``: kinetics whose rates are all ``factor`` times those of
    ``kinetics`` (known errors: tau off by 1 - 1/factor, alpha and beta by factor - 1)."""
    return ScaledKinetics


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


@pytest.fixture(scope="session")
def short_recording():
    """Two 20 ms step traces (one firing), modern convention, with truth."""
    t = time_grid(20.0, 0.025)
    return simulate_recording(steps(t, [20.0, -5.0], start=2.0))


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """A short recording (3 steps + 1 noise trace, 20 ms) and a tiny fit of it, made once:
    ``(folder, recording file, run directory)``.

    Only a few teacher-forcing steps: compare/report need a finished run directory, not a
    good fit, and this keeps the fixture to seconds whatever FitConfig.quick() holds.
    """
    from hybridhh.fitting import FitConfig, fit
    from hybridhh.recording import read_recording

    root = tmp_path_factory.mktemp("report")
    t = time_grid(20.0, 0.05)
    stim = Stimulus.concat([steps(t, [5.0, 20.0, -10.0], start=2.0),
                            ou_noise(t, 4.0, 8.0, seed=0, n=1)])
    rec = write_recording(root / "rec.h5", simulate_recording(stim))
    cfg = FitConfig.quick()
    cfg = dataclasses.replace(
        cfg, ode=dataclasses.replace(cfg.ode, enabled=False),
        teacher=dataclasses.replace(cfg.teacher, adam_steps=20, lbfgs=()))
    fit(read_recording(rec), cfg, run_dir=root / "run", quiet=True)
    return root, rec, root / "run"


@pytest.fixture(scope="session")
def compared(fitted):
    """:func:`hybridhh.compare` of the ``fitted`` run with its default truth (the
    recording's /truth), written to ``RUN_DIR/compare``."""
    from hybridhh.analysis import compare

    _, _, run = fitted
    return compare(run)

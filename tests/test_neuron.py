"""Agreement with NEURON's ``hh`` (the optional ``neuron`` extra; CI installs it via ``dev``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics
from hybridhh.neuron_reference import NeuronCells, neuron_available, simulate_neuron
from hybridhh.protocols import Stimulus, chirp, ou_noise, steps, time_grid
from hybridhh.simulation import simulate

pytestmark = pytest.mark.neuron


@pytest.fixture(scope="module")
def h():
    # CI installs NEURON (the `neuron` extra is part of `dev`); a skip names the reason
    pytest.importorskip("neuron", reason="NEURON not installed: pip install 'hybridhh[neuron]'")
    from neuron import h

    return h


def _stimuli(duration, dt):
    t = time_grid(duration, dt)
    return Stimulus.concat([
        steps(t, [0.0, 10.0, 40.0], start=5.0, stop=0.8 * duration),
        ou_noise(t, mean=5.0, sigma=10.0, tau=3.0, seed=2),
    ])


@pytest.fixture(scope="module")
def stim100():
    """100 ms: silent, tonic firing, strong drive, noise; sampled every 0.025 ms."""
    return _stimuli(100.0, 0.025)


def test_neuron_at_fine_step_agrees_with_dopri5(h, spike_times):
    # NEURON's fixed step (first order) at dt/40 = 0.000625 ms vs our dopri5 at rtol 1e-8
    # (its own error, ~1e-5 ms in spike times, is far below NEURON's). 100 ms: silent, tonic
    # firing, noise. The noise is sampled every 0.25 ms: every sample of a noise trace is a
    # kink where dopri5 must end a step, which makes a finer grid slow for no gain here.
    stim = _stimuli(100.0, 0.25).select([0, 1, 3])
    V_nrn = simulate_neuron(stim, dt=0.025 / 40)
    # one trace at a time: in a batch every trace takes the steps the hardest one needs
    V_ours = np.concatenate([
        simulate(stim.select(k), method="dopri5", rtol=1e-8, atol=1e-8).V.numpy()
        for k in range(stim.n_traces)])
    t = stim.time
    counts = []
    for k, (sa, sb) in enumerate(zip(spike_times(V_nrn, t), spike_times(V_ours, t),
                                     strict=True)):
        counts.append(len(sa))
        assert len(sa) == len(sb), f"trace {k}: {len(sa)} vs {len(sb)} spikes"
        if len(sa):
            assert np.abs(sa - sb).max() < 0.1, f"trace {k}: spike times differ (ms)"
        rmse = np.sqrt(np.mean((V_nrn[k] - V_ours[k]) ** 2))
        assert rmse < 1.0, f"trace {k}: RMSE {rmse:.3g} mV"
    assert counts[0] == 0 and min(counts[1:]) >= 3  # silent, then spiking traces


def test_neuron_integrator_reproduces_neuron_fixed_step(h, stim100):
    # same algorithm, same dt, exact rates (usetable_hh = 0): only rounding differs
    # (NEURON's vtrap vs our exprel, its numerical di/dv): ~1e-9 mV measured
    V_nrn = simulate_neuron(stim100, dt=0.025)
    V_ours = simulate(stim100, method="neuron").V.numpy()
    assert np.abs(V_nrn - V_ours).max() < 1e-6
    assert V_nrn.max() > 30.0  # spikes were compared too


def test_neuron_integrator_substeps_match_neuron(h):
    # two NEURON steps per stimulus sample: both evaluate the piecewise-linear stimulus
    # at t + dt/2 of each step
    t = time_grid(20.0, 0.05)
    stim = Stimulus.concat([chirp(t, 10.0, 0.05, 0.5, offset=5.0), ou_noise(t, 5.0, 10.0)])
    V_nrn = simulate_neuron(stim, dt=0.025)
    V_ours = simulate(stim, method="neuron", dt=0.025).V.numpy()
    assert np.abs(V_nrn - V_ours).max() < 1e-6


def test_neuron_convention_temperature_and_initial_voltages(h):
    t = time_grid(20.0, 0.025)
    stim = steps(t, [0.0, 15.0], start=2.0)
    bio = Biophysics.standard("hh1952", temperature=18.5).replace(g_K=30.0, C_m=1.2)
    V0 = np.array([3.0, -2.0])  # 1952 convention, mV
    V_nrn = NeuronCells(2, bio, convention="hh1952").run(stim, V0=V0)
    ours = simulate(stim, HHKinetics("hh1952", temperature=18.5), bio, method="neuron", V0=V0)
    np.testing.assert_array_equal(V_nrn[:, 0], V0)
    assert np.abs(V_nrn - ours.V.numpy()).max() < 1e-6


def test_usetable_changes_the_result_and_globals_are_restored(h):
    t = time_grid(30.0, 0.025)
    stim = steps(t, [10.0], start=2.0)
    h.dt, h.celsius = 0.1, 20.0
    exact = simulate_neuron(stim)
    table = simulate_neuron(stim, usetable=True)
    assert np.abs(exact - table).max() > 1e-3  # the 1 mV rate table is visibly coarser
    assert (h.dt, h.celsius) == (0.1, 20.0)


def test_neuron_reference_rejects_bad_input(h):
    t = time_grid(1.0, 0.025)
    cells = NeuronCells(2)
    assert cells.nA_per_density == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ConfigError, match="cells"):
        cells.run(steps(t, [1.0]))
    with pytest.raises(ConfigError, match="divide"):
        cells.run(steps(t, [1.0, 2.0]), dt=0.01)
    with pytest.raises(ConfigError, match="at least one"):
        NeuronCells(0)


def test_missing_neuron_raises_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuron", None)  # makes `import neuron` fail
    assert not neuron_available()
    with pytest.raises(ConfigError, match=r"pip install 'hybridhh\[neuron\]'"):
        simulate_neuron(steps(time_grid(1.0, 0.025), [1.0]))

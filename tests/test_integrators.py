"""The simulator: rest, convergence orders, adaptive references, conventions, classic spike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError
from hybridhh.hh import resting_potential, steady_state_gates
from hybridhh.integrators import INTEGRATORS
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import (
    Stimulus,
    chirp,
    classic_pulses,
    ou_noise,
    pulse_train,
    ramp,
    steps,
    time_grid,
)
from hybridhh.simulation import simulate

FIXED = [name for name, i in INTEGRATORS.items() if not i.adaptive]


# --- rest -----------------------------------------------------------------------------------


def test_resting_potentials():
    v_mod = resting_potential(HHKinetics("modern"), Biophysics.standard("modern"))
    v_52 = resting_potential(HHKinetics("hh1952"), Biophysics.standard("hh1952"))
    assert -65.1 < v_mod < -64.9  # -64.974 mV
    assert abs(v_52) < 0.01  # 0.0036 mV: E_L = 10.613 mV is rounded
    # with E_L shifted by exactly 65 mV the rests are exactly 65 mV apart
    v_shift = resting_potential(HHKinetics("modern"),
                                Biophysics.standard("modern").replace(E_L=10.613 - 65.0))
    assert abs(v_52 - 65.0 - v_shift) < 1e-9


@pytest.mark.parametrize("method", FIXED)
def test_rest_is_a_fixed_point(method):
    t = time_grid(5.0, 0.025)
    traj = simulate(steps(t, [0.0]), method=method)
    v_rest = resting_potential(HHKinetics(), Biophysics.standard())
    assert (traj.V - v_rest).abs().max() < 1e-9
    assert (traj.gates - traj.gates[:, :1]).abs().max() < 1e-12
    assert traj.V.shape == (1, len(t)) and traj.gates.shape == (1, len(t), 3)
    assert traj.method == method and traj.names == ("step_0",)


# --- convergence orders -----------------------------------------------------------------------
# A sub-threshold chirp (-68..-62 mV: smooth, errors in the asymptotic regime) sampled every
# 0.1 ms; every dt below divides the sample step, so each step sees a linear stimulus and the
# methods keep their order. Errors against dopri5 at rtol = atol = 1e-12 (error ~1e-11 mV,
# below the smallest rk4 error measured here, ~1e-9 mV). Order = slope of log max|error| vs
# log dt over three halvings.

DTS = [0.1, 0.05, 0.025, 0.0125]
OFF_EQUILIBRIUM = torch.tensor([0.02, -0.05, 0.03], dtype=torch.float64)


@pytest.fixture(scope="module")
def smooth():
    t = time_grid(10.0, 0.1)
    stim = chirp(t, 2.0, 0.05, 0.3)
    x_rest = steady_state_gates(torch.tensor(-65.0, dtype=torch.float64), HHKinetics())
    starts = {"rest": {}, "off_equilibrium": {"V0": -65.0, "x0": x_rest + OFF_EQUILIBRIUM}}
    refs = {k: simulate(stim, method="dopri5", rtol=1e-12, atol=1e-12, **kw)
            for k, kw in starts.items()}
    return stim, starts, refs


def _orders(smooth, method, start):
    stim, starts, refs = smooth
    ref = refs[start]
    eV, eX = [], []
    for dt in DTS:
        traj = simulate(stim, method=method, dt=dt, **starts[start])
        eV.append(float((traj.V - ref.V).abs().max()))
        eX.append(float((traj.gates - ref.gates).abs().max()))
    order = lambda e: np.polyfit(np.log(DTS), np.log(e), 1)[0]
    return order(eV), order(eX)


@pytest.mark.parametrize("method, order_V, order_gates, tol", [
    ("rk4", 4, 4, 0.3),
    ("ind_exp_euler", 1, 1, 0.15),
    ("neuron", 1, 1, 0.15),
    # exp_euler is staggered (a midpoint rule with the gates at half steps): from the gates'
    # steady state its V is second order, its gates (reported at t_n) first order
    ("exp_euler", 2, 1, 0.15),
])
def test_convergence_order_from_rest(smooth, method, order_V, order_gates, tol):
    pV, pX = _orders(smooth, method, "rest")
    assert abs(pV - order_V) < tol, f"V order {pV:.3f}"
    assert abs(pX - order_gates) < tol, f"gates order {pX:.3f}"


def test_exp_euler_is_first_order_from_an_arbitrary_state(smooth):
    pV, pX = _orders(smooth, "exp_euler", "off_equilibrium")
    assert abs(pV - 1) < 0.15, f"V order {pV:.3f}"
    assert abs(pX - 1) < 0.15, f"gates order {pX:.3f}"


# --- adaptive references agree -------------------------------------------------------------------


def test_dopri5_agrees_with_lsoda(spike_times):
    # a 0.25 ms sample grid keeps LSODA quick: every sample of OU noise is a kink of the
    # piecewise-linear stimulus, which costs LSODA an order restart
    t = time_grid(20.0, 0.25)
    stim = Stimulus.concat([steps(t, [10.0], start=5.0), ou_noise(t, 5.0, 10.0, seed=3)])
    a = simulate(stim, method="dopri5", rtol=1e-10, atol=1e-10)
    b = simulate(stim, method="lsoda", rtol=1e-10, atol=1e-10)
    assert all(len(s) >= 1 for s in spike_times(a.V.numpy(), t))  # spiking: a real test
    # ~1.2e-6 mV (gates 8e-9) measured; the bound leaves room for the steep spike flanks
    assert (a.V - b.V).abs().max() < 1e-4
    assert (a.gates - b.gates).abs().max() < 1e-6


def test_lsoda_does_not_step_over_a_brief_pulse():
    t = time_grid(40.0, 0.025)
    traj = simulate(pulse_train(t, [(30.0, 0.5, 20.0)]), method="lsoda", rtol=1e-8, atol=1e-8)
    assert traj.V.max() > 0.0  # the pulse at 30 ms fires a spike


def test_dopri5_survives_too_long_trial_steps():
    # from rest the step grows tenfold per step; on reaching the ramp a trial step of ~8 ms
    # once sent a stage to absurd voltages, NaN rates and torchdiffeq's "underflow in dt"
    t = time_grid(20.0, 0.1)
    stim = ramp(t, 0.0, 30.0, start=5.0)
    a = simulate(stim, method="dopri5", rtol=1e-9, atol=1e-9)
    b = simulate(stim, method="rk4", dt=0.0125)
    assert a.V.max() > 0.0  # the ramp fires
    assert (a.V - b.V).abs().max() < 1e-3


# --- conventions --------------------------------------------------------------------------------


def test_conventions_give_the_same_dynamics_up_to_the_65mV_shift():
    # hh1952's E_L = 10.613 mV is not exactly a 65 mV shift of NEURON's -54.3 mV
    # (10.613 - 65 = -54.387): compare with the modern model at E_L = -54.387 mV
    t = time_grid(30.0, 0.025)
    stim = Stimulus.concat([steps(t, [10.0], start=2.0), ou_noise(t, 5.0, 10.0, seed=5)])
    bio52 = Biophysics.standard("hh1952", temperature=10.0)
    bio_mod = Biophysics.standard("modern", temperature=10.0).replace(E_L=10.613 - 65.0)
    a = simulate(stim, HHKinetics("hh1952", temperature=10.0), bio52, method="exp_euler")
    b = simulate(stim, HHKinetics("modern", temperature=10.0), bio_mod, method="exp_euler")
    assert a.V.max() - 65.0 > 0.0  # spikes
    assert (a.V - 65.0 - b.V).abs().max() < 1e-8
    assert (a.gates - b.gates).abs().max() < 1e-10
    # and with NEURON's E_L = -54.3 the rests differ by the 0.087 mV of E_L (times g_L/g_tot)
    v_std = resting_potential(HHKinetics(), Biophysics.standard())
    assert 0.01 < abs(float(a.V[0, 0]) - 65.0 - v_std) < 0.087


def test_classic_pulses_1952(spike_times):
    t = time_grid(25.0, 0.01)
    second_alone = pulse_train(t, [(10.0, 1.0, 50.0)], name="second_alone")
    stim = Stimulus.concat([classic_pulses(t), second_alone])
    traj = simulate(stim, HHKinetics("hh1952"), Biophysics.standard("hh1952"),
                    method="exp_euler", dt=0.005)
    V = traj.V.numpy()
    rest = float(V[0, 0])
    first, second = t < 10.0, t >= 10.0
    peak1 = V[0, first].max() - rest
    peak2 = V[0, second].max() - rest
    peak_rested = V[1, second].max() - rest
    assert 95.0 < peak1 < 115.0  # 111.9 mV measured
    # 10 ms after a spike the same cell answers the second pulse with a clearly smaller
    # spike (103.2 mV) than the first (111.9 mV) and than a rested cell (108.0 mV)
    assert peak2 < peak1 - 5.0
    assert peak2 < peak_rested - 3.0
    assert [len(s) for s in spike_times(V, t, threshold=50.0)] == [2, 1]


# --- the API ------------------------------------------------------------------------------------


def test_simulate_rejects_bad_options():
    t = time_grid(1.0, 0.025)
    stim = steps(t, [0.0, 1.0])
    with pytest.raises(ConfigError, match="substeps"):
        simulate(stim, method="exp_euler", dt=0.01)
    with pytest.raises(ConfigError, match="adaptive"):
        simulate(stim, method="dopri5", dt=0.01)
    with pytest.raises(ConfigError, match="fixed-step"):
        simulate(stim, method="lsoda", compile=True)
    with pytest.raises(ConfigError, match="unknown integrator"):
        simulate(stim, method="euler")
    with pytest.raises(ConfigError, match="V0"):
        simulate(stim, V0=[-65.0, -65.0, -65.0])
    with pytest.raises(ConfigError, match="x0"):
        simulate(stim, x0=torch.zeros(2, 2))


def test_substeps_and_per_trace_initial_state():
    t = time_grid(2.0, 0.05)
    stim = steps(t, [0.0, 5.0], start=0.5)
    a = simulate(stim, method="rk4", dt=0.0125, V0=[-65.0, -60.0])
    b = simulate(stim, method="dopri5", V0=[-65.0, -60.0], rtol=1e-10, atol=1e-10)
    assert a.V.shape == (2, len(t))
    assert (a.V[:, 0] == torch.tensor([-65.0, -60.0], dtype=torch.float64)).all()
    assert (a.V - b.V).abs().max() < 1e-6


def test_gradient_through_exp_euler_matches_finite_difference():
    class Scaled:  # any object with rates(V) is a kinetics
        def __init__(self, s):
            self.s, self.base = s, HHKinetics()

        def rates(self, V):
            a, b = self.base.rates(V)
            return a * self.s, b

    t = time_grid(10.0, 0.05)
    stim = steps(t, [8.0], start=1.0)
    s = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    loss = simulate(stim, Scaled(s), V0=-65.0, grad=True).V.mean()
    (g,) = torch.autograd.grad(loss, s)
    eps = 1e-6
    with torch.no_grad():
        lp = simulate(stim, Scaled(torch.tensor(1.0 + eps, dtype=torch.float64)), V0=-65.0).V.mean()
        lm = simulate(stim, Scaled(torch.tensor(1.0 - eps, dtype=torch.float64)), V0=-65.0).V.mean()
    assert torch.isfinite(g)
    assert float(g) == pytest.approx(float(lp - lm) / (2 * eps), rel=1e-5)


@pytest.mark.slow
def test_compiled_steps_equal_eager():
    t = time_grid(20.0, 0.025)
    stim = steps(t, [0.0, 10.0, 40.0], start=2.0)
    for method in ("exp_euler", "neuron"):
        a = simulate(stim, method=method)
        b = simulate(stim, method=method, compile=True)
        assert (a.V - b.V).abs().max() < 1e-9

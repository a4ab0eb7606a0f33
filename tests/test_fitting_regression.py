"""A pinned tiny fit: the same numbers, to rtol 1e-6, from the same code and seed.

This guards refactors of :mod:`hybridhh.fitting` (the stages, their phases, the config):
a change that is meant to keep the fit's behaviour must keep these numbers. When a change
is *meant* to alter the fit (a new default, a different stage), re-pin: run this file with
``HYBRIDHH_PRINT_PIN=1 pytest -s tests/test_fitting_regression.py``, check that the new
numbers are sensible (losses fall stage by stage, held-out RMSE of a few mV at most), paste
them below and say in the commit message why they changed.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.fitting import DenoiseConfig, FitConfig, fit
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording

RTOL = 1e-6

PHASES = ["teacher/adam", "teacher/lbfgs1-0.05ms", "teacher/gauss-newton",
          "teacher/lbfgs2-0.025ms", "ode/1ms"]
FINAL_LOSS = {
    "teacher/adam": 0.009107548296697363,
    "teacher/lbfgs1-0.05ms": 0.0027527298500259314,
    "teacher/gauss-newton": 0.0005683722292145502,
    "teacher/lbfgs2-0.025ms": 0.00012654580937543765,
    "ode/1ms": 0.005702743660692771,
}
HELDOUT = {"ode": 0.9036076204000152, "teacher": 1.1861113900666178}
#: rates (1/ms) at V = -80, -60, -40, 0 mV; columns m, h, n
ALPHA = [[0.11433774129768254, 0.07460082883676632, 0.01581646184789391],
         [0.37067140866836973, 0.03331253090138453, 0.0789842189518379],
         [1.2084576646955687, 0.015819957698088506, 0.10845372173148143],
         [5.354476020287462, 0.0018928378385500528, 0.44295048615194177]]
BETA = [[11.293205530305876, 0.03833821878224277, 0.1395289561139069],
        [3.040421649349658, 0.087680640611673, 0.11843114300231003],
        [1.131012101696597, 0.23293392922299713, 0.028131599541183896],
        [0.4067228129363703, 0.6824271993826155, 0.006994308126574353]]
VOLTAGE_RANGE = (-75.58764678398221, 37.12990554101296)


#: the second pin: multi-start, denoising, Adam in the neural-ODE stage, stage 2 rejected
NOISY_FINAL_LOSS = {
    "teacher/starts": 0.05128937076547302,
    "teacher/gauss-newton+denoise": 0.001829783381209023,
    "teacher/lbfgs2-0.025ms": 0.0004347932464489886,
    "ode/1ms": 25.367327862485496,
}
NOISY_HELDOUT = {"ode": 2.529684579039417, "teacher": 1.226104785449253}
NOISY_ALPHA = [[0.08183919166282769, 0.08040829248731558, 0.031879729283384145],
               [0.3653183450896437, 0.03670549347081475, 0.07814362919239243],
               [1.165753368579903, 0.026053476674227388, 0.152864622526797],
               [4.478319870588765, 0.0035860760243060473, 0.4191531672284595]]
NOISY_BETA = [[7.830409814118654, 0.021360398777139928, 0.16330405346869828],
              [3.0116326895330734, 0.08042623145202175, 0.11656394471567239],
              [1.160064180769848, 0.22972780288530342, 0.06622878993550854],
              [0.22027859466274588, 0.9214125999172159, 0.0043730966605385405]]


def _recording(noise: float = 0.0):
    """4 traces x 20 ms (3 steps, 1 OU trace: the held-out one), with ``noise`` mV on V."""
    t = time_grid(20.0, 0.025)
    stim = Stimulus.concat([steps(t, [3.0, 10.0, 30.0], start=2.0),
                            ou_noise(t, 3.0, 10.0, 2.0, seed=3, n=1)])
    rec = simulate_recording(stim, Biophysics.standard("modern"), method="rk4")
    if noise:
        V = rec.voltage + np.random.default_rng(1).normal(0.0, noise, rec.voltage.shape)
        rec = dataclasses.replace(rec, voltage=V)
    return rec


def _rates(model):
    V = torch.tensor([-80.0, -60.0, -40.0, 0.0], dtype=torch.float64)
    with torch.no_grad():
        a, b = model.rates(V)
    return a.numpy(), b.numpy()


def _print_pin(res):
    if os.environ.get("HYBRIDHH_PRINT_PIN"):
        a, b = _rates(res.model)
        print("FINAL_LOSS =", res.summary()["final_loss"])
        print("HELDOUT =", res.heldout_rmse)
        print("ALPHA =", a.tolist())
        print("BETA =", b.tolist())
        print("VOLTAGE_RANGE =", res.voltage_range)


@pytest.fixture(scope="module")
def pinned_fit():
    """FitConfig.quick(seed=0) on the clean recording."""
    return fit(_recording(), FitConfig.quick(seed=0), quiet=True)


def test_pinned_fit_reproduces_its_numbers(pinned_fit):
    res = pinned_fit
    _print_pin(res)
    s = res.summary()
    a, b = _rates(res.model)
    assert list(s["final_loss"]) == PHASES  # the same phases in the same order
    for phase, loss in FINAL_LOSS.items():
        assert s["final_loss"][phase] == pytest.approx(loss, rel=RTOL), phase
    assert res.heldout_rmse["chosen"] == "ode"
    assert res.heldout_rmse["traces"] == "holdout"
    for stage, rmse in HELDOUT.items():
        assert res.heldout_rmse[stage] == pytest.approx(rmse, rel=RTOL), stage
    np.testing.assert_allclose(a, ALPHA, rtol=RTOL)
    np.testing.assert_allclose(b, BETA, rtol=RTOL)
    np.testing.assert_allclose(res.voltage_range, VOLTAGE_RANGE, rtol=RTOL)
    assert res.train_traces == ("step_3", "step_10", "step_30")
    assert res.holdout_traces == ("ou_3_10_s3_0",)
    assert len(res.history) == 314


def test_pinned_noisy_multistart_fit_reproduces_its_numbers():
    """The other branches: 2 starts, the denoising stage (0.3 mV noise), Adam in the
    neural-ODE stage, and the held-out check rejecting that stage."""
    q = FitConfig.quick()
    cfg = FitConfig.quick(seed=0, teacher=dataclasses.replace(q.teacher, starts=2, adam_steps=60),
                          denoise=DenoiseConfig(iterations=3),
                          ode=dataclasses.replace(q.ode, optimizer="adam", lr=1e-3, steps=2))
    res = fit(_recording(noise=0.3), cfg, quiet=True)
    _print_pin(res)
    s = res.summary()
    assert list(s["final_loss"]) == list(NOISY_FINAL_LOSS)
    for phase, loss in NOISY_FINAL_LOSS.items():
        assert s["final_loss"][phase] == pytest.approx(loss, rel=RTOL), phase
    assert res.heldout_rmse["chosen"] == "teacher"
    for stage, rmse in NOISY_HELDOUT.items():
        assert res.heldout_rmse[stage] == pytest.approx(rmse, rel=RTOL), stage
    a, b = _rates(res.model)
    np.testing.assert_allclose(a, NOISY_ALPHA, rtol=RTOL)
    np.testing.assert_allclose(b, NOISY_BETA, rtol=RTOL)
    assert len(res.history) == 9

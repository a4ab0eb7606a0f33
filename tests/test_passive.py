"""hybridhh.analysis.passive: exact answers on a passive RC cell, eFEL's sag on a sagging
trace, the real cell 171116sh_0018 against its README, the start values of a cell fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _realdata import ABF_DIR

from hybridhh.analysis.passive import (
    correct_series_resistance,
    find_steps,
    passive_analysis,
    passive_start,
    with_passive_start,
)
from hybridhh.biophysics import Biophysics
from hybridhh.cell import Cell
from hybridhh.errors import ConfigError
from hybridhh.recording import Recording

DT = 0.05
REST = -70.0


def rc_cell(C=200.0, R=150.0, steps=((100.0, 600.0, -50.0),), T=800.0, noise=0.0, seed=0,
            units="pA", sag=None):
    """A passive cell's exact response: tau = R C (MOhm pF = 1e-6 s = 1e-3 ms), steps of
    (start, stop, dI pA). ``sag=(fraction, tau_s)`` adds a slow current that pulls V back by
    ``fraction`` of the deflection with time constant tau_s (an Ih-like sag)."""
    t = np.arange(int(round(T / DT)) + 1) * DT
    tau = R * C * 1e-3
    V = np.full_like(t, REST)
    I = np.zeros_like(t)
    for t0, t1, dI in steps:
        on = (t >= t0) & (t < t1)
        I[on] += dI
        x = np.clip(t - t0, 0, t1 - t0)
        dv = dI * R * 1e-3 * (1 - np.exp(-x / tau))  # pA MOhm = 1e-6 V = 1e-3 mV
        if sag is not None:
            frac, tau_s = sag
            dv = dv - frac * dI * R * 1e-3 * (1 - np.exp(-x / tau_s)) * (1 - np.exp(-x / tau))
        after = t >= t1
        dv[after] = dv[np.searchsorted(t, t1) - 1] * np.exp(-(t[after] - t1) / tau)
        V = V + np.where(t >= t0, dv, 0.0)
    V = V + noise * np.random.default_rng(seed).standard_normal(V.shape)
    if units == "uA/cm^2":
        I = I * 1e-6 / (C * 1e-6)  # pA over C pF x 1e-6 cm^2/pF at 1 uF/cm^2
    return Recording(time=t, voltage=V[None], current=I[None], source="test",
                     current_units=units, biophysics=Biophysics(), temperature_known=False)


def test_exact_rc_cell():
    p = passive_analysis(rc_cell())
    assert p.R_in == pytest.approx(150.0, rel=1e-6)
    assert p.tau_m == pytest.approx(30.0, rel=1e-6)
    assert p.C_total == pytest.approx(200.0, rel=1e-6) and p.C_m == 1.0
    assert p.g_L == pytest.approx(1 / 30.0, rel=1e-6)  # mS/cm^2 = C_m / tau at 1 uF/cm^2
    assert p.E_L == REST and p.sag == pytest.approx(0.0, abs=1e-6)
    (s,) = p.steps
    assert s["start"] == 100.0 and s["amplitude"] == -50.0 and s["fit_rmse"] < 1e-6
    d = p.as_dict()
    assert d["units"]["R_in"] == "MOhm" and d["units"]["C_total"] == "pF" and d["n_steps"] == 1


def test_an_unbalanced_bridge_is_measured_and_removed():
    """V_recorded = V_m + R_s I: the jump at the onset gives R_s (MOhm); the correction
    gives back the cell's own R_in; a balanced cell has R_s ~ 0 (the charging over the
    line's window is not mistaken for a jump: <= 0.2 MOhm against R_in 150)."""
    rec = rc_cell()
    assert abs(passive_analysis(rec).R_s) < 0.2
    bridged = dataclasses.replace(rec, voltage=rec.voltage + 10.0 * rec.current * 1e-3)
    p = passive_analysis(bridged)
    assert p.R_s == pytest.approx(10.0, abs=0.2)
    assert p.R_in == pytest.approx(160.0, rel=1e-6)  # the bridge adds to the steady state
    fixed = correct_series_resistance(bridged, p.R_s)
    assert passive_analysis(fixed).R_in == pytest.approx(150.0, rel=2e-3)
    assert "series resistance" in fixed.description
    assert fixed.metadata["series_resistance_corrected"].endswith("MOhm")
    with pytest.raises(ConfigError, match="finite"):
        correct_series_resistance(rec, float("nan"))


def test_density_units():
    p = passive_analysis(rc_cell(units="uA/cm^2"))
    # R_in kOhm cm^2 = R MOhm x area (C pF x 1e-6 cm^2) x 1e3: 150 x 2e-4 x 1e3 = 30
    assert p.R_in == pytest.approx(30.0, rel=1e-6) and p.C_total is None
    assert p.C_m == pytest.approx(1.0, rel=1e-6) and p.g_L == pytest.approx(1 / 30.0, rel=1e-6)
    assert p.as_dict()["units"]["R_in"] == "kOhm cm^2"


def test_noisy_cell_within_two_percent():
    for seed in range(3):
        p = passive_analysis(rc_cell(noise=0.1, seed=seed,
                                     steps=((100.0, 600.0, -50.0), (900.0, 1400.0, -100.0)),
                                     T=1600.0))
        assert len(p.steps) == 2
        assert p.R_in == pytest.approx(150.0, rel=0.02)
        assert p.tau_m == pytest.approx(30.0, rel=0.02)
        assert p.C_total == pytest.approx(200.0, rel=0.03)
        assert abs(p.E_L - REST) < 0.02 and p.sag < 0.1


def test_sag_matches_analytic_and_efel():
    rec = rc_cell(C=100.0, R=200.0, sag=(0.3, 100.0))  # tau 20 ms, sag pulls 30 % back
    p = passive_analysis(rec)
    v = rec.voltage[0]
    on = (rec.time >= 100.0) & (rec.time < 600.0)
    n = int(on.sum())
    ss = v[on][-n // 10:].mean()
    assert p.sag == pytest.approx(ss - v[on].min(), abs=2e-3)  # 1 ms smoothing at the peak
    assert p.sag > 1.0 and p.R_in == pytest.approx((ss - REST) / -50.0 * 1000.0, rel=1e-9)
    efel = pytest.importorskip("efel")
    efel.reset()
    efel.set_setting("interp_step", DT)
    trace = {"T": rec.time, "V": v, "stim_start": [100.0], "stim_end": [600.0]}
    (f,) = efel.get_feature_values([trace], ["sag_amplitude", "steady_state_voltage_stimend"],
                                   raise_warnings=False)
    efel.reset()
    assert p.sag == pytest.approx(float(f["sag_amplitude"][0]), abs=0.01)
    assert p.steps[0]["V_ss"] == pytest.approx(float(f["steady_state_voltage_stimend"][0]),
                                               abs=0.01)


def test_which_steps_count():
    rec = rc_cell(steps=((100.0, 130.0, -50.0), (300.0, 600.0, 40.0)))  # short; depolarising
    assert find_steps(rec.time, rec.voltage, rec.current) == []
    with pytest.raises(ConfigError, match="no hyperpolarising current step"):
        passive_analysis(rec)
    rec = rc_cell(steps=((100.0, 600.0, -50.0), (700.0, 1200.0, -100.0)), T=1300.0)
    assert [s["amplitude"] for s in passive_analysis(rec, amplitudes=[-100]).steps] == [-100.0]
    spiking = rc_cell()
    V = spiking.voltage.copy()
    V[0, np.searchsorted(spiking.time, 300.0)] = 20.0  # a "spike" inside the step
    spiking = Recording(time=spiking.time, voltage=V, current=spiking.current,
                        current_units="pA", source="test")
    with pytest.raises(ConfigError, match="no spike"):
        passive_analysis(spiking)


def test_start_values_for_a_cell_fit():
    rec = rc_cell()
    start = passive_start(rec)
    assert start == pytest.approx({"C_total": 200.0, "g_L": 1 / 30.0, "E_L": REST}, rel=1e-6)
    started = with_passive_start(rec)
    assert started.cell.free_names() == Cell.unknown().free_names()
    assert started.cell.start_values() == pytest.approx(start, rel=1e-12)
    known = Cell({"C_total": {"status": "known", "value": 250.0},
                  "E_L": {"status": "unknown", "lower": -69.0, "upper": -40.0}})
    started = with_passive_start(Recording(time=rec.time, voltage=rec.voltage,
                                           current=rec.current, current_units="pA",
                                           source="t", cell=known))
    assert started.cell["C_total"].value == 250.0  # known stays known
    assert started.cell.start_values() == {"E_L": -69.0}  # moved inside its bounds
    dens = rc_cell(units="uA/cm^2")
    assert set(passive_start(dens)) == {"g_L", "E_L"} and with_passive_start(dens) is dens


REALDATA = ABF_DIR


@pytest.mark.skipif(not (REALDATA / "171116sh_0018.abf").is_file(),
                    reason=f"171116sh_0018.abf not in {REALDATA}")
def test_real_cell_against_its_readme():
    """README: from the -100 pA epoch R_in 107-111 MOhm, tau_m 32-34 ms, C_total 285-316 pF,
    sag 3.2-3.5 mV; rest -62.0 mV (median over sweeps). Measured here (medians over the 18
    -100 pA steps): R_in 104.9, tau_m 34.6, C_total 330, sag 3.33, E_L -61.95."""
    pytest.importorskip("pyabf")
    from hybridhh.importing import import_recording

    p = passive_analysis(import_recording(REALDATA / "171116sh_0018.abf"), amplitudes=[-100])
    assert len(p.steps) == 18  # the first step of sweep 0 and the -100 pA epoch of each sweep
    assert 100.0 <= p.R_in <= 115.0
    assert 32.0 <= p.tau_m <= 37.0
    assert 285.0 <= p.C_total <= 345.0
    assert 3.2 <= p.sag <= 3.5
    assert abs(p.E_L - (-62.0)) < 0.5

"""hybridhh.analysis.features: the coincidence factor on known cases, the stimulus window,
spike count and latency on a synthetic spiking trace with known spike times, the
subthreshold RMSE's spike cut, and the eFEL features against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _realdata import ABF_DIR

from hybridhh.analysis.features import (
    COINCIDENCE_WINDOW,
    SPIKE_WINDOW,
    coincidence_factor,
    compare_traces,
    efel_features,
    first_spike_latency,
    resting_potential,
    stimulus_window,
    subthreshold_mask,
    subthreshold_rmse,
)

# --- the coincidence factor -----------------------------------------------------------------

T = 1000.0  # ms
REGULAR = np.arange(50.0, 1000.0, 100.0)  # 10 spikes, 100 ms apart


def _chance(n_model, duration=T, delta=COINCIDENCE_WINDOW):
    return 2.0 * n_model / duration * delta


def test_identical_trains_give_one():
    assert coincidence_factor(REGULAR, REGULAR, T) == pytest.approx(1.0, abs=1e-12)
    # shifted by less than the precision: still every spike coincides
    assert coincidence_factor(REGULAR, REGULAR + 1.5, T) == pytest.approx(1.0, abs=1e-12)


def test_no_coincidence_gives_minus_the_chance_level():
    # shifted by more than 2 ms: N_coinc = 0, so Gamma = -2 nu D N / (N (1 - 2 nu D))
    c = _chance(10)
    assert coincidence_factor(REGULAR, REGULAR + 3.0, T) == pytest.approx(-c / (1 - c),
                                                                           abs=1e-12)


def test_half_the_spikes_coincide():
    # 10 measured; the model keeps the first 5 and moves the other 5 by 10 ms
    model = np.concatenate([REGULAR[:5], REGULAR[5:] + 10.0])
    c = _chance(10)
    expected = (5 - c * 10) / (0.5 * (10 + 10)) / (1 - c)
    assert coincidence_factor(REGULAR, model, T) == pytest.approx(expected, abs=1e-12)
    # a model with 20 spikes (every measured one plus 10 far away): N_coinc = 10
    extra = np.sort(np.concatenate([REGULAR, REGULAR + 40.0]))
    c = _chance(20)
    expected = (10 - c * 10) / (0.5 * (10 + 20)) / (1 - c)
    assert coincidence_factor(REGULAR, extra, T) == pytest.approx(expected, abs=1e-12)


def test_pairs_are_one_to_one():
    # two model spikes within 2 ms of one measured spike count once
    c = _chance(2)
    expected = (1 - c * 1) / (0.5 * (1 + 2)) / (1 - c)
    assert coincidence_factor([100.0], [99.5, 100.5], T) == pytest.approx(expected, abs=1e-12)


def test_empty_and_saturated_trains():
    assert coincidence_factor([], [], T) is None
    assert coincidence_factor(REGULAR, [], T) == 0.0
    assert coincidence_factor([], REGULAR, T) == 0.0
    # 2 nu D >= 1: chance coincides with everything, Gamma undefined
    assert coincidence_factor([1.0], np.arange(0.0, 10.0, 4.0), 10.0) is None
    with pytest.raises(ValueError):
        coincidence_factor(REGULAR, REGULAR, 0.0)


def test_independent_poisson_trains_give_about_zero():
    rng = np.random.default_rng(7)
    duration, rate = 20_000.0, 0.02  # 20 s at 20 Hz: ~400 spikes per train
    gammas = []
    for _ in range(10):
        a = np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
        b = np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
        gammas.append(coincidence_factor(a, b, duration))
    assert max(abs(g) for g in gammas) < 0.08
    assert abs(np.mean(gammas)) < 0.02
    # the same trains against themselves are 1: the statistic is not just small
    assert coincidence_factor(a, a, duration) == pytest.approx(1.0)


# --- a synthetic spiking trace with known spikes ---------------------------------------------

DT = 0.01
REST = -65.0
AMPLITUDE, WIDTH = 100.0, 0.3  # Gaussian spikes: peak REST + 100 mV, SD 0.3 ms
ONSET = 10.0
PEAKS = np.array([20.0, 30.0, 50.0, 80.0, 120.0])  # ISIs 10, 20, 30, 40 ms


def _spiking_trace(peaks=PEAKS, duration=150.0):
    t = np.arange(0.0, duration, DT)
    v = np.full_like(t, REST)
    for s in peaks:
        v += AMPLITUDE * np.exp(-0.5 * ((t - s) / WIDTH) ** 2)
    i = np.where(t >= ONSET, 2.0, 0.0)
    return t, v, i


def _crossing(peak, threshold=REST + 50.0):
    """When a Gaussian spike at ``peak`` crosses ``threshold`` on its way up (ms)."""
    return peak - WIDTH * math.sqrt(2.0 * math.log(AMPLITUDE / (threshold - REST)))


def test_stimulus_window_from_the_current():
    t, _, i = _spiking_trace()
    w = stimulus_window(t, i)
    assert w["start"] == pytest.approx(ONSET) and w["end"] == pytest.approx(t[-1])
    assert w["amplitude"] == 2.0 and w["step"]
    pulse = np.where((t >= 20.0) & (t < 70.0), -3.0, 0.5)  # a pulse from a holding current
    w = stimulus_window(t, pulse)
    assert (w["start"], w["end"], w["amplitude"]) == (pytest.approx(20.0), pytest.approx(70.0),
                                                      -3.5)
    assert stimulus_window(t, np.full_like(t, 1.0)) is None
    noise = np.random.default_rng(0).normal(size=len(t))
    assert not stimulus_window(t, noise)["step"]


def test_spike_count_and_latency_of_a_known_trace():
    t, v, i = _spiking_trace()
    c = compare_traces(t, v[None], v[None], i[None])
    assert c["threshold"] == pytest.approx(REST + 50.0)
    row = c["per_trace"][0]
    m = row["measured"]
    assert m["spike_count"] == len(PEAKS)
    assert m["spike_times"] == pytest.approx([_crossing(s) for s in PEAKS], abs=1e-3)
    assert m["latency"] == pytest.approx(_crossing(PEAKS[0]) - ONSET, abs=1e-3)
    assert row["coincidence"] == pytest.approx(1.0) and row["spike_count_diff"] == 0
    assert row["subthreshold_rmse"] == 0.0
    # ISI CV with eFEL's default (first ISI left out): ISIs 20, 30, 40 -> SD 10 / mean 30
    assert m["ISI_CV"] == pytest.approx(1.0 / 3.0, abs=1e-3)
    assert 50.0 < m["AP_amplitude"] <= AMPLITUDE + 1e-9
    assert 0.0 < m["AP_half_width"] < 4 * WIDTH


def test_a_model_that_misses_spikes():
    t, v, i = _spiking_trace()
    _, v_pred, _ = _spiking_trace(peaks=PEAKS[:3] + 5.0)  # 3 spikes, 5 ms late
    c = compare_traces(t, v[None], v_pred[None], i[None], names=["step"])
    row = c["per_trace"][0]
    assert row["name"] == "step" and row["predicted"]["spike_count"] == 3
    assert row["spike_count_diff"] == -2
    assert row["latency_diff"] == pytest.approx(5.0, abs=1e-3)
    c3 = _chance(3, duration=len(t) * DT)
    assert row["coincidence"] == pytest.approx(-c3 * 5 / (0.5 * 8) / (1 - c3), abs=1e-9)
    s = c["summary"]
    assert s["spike_count_abs_diff"] == 2 and s["n_spiking"] == 1
    assert s["coincidence"] == row["coincidence"] == s["coincidence_min"]


def test_latency_counts_from_the_onset():
    assert first_spike_latency([5.0, 12.0, 20.0], 10.0) == 2.0
    assert first_spike_latency([5.0], 10.0) is None
    assert first_spike_latency([5.0], None) is None


def test_subthreshold_rmse_cuts_the_spike_windows():
    t = np.arange(0.0, 100.0, 0.1)
    a = np.zeros_like(t)
    b = np.full_like(t, 2.0)
    spikes = [30.0]
    before, after = SPIKE_WINDOW
    inside = (t >= 30.0 - before) & (t <= 30.0 + after)
    b[inside] = 50.0  # a spike-sized error inside the window only
    assert np.array_equal(subthreshold_mask(t, spikes), ~inside)
    rmse, used = subthreshold_rmse(t, a, b, spikes)
    assert rmse == pytest.approx(2.0) and used == pytest.approx((~inside).mean())
    # the other train's spikes are cut too
    rmse, used = subthreshold_rmse(t, a, b, spikes, [70.0])
    assert rmse == pytest.approx(2.0) and used < (~inside).mean()
    assert subthreshold_rmse(t, a, b, np.arange(0.0, 100.0, 5.0)) == (None, 0.0)


def test_resting_potential_ignores_the_stimulated_samples():
    t, v, i = _spiking_trace()
    v = v + np.where(t >= ONSET, 10.0, 0.0)  # depolarised during the step
    assert resting_potential(v[None], i[None]) == pytest.approx(REST, abs=1e-6)


# --- eFEL's subthreshold features against numbers computed by hand ----------------------------


def _charging(amplitude, resistance, tau=10.0, sag=0.0, tau_sag=40.0):
    """V of a step of ``amplitude`` from 20 to 220 ms into a passive cell of input
    resistance ``resistance`` (mV per current unit) and time constant ``tau``, with a slow
    recovery of ``sag`` mV (an Ih-like sag); 250 ms at 0.05 ms."""
    t = np.arange(0.0, 250.0, 0.05)
    on = (t >= 20.0) & (t < 220.0)
    s = np.where(on, t - 20.0, 0.0)
    v = REST + on * (amplitude * resistance * (1 - np.exp(-s / tau))
                     + sag * (1 - np.exp(-s / tau_sag)))
    return t, v, np.where(on, amplitude, 0.0)


@pytest.mark.parametrize("units,amplitude,resistance,expected", [
    ("pA", -50.0, 0.1, 100.0),       # 0.1 mV/pA = 100 MOhm
    ("uA/cm^2", -5.0, 1.5, 1.5),     # 1.5 mV/(uA/cm^2) = 1.5 kOhm cm^2
])
def test_input_resistance_in_the_recording_units(units, amplitude, resistance, expected):
    t, v, i = _charging(amplitude, resistance)
    w = stimulus_window(t, i)
    (f,) = efel_features(t, v[None], [w], threshold=REST + 50.0, units=units)
    assert f["input_resistance"] == pytest.approx(expected, rel=1e-6)
    assert f["sag"] == pytest.approx(0.0, abs=1e-6)  # monotonic charging: no sag
    assert f["AP_amplitude"] is None and f["ISI_CV"] is None


def test_sag_is_the_steady_state_minus_the_minimum():
    t, v, i = _charging(-50.0, 0.1, tau=10.0, sag=2.0, tau_sag=40.0)
    w = stimulus_window(t, i)
    (f,) = efel_features(t, v[None], [w], threshold=REST + 50.0, units="pA")
    last = (t >= 200.0) & (t < 220.0)  # eFEL's steady state: the last 10 % of the step
    # the minimum, analytically: d/ds [-5 (1 - e^(-s/10)) + 2 (1 - e^(-s/40))] = 0 at
    # s = 40 ln(10) / 3
    s_min = 40.0 * math.log(10.0) / 3.0
    v_min = REST - 5.0 * (1 - math.exp(-s_min / 10.0)) + 2.0 * (1 - math.exp(-s_min / 40.0))
    assert f["sag"] == pytest.approx(v[last].mean() - v_min, abs=1e-4)
    assert f["sag"] == pytest.approx(0.679, abs=1e-3)
    # a depolarising step has no sag
    t, v, i = _charging(50.0, 0.1)
    (f,) = efel_features(t, v[None], [stimulus_window(t, i)], REST + 50.0, units="pA")
    assert f["sag"] is None and f["input_resistance"] == pytest.approx(100.0, rel=1e-6)


# --- a real cell (the sample ABF files, when present; not in the repo) ---------------------

REALDATA = ABF_DIR


@pytest.mark.skipif(not (REALDATA / "171116sh_0018.abf").is_file(),
                    reason=f"no ABF sample files in {REALDATA}")
def test_features_of_a_real_cell_match_its_readme():
    pyabf = pytest.importorskip("pyabf")
    abf = pyabf.ABF(str(REALDATA / "171116sh_0018.abf"))
    V, I = [], []
    for k in abf.sweepList:  # the first step: 0 .. 700 ms (step 146.85 .. 646.85 ms)
        abf.setSweep(k)
        V.append(abf.sweepY[:14000].astype(np.float64))
        I.append(abf.sweepC[:14000].astype(np.float64))
    t = np.arange(14000) * 0.05
    c = compare_traces(t, np.array(V), np.array(V), np.array(I), units="pA")
    rows = c["per_trace"]
    # spikes in the first step, per sweep, from the data's README (crossings of 0 mV)
    assert [r["measured"]["spike_count"] for r in rows] == \
        [0, 0, 0, 0, 0, 0, 1, 1, 3, 4, 5, 6, 6, 7, 8, 8, 9]
    assert all(r["coincidence"] == pytest.approx(1.0) for r in rows[6:])
    # -100 pA: R_in 107-111 MOhm (the README, from the -100 pA epoch), a 3.2-3.5 mV sag
    step = rows[0]["measured"]
    assert 105.0 < step["input_resistance"] < 115.0 and 3.0 < step["sag"] < 3.7
    # half-widths about 1.3-2.2 ms (the README: the first five spikes of sweep 16)
    assert 1.2 < rows[16]["measured"]["AP_half_width"] < 2.3

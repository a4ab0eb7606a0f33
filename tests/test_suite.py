"""The generalisation suite (hybridhh.suite) and the scoring helpers of benchmarks/suite.py."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics
from hybridhh.recording import truth_kinetics
from hybridhh.simulation import simulate
from hybridhh.suite import (
    BASE,
    CASES,
    FAMILIES,
    MAX_SAMPLES,
    QUICK,
    Case,
    get_case,
    make_case,
    stimulus_of,
)

ROOT = Path(__file__).resolve().parents[1]

#: a short window of each case: making it takes NEURON well under a second
SHORT = 20.0


def short(name: str, **changes) -> Case:
    return dataclasses.replace(get_case(name), duration=SHORT, **changes)


@pytest.fixture(scope="module")
def h():
    # CI installs NEURON (the `neuron` extra is part of `dev`); a skip names the reason
    pytest.importorskip("neuron", reason="NEURON not installed: pip install 'hybridhh[neuron]'")
    from neuron import h

    return h


@pytest.fixture(scope="module")
def made(h):
    """``made(case) -> (train, heldout)``, each case made once per module."""
    cache: dict = {}

    def get(case: Case):
        if case not in cache:
            cache[case] = make_case(case)
        return cache[case]

    return get


# --- the generator: NEURON-made traces agree with our NEURON-algorithm integrator --------

AGREEMENT = {
    "base": short("base"),
    "hh1952": short("hh1952"),
    "other cell": short("g_Na 50", E_L=-70.0),
    "25 °C": short("25 °C"),
}


@pytest.mark.neuron
@pytest.mark.parametrize("label", list(AGREEMENT))
def test_neuron_made_case_agrees_with_simulate_neuron(made, label):
    """The training V of a case is NEURON's ``hh`` of the case's cell under the case's
    stimulus, at dt / substeps and recorded at every sample: our ``neuron`` integrator (same
    algorithm, same step, exact rates) reproduces it to rounding (~1e-9 mV measured)."""
    case = AGREEMENT[label]
    train, _ = made(case)
    shift = 65.0 if case.convention == "hh1952" else 0.0
    bio = Biophysics.standard(case.convention, temperature=case.temperature).replace(
        g_Na=case.g_Na, g_K=case.g_K, g_L=case.g_L, E_L=case.E_L + shift)
    assert train.biophysics == bio
    assert train.dt == pytest.approx(case.dt)
    assert train.voltage.shape == (case.traces, round(case.duration / case.dt) + 1)
    stim = stimulus_of(case)
    np.testing.assert_array_equal(train.current, stim.current)
    ours = simulate(stim, HHKinetics(case.convention, temperature=case.temperature), bio,
                    method="neuron", dt=case.dt / case.substeps).V.numpy()
    assert np.abs(train.voltage - ours).max() < 1e-6
    if label in ("base", "hh1952"):
        assert train.voltage.max() > 20.0 + shift  # spikes were compared too


@pytest.mark.neuron
def test_the_1952_case_is_the_base_case_shifted_by_65_mV(made):
    base, _ = made(AGREEMENT["base"])
    old, _ = made(AGREEMENT["hh1952"])
    assert np.abs(old.voltage - 65.0 - base.voltage).max() < 1e-6
    assert old.truth.kinetics == "hh1952" and base.truth.kinetics == "hh_modern"


# --- make_case ------------------------------------------------------------------------------


@pytest.mark.neuron
def test_train_has_truth_and_heldout_is_another_clean_recording(made):
    case = short("25 °C")
    train, held = made(case)
    assert train.truth is not None and train.truth.temperature == 25.0
    assert train.truth.voltage is None  # clean: the recorded V is the truth
    truth = truth_kinetics(train)
    expected = HHKinetics("modern", temperature=25.0)
    V = np.linspace(-80.0, 40.0, 7)
    for a, b in zip(truth.rates(V), expected.rates(V), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    assert held.dt == pytest.approx(case.dt) and held.duration >= 100.0
    assert held.n_traces == 3 and held.noise_sigma == 0.0
    assert not np.array_equal(held.current[:, :10], train.current[:, :10])


@pytest.mark.neuron
@pytest.mark.parametrize("name", ["noise 0.5 mV", "noise 1 mV", "noise 2 mV"])
def test_noise_on_v_has_the_case_sd_and_heldout_is_clean(made, name):
    case = short(name)
    train, held = made(case)
    clean_train, clean_held = made(dataclasses.replace(case, name="clean", noise=0.0))
    residual = train.voltage - train.truth.voltage
    assert np.std(residual) == pytest.approx(case.noise, rel=0.05)
    assert abs(np.mean(residual)) < 0.1 * case.noise
    assert train.noise_sigma == case.noise
    # the truth is the clean case's V; the held-out recording carries no noise at all
    np.testing.assert_array_equal(train.truth.voltage, clean_train.voltage)
    np.testing.assert_array_equal(held.voltage, clean_held.voltage)
    assert held.noise_sigma == 0.0 and held.truth.voltage is None


@pytest.mark.neuron
def test_make_case_is_deterministic(h):
    case = dataclasses.replace(short("noise stimuli"), noise=1.0)
    first, second = make_case(case), make_case(case)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.voltage, b.voltage)
        np.testing.assert_array_equal(a.current, b.current)
        np.testing.assert_array_equal(a.time, b.time)
    other, _ = make_case(dataclasses.replace(case, seed=5))
    assert not np.array_equal(other.current, first[0].current)  # the seed matters


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "field"), [
    ({"family": "sines"}, "family"),
    ({"convention": "1952"}, "convention"),
    ({"dt": 0.03}, "duration"),
    ({"g_Na": -1.0}, "g_Na"),
    ({"dt": float("nan")}, "dt"),
    ({"noise": -0.5}, "noise"),
    ({"n_traces": 0}, "n_traces"),
])
def test_bad_case_raises_config_error_naming_case_and_field(changes, field):
    with pytest.raises(ConfigError, match=field) as err:
        dataclasses.replace(BASE, name="my case", **changes)
    assert "'my case'" in str(err.value)


def test_get_case_of_unknown_name_lists_the_cases():
    assert get_case("dt 0.1").dt == 0.1
    with pytest.raises(ConfigError, match="no suite case 'nope'") as err:
        get_case("nope")
    assert all(repr(c.name) in str(err.value) for c in CASES)


# --- CASES spans the space the issue asks for ----------------------------------------------


def _values(field: str) -> set:
    return {getattr(c, field) for c in CASES}


def test_cases_are_unique_and_within_the_sample_limit():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert 40 <= len(CASES) <= 60
    assert max(c.samples for c in CASES) <= MAX_SAMPLES
    assert set(QUICK) <= set(names)
    assert CASES[0] == BASE


def test_cases_span_every_axis():
    assert {0.01, 0.025, 0.05, 0.1} <= _values("dt")
    traces = {c.traces for c in CASES}
    assert min(traces) == 1 and max(traces) == 16 and 3 in traces
    assert min(_values("duration")) == 50.0 and max(_values("duration")) == 1000.0
    assert _values("family") == set(FAMILIES)
    assert min(_values("temperature")) == 6.3 and max(_values("temperature")) == 25.0
    assert _values("convention") == {"modern", "hh1952"}
    assert {0.0, 0.5, 1.0, 2.0} <= _values("noise")
    assert min(_values("g_Na")) <= 50.0 and max(_values("g_Na")) >= 150.0
    assert min(_values("g_K")) <= 20.0 and max(_values("g_K")) >= 50.0
    assert min(_values("E_L")) <= -70.0 and max(_values("E_L")) >= -50.0
    assert len(_values("seed")) >= 4


def test_cases_sample_combinations_not_only_single_axes():
    axes = ("family", "dt", "n_traces", "duration", "temperature", "convention", "noise",
            "g_Na", "g_K", "E_L")
    changed = [sum(getattr(c, f) != getattr(BASE, f) for f in axes) for c in CASES]
    assert sum(n >= 4 for n in changed) >= 10
    # every case of the clean-data target group exists at both conventions
    clean = [c for c in CASES if c.noise == 0 and c.dt <= 0.05 and c.traces >= 5
             and c.duration >= 100]
    assert {c.convention for c in clean} == {"modern", "hh1952"}


# --- benchmarks/suite.py's scoring helpers ------------------------------------------------


@pytest.fixture(scope="module")
def bench_suite():
    spec = importlib.util.spec_from_file_location("bench_suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(**changes) -> dict:
    row = {"case": "base", "data": BASE.as_dict(), "samples": BASE.samples, "wall": 56.13,
           "summary": {"tau_median": 0.0123, "tau_p90": 0.0456, "xinf_max": 0.0071,
                       "rate_median": 0.0234},
           "heldout_rmse": 0.321, "spikes_model": 18, "spikes_true": 19, "basin": True,
           "quality": None, "coverage": None}
    return {**row, **changes}


def test_right_basin_is_judged_by_tau_median_and_xinf(bench_suite):
    rb = bench_suite.right_basin
    assert rb({"tau_median": 0.29, "xinf_max": 0.09})
    assert not rb({"tau_median": 0.30, "xinf_max": 0.01})  # the limits are strict
    assert not rb({"tau_median": 0.01, "xinf_max": 0.10})
    assert not rb({"tau_median": 1.5, "xinf_max": 0.35})  # the baseline's wrong basin


def test_fmt_row_columns(bench_suite):
    cells = bench_suite.fmt_row(_row()).split()
    assert cells == ["base", "0.025", "36009", "56.1", "1.2", "4.6", "0.007", "2.3", "0.32",
                     "18/19", "yes", "-", "-"]
    assert len(bench_suite.HEADER.split()) == len(cells)
    cells = bench_suite.fmt_row(_row(basin=False, quality={"verdict": "failed"},
                                     coverage={"min": 0.853})).split()
    assert cells[-3:] == ["NO", "failed", "85"]

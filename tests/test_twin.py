"""benchmarks/twin.py: the synthetic twin is recorded as it says (NEURON needed)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _realdata import ABF_DIR

from hybridhh.cell import PARAMETERS

pytestmark = pytest.mark.neuron

ROOT = Path(__file__).resolve().parents[1]
DT = 0.05


def _load():
    spec = importlib.util.spec_from_file_location("bench_twin", ROOT / "benchmarks" / "twin.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def twin():
    pytest.importorskip("neuron", reason="NEURON not installed: pip install 'hybridhh[neuron]'")
    return _load()


@pytest.fixture(scope="module")
def recordings(twin):
    """Two sweeps (-100 and +300 pA) to 160 ms, recorded four ways."""
    def make(**kw):
        return twin.make_twin([-100.0, 300.0], 160.0, twin.Impairments(**kw))

    return {"default": make(), "clean": make(noise=0.0), "no_rs": make(noise=0.0,
                                                                       series_resistance=0.0),
            "raw": make(noise=0.0, lowpass=None)}


def _at(t):
    return int(round(t / DT))


def test_the_recording_is_in_pa_with_every_cell_parameter_unknown(twin, recordings):
    rec = recordings["default"]
    assert rec.current_units == "pA"
    assert rec.trace_names == ("sweep_0", "sweep_16")
    assert rec.metadata["sweeps"] == [0, 16]
    assert rec.metadata["lowpass"] == 10.0 and rec.metadata["bridge_balance"] == 0.0
    assert rec.cell.free_names() == tuple(PARAMETERS)
    assert not rec.temperature_known
    assert rec.dt == pytest.approx(DT, abs=1e-12)
    # the step in pA, not a density: 0 before 146.85 ms, S from the sample at 146.85 on
    assert np.all(rec.current[:, :_at(146.85)] == 0.0)
    assert rec.current[0, _at(146.85)] == -100.0 and rec.current[1, _at(146.85)] == 300.0
    assert np.all(rec.current[1, _at(146.85):] == 300.0)


def test_the_protocol_is_the_files_command(twin):
    """dual_step is 171116sh_0018's sweepC (to 2200 ms), sample for sample."""
    path = ABF_DIR / "171116sh_0018.abf"
    if not path.is_file():
        pytest.skip(f"real data not found: {path}")
    from hybridhh.importing import import_recording

    real = import_recording(path, sweeps=[0, 4, 9, 16], window=(0.0, 2200.0))
    mine = twin.dual_step(real.time, [-100.0, 0.0, 125.0, 300.0])
    np.testing.assert_array_equal(mine, real.current)


def test_the_epoch_boundaries_fall_on_the_files_samples(twin):
    t = np.arange(_at(2200.0) + 1) * DT
    I = twin.dual_step(t, [50.0])[0]
    edges = np.flatnonzero(np.diff(I) != 0) + 1
    np.testing.assert_array_equal(edges, [2937, 12937, 22937, 32937, 42937])


def test_the_noise_is_white_gaussian_of_sd_0_1_mv(recordings):
    e = recordings["default"].voltage - recordings["clean"].voltage
    n = e.size
    assert e.std() == pytest.approx(0.1, rel=4 * 0.1 / np.sqrt(2 * n) / 0.1)  # 4 SE of the SD
    assert abs(e.mean()) < 4 * 0.1 / np.sqrt(n)
    lag1 = np.mean(e[:, 1:] * e[:, :-1]) / e.var()
    assert abs(lag1) < 4 / np.sqrt(n)  # white: added after the filter


def test_the_filter_passes_1_khz_and_halves_the_power_at_10_khz(twin):
    dt = 0.005  # the NEURON step the filter runs at (200 kHz)
    t = np.arange(_at(20.0) * 10) * dt
    gains = []
    for f in (1.0, 10.0, 20.0):  # kHz
        y = twin.lowpass(np.sin(2 * np.pi * f * t), 10.0, dt)
        keep = t >= 10.0  # the transient is long gone; 10 ms = whole periods
        ph = 2 * np.pi * f * t[keep]  # lock-in: the amplitude of the fundamental
        gains.append(2 * np.hypot(np.mean(y[keep] * np.sin(ph)), np.mean(y[keep] * np.cos(ph))))
    assert gains[0] == pytest.approx(1.0, abs=0.01)  # 4-pole Bessel: -0.03 dB at fc / 10
    assert gains[1] == pytest.approx(1 / np.sqrt(2), abs=2e-3)  # -3 dB at the cut-off
    assert gains[2] < 0.3  # and falls off above it


def test_the_filter_starts_in_its_steady_state(twin):
    y = twin.lowpass(np.full((2, 100), [[-65.0], [3.0]]), 10.0, 0.005)
    np.testing.assert_allclose(y, np.full((2, 100), [[-65.0], [3.0]]), rtol=1e-12)


def test_unfiltered_v_is_v_m_plus_rs_times_i(recordings):
    rec = recordings["raw"]
    np.testing.assert_allclose(rec.voltage - rec.truth.voltage, 2.0 * rec.current * 1e-3,
                               atol=1e-9)


def test_the_series_resistance_jump_at_the_step_equals_rs_times_di(recordings):
    """With the filter, the R_s part of V settles to R_s ΔI within a few samples."""
    diff = recordings["clean"].voltage - recordings["no_rs"].voltage
    assert np.all(np.abs(diff[:, :_at(146.85)]) < 1e-9)
    settled = diff[:, _at(146.85 + 1.0)]  # 1 ms after the onset
    np.testing.assert_allclose(settled, [2.0 * -100.0 * 1e-3, 2.0 * 300.0 * 1e-3], atol=1e-6)
    # ... and the recorded jump across the onset is that plus the membrane's own charging
    rec = recordings["clean"]
    jump = rec.voltage[1, _at(146.85 + 0.5)] - rec.voltage[1, _at(146.85) - 1]
    membrane = rec.truth.voltage[1, _at(146.85 + 0.5)] - rec.truth.voltage[1, _at(146.85) - 1]
    # (the filter's ~0.03 ms group delay on the 1 mV/ms charging ramp: ~0.03 mV)
    assert jump - membrane == pytest.approx(0.6, abs=0.05)


def test_the_twin_is_cortical_like_at_rest(twin):
    """The -100 pA step's passive analysis: rest near -65 mV, R_in ~ 100 MOhm, tau_m
    ~ 30 ms, C_total = tau_m / R_in near the true 300 pF (the real cell: 107-111 MOhm,
    32-34 ms)."""
    from hybridhh.analysis.passive import passive_analysis

    p = passive_analysis(twin.make_twin([-100.0], 700.0, twin.Impairments(noise=0.0)))
    assert -67.0 < p.E_L < -63.0
    assert 90.0 < p.R_in < 115.0 and 20.0 < p.tau_m < 40.0
    assert p.C_total == pytest.approx(twin.C_TOTAL, rel=0.1)


def test_window_keeps_the_sweeps_and_the_span_with_the_truth(twin, recordings):
    rec = recordings["default"]
    w = twin.window(rec, [16], (100.0, 150.0))
    assert w.trace_names == ("sweep_16",) and w.metadata["sweeps"] == [16]
    assert w.time[0] == pytest.approx(100.0) and w.time[-1] == pytest.approx(150.0)
    np.testing.assert_array_equal(w.voltage[0], rec.voltage[1, _at(100.0):_at(150.0) + 1])
    np.testing.assert_array_equal(w.truth.voltage[0],
                                  rec.truth.voltage[1, _at(100.0):_at(150.0) + 1])


def test_cell_scores_use_relative_errors_for_c_and_g_and_mv_for_e(twin):
    fitted = dict(twin.TRUTH, C_total=310.0, g_K=4.5, E_L=-63.5)
    s = twin.cell_scores(fitted)
    assert s["C_total"]["error"] == pytest.approx(10 / 300) and s["C_total"]["pass"]
    assert s["g_K"]["error"] == pytest.approx(0.125) and not s["g_K"]["pass"]
    assert s["E_L"]["error"] == pytest.approx(1.5) and s["E_L"]["pass"]
    assert s["g_Na"]["error"] == 0.0
    assert not twin.cell_scores(None)["C_total"]["pass"]


def test_runs_are_merged_under_their_names(twin, tmp_path):
    out = tmp_path / "twin.json"
    one = {"quick": False, "ablation": [], "x": 1}
    out.write_text(json.dumps(twin.merge(out, one)))
    two = {"quick": False, "ablation": ["no_noise", "no_rs"], "x": 2}
    merged = twin.merge(out, two)
    assert list(merged["runs"]) == ["default", "no_noise+no_rs"]
    out.write_text(json.dumps(merged))
    again = twin.merge(out, dict(one, x=3))  # the same run replaces its old self
    assert again["runs"]["default"]["x"] == 3 and again["runs"]["no_noise+no_rs"]["x"] == 2
    assert twin.label_of(dict(one, settings=["seed=1"])) == "set_seed=1"


def test_a_bad_known_name_fails_before_any_work(twin, capsys):
    with pytest.raises(SystemExit):
        twin.main(["--known", "g_Ca", "--out", "/nonexistent/twin.json"])
    assert "g_Ca" in capsys.readouterr().err


def test_bad_impairments_fail_on_construction(twin):
    for kw in ({"noise": -0.1}, {"lowpass": 0.0}, {"series_resistance": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            twin.Impairments(**kw)
    with pytest.raises(ValueError, match="Nyquist"):
        twin.lowpass(np.zeros(10), 150.0, 0.005)


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure(twin, tmp_path):
    out = tmp_path / "twin.json"
    assert twin.main(["--quick", "--out", str(out)]) == 0
    assert twin.main(["--quick", "--no-rs", "--out", str(out)]) == 0  # a second run kept
    runs = json.loads(out.read_text())["runs"]
    assert list(runs) == ["quick", "quick+no_rs"]
    assert runs["quick+no_rs"]["impairments"]["series_resistance"] == 0.0
    r = runs["quick"]
    fit = r["hybridhh"]
    assert set(fit["cell"]) == set(twin.TRUTH)
    assert all(isinstance(s["pass"], bool) for s in fit["cell"].values())
    assert set(fit["tests"]) == {"odd_sweeps", "second_step"}
    assert r["impairments"] == dataclasses.asdict(twin.Impairments())
    assert fit["verdict"] in ("ok", "suspect", "failed")

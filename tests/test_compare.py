"""hybridhh.compare: kinetics metrics on known cases, truth resolution, spike matching,
free runs, and the comparison figures of hybridhh.plotting."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.compare import (
    kinetics_metrics,
    match_spikes,
    resolve_truth,
    spike_metrics,
    spike_times,
    wide_voltage_range,
)
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics, get_kinetics
from hybridhh.plotting import (
    mark_voltage_range,
    plot_free_run,
    plot_kinetics_error,
    plot_rates,
    plot_training,
)
from hybridhh.protocols import classic_pulses, steps, time_grid
from hybridhh.recording import simulate_recording, write_recording

matplotlib.use("Agg")


class Scaled:
    """All six rates of ``base`` times ``factor``: tau / factor, x_inf unchanged."""

    def __init__(self, base, factor):
        self.base, self.factor, self.name = base, factor, f"{base.name} x{factor}"

    def rates(self, V):
        a, b = self.base.rates(V)
        return a * self.factor, b * self.factor


@pytest.fixture(scope="module")
def short_recording():
    """Two 20 ms step traces (one firing), modern convention, with truth."""
    t = time_grid(20.0, 0.025)
    return simulate_recording(steps(t, [20.0, -5.0], start=2.0))


# --- kinetics metrics ---------------------------------------------------------------------


def test_truth_against_itself_is_exact():
    hh = HHKinetics("modern")
    k = kinetics_metrics(hh, hh, -85.0, 35.0)
    assert k["range"] == [-85.0, 35.0]
    for e in k["gates"].values():
        assert all(v == pytest.approx(0.0, abs=1e-12) for v in e.values())
    assert k["meets_targets"] and all(k["pass"].values())


def test_rates_scaled_by_1_2_give_the_known_errors():
    hh = HHKinetics("modern")
    k = kinetics_metrics(Scaled(hh, 1.2), hh, -85.0, 35.0)
    for e in k["gates"].values():
        assert e["tau_median"] == pytest.approx(1 - 1 / 1.2, rel=1e-9)  # 0.1667
        assert e["tau_p90"] == pytest.approx(1 - 1 / 1.2, rel=1e-9)
        assert e["xinf_max"] == pytest.approx(0.0, abs=1e-12)
        assert e["alpha_median"] == pytest.approx(0.2, rel=1e-9)
        assert e["beta_median"] == pytest.approx(0.2, rel=1e-9)
    assert k["worst"]["tau_median"] == pytest.approx(1 / 6, rel=1e-9)
    assert k["pass"] == {"tau_median": False, "tau_p90": False, "xinf_max": True,
                         "rate_median": False}
    assert not k["meets_targets"]


def test_untrained_model_has_a_large_error(short_recording):
    from hybridhh.fitting import FitConfig
    from hybridhh.fitting.api import build_model
    from hybridhh.fitting.data import TraceData

    model = build_model(TraceData.from_recording(short_recording), FitConfig())
    k = kinetics_metrics(model, HHKinetics("modern"), -80.0, 30.0)
    assert not k["meets_targets"]
    assert k["worst"]["tau_median"] > 0.3 and k["worst"]["xinf_max"] > 0.2


# --- the truth ------------------------------------------------------------------------------


def test_resolve_truth_by_name_and_temperature(short_recording):
    s = resolve_truth("hh_modern", recording=short_recording)
    assert s.kinetics == HHKinetics("modern", 6.3) and "6.3 °C" in s.label
    assert resolve_truth("hh1952@20").kinetics == HHKinetics("hh1952", 20.0)
    assert resolve_truth("hh@20", temperature=10.0).kinetics.temperature == 10.0
    assert resolve_truth("neuron_hh").info["kind"] == "name"


def test_resolve_truth_default_is_the_recordings_truth(short_recording):
    s = resolve_truth(None, recording=short_recording)
    assert s.kinetics == get_kinetics("hh_modern") and s.info["kind"] == "recording"
    assert resolve_truth(None) is None


def test_resolve_truth_from_a_file(short_recording, tmp_path):
    path = write_recording(tmp_path / "t.h5", short_recording)
    s = resolve_truth(str(path))
    assert s.kinetics == get_kinetics("hh_modern") and s.info["file"] == str(path)


def test_resolve_truth_errors(short_recording, tmp_path):
    with pytest.raises(ConfigError, match="built-in kinetics name"):
        resolve_truth("hh2000")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_truth("missing/file.h5")
    with pytest.raises(ConfigError, match="NAME@TEMPERATURE"):
        resolve_truth("hh_modern@warm")
    import dataclasses

    real = dataclasses.replace(short_recording, truth=None)
    path = write_recording(tmp_path / "real.h5", real)
    with pytest.raises(ConfigError, match="no /truth"):
        resolve_truth(str(path))


def test_kinetics_objects_pass_through():
    obj = Scaled(HHKinetics(), 2.0)
    assert resolve_truth(obj).kinetics is obj


# --- spikes ---------------------------------------------------------------------------------


def _spike_train(time, spike_at, rest=-65.0, peak=40.0, width=0.5):
    """Gaussian 'spikes' of ``width`` ms peaking at ``spike_at`` (ms) on a flat rest."""
    V = np.full_like(time, rest)
    for s in spike_at:
        V += (peak - rest) * np.exp(-0.5 * ((time - s) / width) ** 2)
    return V


def test_spike_times_find_threshold_crossings():
    t = np.arange(0.0, 100.0, 0.01)
    V = _spike_train(t, [10.0, 30.0, 55.5])
    found = spike_times(V, t, threshold=-15.0)[0]
    # the crossing precedes the peak by width * sqrt(2 ln(105/50))
    lead = 0.5 * np.sqrt(2 * np.log(105.0 / 50.0))
    np.testing.assert_allclose(found, np.array([10.0, 30.0, 55.5]) - lead, atol=1e-3)
    assert [len(x) for x in spike_times(np.stack([V, V - 80.0]), t, -15.0)] == [3, 0]


def test_spike_times_count_a_noisy_crossing_once():
    t = np.arange(0.0, 20.0, 0.01)
    V = _spike_train(t, [10.0])
    V[(t > 9.0) & (t < 9.6)] += 30.0 * np.sin(np.arange(np.sum((t > 9.0) & (t < 9.6))))
    assert len(spike_times(V, t, -15.0)[0]) == 1


def test_match_spikes():
    m = match_spikes([10.0, 20.0, 30.0], [10.5, 21.0, 45.0], max_shift=5.0)
    assert (m["matched"], m["missed"], m["extra"]) == (2, 1, 1)
    assert m["mean_abs"] == pytest.approx(0.75) and m["max_abs"] == pytest.approx(1.0)
    assert m["diffs"] == pytest.approx([0.5, 1.0])
    none = match_spikes([10.0], [], 5.0)
    assert none["missed"] == 1 and none["mean_abs"] is None and none["max_abs"] is None
    assert match_spikes([10.0], [16.0], 5.0)["matched"] == 0


def test_match_spikes_pairs_in_order():
    # closest first would pair 12 with 12.4 and leave 10 unmatched (14.5 would cross)
    m = match_spikes([10.0, 12.0], [12.4, 14.5], max_shift=5.0)
    assert m["matched"] == 2 and m["diffs"] == pytest.approx([2.4, 2.5])
    # with equal counts, the order-preserving pairing with the smallest total shift
    m = match_spikes([10.0, 20.0, 30.0], [11.0, 21.0, 31.0], max_shift=15.0)
    assert m["diffs"] == pytest.approx([1.0, 1.0, 1.0])


def test_spike_metrics_totals():
    t = np.arange(0.0, 60.0, 0.01)
    ref = np.stack([_spike_train(t, [10, 30, 50]), _spike_train(t, [20])])
    mod = np.stack([_spike_train(t, [10.2, 30.4]), _spike_train(t, [20.1, 40.0])])
    s = spike_metrics(ref, mod, t, threshold=-15.0, names=["a", "b"])
    assert (s["n_reference"], s["n_model"], s["matched"]) == (4, 4, 3)
    assert (s["missed"], s["extra"], s["count_mismatch"]) == (1, 1, 2)
    assert s["max_abs"] == pytest.approx(0.4, abs=1e-6)
    assert s["mean_abs"] == pytest.approx((0.2 + 0.4 + 0.1) / 3, abs=1e-6)
    assert [p["name"] for p in s["per_trace"]] == ["a", "b"]


def test_threshold_relative_to_rest_works_in_the_1952_convention():
    from hybridhh.compare import SPIKE_ABOVE_REST
    from hybridhh.fitting.data import TraceData

    t = time_grid(20.0, 0.01)
    rec = simulate_recording(classic_pulses(t), Biophysics.standard("hh1952"),
                             HHKinetics("hh1952"))
    rest = TraceData.from_recording(rec).resting_estimate()
    assert abs(rest) < 15.0  # rest 0 mV in 1952 convention (the estimate sees some AHP)
    found = spike_times(rec.voltage, rec.time, rest + SPIKE_ABOVE_REST)[0]
    assert len(found) >= 1 and len(found) == len(spike_times(rec.voltage, rec.time, 50.0)[0])
    # a fixed modern-convention threshold (0 mV) would count the depolarised plateau too
    assert rec.voltage.max() > 90.0


# --- free runs ------------------------------------------------------------------------------


def test_free_run_trajectory_matches_fit_free_run(short_recording):
    from hybridhh.fitting.free_run import free_run_trajectory
    from hybridhh.fitting import FitConfig, free_run
    from hybridhh.fitting.api import build_model
    from hybridhh.fitting.data import TraceData

    data = TraceData.from_recording(short_recording)
    model = build_model(data, FitConfig())
    traj = free_run_trajectory(model, data, "exp_euler")
    torch.testing.assert_close(traj.V, free_run(model, data, "exp_euler"))
    assert traj.gates.shape == (2, short_recording.n_samples, 3)


def test_wide_voltage_range():
    assert wide_voltage_range((-80.0, 30.0)) == (-120.0, 60.0)
    assert wide_voltage_range((-80.0, 30.0), np.array([-130.0, 0.0])) == (-135.0, 60.0)


# --- figures --------------------------------------------------------------------------------


def _render(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.tell() > 1000


def _labels(fig):
    return [a.get_xlabel() for a in fig.axes] + [a.get_ylabel() for a in fig.axes]


def test_plot_kinetics_error_renders_with_units():
    hh = HHKinetics()
    fig = plot_kinetics_error(Scaled(hh, 1.2), hh, -110.0, 60.0, constrained=(-80.0, 30.0))
    _render(fig)
    labels = _labels(fig)
    assert "V (mV)" in labels and "tau learned / true" in labels
    tau = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(tau, 1 / 1.2)


def test_plot_free_run_renders_with_units(short_recording):
    r = short_recording
    fig = plot_free_run(r.time, r.voltage, r.voltage + 1.0, r.gates, r.gates,
                        names=r.trace_names, threshold=-15.0, title="t")
    _render(fig)
    labels = _labels(fig)
    assert "time (ms)" in labels and "V (mV)" in labels
    assert len(fig.axes) == 8  # 4 rows x 2 traces
    fig = plot_free_run(r.time, r.voltage, r.voltage, names=r.trace_names, max_traces=1)
    assert len(fig.axes) == 1


def test_plot_training_renders_with_units():
    hist = ([{"phase": "teacher/adam", "step": k, "loss": 1.0 / k} for k in range(1, 20)]
            + [{"phase": "teacher/lbfgs-s4", "step": 1, "loss": 1e-3,
                "errors": {"tau_median": 0.2, "tau_p90": 0.5, "xinf_max": 0.1,
                           "rate_median": 0.3}}]
            + [{"phase": "ode/2ms", "step": k, "loss": 0.5} for k in range(1, 5)])
    fig = plot_training(hist)
    _render(fig)
    assert len(fig.axes) == 3
    assert any("mV²" in x for x in _labels(fig))
    with pytest.raises(ConfigError):
        plot_training([])


def test_mark_voltage_range_on_rate_figure():
    fig = plot_rates([HHKinetics()], vmin=-100, vmax=50)
    n = len(fig.axes[0].lines)
    mark_voltage_range(fig.axes, -80.0, 30.0)
    assert len(fig.axes[0].lines) == n + 2
    _render(fig)

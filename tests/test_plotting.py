"""hybridhh.plotting: figures render with Agg, label their axes with units, and take ``ax=`` /
``axes=``; traces, rates and comparison figures."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from hybridhh import plotting as P
from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import steps, time_grid
from hybridhh.recording import recording_from_trajectory
from hybridhh.simulation import simulate


@pytest.fixture(scope="module")
def traj():
    # 40 ms at 0.05 ms: the 20 uA/cm^2 step fires tonically (>= 3 spikes)
    return simulate(steps(time_grid(40.0, 0.05), [2.0, 20.0], start=2.0), HHKinetics())


@pytest.fixture(scope="module")
def rec(traj):
    return recording_from_trajectory(traj, Biophysics(), HHKinetics(), source="pytest")


def labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


def render(fig, tmp_path, name="fig.png"):
    path = P.save_figure(fig, tmp_path / name, dpi=60)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 2_000
    return path


def test_plot_recording(rec, tmp_path):
    fig = P.plot_recording(rec)
    assert isinstance(fig, Figure)
    lab = labels(fig)
    ys = [y for _, y in lab]
    assert any("(µA/cm²)" in y for y in ys)
    assert any(y == "V (mV)" for y in ys)
    assert any(y.startswith(g) for y in ys for g in "mhn")
    assert ("time (ms)", ys[-1]) in lab or any(x == "time (ms)" for x, _ in lab)
    assert any(x == "V (mV)" and y.startswith("n") for x, y in lab)  # the V-n plane
    phase = [ax for ax in fig.axes if ax.get_title() == "phase plane V–n"][0]
    assert "limit cycle (tonic firing)" in [t.get_text() for t in phase.get_legend().texts]
    render(fig, tmp_path)


def test_plot_recording_of_a_trajectory_and_trace_selection(traj, tmp_path):
    fig = P.plot_recording(traj, traces=["step_20"])
    assert "1 of 2 traces" in fig.get_suptitle()
    render(fig, tmp_path)


def test_plot_recording_without_gates_uses_dvdt(rec, tmp_path):
    fig = P.plot_recording(dataclasses.replace(rec, truth=None))
    assert any(y == "dV/dt (mV/ms)" for _, y in labels(fig))
    assert not any(y.startswith("m (") for _, y in labels(fig))
    render(fig, tmp_path)


def test_many_traces_are_thinned(rec):
    big = dataclasses.replace(
        rec, voltage=np.repeat(rec.voltage, 10, axis=0), current=np.repeat(rec.current, 10, 0),
        trace_names=[f"t{k}" for k in range(20)],
        truth=dataclasses.replace(rec.truth, gates=np.repeat(rec.truth.gates, 10, axis=0)))
    fig = P.plot_recording(big)
    assert f"{P.MAX_TRACES} of 20 traces" in fig.get_suptitle()


def test_panels_on_given_axes(rec):
    fig = Figure()
    axs = fig.subplots(2, 2)
    out = P.plot_recording(rec, axes={"voltage": axs[0, 0], "phase": axs[0, 1],
                                      "gates": axs[1, 0], "current": axs[1, 1]})
    assert out is fig
    assert axs[0, 0].get_ylabel() == "V (mV)" and axs[1, 1].get_xlabel() == "time (ms)"
    assert axs[1, 0].get_ylabel() == "gates m, h, n"
    with pytest.raises(ConfigError, match="unknown panel"):
        P.plot_recording(rec, axes={"spectrum": axs[0, 0]})
    for fn in (P.plot_stimulus, P.plot_voltage, P.plot_phase_plane):
        ax = Figure().subplots()
        assert fn(rec, ax=ax) is ax.figure
        assert "(m" in ax.get_xlabel() or "(m" in ax.get_ylabel()


def test_plot_gates_needs_gates(rec):
    with pytest.raises(ConfigError, match="no gates"):
        P.plot_gates(dataclasses.replace(rec, truth=None))
    fig = P.plot_gates(rec)
    assert fig.axes[-1].get_xlabel() == "time (ms)"


class TinyMLP(torch.nn.Module):
    """A float32 stand-in for a learned kinetics object."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 6)

    def rates(self, V):
        out = torch.nn.functional.softplus(self.lin(V[..., None] / 50.0))
        return out[..., :3], out[..., 3:]


def test_plot_rates(rec, tmp_path):
    kins = [HHKinetics(), HHKinetics(temperature=10.0), TinyMLP()]
    fig = P.plot_rates(kins, ["truth", "warmer", "mlp"], vmin=-100, vmax=50,
                       voltages=rec.voltage)
    lab = labels(fig)
    ys = [y for _, y in lab]
    assert sum("(1/ms)" in y for y in ys) == 3
    assert sum(y.startswith("τ") and "(ms)" in y for y in ys) == 3
    assert sum(x == "V (mV)" for x, _ in lab) >= 3
    assert any(y == "samples per mV" for y in ys)
    legend_texts = [t.get_text() for ax in fig.axes if ax.get_legend()
                    for t in ax.get_legend().texts]
    assert {"truth", "warmer", "mlp", "not visited by the data"} <= set(legend_texts)
    render(fig, tmp_path)


def test_plot_rates_on_given_axes_with_explicit_shading():
    fig = Figure()
    axes = fig.subplots(3, 3)
    out = P.plot_rates(HHKinetics(), vmin=-90, vmax=40, axes=axes,
                       not_visited=[(-90, -80), (30, 40)])
    assert out is fig
    assert axes[0, 0].get_yscale() == "log"
    assert axes[2, 1].get_xlabel() == "V (mV)"
    with pytest.raises(ConfigError, match="3x3"):
        P.plot_rates(HHKinetics(), axes=fig.subplots(1, 2))
    with pytest.raises(ConfigError, match="labels"):
        P.plot_rates([HHKinetics()], labels=["a", "b"])


def test_not_visited_ranges():
    v = np.concatenate([np.linspace(-70, -60, 1000), np.linspace(0, 10, 1000)])
    r = P.not_visited_ranges(v, -100, 50, bin_width=1.0)
    assert r[0] == (-100.0, -70.0)
    assert r[1][0] == pytest.approx(-60.0, abs=1.0) and r[1][1] == pytest.approx(0.0)
    assert r[-1][1] == pytest.approx(50.0)
    assert P.not_visited_ranges(np.linspace(-100, 50, 10_000), -100, 50) == []


def test_no_pyplot_state():
    assert matplotlib.get_backend()  # plotting never calls matplotlib.use
    import sys

    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        n = len(plt.get_fignums())
        P.plot_rates(HHKinetics())
        assert len(plt.get_fignums()) == n


def test_mark_rate_ranges_draws_one_bar_per_rate_and_a_legend_entry():
    from matplotlib.colors import to_rgba

    hh = HHKinetics()
    fig = P.plot_rates([hh], ["true"], vmin=-100.0, vmax=50.0)
    ranges = {"alpha_m": (-70.0, 40.0), "beta_m": (-75.0, -15.0), "alpha_h": (-90.0, -30.0),
              "beta_h": (-80.0, 40.0), "alpha_n": (-90.0, 40.0), "beta_n": (-90.0, -45.0)}
    rate_axes = [fig.axes[0], fig.axes[3], fig.axes[6]]
    P.mark_rate_ranges(rate_axes, ranges)
    green = to_rgba("tab:green")
    for gate, ax in zip("mhn", rate_axes, strict=True):
        bars = [ln for ln in ax.get_lines() if to_rgba(ln.get_color()) == green]
        assert sorted(tuple(b.get_xdata()) for b in bars) == sorted(
            [ranges[f"alpha_{gate}"], ranges[f"beta_{gate}"]])
    labels = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().texts]
    assert "data constrain α" in labels and "data constrain β" in labels


def test_limit_cycle_spans_one_interspike_interval(traj):
    from hybridhh.analysis import as_numpy, spike_indices
    from hybridhh.plotting.traces import _limit_cycle

    V, I, t = as_numpy(traj.V[1]), as_numpy(traj.current[1]), as_numpy(traj.time)
    cyc = _limit_cycle(V, I, t)
    s = spike_indices(V, t, V.min() + 0.6 * (V.max() - V.min()))[0]
    assert len(s) >= 3 and (cyc.start, cyc.stop) == (s[-2], s[-1] + 1)  # the latest cycle
    assert _limit_cycle(as_numpy(traj.V[0]), as_numpy(traj.current[0]), t) is None  # no spikes


def test_importing_the_figures_imports_no_torch():
    code = ("import sys, hybridhh.plotting, hybridhh.analysis; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- comparison figures -----------------------------------------------------------------


def _render(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.tell() > 1000


def _labels(fig):
    return [a.get_xlabel() for a in fig.axes] + [a.get_ylabel() for a in fig.axes]


def test_plot_kinetics_error_renders_with_units(scaled):
    hh = HHKinetics()
    fig = P.plot_kinetics_error(scaled(hh, 1.2), hh, -110.0, 60.0, constrained=(-80.0, 30.0))
    _render(fig)
    labels = _labels(fig)
    assert "V (mV)" in labels and "tau learned / true" in labels
    tau = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(tau, 1 / 1.2)


def test_plot_free_run_renders_with_units(short_recording):
    r = short_recording
    fig = P.plot_free_run(r.time, r.voltage, r.voltage + 1.0, r.gates, r.gates,
                        names=r.trace_names, threshold=-15.0, title="t")
    _render(fig)
    labels = _labels(fig)
    assert "time (ms)" in labels and "V (mV)" in labels
    assert len(fig.axes) == 8  # 4 rows x 2 traces
    fig = P.plot_free_run(r.time, r.voltage, r.voltage, names=r.trace_names, max_traces=1)
    assert len(fig.axes) == 1


def test_plot_training_renders_with_units():
    hist = ([{"phase": "teacher/adam", "step": k, "loss": 1.0 / k} for k in range(1, 20)]
            + [{"phase": "teacher/lbfgs-s4", "step": 1, "loss": 1e-3,
                "errors": {"tau_median": 0.2, "tau_p90": 0.5, "xinf_max": 0.1,
                           "rate_median": 0.3}}]
            + [{"phase": "ode/2ms", "step": k, "loss": 0.5} for k in range(1, 5)])
    fig = P.plot_training(hist)
    _render(fig)
    assert len(fig.axes) == 3
    assert any("mV²" in x for x in _labels(fig))
    with pytest.raises(ConfigError):
        P.plot_training([])


def test_mark_voltage_range_on_rate_figure():
    fig = P.plot_rates([HHKinetics()], vmin=-100, vmax=50)
    n = len(fig.axes[0].lines)
    P.mark_voltage_range(fig.axes, -80.0, 30.0)
    assert len(fig.axes[0].lines) == n + 2
    _render(fig)

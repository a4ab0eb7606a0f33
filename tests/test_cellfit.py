"""The cell's unknown biophysics (``hybridhh.fitting.cellfit``): the variable projection
recovers a known cell exactly from its own kinetics, its gradient is the projected loss's
(finite differences), pA recordings are converted as the convention says, bad requests
fail early."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError
from hybridhh.fitting import FitConfig
from hybridhh.fitting.cellfit import CELL_NAMES, cell_estimate, recording_cell
from hybridhh.fitting.data import TraceData
from hybridhh.fitting.gauss_newton import NodeTable, curves
from hybridhh.fitting.teacher import TeacherForcing
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.simulation import simulate

#: the cell of the tests: not the squid's
CELL = Biophysics(g_Na=90.0, g_K=30.0, g_L=0.2, E_Na=55.0, E_K=-80.0, E_L=-60.0)
C_TOTAL = 250.0  # pF


@pytest.fixture(scope="module")
def cell_data():
    """6 traces x 40 ms at 0.01 ms of CELL (rk4 at 0.0025 ms), current in pA with
    C_total = 250 pF: ``(time, V, I_pA)``."""
    t = time_grid(40.0, 0.01)
    stim = Stimulus.concat([steps(t, [3.0, 10.0, 30.0, -8.0], start=2.0),
                            ou_noise(t, 3.0, 10.0, 2.0, seed=3, n=2)])
    traj = simulate(stim, HHKinetics("modern"), CELL, method="rk4", dt=0.0025)
    V = traj.V.numpy()
    return t, V, stim.current * C_TOTAL


def _truth_table(V):
    nodes = torch.arange(float(V.min()) - 3.0, float(V.max()) + 3.0, 0.1, dtype=torch.float64)
    kin = HHKinetics("modern")
    with torch.no_grad():
        a, b = kin.rates(nodes)  # [N, 3]
        x_inf, tau = a / (a + b), 1.0 / (a + b)
        P = torch.cat([torch.logit(x_inf).T, torch.log(tau).T], 0)
    return NodeTable(nodes, P)


def _pa_recording(t, V, I, bio=None):
    bio = Biophysics() if bio is None else bio
    return SimpleNamespace(time=t, voltage=V, current=I, biophysics=bio,
                           trace_names=None, current_units="pA")


def test_the_projection_recovers_a_known_cell_from_its_own_kinetics(cell_data):
    t, V, I = cell_data
    rec = _pa_recording(t, V, I)  # /biophysics: the squid's, far from CELL
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data, CELL_NAMES)
    assert c_start == 100.0 and free == CELL_NAMES
    cell = cell_estimate(data.bio, c_start, free, bounds)
    cell.solving = True
    tf = TeacherForcing(data, cell=cell)
    with torch.no_grad():
        loss = float(tf.loss(_truth_table(V)))
    v = cell.values
    assert v["C_total"] == pytest.approx(C_TOTAL, rel=2e-3)
    for g in ("g_Na", "g_K", "g_L"):
        assert v[g] == pytest.approx(getattr(CELL, g), rel=1e-2), g
    for e in ("E_Na", "E_K", "E_L"):
        assert v[e] == pytest.approx(getattr(CELL, e), abs=0.3), e
    assert loss < 1e-4  # the teacher-forcing floor of 0.01 ms sampling, not a misfit
    # the squid's biophysics with the true kinetics explain the data far worse
    squid = TeacherForcing(TraceData.from_recording(_pa_recording(t, V, I / C_TOTAL)))
    with torch.no_grad():
        assert float(squid.loss(_truth_table(V))) > 100 * loss


def test_the_projected_loss_gradient_matches_finite_differences(cell_data):
    t, V, I = cell_data
    rec = _pa_recording(t, V, I)
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data, ("g_Na", "g_K", "E_L"))
    cell = cell_estimate(data.bio, c_start, free, bounds)
    cell.solving = True
    tf = TeacherForcing(data, stride=2, cell=cell)
    table = _truth_table(V)
    table.P = table.P + 0.05 * torch.sin(torch.arange(table.P.numel(), dtype=torch.float64)
                                         ).reshape(table.P.shape)  # off the optimum
    P = table.P.clone().requires_grad_(True)
    loss = tf.loss(NodeTable(table.nodes, P))
    loss.backward()
    direction = torch.cos(torch.arange(P.numel(), dtype=torch.float64)).reshape(P.shape)
    h = 1e-5
    with torch.no_grad():
        up = float(tf.loss(NodeTable(table.nodes, table.P + h * direction)))
        down = float(tf.loss(NodeTable(table.nodes, table.P - h * direction)))
    fd = (up - down) / (2 * h)
    assert float((P.grad * direction).sum()) == pytest.approx(fd, rel=1e-4)


def test_the_projected_jacobian_is_orthogonal_to_the_cell_directions(cell_data):
    t, V, I = cell_data
    rec = _pa_recording(t, V, I)
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data, CELL_NAMES)
    cell = cell_estimate(data.bio, c_start, free, bounds)
    cell.solving = True
    tf = TeacherForcing(data, stride=4, cell=cell)
    table = _truth_table(V)
    nodes = torch.arange(float(V.min()) - 2, float(V.max()) + 5, 3.0, dtype=torch.float64)
    coarse = NodeTable(nodes, curves(table, nodes))
    r, J = tf.jacobian(coarse, nodes)
    x = tf.gates(coarse)
    D = cell.directions(tf.cell_columns(x)[0])
    assert D is not None and D.shape[1] == len(CELL_NAMES)
    JD = J.reshape(-1, r.numel()) @ D
    assert float(JD.abs().max()) < 1e-8 * float(J.abs().max()) * float(D.abs().max()) * r.numel()


def test_a_density_recording_keeps_its_current_and_only_frees_what_is_asked(cell_data):
    t, V, I = cell_data
    rec = SimpleNamespace(time=t, voltage=V, current=I / C_TOTAL, biophysics=CELL,
                          trace_names=None)
    data = TraceData.from_recording(rec)
    before = data.I.clone()
    assert recording_cell(rec, data) == (None, (), {})
    assert torch.equal(data.I, before) and data.bio == CELL
    assert cell_estimate(data.bio, None, ()) is None
    with pytest.raises(ConfigError, match="C_total can be estimated only .* pA"):
        recording_cell(rec, data, ("C_total",))


def test_a_pa_recording_is_converted_with_the_c_total_start(cell_data):
    t, V, I = cell_data
    cell = {"C_total": SimpleNamespace(status="unknown", value=200.0, lower=50.0, upper=800.0),
            "E_L": SimpleNamespace(status="known", value=-61.0, lower=None, upper=None)}
    rec = SimpleNamespace(**vars(_pa_recording(t, V, I)), cell=cell)
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data)
    assert c_start == 200.0 and free == ("C_total",)
    assert bounds == {"C_total": (50.0, 800.0)}
    np.testing.assert_allclose(data.I.numpy(), I / 200.0)
    assert data.bio.C_m == 1.0 and data.bio.E_L == -61.0


def test_bad_cell_requests_fail_when_made():
    with pytest.raises(ConfigError, match="unknown cell parameter.*'g_X'"):
        FitConfig(free=("g_X",))
    assert FitConfig(free="g_Na, E_L").free == ("g_Na", "E_L")
    assert dataclasses.replace(FitConfig(), free=["g_K"]).free == ("g_K",)
    with pytest.raises(ConfigError, match="lower < upper"):
        cell_estimate(Biophysics(), None, ("g_Na",), {"g_Na": (10.0, 5.0)})


def test_the_recording_format_cell_gives_starts_bounds_and_known_values(cell_data):
    """hybridhh.cell.Cell (what `hybridhh import` writes): an unknown's start is the
    C_total start, a known value replaces /biophysics, every unknown is free."""
    from hybridhh.cell import Cell, CellParameter

    t, V, I = cell_data
    cell = Cell.unknown(C_total=250.0, g_L=0.05)
    cell = Cell({**{n: cell[n] for n in cell}, "E_K": CellParameter("E_K", "known", value=-85.0)})
    rec = SimpleNamespace(**vars(_pa_recording(t, V, I)), cell=cell)
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data)
    assert c_start == 250.0
    assert free == ("C_total", "g_Na", "E_Na", "g_K", "g_L", "E_L")
    assert bounds["C_total"] == (5.0, 2000.0)
    np.testing.assert_allclose(data.I.numpy(), I / 250.0)
    assert data.bio.E_K == -85.0 and data.bio.g_L == 0.05


def test_a_pa_recording_without_starts_starts_from_its_passive_analysis():
    """fit() starts C_total, g_L, E_L of an imported recording (all unknown, no starts) at
    its own passive analysis: here an exact RC cell, C 200 pF, R 150 MOhm (tau 30 ms)."""
    from hybridhh.cell import Cell
    from hybridhh.fitting.cellfit import passive_started
    from hybridhh.recording import Recording

    t = np.arange(16001) * 0.05
    I = np.where((t >= 100) & (t < 600), -50.0, 0.0)
    x = np.clip(t - 100.0, 0.0, 500.0)
    V = -70.0 - 7.5 * (1 - np.exp(-x / 30.0)) * np.exp(-np.clip(t - 600.0, 0, None) / 30.0)
    rec = Recording(time=t, voltage=V[None], current=I[None], source="test",
                    current_units="pA", cell=Cell.unknown(g_L=0.05), temperature_known=False)
    started, passive = passive_started(rec)
    assert passive["started"] == ["C_total", "E_L"]  # g_L had a start: kept
    starts = started.cell.start_values()
    assert starts["C_total"] == pytest.approx(200.0, rel=1e-3)
    assert starts["E_L"] == pytest.approx(-70.0, abs=1e-6) and starts["g_L"] == 0.05
    # C_total kept within a factor 1.5 of tau_m / R_in; bounds the user set stay
    assert started.cell.bounds()["C_total"] == pytest.approx((200.0 / 1.5, 300.0), rel=1e-3)
    assert passive["C_total_bounds"] == pytest.approx([200.0 / 1.5, 300.0], rel=1e-3)
    from hybridhh.analysis.passive import passive_analysis, passive_cell
    from hybridhh.cell import CellParameter

    mine = Cell({"C_total": CellParameter("C_total", "unknown", lower=50.0, upper=900.0)})
    assert passive_cell(mine, passive_analysis(rec)).bounds()["C_total"] == (50.0, 900.0)
    # nothing to start, or no step: unchanged
    assert passive_started(started) == (started, None)
    flat = Recording(time=t, voltage=V[None] * 0 - 70.0, current=I[None] * 0, source="test",
                     current_units="pA", cell=Cell.unknown(), temperature_known=False)
    assert passive_started(flat) == (flat, None)


def _committed(t, V, I, noise=0.0, seed=0):
    """The training data as the bands see them: the cell written in (CELL, I / C_total)."""
    Vn = V + noise * np.random.default_rng(seed).standard_normal(V.shape)
    return TraceData.from_recording(SimpleNamespace(time=t, voltage=Vn, current=I / C_TOTAL,
                                                    biophysics=CELL, trace_names=None))


def _cell_band(free=CELL_NAMES, **bounds):
    from hybridhh.fitting.bands import CellBand
    from hybridhh.fitting.cellfit import BOUNDS

    values = {"C_total": C_TOTAL, **{n: getattr(CELL, n) for n in CELL_NAMES[1:]}}
    return CellBand(free, values, {**BOUNDS, **bounds})


def test_the_cell_directions_of_the_bands_match_finite_differences(cell_data):
    """d(residual)/d(C_total, g_Na, ..., E_L) at the fitted cell, as the bands use it, is the
    residual's own derivative (central differences of the teacher-forcing residual)."""
    from hybridhh.fitting.bands import cell_directions

    t, V, I = cell_data
    data = _committed(t, V, I)
    model = _truth_table(V)
    D = cell_directions(_cell_band(), model, data, 0.02, None)

    def residual(C_total=C_TOTAL, **bio):
        d = _committed(t, V, I)
        d.I, d.bio = d.I * C_TOTAL / C_total, d.bio.replace(**bio)
        return TeacherForcing(d, stride=2).normalised_residual(model).detach()

    for k, name in enumerate(CELL_NAMES):
        x = C_TOTAL if name == "C_total" else getattr(CELL, name)
        h = 1e-4 * max(abs(x), 1.0)
        fd = (residual(**{name: x + h}) - residual(**{name: x - h})) / (2 * h)
        assert torch.allclose(D[:, k], fd, rtol=1e-5, atol=1e-7 * float(fd.abs().max())), name


def test_cell_bands_widen_when_the_kinetics_are_free_and_stop_at_a_bound(cell_data):
    """The cell's SD lets the kinetics compensate (the Schur complement is at least the SD
    with the kinetics held), a parameter on its bound has no band, and on a noisy recording
    of the true kinetics the band covers the true cell."""
    from hybridhh.fitting.bands import cell_directions, fit_bands

    t, V, I = cell_data
    data = _committed(t, V, I, noise=0.2, seed=1)
    kin = HHKinetics("modern")
    band = fit_bands(kin, data, step=0.02, adaptive=None, node_step=3.0, smoothness=1e-4,
                     cell=_cell_band(g_K=(30.0, 60.0)))  # g_K sits on its lower bound
    cell = band["cell"]
    assert cell["at_bound"] == ["g_K"] and "g_K" not in cell["sd"]
    names = [n for n in CELL_NAMES if n != "g_K"]
    D = cell_directions(_cell_band([n for n in names]), kin, data, 0.02, None)
    held = torch.linalg.inv(D.T @ D).diagonal().sqrt() * band["s2"] ** 0.5
    for k, n in enumerate(names):
        assert cell["laplace_sd"][n] >= held[k] * (1 - 1e-9), n
        assert cell["lo"][n] < cell["hi"][n]


def test_cell_bands_cover_the_cell_estimated_from_a_noisy_recording(cell_data):
    """The cell solved by the projection on a noisy recording (0.3 mV) of the true kinetics
    misses the true cell by less than its band (the band is centred on the estimate)."""
    from hybridhh.fitting.bands import CellBand, fit_bands
    from hybridhh.fitting.cellfit import commit

    t, V, I = cell_data
    Vn = V + 0.3 * np.random.default_rng(4).standard_normal(V.shape)
    rec = _pa_recording(t, Vn, I)
    data = TraceData.from_recording(rec)
    c_start, free, bounds = recording_cell(rec, data, CELL_NAMES)
    cell = cell_estimate(data.bio, c_start, free, bounds)
    cell.solving = True
    kin = HHKinetics("modern")
    with torch.no_grad():
        TeacherForcing(data, stride=2, cell=cell).loss(kin)
    commit(cell, data)
    band = fit_bands(kin, data, step=0.02, adaptive=None, node_step=3.0, smoothness=1e-4,
                     cell=CellBand(cell.free, cell.values, cell.bounds))["cell"]
    truth = {"C_total": C_TOTAL, **{n: getattr(CELL, n) for n in CELL_NAMES[1:]}}
    errors = {n: cell.values[n] - truth[n] for n in CELL_NAMES}
    assert max(abs(e) for e in errors.values()) > 0  # the noise moved the estimate
    for n in CELL_NAMES:
        assert band["lo"][n] <= truth[n] <= band["hi"][n], (n, errors[n], band["sd"][n])


def test_a_cell_parameter_on_its_bound_makes_the_fit_suspect():
    """A bounded solver stops a hair inside a bound: that is 'on the bound' (no band), and
    the verdict says which parameters and is at least suspect."""
    from hybridhh.fitting.bands import CellBand
    from hybridhh.fitting.quality import _cell, _reason, verdict_of

    bounds = {"C_total": (248.0, 558.0), "g_K": (0.5, 200.0), "E_L": (-100.0, -30.0)}
    band = CellBand(("C_total", "g_K", "E_L"),
                    {"C_total": 248.0 + 1e-9, "g_K": 199.99999999999997, "E_L": -58.6}, bounds)
    assert band.names == ("E_L",) and band.at_bound == ("C_total", "g_K")
    check = _cell({"cell": {"at_bound": list(band.at_bound)}})
    assert verdict_of({"cell": check}) == "suspect"
    assert "C_total, g_K ended on their bounds" in _reason("cell", check)
    assert _cell({"cell": {"at_bound": []}}) is None and _cell(None) is None

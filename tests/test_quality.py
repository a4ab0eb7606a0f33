"""The fit's quality verdict (hybridhh.fitting.quality): the limits, the floor, real fits."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.fitting import quality as Q
from hybridhh.fitting.data import TraceData
from hybridhh.fitting.teacher import TeacherForcing
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording


# --- the verdict logic on synthetic numbers ------------------------------------------------
@pytest.mark.parametrize(("value", "outcome"), [
    (0.0, "ok"), (5.0, "ok"), (5.0001, "suspect"), (30.0, "suspect"), (30.0001, "failed"),
    (math.inf, "failed"), (math.nan, "failed")])
def test_check_outcome_at_the_limits(value, outcome):
    c = Q._check(value, Q.OBJECTIVE_SUSPECT, Q.OBJECTIVE_FAILED)
    assert Q.OBJECTIVE_SUSPECT == 5.0 and Q.OBJECTIVE_FAILED == 30.0
    assert c["outcome"] == outcome
    assert c["passed"] is (outcome == "ok")
    json.dumps(c, allow_nan=False)  # plain JSON, a non-finite value as null
    if not math.isfinite(value):
        assert c["value"] is None


def test_verdict_is_the_worst_check():
    ok, sus, bad = ({"outcome": o} for o in Q.VERDICTS)
    assert Q.verdict_of({}) == "ok"
    assert Q.verdict_of({"a": ok, "b": ok}) == "ok"
    assert Q.verdict_of({"a": ok, "b": sus}) == "suspect"
    assert Q.verdict_of({"a": sus, "b": bad, "c": ok}) == "failed"


def _data(V, dt=0.025):
    V = torch.as_tensor(np.asarray(V, dtype=float))
    return TraceData(V, torch.zeros_like(V), dt, Biophysics.standard(), ("a",) * len(V))


def _spike_train(n, T=4000):
    """V at -65 mV with ``n`` one-sample spikes to +30 mV, the first ``n`` of 10 evenly
    spaced places (so that missing spikes alone keep the RMSE below its limit: 6 missing
    give 3.7 mV)."""
    V = np.full(T, -65.0)
    V[np.linspace(200, T - 200, 10).astype(int)[:n]] = 30.0
    return V


@pytest.mark.parametrize(("n_model", "rmse_big", "outcome"), [
    (10, False, "ok"),      # same spikes
    (8, False, "ok"),       # 2 of 10 off: 0.2 <= 0.3
    (6, False, "suspect"),  # 0.4: suspect, not failed without a large RMSE
    (4, False, "suspect"),  # 0.6 > SPIKES_FAILED, but the RMSE is small
    (4, True, "failed"),    # 0.6 and far off in V
    (0, False, "failed"),   # 1.0 > 2 SPIKES_FAILED: fails alone
])
def test_spike_mismatch_limits(n_model, rmse_big, outcome, monkeypatch):
    recorded = _data([_spike_train(10)])
    V_model = torch.as_tensor(_spike_train(n_model))[None]
    # the free run of the "model" is given: monkeypatch the simulation
    limit = max(Q.RMSE_SUSPECT, Q.RMSE_SPREAD * float(recorded.V.std()))
    offset = 2.0 * limit if rmse_big else 0.0
    monkeypatch.setattr(Q, "free_runs", lambda models, data: (V_model + offset)[None])
    out = Q._free_run(object(), None, recorded, -65.0, 0.0, {"traces": "holdout"})
    assert out["spikes"]["outcome"] == outcome
    assert out["spikes"]["recorded"] == [10] and out["spikes"]["model"] == [n_model]
    assert out["free_run"]["outcome"] == ("suspect" if rmse_big else "ok")


def test_added_spikes_on_a_silent_recording_fail(monkeypatch):
    recorded = _data([_spike_train(0)])
    V_model = torch.as_tensor(_spike_train(4))[None]  # 4 extra over MIN_SPIKES = 3
    monkeypatch.setattr(Q, "free_runs", lambda models, data: V_model[None])
    out = Q._free_run(object(), None, recorded, -65.0, 0.0, {"traces": "train"})
    assert out["spikes"]["value"] == pytest.approx(4 / Q.MIN_SPIKES)
    assert out["spikes"]["outcome"] == "failed"
    assert out["free_run"]["traces"] == "training"


def test_diverging_free_run_fails(monkeypatch):
    recorded = _data([_spike_train(3)])
    bad = torch.full_like(recorded.V, float("nan"))
    monkeypatch.setattr(Q, "free_runs", lambda models, data: bad[None])
    out = Q._free_run(object(), None, recorded, -65.0, 0.0, {"traces": "holdout"})
    assert out["free_run"]["outcome"] == "failed" and out["free_run"]["value"] is None
    assert "spikes" not in out
    assert "diverges" in Q._reason("free_run", out["free_run"])


def test_stages_check_only_where_the_teacher_model_is_far_off(monkeypatch):
    recorded = _data([_spike_train(5)])
    limit = max(Q.RMSE_SUSPECT, Q.RMSE_SPREAD * float(recorded.V.std()))
    for teacher_off, outcome in ((0.5 * limit, "ok"), (4.0 * limit, "suspect")):
        runs = torch.stack([recorded.V + 0.5, recorded.V + teacher_off])
        monkeypatch.setattr(Q, "free_runs", lambda models, data, runs=runs: runs)
        out = Q._free_run(object(), object(), recorded, -65.0, 0.0,
                          {"chosen": "ode", "traces": "holdout"})
        assert out["stages"]["outcome"] == outcome, teacher_off
        assert out["stages"]["value"] == pytest.approx(teacher_off / 0.5)


def test_band_check_reads_widths_over_the_visited_range():
    V = np.arange(-100.0, 41.0, 1.0)
    names = [f"{g}_inf" for g in "mhn"] + [f"tau_{g}" for g in "mhn"]
    value = {k: np.full(V.shape, 0.5).tolist() for k in names}
    narrow = {"V": V.tolist(), "value": value,
              "lo": {k: np.full(V.shape, 0.45).tolist() for k in names},
              "hi": {k: np.full(V.shape, 0.55).tolist() for k in names}}
    c = Q._bands(narrow, (-80.0, 20.0))
    assert c["outcome"] == "ok" and c["tau_width"]["h"] == pytest.approx(0.2)
    wide = dict(narrow, hi={k: np.full(V.shape, 2.0).tolist() for k in names})
    assert Q._bands(wide, (-80.0, 20.0))["outcome"] == "suspect"  # tau width 3.1 > 1
    assert Q._bands(None, (-80.0, 20.0)) is None
    assert Q._bands({"V": [0.0]}, (-80.0, 20.0)) is None  # not the layout: skipped


def test_headline_and_warning():
    assert Q.headline(None) == "quality: not assessed"
    ok = {"verdict": "ok", "reasons": [], "checks": {"a": {"outcome": "ok"}}, "advice": []}
    assert Q.headline(ok) == "quality: ok (1 checks passed)" and Q.warning_text(ok) is None
    bad = {"verdict": "failed", "reasons": ["r1"], "advice": ["try x"],
           "checks": {"a": {"outcome": "failed"}, "b": {"outcome": "ok"}}}
    assert Q.headline(bad) == "quality: FAILED (1 of 2 checks)"
    text = Q.warning_text(bad)
    assert "FAILED" in text and "- r1" in text and "* try x" in text


# --- the objective's floor: a known answer -------------------------------------------------
def test_noise_floor_is_what_the_true_kinetics_leave_on_noisy_data():
    """The true kinetics on their own data + white noise (1 mV): their objective equals the
    floor (noise + discretisation) to a few percent; on clean data the discretisation
    floor alone, measured on the reference's own free run, is what they leave."""
    t = time_grid(60.0, 0.025)
    stim = Stimulus.concat([steps(t, [5.0, 15.0, -5.0], start=5.0),
                            ou_noise(t, 5.0, 6.0, 2.0, seed=1, n=1)])
    clean = simulate_recording(stim, Biophysics.standard("modern"), method="exp_euler",
                               dt=0.025 / Q.SELF_SUBSTEPS)
    data = TraceData.from_recording(clean)
    kin = HHKinetics("modern")
    rng = np.random.default_rng(0)
    noisy = TraceData(data.V + torch.as_tensor(rng.standard_normal(data.V.shape)), data.I,
                      data.dt, data.bio, data.names)
    tf_clean = TeacherForcing(data, stride=2, adaptive=1.0)
    floor = Q.objective_floor(kin, tf_clean, 0.0)
    assert floor["yardstick"] == "reference" and floor["noise"] == 0.0
    assert float(tf_clean.loss(kin)) == pytest.approx(floor["discretisation"], rel=0.05)
    tf = TeacherForcing(noisy, stride=2, adaptive=1.0)
    floor = Q.objective_floor(kin, tf, noise=1.0)
    assert floor["noise"] > 100 * floor["discretisation"]
    assert float(tf.loss(kin)) == pytest.approx(floor["floor"], rel=0.05)
    # along a denoised path the noise does not count
    assert Q.objective_floor(kin, tf, 1.0, along_path=True)["noise"] == 0.0


# --- real fits ---------------------------------------------------------------------------
def _recording():
    """4 traces x 60 ms at 0.025 ms (3 steps, one OU trace: the hold-out)."""
    t = time_grid(60.0, 0.025)
    stim = Stimulus.concat([steps(t, [-5.0, 6.0, 20.0], start=5.0),
                            ou_noise(t, 5.0, 6.0, 2.0, seed=2, n=1)])
    return simulate_recording(stim, Biophysics.standard("modern"), method="rk4")


def _prior_only():
    """A fit stopped after the generic prior: no refinement, no teacher phases, no ODE."""
    from hybridhh.fitting.config import FitConfig, ODEConfig, PriorConfig, TeacherConfig

    return FitConfig(prior=PriorConfig(refine_starts=0),
                     teacher=TeacherConfig(adam_steps=0, gauss_newton=(), lbfgs=(), starts=1),
                     ode=ODEConfig(enabled=False))


def test_a_fit_stopped_after_the_prior_is_failed(tmp_path):
    from hybridhh.fitting import fit, load_fit

    res = fit(_recording(), _prior_only(), run_dir=tmp_path / "run", quiet=True)
    q = res.quality
    assert q["verdict"] == "failed", q["reasons"]
    assert q["checks"]["objective"]["outcome"] == "failed"
    assert q["reasons"] and q["advice"]
    json.dumps(q, allow_nan=False)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["quality"]["verdict"] == "failed"
    assert load_fit(tmp_path / "run").quality == saved["quality"]


@pytest.mark.slow
def test_a_converged_fit_on_clean_data_is_ok():
    """The suite's steps-only cell, 5 x 100 ms at 0.025 ms (NEURON-made): the default fit
    lands in the right basin (measured: tau p90 8 %, objective 0.57x its floor, 9 of 9
    held-out spikes)."""
    pytest.importorskip("neuron")
    from hybridhh.fitting import FitConfig, fit
    from hybridhh.suite import get_case, make_case

    rec, _ = make_case(dataclasses.replace(get_case("steps only"), n_traces=5,
                                           duration=100.0))
    res = fit(rec, FitConfig(), quiet=True)
    q = res.quality
    assert q["verdict"] == "ok", q["reasons"]
    assert q["checks"]["objective"]["value"] < 1.0


def test_cli_prints_the_warning_of_a_failed_fit(tmp_path, capsys):
    from hybridhh.cli import main
    from hybridhh.recording import write_recording

    data = write_recording(tmp_path / "rec.h5", _recording())
    assert main(["fit", str(data), "-o", str(tmp_path / "run"), "--adam-steps", "0",
                 "--ode-steps", "0", "--prior-starts", "0", "--set", "teacher.starts=1",
                 "--set", "teacher.gauss_newton=[]", "--set", "teacher.lbfgs=[]", "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "run")
    assert "warning: the fit is FAILED" in err
    assert "what to try next" in err and "teacher.starts=4" in err

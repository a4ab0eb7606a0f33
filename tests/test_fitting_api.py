"""fit() and load_fit(): stage errors, diverging models, unfinished runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybridhh.biophysics import Biophysics
from hybridhh.errors import RunDirError, SimulationError
from hybridhh.fitting import FitConfig, fit, free_run, load_fit
from hybridhh.fitting import rundir as rd
from hybridhh.fitting.ode import MultipleShooting
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording


@pytest.fixture(scope="module")
def small_recording():
    """4 traces x 20 ms: 3 steps and an OU trace (held out by holdout="auto")."""
    t = time_grid(20.0, 0.025)
    stim = Stimulus.concat([steps(t, [3.0, 10.0, 30.0], start=2.0),
                            ou_noise(t, 3.0, 10.0, 2.0, seed=3, n=1)])
    return simulate_recording(stim, Biophysics.standard("modern"), method="rk4")


def _cheap():
    """A fit of a few seconds with both stages: teacher (Adam, one L-BFGS step) and ode."""
    q = FitConfig.quick()
    return FitConfig.quick(prior=dataclasses.replace(q.prior, refine_starts=0),
                           teacher=dataclasses.replace(q.teacher, adam_steps=5,
                                                       gauss_newton=(), lbfgs=((0.05, 1),)))


def test_everything_after_config_is_keyword_only(small_recording, tmp_path):
    with pytest.raises(TypeError):
        fit(small_recording, _cheap(), tmp_path / "run")


def test_a_type_error_in_a_stage_propagates(small_recording, monkeypatch):
    """Only what a diverging model raises counts as divergence; a bug (here a TypeError
    in the held-out free run) is not silently taken for an infinitely bad model."""
    from hybridhh.fitting import freerun as fr

    def broken(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr(fr, "free_runs", broken)
    with pytest.raises(TypeError, match="a bug"):
        fit(small_recording, _cheap(), quiet=True)


def test_a_diverging_free_run_rejects_the_ode_stage(small_recording, monkeypatch):
    from hybridhh.fitting import freerun as fr

    def diverging(*a, **k):
        raise SimulationError("non-finite V")

    monkeypatch.setattr(fr, "free_runs", diverging)
    res = fit(small_recording, _cheap(), quiet=True)
    assert res.heldout_rmse["ode"] == float("inf")
    assert res.heldout_rmse["teacher"] == float("inf")
    assert res.heldout_rmse["chosen"] == "teacher"


def test_unfinished_run_loads_only_when_allowed(small_recording, tmp_path, monkeypatch):
    """Interrupted in the neural-ODE stage: load_fit says the fit is unfinished and how to
    look at it; with allow_unfinished=True it gives the best checkpoint's model (the one
    after the last completed phase) and what the run directory knows."""
    cfg = FitConfig.quick()
    run = tmp_path / "cut"

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(MultipleShooting, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(small_recording, cfg, run_dir=run, quiet=True)
    monkeypatch.undo()
    assert (run / rd.BEST).exists() and not (run / rd.MODEL).exists()

    with pytest.raises(RunDirError, match="unfinished") as e:
        load_fit(run)
    assert "allow_unfinished=True" in str(e.value) and "--resume" in str(e.value)

    res = load_fit(run, allow_unfinished=True)
    assert res.finished is False
    best = torch.load(run / rd.BEST, weights_only=True)
    assert best["phase"] == "teacher/lbfgs2-0.025ms"
    state = res.model.state_dict()
    assert state.keys() == best["model"].keys()
    for k, v in best["model"].items():
        assert torch.equal(state[k], v), k
    assert res.config == cfg
    assert res.train_traces == ("step_3", "step_10", "step_30")
    assert res.holdout_traces == ("ou_3_10_s3_0",)
    saved = rd.load_json(run / rd.CONFIG)["data"]["voltage_range"]
    assert res.voltage_range == tuple(saved)
    assert res.heldout_rmse == {} and res.constrained is None
    assert res.history and {h["phase"] for h in res.history} >= {"teacher/adam"}
    assert res.elapsed == res.history[-1]["elapsed"]
    # the model runs
    assert torch.isfinite(free_run(res.model, small_recording)).all()


def test_finished_fit_loads_as_finished(small_recording, tmp_path):
    run = tmp_path / "run"
    fitted = fit(small_recording, _cheap(), run_dir=run, quiet=True)
    for allow in (False, True):
        res = load_fit(run, allow_unfinished=allow)
        assert res.finished is True
        assert res.heldout_rmse == fitted.heldout_rmse
        for p, q in zip(fitted.model.parameters(), res.model.parameters(), strict=True):
            assert torch.equal(p, q)


def test_a_run_without_a_completed_phase_does_not_load(tmp_path):
    (tmp_path / "r").mkdir()
    rd.save_json(tmp_path / "r" / rd.CONFIG, {"fit": FitConfig().to_dict()})
    for allow in (False, True):
        with pytest.raises(RunDirError, match="missing model.pt"):
            load_fit(tmp_path / "r", allow_unfinished=allow)

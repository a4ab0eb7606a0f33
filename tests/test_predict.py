"""hybridhh.predict and compare/report with ``data``: the prediction of the training stimuli
is the fit's own free run, any grid works, pA data need the run's C_total, bad inputs fail
with a clear error; ``compare RUN --data DATA.h5`` and the report's section on a tiny run
(tests/conftest.py: ``fitted``)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from hybridhh.analysis import COMPARE_JSON, compare
from hybridhh.cli import main
from hybridhh.errors import ConfigError, RecordingError, RunDirError
from hybridhh.prediction import fitted_cell, predict
from hybridhh.protocols import steps, time_grid
from hybridhh.recording import Recording, read_recording, simulate_recording, write_recording


@dataclasses.dataclass(frozen=True, eq=False)
class PARecording(Recording):
    """A recording whose current is in pA (``Recording.current_units``)."""

    current_units: str = "pA"


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """Another recording of the same (squid-axon) cell: two steps at another step and
    length than the fitted one (30 ms at 0.025 ms instead of 20 ms at 0.05 ms)."""
    path = tmp_path_factory.mktemp("other") / "other.h5"
    return write_recording(path, simulate_recording(steps(time_grid(30.0, 0.025),
                                                          [8.0, -4.0], start=5.0)))


def _run_copy(run, tmp_path, biophysics="keep", quality="keep"):
    """A copy of the run directory whose result.json "biophysics" and "quality" are changed
    (None: removed)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("compare", "report.html"))
    res = json.loads((copy / "result.json").read_text())
    for key, value in (("biophysics", biophysics), ("quality", quality)):
        if value is None:
            res.pop(key, None)
        elif value != "keep":
            res[key] = value
    (copy / "result.json").write_text(json.dumps(res))
    return copy


def _quality(verdict, reasons=()):
    """A result.json "quality" entry with ``verdict`` and ``reasons``."""
    return {"verdict": verdict, "reasons": list(reasons), "advice": [], "checks": {}}


FAILED = _quality("failed", ["the free run is 12.3 mV RMS from the recording",
                             "the error bands are wide"])


def test_predict_on_the_training_stimuli_is_the_fits_own_free_run(fitted):
    _, rec_path, run = fitted
    rec = read_recording(rec_path)
    res = json.loads((run / "result.json").read_text())
    held = res["holdout_traces"]
    # the fitter's held-out check: exp_euler free run, RMSE against the recorded V
    pred = predict(run, rec.select(held), method="exp_euler")
    rmse = float(np.sqrt(np.mean((pred.voltage - rec.select(held).voltage) ** 2)))
    assert rmse == pytest.approx(res["heldout_rmse"]["final"], rel=1e-12)
    # and compare's free runs (rk4) on every trace
    comp = compare(run, "hh_modern", write=False, floor=False)
    pred = predict(run, rec_path)
    train = [rec.trace_names.index(n) for n in comp.train.names]
    assert np.array_equal(pred.voltage[train], comp.train.V_model)
    assert pred.trace_names == rec.trace_names
    assert np.array_equal(pred.time, rec.time) and np.array_equal(pred.current, rec.current)
    assert np.array_equal(pred.voltage[:, 0], rec.voltage[:, 0])  # from the first sample
    assert pred.truth is None and pred.source == "hybridhh predict"
    assert str(run) in pred.description


def test_any_grid_and_the_file_round_trip(fitted, other, tmp_path):
    _, _, run = fitted
    data = read_recording(other)
    out = tmp_path / "pred.h5"
    pred = predict(run, other, out=out)
    back = read_recording(out)
    assert back.n_samples == data.n_samples == 1201 and back.dt == pytest.approx(0.025)
    assert back.trace_names == data.trace_names
    np.testing.assert_array_equal(back.voltage, pred.voltage)
    np.testing.assert_array_equal(back.current, data.current)
    assert back.voltage[0, 0] == data.voltage[0, 0]
    assert np.all(np.isfinite(back.voltage)) and back.voltage.max() > 0  # step_8 spikes
    # the prediction of a later part of a recording starts from its own first sample
    later = dataclasses.replace(data, time=data.time[400:], voltage=data.voltage[:, 400:],
                                current=data.current[:, 400:], truth=None)
    p2 = predict(run, later)
    assert p2.voltage[0, 0] == data.voltage[0, 400] and np.array_equal(p2.time, later.time)


def test_pa_data_use_the_runs_c_total(fitted, tmp_path):
    _, rec_path, run = fitted
    rec = read_recording(rec_path)
    bio = fitted_cell(run).biophysics.as_dict()  # result.json's, or config.json's
    copy = _run_copy(run, tmp_path, {**bio, "C_total": 250.0})
    cell = fitted_cell(copy)
    assert cell.C_total == 250.0 and cell.source == "result.json"
    pa = PARecording(time=rec.time, voltage=rec.voltage, current=rec.current * 250.0,
                     trace_names=rec.trace_names, biophysics=rec.biophysics)
    np.testing.assert_allclose(predict(copy, pa).voltage, predict(copy, rec).voltage,
                               rtol=0, atol=1e-9)
    # a run without a C_total cannot scale pA
    for bad in (_run_copy(run, tmp_path / "a", None), _run_copy(run, tmp_path / "b", bio)):
        with pytest.raises(ConfigError, match="C_total") as e:
            predict(bad, pa)
        assert str(bad) in str(e.value)


def test_a_run_without_result_biophysics_uses_its_config(fitted, tmp_path):
    _, rec_path, run = fitted
    copy = _run_copy(run, tmp_path, None)
    cell = fitted_cell(copy)
    assert cell.source == "config.json" and cell.C_total is None
    cfg = json.loads((run / "config.json").read_text())
    assert cell.biophysics.as_dict() == cfg["data"]["biophysics"]
    np.testing.assert_array_equal(predict(copy, rec_path).voltage,
                                  predict(run, rec_path).voltage)


def test_bad_inputs(fitted, tmp_path, capsys):
    _, rec_path, run = fitted
    text = tmp_path / "notes.h5"
    text.write_text("not a recording")
    with pytest.raises(RecordingError, match="notes.h5"):
        predict(run, text)
    with pytest.raises(ConfigError, match="Recording or a recording file"):
        predict(run, 3.0)
    with pytest.raises(RunDirError):
        predict(tmp_path / "no_run", rec_path)
    with pytest.raises(ConfigError, match="unknown integrator"):
        predict(run, rec_path, method="euler")
    for argv, msg in ((["predict", str(run), "--stimulus-from", str(text), "--out",
                        str(tmp_path / "p.h5")], "notes.h5"),
                      (["predict", str(run), "--out", str(tmp_path / "p.h5")],
                       "--stimulus-from")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err
    assert not (tmp_path / "p.h5").exists()


def test_cli_predict(fitted, other, tmp_path, capsys):
    _, _, run = fitted
    ok = _run_copy(run, tmp_path / "ok", quality=_quality("ok"))
    out = tmp_path / "pred.h5"
    assert main(["predict", str(ok), "--stimulus-from", str(other), "--out", str(out),
                 "-q"]) == 0
    io = capsys.readouterr()
    assert io.out.strip() == str(out) and "warning:" not in io.err
    np.testing.assert_array_equal(read_recording(out).voltage, predict(ok, other).voltage)
    # a failed fit: a warning on stderr (also under -q), and the file records the verdict
    bad = _run_copy(run, tmp_path / "bad", quality=FAILED)
    assert main(["predict", str(bad), "--stimulus-from", str(other), "--out", str(out),
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert f"warning: run {bad}: the fit was judged FAILED" in err
    assert "do not trust this prediction" in err
    assert read_recording(out).description.endswith("the fit's quality verdict: FAILED")


def test_a_suspect_or_failed_fit_is_noted_and_recorded(fitted, other, tmp_path):
    _, _, run = fitted
    # the fixture's own verdict (a tiny fit): its first reason is named
    res = json.loads((run / "result.json").read_text())
    assert fitted_cell(run).quality == res["quality"]
    notes = []
    predict(run, other, warnings=notes)
    if res["quality"]["verdict"] != "ok":
        assert len(notes) == 1 and res["quality"]["reasons"][0] in notes[0]
    # failed: the run, FAILED, the first reason and how many more; the description too
    bad = _run_copy(run, tmp_path / "failed", quality=FAILED)
    notes = []
    out = tmp_path / "pred.h5"
    pred = predict(bad, other, out=out, warnings=notes)
    assert notes == [f"run {bad}: the fit was judged FAILED (the free run is 12.3 mV RMS "
                     f"from the recording; 1 more reason(s) in {bad / 'result.json'} "
                     "\"quality\"); the prediction inherits it: do not trust this prediction"]
    assert pred.description.endswith("; the fit's quality verdict: FAILED")
    assert read_recording(out).description == pred.description
    with pytest.warns(UserWarning, match=f"run {bad}: the fit was judged FAILED"):
        predict(bad, other)
    # suspect: noted with care, one reason
    odd = _run_copy(run, tmp_path / "suspect", quality=_quality("suspect", ["cell at bound"]))
    notes = []
    pred = predict(odd, other, warnings=notes)
    assert len(notes) == 1 and "judged SUSPECT (cell at bound)" in notes[0]
    assert notes[0].endswith("inherits it: treat this prediction with care")
    assert "more reason" not in notes[0]
    assert pred.description.endswith("the fit's quality verdict: SUSPECT")
    # ok, and a run saved before verdicts existed: no note, the description says which
    for quality, text in ((_quality("ok"), "ok"),
                          (None, "not assessed (saved before verdicts existed)")):
        copy = _run_copy(run, tmp_path / str(quality is None), quality=quality)
        notes = []
        pred = predict(copy, other, warnings=notes)
        assert notes == [] and pred.description.endswith(f"the fit's quality verdict: {text}")
        assert fitted_cell(copy).quality == quality
    # a quality without a known verdict is an error naming the file
    broken = _run_copy(run, tmp_path / "broken", quality={"verdict": "great"})
    with pytest.raises(RunDirError, match=r"result\.json: quality\.verdict .* 'great'"):
        predict(broken, other)


def test_compare_data_on_another_recording(fitted, other, tmp_path, capsys):
    from hybridhh.report import write_report

    _, rec_path, run = fitted
    copy = _run_copy(run, tmp_path, quality=FAILED)
    # the CLI: --data with another recording is the data to predict
    assert main(["compare", str(copy), "--data", str(other), "-q"]) == 0
    m = json.loads((copy / "compare" / COMPARE_JSON).read_text())
    # the prediction inherits the fit's verdict: a warning, printed (also under -q)
    note = [w for w in m["warnings"] if "judged FAILED" in w]
    assert len(note) == 1 and note[0].startswith(f"run {copy}: ")
    assert f"warning: {note[0]}" in capsys.readouterr().err
    d = m["data"]
    assert d["other"] and d["recording"] == str(other) and d["efel"]
    assert [r["name"] for r in d["per_trace"]] == ["step_8", "step_-4"]
    assert m["figures"]["data"] == "data_prediction.png"
    assert (copy / "compare" / "data_prediction.png").is_file()
    assert m["request"]["data"] == str(other)
    # its numbers are those of the features on predict's output
    from hybridhh.analysis.features import compare_traces

    data = read_recording(other)
    direct = compare_traces(data.time, data.voltage, predict(copy, other).voltage,
                            data.current, names=data.trace_names)
    assert d["summary"] == json.loads(json.dumps(direct["summary"]))
    assert d["cell"] == fitted_cell(copy).as_dict() and d["cell"]["g_Na"] == 120.0
    # the training and held-out numbers are still those of the fitted recording
    assert m["free_run"]["train"]["traces"] == ["step_5", "step_20", "step_-10"]
    # --data with the fitted recording is the fitted recording (the old meaning)
    assert main(["compare", str(copy), "--data", str(rec_path), "--no-figures", "-q"]) == 0
    m = json.loads((copy / "compare" / COMPARE_JSON).read_text())
    assert m["data"] is None and m["kinetics"] is not None
    # the report shows the section and the figure, and reuses the comparison it made
    page = write_report(copy, data=other).read_text(encoding="utf-8")
    assert "3b. Predicted vs measured" in page and "Cell parameters of the prediction" in page
    assert page.count("data:image/png;base64,") == 6
    stamp = (copy / "compare" / COMPARE_JSON).stat().st_mtime_ns
    write_report(copy, data=other)
    assert (copy / "compare" / COMPARE_JSON).stat().st_mtime_ns == stamp
    write_report(copy)  # without data: compared afresh, no section
    assert json.loads((copy / "compare" / COMPARE_JSON).read_text())["data"] is None


def test_compare_without_a_truth_measures_the_fitted_traces(fitted, tmp_path):
    _, rec_path, run = fitted
    real = write_recording(tmp_path / "real.h5",
                           dataclasses.replace(read_recording(rec_path), truth=None))
    c = compare(run, recording=real, write=False)
    d = c.metrics["data"]
    assert not d["other"] and d["threshold"] == c.metrics["free_run"]["spike_threshold"]
    assert {r["split"] for r in d["per_trace"]} == {"train", "holdout"}
    assert d["summary_by_split"]["holdout"]["n_traces"] == 1
    assert d["summary"]["n_traces"] == 4
    assert any(line.startswith("predicted vs measured") for line in c.summary_lines())


def test_a_diverging_integrator_falls_back_to_exp_euler(fitted, monkeypatch, tmp_path):
    import hybridhh.fitting.freerun as fr
    from hybridhh.errors import SimulationError

    _, rec_path, run = fitted
    run = _run_copy(run, tmp_path, quality=_quality("ok"))  # no verdict note
    real = fr.free_run_trajectory
    euler = predict(run, rec_path, method="exp_euler").voltage

    def rk4_diverges(model, data, method="exp_euler", margin=30.0):
        if method != "exp_euler":
            raise SimulationError("non-finite V")
        return real(model, data, method, margin)

    monkeypatch.setattr(fr, "free_run_trajectory", rk4_diverges)
    notes = []
    pred = predict(run, rec_path, warnings=notes)
    assert np.array_equal(pred.voltage, euler) and "exp_euler" in pred.description
    assert len(notes) == 1 and "rk4 diverged" in notes[0]
    with pytest.warns(UserWarning, match="rk4 diverged"):
        predict(run, rec_path)

    def always(model, data, method="exp_euler", margin=30.0):
        raise SimulationError("non-finite V")

    monkeypatch.setattr(fr, "free_run_trajectory", always)
    with pytest.raises(SimulationError, match=str(run)):
        predict(run, rec_path, warnings=[])


def test_the_front_door_predict_is_the_function():
    import hybridhh
    import hybridhh.prediction

    assert hybridhh.predict is hybridhh.prediction.predict  # not shadowed by a module

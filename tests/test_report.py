"""compare and report on a tiny fitted run: files, metrics, CLI, and errors for bad inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from hybridhh.cli import main
from hybridhh.compare import COMPARE_JSON, compare
from hybridhh.errors import ConfigError, RunDirError
from hybridhh.protocols import Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import simulate_recording, write_recording
from hybridhh.report import write_report


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A short recording (3 steps + 1 noise trace, 20 ms) and a tiny fit of it, made once.

    Only a few teacher-forcing steps: compare/report need a finished run directory, not a
    good fit, and this keeps the fixture to seconds whatever FitConfig.quick() holds.
    """
    from hybridhh.fitting import FitConfig, fit

    root = tmp_path_factory.mktemp("report")
    t = time_grid(20.0, 0.05)
    stim = Stimulus.concat([steps(t, [5.0, 20.0, -10.0], start=2.0),
                            ou_noise(t, 4.0, 8.0, seed=0, n=1)])
    rec = write_recording(root / "rec.h5", simulate_recording(stim))
    from hybridhh.recording import read_recording

    cfg = FitConfig.quick()
    cfg = dataclasses.replace(
        cfg, ode=dataclasses.replace(cfg.ode, enabled=False),
        teacher=dataclasses.replace(cfg.teacher, adam_steps=20, lbfgs=()))
    fit(read_recording(rec), cfg, run_dir=root / "run", quiet=True)
    return root, rec, root / "run"


@pytest.fixture(scope="module")
def compared(fitted):
    _, _, run = fitted
    return compare(run)  # default truth: the recording's /truth


def test_compare_writes_metrics_and_figures(compared, fitted):
    _, rec, run = fitted
    out = run / "compare"
    assert compared.out_dir == out
    m = json.loads((out / COMPARE_JSON).read_text())
    for key in ("rates", "kinetics_error", "free_run_train", "free_run_holdout", "training"):
        assert (out / m["figures"][key]).is_file()
    assert m["truth"]["kind"] == "recording" and m["truth"]["kinetics"] == "hh_modern"
    k = m["kinetics"]
    assert set(k["gates"]) == {"m", "h", "n"}
    assert set(k["worst"]) == {"tau_median", "tau_p90", "xinf_max", "rate_median"}
    assert isinstance(k["meets_targets"], bool)
    fr = m["free_run"]
    # rk4 unless the barely trained model is too stiff for it at this step
    assert fr["method"] == "rk4" or any("exp_euler" in w for w in m["warnings"])
    assert fr["spike_threshold"] == pytest.approx(fr["resting_estimate"] + 50.0)
    assert fr["train"]["traces"] == ["step_5", "step_20", "step_-10"]
    assert fr["holdout"]["traces"] == ["ou_4_8_s0_0"]
    for split in ("train", "holdout"):
        s = fr[split]
        assert s["rmse"] >= 0 and s["rmse_floor"] < 1.0  # true rates reproduce the data
        assert s["spikes"]["n_reference"] >= 1
        assert len(s["spikes"]["per_trace"]) == len(s["traces"])
    assert m["recording"]["path"] == str(rec)
    assert any("V RMSE" in line for line in compared.summary_lines())


def test_compare_with_named_and_file_truth_in_memory(fitted):
    _, rec, run = fitted
    by_name = compare(run, "hh_modern@6.3", write=False)
    by_file = compare(run, str(rec), write=False, floor=False)
    assert by_name.metrics["kinetics"] == by_file.metrics["kinetics"]
    assert by_name.out_dir is None and by_name.figures == {}
    hot = compare(run, "hh_modern@20", write=False, floor=False)
    assert hot.metrics["kinetics"]["worst"]["tau_median"] != \
        by_name.metrics["kinetics"]["worst"]["tau_median"]


def test_compare_finds_a_moved_recording_only_when_told(fitted, tmp_path):
    root, rec, run = fitted
    moved_run = tmp_path / "run"
    shutil.copytree(run, moved_run)
    cfg = json.loads((moved_run / "config.json").read_text())
    cfg["data"]["source"] = str(tmp_path / "gone.h5")
    (moved_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError, match="not found"):
        compare(moved_run, "hh_modern", write=False)
    c = compare(moved_run, "hh_modern", recording=rec, write=False, floor=False)
    assert c.metrics["recording"]["path"] == str(rec)
    # a truth file holding the fitted traces stands in for the recording
    c = compare(moved_run, str(rec), write=False, floor=False)
    assert c.recording.path == str(rec)


def test_report_is_self_contained(compared, fitted, tmp_path):
    _, _, run = fitted
    stamp = (run / "compare" / COMPARE_JSON).stat().st_mtime_ns
    out = write_report(run, out=tmp_path / "r.html")  # reuses compare/ (same request)
    assert (run / "compare" / COMPARE_JSON).stat().st_mtime_ns == stamp
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("data:image/png;base64,") == 5
    assert "src=\"http" not in text and "<script" not in text
    for needle in ("visited voltage range", "Where the data constrain each rate",
                   "constrained over (mV)", "extrapolation", "held-out", "τ median",
                   "Fit configuration", "hh_modern", "ou_4_8_s0_0", "µA/cm²"):
        assert needle in text, needle


def test_cli_compare_and_report(compared, fitted, tmp_path, capsys):
    _, _, run = fitted
    assert main(["compare", str(run), "--truth", "hh_modern", "--out",
                 str(tmp_path / "c"), "--no-figures", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    assert json.loads((tmp_path / "c" / COMPARE_JSON).read_text())["figures"] == {}
    assert main(["compare", str(run), "--truth", "hh1952", "--no-figures", "--json",
                 "--out", str(tmp_path / "c")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["truth"]["kinetics"] == "hh1952"
    assert any("voltage convention" in w for w in m["warnings"])  # a truth in the wrong one
    # the report reuses RUN_DIR/compare, made by the fixture for the same request
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r.html")
    assert (tmp_path / "r.html").stat().st_size > 10_000


@pytest.mark.parametrize("make", ["missing", "empty", "unfinished"])
def test_bad_run_dirs(fitted, tmp_path, capsys, make):
    _, _, run = fitted
    bad = tmp_path / "bad"
    if make == "empty":
        bad.mkdir()
    elif make == "unfinished":
        bad.mkdir()
        shutil.copy(run / "config.json", bad / "config.json")
    with pytest.raises(RunDirError):
        compare(bad, "hh_modern")
    with pytest.raises(RunDirError):
        write_report(bad)
    for cmd in (["compare", str(bad), "--truth", "hh_modern"], ["report", str(bad)]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(bad) in err and "\n" not in err


def test_bad_truth_values(fitted, tmp_path, capsys):
    _, rec, run = fitted
    with pytest.raises(ConfigError):
        compare(run, "hh_wrong", write=False)
    real = tmp_path / "real.h5"
    from hybridhh.recording import read_recording

    write_recording(real, dataclasses.replace(read_recording(rec), truth=None))
    for truth, msg in (("hh_wrong", "built-in kinetics"), ("nope/missing.h5", "no such file"),
                       (str(real), "no /truth"), ("hh@hot", "NAME@TEMPERATURE")):
        assert main(["compare", str(run), "--truth", truth]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err
    assert main(["compare", str(run), "--method", "euler"]) == 2
    assert "unknown integrator" in capsys.readouterr().err


def test_run_from_another_fitter_version_still_compares(fitted, tmp_path):
    _, _, run = fitted
    old = tmp_path / "old_run"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("compare"))
    cfg = json.loads((old / "config.json").read_text())
    cfg["fit"]["teacher"]["renamed_since"] = 1  # a field this version does not know
    (old / "config.json").write_text(json.dumps(cfg))
    c = compare(old, "hh_modern", write=False, floor=False)
    assert c.fit.config is None and c.metrics["kinetics"] is not None
    assert any("does not parse" in w for w in c.metrics["warnings"])


def test_real_data_without_truth(fitted, tmp_path):
    from hybridhh.recording import read_recording

    _, rec, run = fitted
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("compare"))
    real = write_recording(tmp_path / "real.h5",
                           dataclasses.replace(read_recording(rec), truth=None))
    page = write_report(copy, recording=real)
    m = json.loads((copy / "compare" / COMPARE_JSON).read_text())
    assert m["kinetics"] is None and m["truth"] is None
    assert "kinetics_error" not in m["figures"] and "rates" in m["figures"]
    assert m["free_run"]["holdout"]["rmse_floor"] is None
    text = page.read_text(encoding="utf-8")
    assert "No reference kinetics" in text and text.count("data:image/png;base64,") == 4

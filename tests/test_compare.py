"""hybridhh.analysis.comparison: compare() on a tiny fitted run (tests/conftest.py:
``fitted``, ``compared``): the files and metrics it writes, truths by name and file, a moved
recording, bad truths, a run from another fitter version; and its helpers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest

from hybridhh.analysis import COMPARE_JSON, compare, file_digest, wide_voltage_range
from hybridhh.cli import main
from hybridhh.errors import ConfigError, RunDirError
from hybridhh.recording import write_recording


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
    # with a truth and no other recording: no predicted-vs-measured features
    assert m["data"] is None and m["request"]["data"] is None and "data" not in m["figures"]


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


def test_the_front_door_compare_is_the_function():
    import hybridhh

    assert hybridhh.compare is compare


def test_wide_voltage_range():
    assert wide_voltage_range((-80.0, 30.0)) == (-120.0, 60.0)
    assert wide_voltage_range((-80.0, 30.0), np.array([-130.0, 0.0])) == (-135.0, 60.0)


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"abc")
    assert file_digest(path) == ("ba7816bf8f01cfea414140de5dae2223"
                                 "b00361a396177a9cb410ff61f20015ad")
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 10_000)  # over the 1 MiB block
    assert file_digest(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_unfinished_run_compares_and_reports_its_best_checkpoint(fitted, tmp_path, capsys):
    """An interrupted fit (checkpoint_best.pt, no model.pt or result.json): compare, report
    and rates show the best model so far and say so; the numbers are that model's."""
    _, rec, run = fitted
    cut = tmp_path / "cut"
    shutil.copytree(run, cut, ignore=shutil.ignore_patterns("compare"))
    assert (cut / "checkpoint_best.pt").exists()
    (cut / "model.pt").unlink()
    (cut / "result.json").unlink()
    c = compare(cut, "hh_modern", write=False, floor=False)
    assert any("unfinished" in w and "best checkpoint" in w for w in c.metrics["warnings"])
    assert c.fit.finished is False
    # the best checkpoint of this run is its final model: the same kinetics errors (an
    # unfinished run has no constrained ranges and no bands, so no errors within them and
    # no band coverage)
    full = compare(run, "hh_modern", write=False, floor=False).metrics["kinetics"]
    only_finished = ("rates_constrained", "band_coverage")
    assert not set(only_finished) & set(c.metrics["kinetics"])
    assert "band_coverage" in full
    assert c.metrics["kinetics"] == {k: v for k, v in full.items() if k not in only_finished}
    for argv in (["rates", str(cut)], ["compare", str(cut), "--truth", "hh_modern"],
                 ["report", str(cut), "--truth", "hh_modern"]):
        assert main(argv) == 0, argv
        assert "unfinished" in capsys.readouterr().err, argv


def test_compare_against_a_recording_object(fitted):
    """truth=Recording gives the same metrics as truth=its file."""
    from hybridhh.recording import read_recording

    _, rec, run = fitted
    by_object = compare(run, read_recording(rec), write=False, floor=False)
    by_file = compare(run, str(rec), write=False, floor=False)
    assert by_object.metrics["kinetics"] == by_file.metrics["kinetics"]

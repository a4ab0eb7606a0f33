"""write_report on a tiny fitted run (tests/conftest.py: ``fitted``, ``compared``): a
self-contained page, reuse of RUN_DIR/compare, the CLI, and errors for bad run directories."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from hybridhh.analysis import COMPARE_JSON, compare
from hybridhh.cli import main
from hybridhh.errors import RunDirError
from hybridhh.recording import write_recording
from hybridhh.report import write_report


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
    # without a truth: the fitted traces' features predicted vs measured, in their section
    assert m["data"]["other"] is False and len(m["data"]["per_trace"]) == 4
    assert "3b. Predicted vs measured" in text and "data" not in m["figures"]


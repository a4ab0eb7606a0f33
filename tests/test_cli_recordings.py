"""``hybridhh import-abf`` (hybridhh.cli.recordings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import error_line

from hybridhh.cli import main
from hybridhh.recording import read_recording

ABF = Path(os.environ.get("HYBRIDHH_REALDATA", "/work/shared/realdata")) / "abf" / "File_axon_5.abf"


@pytest.mark.skipif(not ABF.is_file(), reason="ABF sample files not present")
def test_import_abf(tmp_path, capsys):
    pytest.importorskip("pyabf")
    out = tmp_path / "cell.h5"
    assert main(["import-abf", str(ABF), "--capacitance", "100", "--temperature", "22",
                 "--sweeps", "0", "1", "--window", "0", "300", "--set", "g_L=0.1",
                 "-o", str(out), "-q"]) == 0
    rec = read_recording(out)
    assert rec.n_traces == 2 and rec.biophysics.g_L == 0.1
    assert rec.biophysics.temperature == 22.0
    assert "--set" in error_line(capsys, ["import-abf", str(ABF), "--area", "1e-4",
                                          "--temperature", "22", "--set", "g_X=1", "-o",
                                          str(tmp_path / "x.h5")])


@pytest.mark.parametrize("argv, words", [
    (["import-abf", "missing.abf", "--area", "1", "--temperature", "20", "-o", "x.h5"],
     "no such file"),
    (["import-abf", "x.abf", "--temperature", "20", "-o", "x.h5"],
     "one of the arguments --capacitance --area is required"),
    (["import-abf", "x.abf", "--area", "1", "--temperature", "20", "--set", "g_L", "-o",
      "x.h5"], "expected NAME=VALUE"),
])
def test_bad_arguments(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.abf").write_bytes(b"")
    assert words in error_line(capsys, argv)
    assert not (tmp_path / "x.h5").exists()

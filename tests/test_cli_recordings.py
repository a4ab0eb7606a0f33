"""``hybridhh import-abf``, ``import``, ``passive`` (hybridhh.cli.recordings)."""

from __future__ import annotations

import numpy as np
import pytest
from _realdata import ABF_DIR
from test_cli import error_line

from hybridhh.cli import main
from hybridhh.recording import read_recording

ABF = ABF_DIR / "File_axon_5.abf"


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


# --- hybridhh import / passive ----------------------------------------------------------


def test_import_nwb_and_passive(tmp_path, capsys):
    """import (an NWB file written here) -> a recording in pA; passive on an RC cell."""
    import json

    import numpy as np
    from test_importing import _nwb_file
    from test_passive import rc_cell

    from hybridhh.recording import write_recording

    expected = _nwb_file(tmp_path / "cell.nwb")
    out = tmp_path / "cell.h5"
    assert main(["import", str(tmp_path / "cell.nwb"), "--out", str(out), "--sweeps", "10,12",
                 "--window", "0", "10", "--temperature", "21", "--liquid-junction-potential",
                 "-12", "--known", "E_K=-90", "-q"]) == 0
    rec = read_recording(out)
    assert rec.trace_names == ("sweep_10", "sweep_12") and rec.current_units == "pA"
    np.testing.assert_array_equal(rec.current[1], expected[12][1][:201])
    assert rec.temperature == 21.0 and rec.metadata["liquid_junction_potential"] == -12.0
    assert rec.cell.free_names() == ("C_total", "g_Na", "g_K", "g_L", "E_Na", "E_L")
    assert rec.cell.known_values() == {"E_K": -90.0}

    write_recording(tmp_path / "rc.h5", rc_cell())
    assert main(["passive", str(tmp_path / "rc.h5"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert abs(d["R_in"] - 150.0) < 1e-4 and abs(d["C_total"] - 200.0) < 1e-4
    assert d["units"]["C_total"] == "pF" and d["n_steps"] == 1
    assert main(["passive", str(tmp_path / "rc.h5"), "--steps"]) == 0
    text = capsys.readouterr().out
    assert "C_total" in text and "200 pF" in text and "tau_m" in text


@pytest.mark.skipif(not ABF.is_file(), reason="ABF sample files not present")
def test_import_abf_file(tmp_path, capsys):
    pytest.importorskip("pyabf")
    out = tmp_path / "a5.h5"
    assert main(["import", str(ABF), "-o", str(out), "--sweeps", "0-2", "-q"]) == 0
    rec = read_recording(out)
    assert rec.n_traces == 3 and rec.current_units == "pA" and rec.temperature is None
    assert rec.current[0].min() == -100.0 and rec.metadata["lowpass"] == 3.0
    # info states the units, the unknown cell and the metadata as the file has them
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "current      -100 .. 0 pA" in text and "I min .. max (pA)" in text
    assert "(placeholders: see cell)" in text
    assert "C_total unknown in 5 .. 2000 pF" in text and "lowpass      3.0 kHz" in text
    # --series-resistance: V_m = V - R_s I (pA x MOhm = uV), stated
    fixed = tmp_path / "a5_rs.h5"
    assert main(["import", str(ABF), "-o", str(fixed), "--sweeps", "0-2", "-q",
                 "--series-resistance", "10"]) == 0
    rec_rs = read_recording(fixed)
    np.testing.assert_allclose(rec_rs.voltage, rec.voltage - 10.0 * rec.current * 1e-3)
    assert "10 MOhm of series resistance" in rec_rs.description
    assert main(["import", str(ABF), "-o", str(fixed), "--sweeps", "0-2", "-q",
                 "--series-resistance", "auto"]) == 0
    assert "series resistance" in read_recording(fixed).description


@pytest.mark.parametrize("argv, words", [
    (["import", "x.txt", "-o", "x.h5"], "unknown file type '.txt'"),
    (["import", "x.abf", "-o", "x.h5", "--sweeps", "3-1"], "--sweeps"),
    (["import", "missing.nwb", "-o", "x.h5"], "no such file"),
    (["passive", "x.txt"], "cannot open as HDF5"),
])
def test_import_bad_arguments(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("")
    (tmp_path / "x.abf").write_bytes(b"")
    assert words in error_line(capsys, argv)
    assert not (tmp_path / "x.h5").exists()

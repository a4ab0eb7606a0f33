"""The command line through ``main([...])``: simulate -> info -> plot, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridhh import cli
from hybridhh.cli import main
from hybridhh.protocols import PROTOCOLS, time_grid
from hybridhh.recording import read_recording

SHORT = ["--duration", "20", "--dt", "0.025"]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One short simulation shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("cli") / "sim.h5"
    rc = main(["simulate", "-p", "steps:5,20", "-p", "noise:2,5", *SHORT, "--noise", "0.3",
               "--seed", "4", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_simulate_writes_a_recording(simulated):
    rec = read_recording(simulated)
    assert rec.trace_names == ("step_5", "step_20", "ou_2_5_s4_0")
    assert rec.n_samples == 801 and rec.dt == pytest.approx(0.025)
    assert rec.biophysics.E_Na == 50.0 and rec.biophysics.temperature == 6.3
    assert rec.truth.kinetics == "hh_modern" and rec.truth.gates.shape == (3, 801, 3)
    assert rec.noise_sigma == 0.3 and rec.noise_seed == 4
    assert rec.voltage[1].max() > 20.0  # the 20 uA/cm^2 step fires


def test_info(simulated, capsys):
    assert main(["info", str(simulated)]) == 0
    out = capsys.readouterr().out
    for text in ("3 x 801 samples", "dt 0.025 ms", "1st-99th percentile", "uA/cm^2",
                 "g_Na 120 mS/cm^2", "6.3 degC", "kinetics hh_modern", "gates yes",
                 "step_20", "noise SD     0.3 mV"):
        assert text in out, text
    assert main(["info", str(simulated), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_traces"] == 3 and s["truth"]["kinetics"] == "hh_modern"
    assert s["voltage"]["p1"] <= s["voltage"]["p99"]


def test_plot(simulated, tmp_path, capsys):
    out = tmp_path / "figs" / "sim.png"
    assert main(["plot", str(simulated), "--out", str(out), "--traces", "0", "step_20"]) == 0
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().err


def test_stimulus_from_reproduces_the_stimuli(simulated, tmp_path):
    out = tmp_path / "again.h5"
    assert main(["simulate", "--stimulus-from", str(simulated), "--out", str(out), "-q"]) == 0
    src, new = read_recording(simulated), read_recording(out)
    np.testing.assert_array_equal(new.time, src.time)
    np.testing.assert_array_equal(new.current, src.current)
    assert new.trace_names == src.trace_names
    assert new.biophysics == src.biophysics
    assert new.truth.kinetics == src.truth.kinetics
    # same model, same integrator, no noise: the noise-free V of the source exactly
    np.testing.assert_array_equal(new.voltage, src.truth.voltage)


def test_hh1952_convention(tmp_path):
    out = tmp_path / "old.h5"
    assert main(["simulate", "--convention", "hh1952", "-p", "classic", "--duration", "5",
                 "--dt", "0.025", "--temperature", "6.3", "-o", str(out), "-q"]) == 0
    rec = read_recording(out)
    assert rec.biophysics.E_Na == 115.0 and rec.truth.kinetics == "hh1952"
    assert abs(rec.voltage[0, 0]) < 0.1  # rest is 0 mV in the 1952 convention
    assert rec.voltage[0].max() > 80.0  # the 150 uA/cm^2 pulse fires


def test_every_protocol_has_a_command_line_adapter():
    t = time_grid(20.0, 0.5)
    for name in PROTOCOLS:
        _, spec, amps = cli._parse_protocol(name, None)
        stim = spec.build(t, list(amps), 0)
        assert stim.current.shape[1] == len(t)


def _error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, words", [
    ([], "choose a command"),
    (["frobnicate"], "invalid choice"),
    (["simulate", "--dt", "abc", "-o", "x.h5"], "--dt: expected a number"),
    (["simulate", "--duration", "-5", "-o", "x.h5"], "expected a number > 0"),
    (["simulate", "--noise", "nan", "-o", "x.h5"], "finite"),
    (["simulate"], "--out"),
    (["simulate", "-p", "bogus", "-o", "x.h5"], "unknown protocol 'bogus'"),
    (["simulate", "-p", "ramp:1", "-o", "x.h5"], "start and end amplitude"),
    (["simulate", "-p", "steps:5,x", "-o", "x.h5"], "expected a number"),
    (["simulate", "--integrator", "euler", "-o", "x.h5"], "unknown integrator"),
    (["simulate", "--duration", "1", "--dt", "0.3", "-o", "x.h5"], "not a multiple"),
    (["simulate", "--convention", "old", "-o", "x.h5"], "invalid choice"),
    (["simulate", "--stimulus-from", "missing.h5", "-o", "x.h5"], "no such file"),
    (["info", "missing.h5"], "missing.h5: no such file"),
    (["plot"], "required: file"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert words in _error(capsys, argv)
    assert not (tmp_path / "x.h5").exists()


def test_bad_files_give_one_line_and_exit_2(capsys, tmp_path, simulated):
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    assert "cannot open as HDF5" in _error(capsys, ["info", str(junk)])
    assert "cannot open as HDF5" in _error(capsys, ["plot", str(junk)])
    err = _error(capsys, ["simulate", "--stimulus-from", str(simulated), "--dt", "0.1",
                          "-o", str(tmp_path / "x.h5")])
    assert "drop --dt" in err
    err = _error(capsys, ["simulate", "--stimulus-from", str(simulated), "--convention",
                          "hh1952", "-o", str(tmp_path / "x.h5")])
    assert "--convention" in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("simulate", "info", "plot"):
        assert name in out
    assert main(["simulate", "--help"]) == 0
    assert "--stimulus-from" in capsys.readouterr().out


def test_registration_table():
    assert list(cli.COMMANDS)[:3] == ["simulate", "info", "plot"]
    with pytest.raises(ValueError, match="twice"):
        cli.command("info", "again")(lambda args: 0)


def test_real_entry_point_has_no_traceback(tmp_path):
    """The console script path (a subprocess): one line on stderr, exit status 2."""
    r = subprocess.run([sys.executable, "-m", "hybridhh.cli", "info", str(tmp_path / "no.h5")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


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
    assert "--set" in _error(capsys, ["import-abf", str(ABF), "--area", "1e-4",
                                      "--temperature", "22", "--set", "g_X=1", "-o",
                                      str(tmp_path / "x.h5")])

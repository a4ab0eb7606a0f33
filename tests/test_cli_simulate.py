"""``hybridhh simulate``, ``info``, ``plot`` (hybridhh.cli.simulate) through ``main([...])``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import error_line

from hybridhh.biophysics import Biophysics
from hybridhh.cli import main
from hybridhh.cli.simulate import parse_protocol
from hybridhh.hh import resting_potential
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import PROTOCOLS, Stimulus, ou_noise, steps, time_grid
from hybridhh.recording import (
    Recording,
    Truth,
    read_recording,
    recording_from_trajectory,
    write_recording,
)
from hybridhh.simulation import simulate

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


@pytest.fixture(scope="module")
def off_rest(tmp_path_factory):
    """A recording whose traces start away from rest (-58 and -72 mV), gates at steady
    state there, by exp_euler at 0.025 ms."""
    t = time_grid(20.0, 0.025)
    stim = Stimulus.concat([steps(t, [3.0], start=5.0), ou_noise(t, 2.0, 4.0, seed=1)])
    bio = Biophysics.standard()
    kin = HHKinetics("modern", temperature=bio.temperature)
    V0 = np.array([-58.0, -72.0])
    rec = recording_from_trajectory(simulate(stim, kin, bio, V0=V0), bio, kin)
    path = write_recording(tmp_path_factory.mktemp("v0") / "offrest.h5", rec)
    return path, rec, V0


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_stimulus_from_starts_at_the_first_recorded_sample(off_rest, tmp_path):
    path, src, V0 = off_rest
    rest = resting_potential(HHKinetics("modern"), Biophysics.standard())
    assert np.all(np.abs(V0 - float(rest)) > 5.0)
    out = tmp_path / "again.h5"
    assert main(["simulate", "--stimulus-from", str(path), "--integrator", "exp_euler",
                 "--out", str(out), "-q"]) == 0
    new = read_recording(out)
    np.testing.assert_array_equal(new.voltage[:, 0], V0)
    assert _rms(new.voltage, src.voltage) < 1e-9
    assert np.abs(new.truth.gates - src.truth.gates).max() < 1e-12


def test_v_init_overrides_the_first_sample(off_rest, tmp_path):
    path, src, _ = off_rest
    out = tmp_path / "vinit.h5"
    assert main(["simulate", "--stimulus-from", str(path), "--v-init", "-58",
                 "--out", str(out), "-q"]) == 0
    new = read_recording(out)
    np.testing.assert_array_equal(new.voltage[:, 0], [-58.0, -58.0])
    assert _rms(new.voltage[0], src.voltage[0]) < 1e-9  # trace 0 started at -58 mV
    assert _rms(new.voltage[1], src.voltage[1]) > 0.1  # trace 1 at -72 mV
    fresh = tmp_path / "fresh.h5"
    assert main(["simulate", "-p", "steps:0", *SHORT, "--v-init", "-70", "-o", str(fresh),
                 "-q"]) == 0
    V = read_recording(fresh).voltage[0]
    assert V[0] == -70.0 and V[-1] > V[0] + 1.0  # relaxes towards rest (-65 mV)


def test_unknown_truth_kinetics_warns_and_uses_the_biophysics(off_rest, tmp_path, capsys):
    _, src, V0 = off_rest
    foreign = Recording(time=src.time, voltage=src.voltage, current=src.current,
                        trace_names=src.trace_names, biophysics=src.biophysics,
                        source="another simulator",
                        truth=Truth(kinetics="neuron-hh", temperature=6.3, q10=3.0))
    path = write_recording(tmp_path / "foreign.h5", foreign)
    out = tmp_path / "again.h5"
    assert main(["simulate", "--stimulus-from", str(path), "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ") and "'neuron-hh'" in err
    new = read_recording(out)
    assert new.truth.kinetics == "hh_modern" and new.biophysics == src.biophysics
    assert _rms(new.voltage, src.voltage) < 1e-9


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
        _, spec, amps = parse_protocol(name, None)
        stim = spec.build(t, list(amps), 0)
        assert stim.current.shape[1] == len(t)


@pytest.mark.parametrize("argv, words", [
    (["simulate", "--dt", "abc", "-o", "x.h5"], "--dt: expected a number"),
    (["simulate", "--duration", "-5", "-o", "x.h5"], "expected a number > 0"),
    (["simulate", "--noise", "nan", "-o", "x.h5"], "finite"),
    (["simulate", "--v-init", "inf", "-o", "x.h5"], "--v-init: expected a finite number"),
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
    assert words in error_line(capsys, argv)
    assert not (tmp_path / "x.h5").exists()


def test_bad_files_give_one_line_and_exit_2(capsys, tmp_path, simulated):
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    assert "cannot open as HDF5" in error_line(capsys, ["info", str(junk)])
    assert "cannot open as HDF5" in error_line(capsys, ["plot", str(junk)])
    err = error_line(capsys, ["simulate", "--stimulus-from", str(simulated), "--dt", "0.1",
                              "-o", str(tmp_path / "x.h5")])
    assert "drop --dt" in err
    err = error_line(capsys, ["simulate", "--stimulus-from", str(simulated), "--convention",
                              "hh1952", "-o", str(tmp_path / "x.h5")])
    assert "--convention" in err


@pytest.mark.neuron
def test_a_neuron_recording_is_reproduced_with_the_neuron_integrator(tmp_path, capsys):
    """NEURON starts at finitialize(v_init); re-simulated from the file's first sample with
    ``--integrator neuron`` (NEURON's scheme), the file's V comes back (its truth names a
    kinetics set hybridhh does not know: a warning, not an error)."""
    pytest.importorskip("neuron", reason="NEURON not installed: pip install 'hybridhh[neuron]'")
    from hybridhh.neuron_reference import simulate_neuron

    t = time_grid(50.0, 0.025)
    stim = Stimulus.concat([steps(t, [0.0, 10.0], start=5.0), ou_noise(t, 5.0, 10.0, seed=2)])
    bio = Biophysics.standard()
    V = simulate_neuron(stim, bio, V0=-65.0)
    path = write_recording(tmp_path / "nrn.h5", Recording(
        time=stim.time, voltage=V, current=stim.current, trace_names=stim.names,
        biophysics=bio, source="NEURON", truth=Truth("neuron-hh", 6.3, 3.0)))
    capsys.readouterr()
    out = tmp_path / "again.h5"
    assert main(["simulate", "--stimulus-from", str(path), "--integrator", "neuron",
                 "-o", str(out), "-q"]) == 0
    assert "'neuron-hh'" in capsys.readouterr().err
    assert _rms(read_recording(out).voltage, V) < 1e-9
    # started 0.01 mV away from v_init (-65 mV): visibly off, so the start is what matters
    assert main(["simulate", "--stimulus-from", str(path), "--integrator", "neuron",
                 "--v-init", "-64.99", "-o", str(out), "-q"]) == 0
    assert _rms(read_recording(out).voltage, V) > 1e-3

"""``hybridhh.importing``: ABF (real sample files, when present) and NWB (written here by pynwb)
into a recording in pA with an unknown cell; every bad input gives an error naming the file."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from _realdata import ABF_DIR

from hybridhh.cell import PARAMETERS
from hybridhh.errors import ConfigError, RecordingError
from hybridhh.importing import import_recording, parse_sweeps
from hybridhh.recording import read_recording, write_recording

needs_abf = pytest.mark.skipif(not ABF_DIR.is_dir(), reason=f"no ABF sample files in {ABF_DIR}")
DUAL = ABF_DIR / "171116sh_0018.abf"


def test_parse_sweeps():
    assert parse_sweeps("0,2,4") == [0, 2, 4]
    assert parse_sweeps("0-5") == [0, 1, 2, 3, 4, 5]
    assert parse_sweeps("0-2, 8") == [0, 1, 2, 8]
    for bad in ("3-1", "a", "-1", "1,,2"):
        with pytest.raises(ConfigError, match="sweeps"):
            parse_sweeps(bad)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(RecordingError, match="unknown file type '.txt'.*abf, .nwb"):
        import_recording(tmp_path / "x.txt")
    with pytest.raises(RecordingError, match="no such file") as e:
        import_recording(tmp_path / "gone.abf")
    assert "gone.abf" in str(e.value)
    (tmp_path / "junk.nwb").write_bytes(b"\0" * 100)
    with pytest.raises(RecordingError, match="cannot read as NWB"):
        import_recording(tmp_path / "junk.nwb")


# --- ABF ------------------------------------------------------------------------------------


@needs_abf
def test_abf_commanded_steps_in_pA(tmp_path):
    pyabf = pytest.importorskip("pyabf")
    rec = import_recording(DUAL, sweeps=[0, 4, 16])
    assert rec.current_units == "pA" and rec.trace_names == ("sweep_0", "sweep_4", "sweep_16")
    assert rec.n_samples == 60000 and rec.dt == pytest.approx(0.05) and rec.time[0] == 0.0
    abf = pyabf.ABF(str(DUAL))
    for row, s in enumerate([0, 4, 16]):
        abf.setSweep(s)
        np.testing.assert_array_equal(rec.voltage[row], abf.sweepY.astype(np.float64))
        np.testing.assert_array_equal(rec.current[row], abf.sweepC.astype(np.float64))
    # README: step S = -100 + 25 k pA from 146.85 to 646.85 ms, -100 pA at 1146.85-1646.85
    mid = np.searchsorted(rec.time, 400.0)
    assert rec.current[:, mid].tolist() == [-100.0, 0.0, 300.0]
    assert np.all(rec.current[:, np.searchsorted(rec.time, 1400.0)] == -100.0)
    assert rec.cell.free_names() == tuple(PARAMETERS) and rec.temperature is None
    assert rec.metadata == {"source_file": DUAL.name, "sweeps": [0, 4, 16], "lowpass": 10.0,
                            "file_comment": "SWHLab5[0113]"}
    assert "epoch table" in rec.description and "the file records no current" in rec.description
    back = read_recording(write_recording(tmp_path / "c.h5", rec))
    assert back.current_units == "pA" and back.cell == rec.cell
    assert back.metadata == rec.metadata and np.array_equal(back.current, rec.current)


@needs_abf
def test_abf_window_sweeps_temperature():
    pytest.importorskip("pyabf")
    rec = import_recording(DUAL, sweeps=parse_sweeps("1-3"), window=(100.0, 700.0),
                           temperature=22.0, metadata={"liquid_junction_potential": -13.0})
    assert rec.time[0] == pytest.approx(100.0) and rec.time[-1] == pytest.approx(700.0)
    assert rec.n_samples == 12001 and rec.temperature == 22.0
    assert rec.metadata["sweeps"] == [1, 2, 3]
    assert rec.metadata["liquid_junction_potential"] == -13.0
    assert "window 100..700 ms" in rec.description and "22 degC" in rec.description


@needs_abf
def test_abf_recorded_current_in_nA():
    pytest.importorskip("pyabf")
    rec = import_recording(ABF_DIR / "File_axon_6.abf", sweeps=[3], current_channel=1,
                           window=(200.0, 230.0))
    # README: the 2 ms pulse is 2021 pA above the baseline
    assert rec.current.max() == pytest.approx(2021.0, abs=15.0)
    assert abs(np.median(rec.current)) < 20.0
    assert "nA -> pA x1000" in rec.description and "baseline" in rec.description
    assert rec.metadata["lowpass"] == 6.0


@needs_abf
@pytest.mark.parametrize("kw, field, words", [
    (dict(sweeps=[17]), "sweeps", "17 out of range: the file has 17 sweep"),
    (dict(sweeps=[0, 99, 100]), "sweeps", "99, 100 out of range"),
    (dict(window=(2500.0, 3100.0)), "window", "outside the sweep (0..2999.95 ms)"),
    (dict(window=(-5.0, 100.0)), "window", "outside the sweep"),
    (dict(window=(300.0, 200.0)), "window", "START < STOP"),
    (dict(current_channel=1), "channel 1", "the file has 1 (0..0)"),
    (dict(voltage_channel=2), "channel 2", "no such channel"),
])
def test_abf_bad_arguments(kw, field, words):
    pytest.importorskip("pyabf")
    with pytest.raises(RecordingError) as e:
        import_recording(DUAL, **kw)
    assert e.value.field == field and words in str(e.value) and DUAL.name in str(e.value)


@needs_abf
def test_abf_without_epoch_table(monkeypatch):
    pytest.importorskip("pyabf")
    from hybridhh import abf as abf_module

    load = abf_module._load

    def disabled(path):
        abf = load(path)
        abf._dacSection.nWaveformEnable = [0] * len(abf._dacSection.nWaveformEnable)
        return abf

    monkeypatch.setattr(abf_module, "_load", disabled)
    with pytest.raises(RecordingError, match="no epoch table.*--current-channel") as e:
        import_recording(DUAL)
    assert e.value.field == "DAC 0 command"


@needs_abf
def test_abf_sweeps_of_different_lengths(monkeypatch):
    pytest.importorskip("pyabf")
    from hybridhh import abf as abf_module

    load = abf_module._load

    class Shorter:  # sweep 1 ends early, as in a variable-length protocol
        def __init__(self, abf):
            self._abf = abf

        def __getattr__(self, name):
            value = getattr(self._abf, name)
            if name in ("sweepX", "sweepY", "sweepC") and self._abf.sweepNumber == 1:
                return value[:-100]
            return value

    monkeypatch.setattr(abf_module, "_load", lambda path: Shorter(load(path)))
    monkeypatch.setattr(abf_module, "_command_check", lambda abf, path, dac: "5 epoch(s)")
    with pytest.raises(RecordingError, match="59900 samples, sweep 0 has 60000") as e:
        import_recording(DUAL, sweeps=[0, 1])
    assert e.value.field == "sweep 1"


# --- NWB ------------------------------------------------------------------------------------

RATE = 20000.0
N = 400


def _nwb_file(path, sweeps=3, *, table=True, lengths=None, stim_rate=None, no_stim=(),
              electrodes=1):
    """A small icephys file: V stored in mV (conversion 1e-3 to volts), I in pA (1e-12)."""
    pynwb = pytest.importorskip("pynwb")
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = pynwb.NWBFile(session_description="test", identifier="hybridhh-test",
                        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    dev = nwb.create_device(name="amplifier")
    els = [nwb.create_icephys_electrode(name=f"elec{k}", description="patch", device=dev,
                                        filtering="10 kHz Bessel") for k in range(electrodes)]
    rng = np.random.default_rng(0)
    expected = {}
    for el in els:
        for k in range(sweeps):
            n = N if lengths is None else lengths[k]
            v_mv = -65.0 + rng.normal(0, 1, n)
            i_pa = np.where((np.arange(n) >= 100) & (np.arange(n) < 300), 50.0 * (k - 1), 0.0)
            number = 10 + k  # sweep numbers that are not row numbers
            resp = CurrentClampSeries(name=f"resp_{el.name}_{k}", data=v_mv, conversion=1e-3,
                                      electrode=el, starting_time=2.0 * k, rate=RATE, gain=1.0,
                                      bridge_balance=5e6, bias_current=-2e-11,
                                      sweep_number=number)
            stim = CurrentClampStimulusSeries(name=f"stim_{el.name}_{k}", data=i_pa,
                                              conversion=1e-12, electrode=el,
                                              starting_time=2.0 * k,
                                              rate=stim_rate or RATE, gain=1.0,
                                              sweep_number=number)
            if table:
                nwb.add_intracellular_recording(electrode=el, response=resp,
                                                stimulus=None if k in no_stim else stim)
                if k in no_stim:
                    nwb.add_stimulus(stim)
            else:
                nwb.add_acquisition(resp)
                if k not in no_stim:
                    nwb.add_stimulus(stim)
            if el is els[0]:
                expected[number] = (v_mv * 1e-3 * 1000.0, i_pa * 1e-12 * 1e12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return expected


def test_nwb_round_trip_exact(tmp_path):
    path = tmp_path / "cell.nwb"
    expected = _nwb_file(path)
    rec = import_recording(path, temperature=34.0)
    assert rec.trace_names == ("sweep_10", "sweep_11", "sweep_12")
    assert rec.current_units == "pA" and rec.temperature == 34.0
    for row, number in enumerate([10, 11, 12]):
        v, i = expected[number]
        np.testing.assert_array_equal(rec.voltage[row], v)
        np.testing.assert_array_equal(rec.current[row], i)
    np.testing.assert_array_equal(rec.time, np.arange(N) / RATE * 1000.0)
    assert rec.metadata == {"source_file": "cell.nwb", "sweeps": [10, 11, 12],
                            "bridge_balance": 5.0, "electrode_filtering": "10 kHz Bessel"}
    assert rec.cell.free_names() == tuple(PARAMETERS)
    for words in ("intracellular-recordings table", "numbered by sweep_number",
                  "in volts, x1000 -> mV", "in amperes, x1e+12 -> pA",
                  "bias current (not in /current) -20 pA"):
        assert words in rec.description
    sub = import_recording(path, sweeps=[12, 10], window=(2.0, 10.0))
    assert sub.trace_names == ("sweep_12", "sweep_10") and sub.metadata["sweeps"] == [12, 10]
    np.testing.assert_array_equal(sub.voltage[0], expected[12][0][40:201])
    assert sub.time[0] == pytest.approx(2.0) and sub.n_samples == 161


def test_known_cell_parameters(tmp_path):
    path = tmp_path / "cell.nwb"
    _nwb_file(path, sweeps=1)
    rec = import_recording(path, known={"E_Na": 55.0, "C_total": 120.0})
    assert rec.cell.known_values() == {"C_total": 120.0, "E_Na": 55.0}
    assert rec.cell.free_names() == ("g_Na", "g_K", "g_L", "E_K", "E_L")
    assert "known (given by the user): C_total = 120 pF, E_Na = 55 mV" in rec.description
    with pytest.raises(ConfigError, match="C_m: not a cell parameter"):
        import_recording(path, known={"C_m": 1.0})
    with pytest.raises(ConfigError, match="g_K: value must be >= 0"):
        import_recording(path, known={"g_K": -1.0})


def test_nwb_paired_by_sweep_number_without_table(tmp_path):
    path = tmp_path / "flat.nwb"
    expected = _nwb_file(path, table=False)
    rec = import_recording(path, sweeps=[11])
    np.testing.assert_array_equal(rec.current[0], expected[11][1])
    assert "paired by sweep_number" in rec.description


def test_nwb_electrodes(tmp_path):
    path = tmp_path / "two.nwb"
    _nwb_file(path, sweeps=2, electrodes=2)
    with pytest.raises(ConfigError, match="2 electrodes.*--voltage-channel"):
        import_recording(path)
    rec = import_recording(path, voltage_channel=1)
    assert rec.n_traces == 2 and "electrode elec1" in rec.description
    with pytest.raises(ConfigError, match="sweep.s. 0 chosen more than once"):
        import_recording(path, voltage_channel=1, sweeps=[0, 1, 0])
    with pytest.raises(RecordingError, match="no such electrode"):
        import_recording(path, voltage_channel=2)
    with pytest.raises(ConfigError, match="--current-channel is for ABF"):
        import_recording(path, current_channel=1)


@pytest.mark.parametrize("make, kw, field, words", [
    (dict(no_stim=(1,)), {}, "intracellular_recordings row 1", "no stimulus series"),
    (dict(no_stim=(2,), table=False), {}, "acquisition/resp_elec0_2",
     "no CurrentClampStimulusSeries with sweep_number 12"),
    (dict(lengths=[N, N - 10, N]), {}, "sweep 11 (resp_elec0_1, stim_elec0_1)",
     "sweeps of different lengths"),
    (dict(stim_rate=10000.0), {}, "sweep 10 (resp_elec0_0, stim_elec0_0)",
     "not on the response's grid"),
    ({}, dict(sweeps=[3]), "sweeps", "the file has 3 sweep(s), numbered 10..12"),
    ({}, dict(window=(0.0, 50.0)), "window", "outside the sweep (0..19.95 ms)"),
])
def test_nwb_bad_files(tmp_path, make, kw, field, words):
    path = tmp_path / "bad.nwb"
    _nwb_file(path, **make)
    with pytest.raises(RecordingError) as e:
        import_recording(path, **kw)
    assert e.value.field == field and words in str(e.value) and str(path) in str(e.value)


def test_nwb_mixed_current_units(tmp_path):
    path = tmp_path / "mixed.nwb"
    _nwb_file(path)
    with h5py.File(path, "r+") as f:  # another writer stored one stimulus in nA
        f["stimulus/presentation/stim_elec0_1/data"].attrs["unit"] = "nA"
    # pynwb would read it as amperes (NWB 2.1 fixes the unit): refused, not rescaled
    with pytest.raises(RecordingError, match="declares unit 'nA'.*mixed current units") as e:
        import_recording(path)
    assert e.value.field == "stim_elec0_1/unit"

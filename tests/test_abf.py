"""ABF conversion, on the real sample files when they are present (they are not in the repo)."""

from __future__ import annotations

import numpy as np
import pytest
from _realdata import ABF_DIR

from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError, RecordingError
from hybridhh.recording import read_recording, write_recording

pytest.importorskip("pyabf")
from hybridhh.abf import read_abf  # noqa: E402

needs_data = pytest.mark.skipif(not ABF_DIR.is_dir(), reason=f"no ABF sample files in {ABF_DIR}")
BIO = Biophysics.standard("modern", 22.0)


@needs_data
def test_commanded_steps(tmp_path):
    rec = read_abf(ABF_DIR / "File_axon_5.abf", BIO, capacitance=100.0, sweeps=[0, 8],
                   window=(200.0, 300.0))
    assert rec.trace_names == ("sweep_0", "sweep_8")
    assert rec.dt == pytest.approx(0.05) and rec.time[0] == pytest.approx(200.0)
    # -100 and +300 pA into 100 pF -> -1 and +3 uA/cm^2 during the step (215.6-715.6 ms)
    late = rec.time > 220.0
    np.testing.assert_allclose(rec.current[0, late], -1.0)
    np.testing.assert_allclose(rec.current[1, late], 3.0)
    assert -90 < rec.voltage.min() and rec.voltage.max() < 40
    assert rec.truth is None and "capacitance 100 pF" in rec.description
    back = read_recording(write_recording(tmp_path / "abf.h5", rec))
    np.testing.assert_array_equal(back.voltage, rec.voltage)
    assert back.biophysics.temperature == 22.0


@needs_data
def test_recorded_current_channel_in_nA():
    rec = read_abf(ABF_DIR / "File_axon_6.abf", BIO, area=1e-4, sweeps=[3],
                   current_channel=1, window=(200.0, 230.0))
    # the 2 ms pulse is about 2021 pA above baseline: 20.2 uA/cm^2 over 1e-4 cm^2
    assert rec.current.max() == pytest.approx(20.2, abs=0.3)
    assert abs(np.median(rec.current)) < 0.2  # baseline subtracted


@needs_data
def test_bad_arguments():
    f = ABF_DIR / "File_axon_5.abf"
    with pytest.raises(ConfigError, match="exactly one"):
        read_abf(f, BIO)
    with pytest.raises(ConfigError, match="exactly one"):
        read_abf(f, BIO, area=1e-4, capacitance=100.0)
    with pytest.raises(RecordingError, match="sweeps.*out of range: the file has 9"):
        read_abf(f, BIO, capacitance=100.0, sweeps=[99])
    with pytest.raises(RecordingError, match="channel"):
        read_abf(f, BIO, capacitance=100.0, current_channel=3)


def test_missing_or_bad_file(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        read_abf(tmp_path / "no.abf", BIO, area=1e-4)
    junk = tmp_path / "junk.abf"
    junk.write_bytes(b"\0" * 600)
    with pytest.raises(RecordingError, match="ABF"):
        read_abf(junk, BIO, area=1e-4)

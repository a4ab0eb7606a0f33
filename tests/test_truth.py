"""hybridhh.analysis.truth: resolve_truth by name (and temperature), from the recording, from
a file, a kinetics object, and its errors."""

from __future__ import annotations

import dataclasses

import pytest

from hybridhh.analysis import resolve_truth
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics, get_kinetics
from hybridhh.recording import write_recording


def test_resolve_truth_by_name_and_temperature(short_recording):
    s = resolve_truth("hh_modern", recording=short_recording)
    assert s.kinetics == HHKinetics("modern", 6.3) and "6.3 °C" in s.label
    assert resolve_truth("hh1952@20").kinetics == HHKinetics("hh1952", 20.0)
    assert resolve_truth("hh@20", temperature=10.0).kinetics.temperature == 10.0
    assert resolve_truth("neuron_hh").info["kind"] == "name"


def test_resolve_truth_default_is_the_recordings_truth(short_recording):
    s = resolve_truth(None, recording=short_recording)
    assert s.kinetics == get_kinetics("hh_modern") and s.info["kind"] == "recording"
    assert resolve_truth(None) is None
    warm = resolve_truth(None, temperature=20.0, recording=short_recording)
    assert warm.kinetics.temperature == 20.0 and warm.info["temperature"] == 20.0


def test_resolve_truth_from_a_file(short_recording, tmp_path):
    path = write_recording(tmp_path / "t.h5", short_recording)
    s = resolve_truth(str(path))
    assert s.kinetics == get_kinetics("hh_modern") and s.info["file"] == str(path)
    assert s.info["kind"] == "file" and s.info["spec"] == str(path)
    assert resolve_truth(str(path), temperature=10.0).kinetics.temperature == 10.0


def test_resolve_truth_errors(short_recording, tmp_path):
    with pytest.raises(ConfigError, match="built-in kinetics name"):
        resolve_truth("hh2000")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_truth("missing/file.h5")
    with pytest.raises(ConfigError, match="NAME@TEMPERATURE"):
        resolve_truth("hh_modern@warm")
    real = dataclasses.replace(short_recording, truth=None)
    path = write_recording(tmp_path / "real.h5", real)
    with pytest.raises(ConfigError, match="no /truth"):
        resolve_truth(str(path))


def test_kinetics_objects_pass_through(scaled):
    obj = scaled(HHKinetics(), 2.0)
    assert resolve_truth(obj).kinetics is obj


def test_resolve_truth_from_a_recording_object(short_recording, tmp_path):
    """A Recording given as the truth is its /truth, the same kinetics as its file."""
    import torch

    path = write_recording(tmp_path / "truth.h5", short_recording)
    from_object = resolve_truth(short_recording, temperature=18.5)
    from_file = resolve_truth(str(path), temperature=18.5)
    V = torch.linspace(-100.0, 50.0, 31, dtype=torch.float64)
    for a, b in zip(from_object.kinetics.rates(V), from_file.kinetics.rates(V), strict=True):
        assert torch.equal(a, b)
    assert from_object.info["temperature"] == 18.5
    with pytest.raises(ConfigError, match="no /truth"):
        resolve_truth(dataclasses.replace(short_recording, truth=None))

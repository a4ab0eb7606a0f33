"""The recording format: round trip, the contract as plain h5py sees it, validation, atomicity."""

from __future__ import annotations

import dataclasses
import os

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridhh import recording as R
from hybridhh.biophysics import Biophysics
from hybridhh.errors import ConfigError, RecordingError
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import steps, time_grid
from hybridhh.simulation import simulate


def make_recording(n=2, T=50, truth=True, seed=0, **kw) -> R.Recording:
    """A small recording with arbitrary (not physiological) data: fast, no simulation."""
    rng = np.random.default_rng(seed)
    time = np.arange(T) * 0.025
    t = None
    if truth:
        t = R.Truth("hh_modern", 6.3, 3.0, gates=rng.uniform(0, 1, (n, T, 3)),
                    voltage=rng.normal(-65, 10, (n, T)), integrator="exp_euler")
    fields = dict(time=time, voltage=rng.normal(-65, 10, (n, T)),
                  current=rng.normal(0, 5, (n, T)), trace_names=[f"tr_{k}" for k in range(n)],
                  biophysics=Biophysics.standard("modern", 6.3), source="test",
                  description="a test recording, ünïcode", truth=t,
                  noise_sigma=0.5 if truth else None, noise_seed=7 if truth else None)
    fields.update(kw)
    return R.Recording(**fields)


def assert_same(a: R.Recording, b: R.Recording):
    for name in ("time", "voltage", "current"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float64
        assert np.array_equal(x, y), name
    assert a.trace_names == b.trace_names
    assert a.biophysics == b.biophysics
    assert (a.source, a.description) == (b.source, b.description)
    assert (a.noise_sigma, a.noise_seed, a.temperature_known) == (
        b.noise_sigma, b.noise_seed, b.temperature_known)
    assert (a.truth is None) == (b.truth is None)
    if a.truth is not None:
        for f in ("kinetics", "temperature", "q10", "integrator"):
            assert getattr(a.truth, f) == getattr(b.truth, f)
        for f in ("gates", "voltage"):
            x, y = getattr(a.truth, f), getattr(b.truth, f)
            assert (x is None and y is None) or np.array_equal(x, y)


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.h5"
    R.write_recording(path, make_recording())
    return path


# --- round trip and the contract seen by plain h5py -----------------------------------


def test_round_trip_exact(tmp_path):
    rec = make_recording()
    path = R.write_recording(tmp_path / "sub" / "rec.h5", rec)
    back = R.read_recording(path)
    assert_same(rec, back)
    assert back.path == str(path)


def test_round_trip_without_truth(tmp_path):
    rec = make_recording(truth=False)
    back = R.read_recording(R.write_recording(tmp_path / "rec.h5", rec))
    assert_same(rec, back)
    assert back.gates is None and back.noise_sigma is None


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), T=st.integers(2, 40), seed=st.integers(0, 2**16),
       t0=st.floats(-1e3, 1e3), dt=st.floats(1e-3, 1.0))
def test_round_trip_property(tmp_path_factory, n, T, seed, t0, dt):
    rec = make_recording(n=n, T=T, seed=seed, time=t0 + np.arange(T) * dt)
    path = tmp_path_factory.mktemp("prop") / "rec.h5"
    assert_same(rec, R.read_recording(R.write_recording(path, rec)))


def test_synthetic_file_follows_the_contract_for_plain_h5py(tmp_path):
    t = time_grid(5.0, 0.05)
    stim = steps(t, [5.0, 10.0])
    kin = HHKinetics("modern", temperature=6.3)
    rec = R.recording_from_trajectory(simulate(stim, kin), Biophysics.standard(), kin,
                                      noise_sigma=0.2, seed=1, source="pytest")
    path = R.write_recording(tmp_path / "syn.h5", rec)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "hybridhh.recording"
        assert f.attrs["format_version"] == 1
        assert f.attrs["source"] == "pytest"
        n, T = 2, len(t)
        for name, shape, unit in (("time", (T,), "ms"), ("voltage", (n, T), "mV"),
                                  ("current", (n, T), "uA/cm^2")):
            assert f[name].shape == shape and f[name].dtype == np.float64
            assert f[name].attrs["units"] == unit
        assert np.all(np.diff(f["time"][()]) > 0)
        assert [s.decode() for s in f["trace_names"][()]] == ["step_5", "step_10"]
        b = f["biophysics"].attrs
        for key, value in Biophysics.standard().as_dict().items():
            assert b[key] == value
        assert b["g_Na_units"] == "mS/cm^2" and b["C_m_units"] == "uF/cm^2"
        assert b["temperature_units"] == "degC"
        tr = f["truth"]
        assert tr.attrs["kinetics"] == "hh_modern"
        assert tr.attrs["temperature"] == 6.3 and tr.attrs["q10"] == 3.0
        assert tr["gates"].shape == (n, T, 3) and tr["gates"].dtype == np.float64
        assert f["voltage"].attrs["noise_sigma"] == 0.2
        # V is the truth plus the noise
        assert np.std(f["voltage"][()] - tr["voltage"][()]) == pytest.approx(0.2, rel=0.2)
        np.testing.assert_array_equal(f["current"][()], stim.current)


def test_noise_is_seeded_and_independent_of_protocol_streams():
    t = time_grid(2.0, 0.05)
    kin = HHKinetics()
    traj = simulate(steps(t, [0.0]), kin)
    a = R.recording_from_trajectory(traj, Biophysics(), kin, noise_sigma=1.0, seed=3)
    b = R.recording_from_trajectory(traj, Biophysics(), kin, noise_sigma=1.0, seed=3)
    c = R.recording_from_trajectory(traj, Biophysics(), kin, noise_sigma=1.0, seed=4)
    clean = R.recording_from_trajectory(traj, Biophysics(), kin)
    assert np.array_equal(a.voltage, b.voltage)
    assert not np.array_equal(a.voltage, c.voltage)
    assert np.array_equal(clean.voltage, traj.V.numpy()) and clean.truth.voltage is None
    assert np.array_equal(a.truth.voltage, clean.voltage)
    noise = a.voltage - clean.voltage
    assert not np.allclose(noise[0], np.random.default_rng(3).standard_normal(len(t)))
    with pytest.raises(ConfigError, match="noise"):
        R.recording_from_trajectory(traj, Biophysics(), kin, noise_sigma=-1.0)
    with pytest.raises(ConfigError, match="q10"):
        R.recording_from_trajectory(traj, Biophysics(), object())


# --- helpers of Recording -------------------------------------------------------------


def test_select_stimulus_dt():
    rec = make_recording(n=4)
    sub = rec.select(["tr_2", 0])
    assert sub.trace_names == ("tr_2", "tr_0")
    assert np.array_equal(sub.voltage, rec.voltage[[2, 0]])
    assert np.array_equal(sub.truth.gates, rec.truth.gates[[2, 0]])
    assert rec.select(-1).trace_names == ("tr_3",)
    assert rec.select(slice(1, 3)).n_traces == 2
    assert rec.dt == pytest.approx(0.025)
    assert rec.duration == pytest.approx(49 * 0.025)
    stim = rec.stimulus
    assert np.array_equal(stim.current, rec.current) and stim.names == rec.trace_names
    with pytest.raises(ConfigError, match="no trace named"):
        rec.select("nope")
    with pytest.raises(ConfigError, match="out of range"):
        rec.select(7)
    s = rec.summary()
    assert s["n_traces"] == 4 and len(s["traces"]) == 4 and s["truth"]["gates"]


def test_constructor_validates():
    with pytest.raises(RecordingError) as e:
        make_recording(current=np.zeros((3, 50)))
    assert e.value.field == "/current"
    with pytest.raises(RecordingError) as e:
        make_recording(time=np.arange(50) ** 2 * 0.01)
    assert e.value.field == "/time"


def test_default_trace_names_and_truth_kinetics():
    rec = make_recording(trace_names=None)
    assert rec.trace_names == ("trace_0", "trace_1")
    kin = R.truth_kinetics(rec)
    assert isinstance(kin, HHKinetics) and kin.convention == "modern"
    bad = dataclasses.replace(rec, truth=dataclasses.replace(rec.truth, kinetics="martian"))
    with pytest.raises(RecordingError) as e:
        R.truth_kinetics(bad)
    assert e.value.field == "/truth/kinetics"


# --- every bad input raises RecordingError naming file and field ----------------------


def _del(name):
    return lambda f: f.__delitem__(name)


def _del_attr(obj, name):
    return lambda f: f[obj].attrs.__delitem__(name)


def _set_attr(obj, name, value):
    return lambda f: f[obj].attrs.__setitem__(name, value)


def _replace(name, fn, **attrs):
    def mutate(f):
        old = f[name]
        data, a = fn(old[()]), dict(old.attrs)
        del f[name]
        ds = f.create_dataset(name, data=data)
        ds.attrs.update(a)
        ds.attrs.update(attrs)
    return mutate


def _poke(name, index, value):
    def mutate(f):
        data = f[name][()]
        data[index] = value
        f[name][...] = data
    return mutate


BAD_CASES = {
    "missing format": (_del_attr("/", "format"), "/format", "missing"),
    "wrong format": (_set_attr("/", "format", "something.else"), "/format", "expected"),
    "missing version": (_del_attr("/", "format_version"), "/format_version", "missing"),
    "unknown version": (_set_attr("/", "format_version", 2), "/format_version", "unknown"),
    "version as string": (_set_attr("/", "format_version", "1"), "/format_version",
                          "unknown"),
    "missing source": (_del_attr("/", "source"), "/source", "missing"),
    "missing time": (_del("time"), "/time", "missing"),
    "missing voltage": (_del("voltage"), "/voltage", "missing"),
    "missing current": (_del("current"), "/current", "missing"),
    "missing time units": (_del_attr("time", "units"), "/time/units", "missing"),
    "missing voltage units": (_del_attr("voltage", "units"), "/voltage/units", "missing"),
    "missing current units": (_del_attr("current", "units"), "/current/units", "missing"),
    "time in seconds": (_set_attr("time", "units", "s"), "/time/units", "unknown unit"),
    "voltage in volts": (_set_attr("voltage", "units", "V"), "/voltage/units",
                         "unknown unit"),
    "current in nA": (_set_attr("current", "units", "nA"), "/current/units", "unknown unit"),
    "biophysics unit": (_set_attr("biophysics", "g_K_units", "S/cm^2"),
                        "/biophysics/g_K_units", "unknown unit"),
    "truth temperature unit": (_set_attr("truth", "temperature_units", "K"),
                               "/truth/temperature_units", "unknown unit"),
    "voltage shape": (_replace("voltage", lambda v: v[:, :-1]), "/voltage", "shape"),
    "voltage 1-D": (_replace("voltage", lambda v: v[0]), "/voltage", "shape"),
    "current shape": (_replace("current", lambda v: v[:1]), "/current", "shape"),
    "gates shape": (_replace("truth/gates", lambda g: g[..., :2]), "/truth/gates", "shape"),
    "truth voltage shape": (_replace("truth/voltage", lambda v: v[:1]), "/truth/voltage",
                            "shape"),
    "names count": (_replace("trace_names", lambda n: n[:1]), "/trace_names", "names"),
    "names not strings": (_replace("trace_names", lambda n: np.arange(len(n))),
                          "/trace_names", "strings"),
    "integer voltage": (_replace("voltage", lambda v: v.astype(np.int32)), "/voltage",
                        "float64"),
    "nan voltage": (_poke("voltage", (1, 3), np.nan), "/voltage", "non-finite"),
    "inf current": (_poke("current", (0, 0), np.inf), "/current", "non-finite"),
    "nan time": (_poke("time", 4, np.nan), "/time", "non-finite"),
    "nan gates": (_poke("truth/gates", (0, 1, 2), np.nan), "/truth/gates", "non-finite"),
    "time decreasing": (_replace("time", lambda t: t[::-1].copy()), "/time",
                        "increasing"),
    "time repeated": (_poke("time", 5, 0.1), "/time", "increasing"),
    "time non-uniform": (_poke("time", 10, 10 * 0.025 + 0.001), "/time", "non-uniform"),
    "time too short": (lambda f: [_replace(n, lambda a: a[..., :1])(f)
                                  for n in ("time", "voltage", "current")], "/time",
                       "at least 2"),
    "time is a group": (lambda f: (f.__delitem__("time"), f.create_group("time")), "/time",
                        "expected a dataset"),
    "missing biophysics": (_del("biophysics"), "/biophysics", "missing"),
    "missing g_Na": (_del_attr("biophysics", "g_Na"), "/biophysics/g_Na", "missing"),
    "missing C_m": (_del_attr("biophysics", "C_m"), "/biophysics/C_m", "missing"),
    "string E_K": (_set_attr("biophysics", "E_K", "minus 77"), "/biophysics/E_K", "number"),
    "nan E_L": (_set_attr("biophysics", "E_L", np.nan), "/biophysics/E_L", "finite"),
    "negative g_L": (_set_attr("biophysics", "g_L", -0.3), "/biophysics", ">= 0"),
    "truth without q10": (_del_attr("truth", "q10"), "/truth/q10", "missing"),
    "truth without kinetics": (_del_attr("truth", "kinetics"), "/truth/kinetics", "missing"),
    "bad noise sigma": (_set_attr("voltage", "noise_sigma", -1.0), "/voltage/noise_sigma",
                        ">= 0"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_recording_error_naming_field(good_file, case):
    mutate, field, words = BAD_CASES[case]
    with h5py.File(good_file, "r+") as f:
        mutate(f)
    with pytest.raises(RecordingError) as e:
        R.read_recording(good_file)
    assert e.value.field == field
    assert e.value.path == str(good_file)
    msg = str(e.value)
    assert str(good_file) in msg and field in msg
    assert words in msg


def test_time_tolerance_is_relative_to_the_step(good_file):
    with h5py.File(good_file, "r+") as f:
        t = f["time"][()]
        f["time"][10] = t[10] + 1e-8 * 0.025  # well inside relative 1e-6 of dt
    R.read_recording(good_file)
    with h5py.File(good_file, "r+") as f:
        f["time"][10] = t[10] + 1e-5 * 0.025
    with pytest.raises(RecordingError, match="relative 1e-06"):
        R.read_recording(good_file)


def test_not_a_file_or_not_hdf5(tmp_path):
    with pytest.raises(RecordingError, match="no such file") as e:
        R.read_recording(tmp_path / "absent.h5")
    assert e.value.field is None
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(RecordingError, match="HDF5"):
        R.read_recording(junk)
    with pytest.raises(RecordingError, match="directory"):
        R.read_recording(tmp_path)


def test_optional_fields_may_be_absent(good_file):
    with h5py.File(good_file, "r+") as f:
        del f["trace_names"]
        del f["truth"]
        del f.attrs["description"]
        for k in list(f["biophysics"].attrs):
            if k.endswith("_units"):
                del f["biophysics"].attrs[k]
        del f["biophysics"].attrs["temperature"]
        del f["voltage"].attrs["noise_sigma"]
    rec = R.read_recording(good_file)
    assert rec.trace_names == ("trace_0", "trace_1")
    assert rec.truth is None and rec.description == "" and rec.noise_sigma is None
    assert not rec.temperature_known and rec.biophysics.temperature == 6.3
    # an assumed temperature is not written back as if it were known
    out = R.write_recording(good_file.with_name("again.h5"), rec)
    with h5py.File(out, "r") as f:
        assert "temperature" not in f["biophysics"].attrs


def test_temperature_falls_back_to_truth(good_file):
    with h5py.File(good_file, "r+") as f:
        del f["biophysics"].attrs["temperature"]
        f["truth"].attrs["temperature"] = 18.5
    rec = R.read_recording(good_file)
    assert rec.temperature_known and rec.biophysics.temperature == 18.5


def test_extra_fields_are_ignored(good_file):
    with h5py.File(good_file, "r+") as f:
        f.create_dataset("extra/stuff", data=[1, 2, 3])
        f.attrs["lab"] = "somewhere"
    R.read_recording(good_file)


# --- atomic write ---------------------------------------------------------------------


def _failing_write(f, rec):
    f.attrs["format"] = R.FORMAT
    f.create_dataset("time", data=rec.time)
    raise RuntimeError("disk on fire")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "_write", _failing_write)
    target = tmp_path / "new.h5"
    with pytest.raises(RuntimeError, match="disk on fire"):
        R.write_recording(target, make_recording())
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "rec.h5"
    old = make_recording(seed=1)
    R.write_recording(target, old)
    before = target.read_bytes()
    monkeypatch.setattr(R, "_write", _failing_write)
    with pytest.raises(RuntimeError):
        R.write_recording(target, make_recording(seed=2))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["rec.h5"]
    assert_same(old, R.read_recording(target))


def test_overwrite_and_permissions(tmp_path):
    target = tmp_path / "rec.h5"
    R.write_recording(target, make_recording(seed=1))
    new = make_recording(seed=2)
    R.write_recording(target, new)
    assert_same(new, R.read_recording(target))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_rejects_non_recordings(tmp_path):
    with pytest.raises(ConfigError):
        R.write_recording(tmp_path / "x.h5", {"time": [0, 1]})
    assert os.listdir(tmp_path) == []

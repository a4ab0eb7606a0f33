"""The format's optional fields of issue 20: current in pA, /cell, /metadata; old files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hybridhh import recording as R
from hybridhh.biophysics import Biophysics
from hybridhh.cell import PARAMETERS, Cell, CellParameter
from hybridhh.errors import ConfigError, RecordingError


def pa_recording(**kw) -> R.Recording:
    rng = np.random.default_rng(3)
    fields = dict(time=np.arange(40) * 0.05, voltage=rng.normal(-65, 5, (3, 40)),
                  current=rng.normal(0, 50, (3, 40)), trace_names=["a", "b", "c"],
                  source="test", current_units="pA", temperature_known=False,
                  cell=Cell({"C_total": CellParameter("C_total", "unknown", start=300.0),
                             "g_Na": CellParameter("g_Na", "known", value=80.0),
                             "E_L": {"status": "unknown", "lower": -80.0, "upper": -50.0}}),
                  metadata={"lowpass": 10.0, "liquid_junction_potential": -13.5,
                            "bridge_balance": 0.0, "source_file": "x.abf",
                            "sweeps": [0, 2, 4], "comment": "SWHLab5[0113]"})
    fields.update(kw)
    return R.Recording(**fields)


# --- the Cell ---------------------------------------------------------------------------


def test_cell_defaults_and_what_a_fit_reads():
    cell = pa_recording().cell
    assert list(cell) == list(PARAMETERS) and len(cell) == 7
    assert cell["g_K"].status == "absent"
    assert cell.free_names() == ("C_total", "E_L")
    assert cell.known_values() == {"g_Na": 80.0}
    assert cell.start_values() == {"C_total": 300.0}
    assert cell.bounds() == {"C_total": PARAMETERS["C_total"][1:], "E_L": (-80.0, -50.0)}
    full = Cell.unknown(C_total=150.0)
    assert full.free_names() == tuple(PARAMETERS) and full.start_values() == {"C_total": 150.0}
    moved = full.with_starts(g_L=100.0, E_L=-70.0)  # g_L beyond its upper bound 5 mS/cm^2
    assert moved.start_values() == {"C_total": 150.0, "g_L": 5.0, "E_L": -70.0}
    assert moved["C_total"].unit == "pF" and moved["E_L"].unit == "mV"


@pytest.mark.parametrize("kw, words", [
    (dict(name="C_m", status="known", value=1.0), "unknown name"),
    (dict(name="g_K", status="maybe"), "status 'maybe'"),
    (dict(name="g_K", status="known"), "known but has no value"),
    (dict(name="g_K", status="known", value=30.0, lower=1.0), "no bounds"),
    (dict(name="g_K", status="known", value=-1.0), ">= 0"),
    (dict(name="C_total", status="known", value=0.0), "> 0 pF"),
    (dict(name="g_K", status="unknown", lower=10.0, upper=1.0), "ordered"),
    (dict(name="E_K", status="unknown", lower=-90.0, upper=-90.0), "ordered"),
    (dict(name="g_L", status="unknown", start=9.0), "outside its bounds"),
    (dict(name="g_L", status="unknown", value=0.1), "give it as start"),
    (dict(name="E_L", status="unknown", start=float("nan")), "finite"),
    (dict(name="E_L", status="absent", start=-65.0), "absent but has start"),
    (dict(name="E_L", status="known", value="-65"), "number"),
])
def test_bad_cell_parameter(kw, words):
    with pytest.raises(ConfigError, match=words) as e:
        CellParameter(**kw)
    assert kw["name"] in str(e.value)


def test_bad_cell_mapping():
    with pytest.raises(ConfigError, match="holds the parameter"):
        Cell({"g_K": CellParameter("g_Na", "absent")})
    with pytest.raises(ConfigError, match="g_X"):
        Cell.unknown(g_X=1.0)
    with pytest.raises(RecordingError, match="/cell") as e:
        pa_recording(cell={"g_Na": {"status": "known"}})
    assert e.value.field == "/cell"
    with pytest.raises(RecordingError) as e:
        pa_recording(current_units="uA/cm^2")  # C_total unknown, current a density
    assert e.value.field == "/cell/C_total" and "needs a current in pA" in str(e.value)


# --- in memory ----------------------------------------------------------------------------


def test_metadata_validation_and_select():
    rec = pa_recording()
    assert rec.temperature is None and rec.current_units == "pA"
    sub = rec.select(["c", "a"])
    assert sub.metadata["sweeps"] == [4, 0] and rec.metadata["sweeps"] == [0, 2, 4]
    assert sub.cell == rec.cell
    s = rec.summary()
    assert s["current_units"] == "pA" and s["metadata"]["lowpass"] == 10.0
    assert s["cell"]["C_total"] == {"status": "unknown", "value": None, "lower": 5.0,
                                    "upper": 2000.0, "start": 300.0, "unit": "pF"}
    assert "g_K" not in s["cell"]
    for bad, words in [({"lowpass": 0.0}, "> 0"), ({"lowpass": "10k"}, "number"),
                       ({"bridge_balance": -1.0}, ">= 0"),
                       ({"liquid_junction_potential": float("inf")}, "finite"),
                       ({"sweeps": [0, 1]}, "one sweep number per trace"),
                       ({"sweeps": [0, 1.5, 2]}, "integers"),
                       ({"temperature": 22.0}, "biophysics"),
                       ({"note": 3}, "string"), ({"x_units": "mV"}, "_units"),
                       ({"bad key": "x"}, "letters")]:
        with pytest.raises(RecordingError, match=words) as e:
            pa_recording(metadata=bad)
        assert e.value.field.startswith("/metadata"), bad
    with pytest.raises(RecordingError, match="'nA'") as e:
        pa_recording(current_units="nA")
    assert e.value.field == "/current/units"


# --- on disk ------------------------------------------------------------------------------


def test_round_trip_pA_cell_metadata(tmp_path):
    rec = pa_recording()
    path = R.write_recording(tmp_path / "pa.h5", rec)
    with h5py.File(path) as f:  # the layout as plain h5py sees it
        assert f["current"].attrs["units"] == "pA"
        assert dict(f["cell/C_total"].attrs) == {"status": "unknown", "units": "pF",
                                                 "lower": 5.0, "upper": 2000.0,
                                                 "start": 300.0}
        assert f["cell/g_K"].attrs["status"] == "absent"
        assert f["metadata"].attrs["lowpass_units"] == "kHz"
        assert f["metadata"].attrs["sweeps"].dtype == np.int64
        assert "temperature" not in f["biophysics"].attrs
    back = R.read_recording(path)
    assert np.array_equal(back.current, rec.current) and np.array_equal(back.voltage,
                                                                        rec.voltage)
    assert back.current_units == "pA" and back.cell == rec.cell
    assert back.metadata == rec.metadata and back.temperature is None


def _old_style_file(path):
    """A file as the v1 contract alone writes it (no optional fields at all)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "hybridhh.recording"
        f.attrs["format_version"] = 1
        f.attrs["source"] = "another tool"
        f.create_dataset("time", data=np.arange(20) * 0.025).attrs["units"] = "ms"
        f.create_dataset("voltage", data=np.full((1, 20), -65.0)).attrs["units"] = "mV"
        f.create_dataset("current", data=np.zeros((1, 20))).attrs["units"] = "uA/cm^2"
        b = f.create_group("biophysics")
        for k, v in Biophysics().as_dict().items():
            if k != "temperature":
                b.attrs[k] = v


def test_old_file_still_reads(tmp_path):
    _old_style_file(tmp_path / "old.h5")
    rec = R.read_recording(tmp_path / "old.h5")
    assert rec.current_units == "uA/cm^2" and rec.cell is None and rec.metadata == {}
    assert rec.temperature is None and not rec.temperature_known
    R.write_recording(tmp_path / "again.h5", rec)
    with h5py.File(tmp_path / "again.h5") as f:
        assert "cell" not in f and "metadata" not in f
        assert f["current"].attrs["units"] == "uA/cm^2"


def _attr(obj, name, value):
    return lambda f: f[obj].attrs.__setitem__(name, value)


BAD_FILES = {
    "cell status": (_attr("cell/g_Na", "status", "fixed"), "/cell/g_Na", "status"),
    "cell bounds": (_attr("cell/E_L", "lower", -40.0), "/cell/E_L", "ordered"),
    "cell start": (_attr("cell/C_total", "start", 1e5), "/cell/C_total", "outside"),
    "cell units": (_attr("cell/C_total", "units", "nF"), "/cell/C_total/units",
                   "unknown unit"),
    "cell value text": (_attr("cell/g_Na", "value", "eighty"), "/cell/g_Na/value", "number"),
    "cell name": (lambda f: f["cell"].create_group("g_Ih").attrs.__setitem__("status",
                                                                          "absent"),
                  "/cell/g_Ih", "unknown cell parameter"),
    "cell not a group": (lambda f: (f["cell"].__delitem__("g_K"),
                                    f["cell"].create_dataset("g_K", data=1.0)),
                         "/cell/g_K", "expected a group"),
    "metadata unit": (_attr("metadata", "lowpass_units", "Hz"), "/metadata/lowpass_units",
                      "unknown unit"),
    "metadata value": (_attr("metadata", "bridge_balance", -2.0), "/metadata", ">= 0"),
    "metadata sweeps": (_attr("metadata", "sweeps", np.array([0.5, 1, 2])),
                        "/metadata/sweeps", "integers"),
    "current in nA": (_attr("current", "units", "nA"), "/current/units", "converted|convert"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_file_and_field(tmp_path, case):
    mutate, field, words = BAD_FILES[case]
    path = R.write_recording(tmp_path / "pa.h5", pa_recording())
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(RecordingError, match=words) as e:
        R.read_recording(path)
    assert e.value.field == field and str(path) in str(e.value)

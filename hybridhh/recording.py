"""Recordings in memory and on disk (the HDF5 format of ``docs/recording-format.md``, v1).

A :class:`Recording` holds current-clamp traces on one uniform time grid: membrane
potential (mV) and injected current (positive depolarises) as a density in µA/cm² or, for
a real cell of unknown area, in pA; the known biophysics of the cell, what is known and
unknown about the cell (:class:`~hybridhh.cell.Cell`), how it was recorded (metadata) and,
for synthetic data, the ground truth (kinetics name, temperature, q10, gates).
:func:`read_recording` validates a file against the contract and raises
:class:`~hybridhh.errors.RecordingError` naming the file, the field and what was expected;
it never converts or truncates. :func:`write_recording` writes atomically.

Layout (required unless marked optional; see the contract for the full text)::

    /                 attrs format="hybridhh.recording", format_version=1, source,
                      description (optional)
    /time             float64 (T,)     attrs units="ms"; strictly increasing, uniform
    /voltage          float64 (n, T)   attrs units="mV"
    /current          float64 (n, T)   attrs units="uA/cm^2" (or "pA", optional, added)
    /trace_names      optional utf-8 strings (n,)
    /biophysics       attrs C_m, g_Na, g_K, g_L, E_Na, E_K, E_L, temperature (optional),
                      each optionally with "<name>_units"
    /truth            optional; attrs kinetics, temperature, q10
    /truth/gates      optional float64 (n, T, 3): m, h, n

Optional fields this module adds (readers that do not know them ignore them):

* ``/voltage`` attrs ``noise_sigma`` (mV) and ``noise_seed``: SD and seed of the Gaussian
  measurement noise added to a synthetic V.
* ``/truth/voltage`` float64 (n, T), mV: the noise-free V of synthetic data.
* ``/truth`` attr ``integrator``: the integrator that produced synthetic data.
* ``/current`` units ``"pA"``: a current in pA, for a cell whose area is unknown.
* ``/cell``: one subgroup per cell parameter (C_total pF, g's mS/cm², E's mV) with attrs
  ``status`` (known/unknown/absent), ``value``, ``lower``, ``upper``, ``start``, ``units``.
* ``/metadata``: attrs liquid_junction_potential (mV), lowpass (kHz), bridge_balance
  (MOhm), source_file, sweeps (int64 array, one per trace), free text; each number with
  ``<name>_units``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .biophysics import BIOPHYSICS_UNITS, Biophysics
from .cell import PARAMETERS as CELL_PARAMETERS
from .cell import Cell, CellParameter
from .constants import HH_REFERENCE_TEMPERATURE
from .errors import ConfigError, HybridHHError, RecordingError
from .metadata import METADATA, check_metadata

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CURRENT_UNITS",
    "SUPPORTED_VERSIONS",
    "TIME_RTOL",
    "Truth",
    "Recording",
    "read_recording",
    "write_recording",
    "recording_from_trajectory",
    "simulate_recording",
    "truth_kinetics",
    "trace_indices",
]

FORMAT = "hybridhh.recording"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
#: Tolerance of the uniform-time-axis check: every step may differ from the mean step
#: ``(t[-1] - t[0]) / (T - 1)`` by at most this fraction of it.
TIME_RTOL = 1e-6

#: units attr required on each dataset (/current: the first of CURRENT_UNITS, or another)
DATASET_UNITS = {"/time": "ms", "/voltage": "mV", "/current": "uA/cm^2"}
#: The units a current may have: a density, or pA for a cell of unknown area (then C_m is
#: the convention 1 uF/cm^2 and C_total, pF, scales pA to uA/cm^2).
CURRENT_UNITS = ("uA/cm^2", "pA")
#: /biophysics attrs that must be present (temperature is optional)
REQUIRED_BIOPHYSICS = ("C_m", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L")

_IN_MEMORY = "<recording>"


# --- validation shared by the constructor and the reader -------------------------------


def _float_array(value, path, field, ndim, shape_text):
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise RecordingError(path, field, f"expected floating-point data (float64), "
                                          f"got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise RecordingError(path, field, f"expected shape {shape_text}, got {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        raise RecordingError(path, field, f"{len(bad)} non-finite sample(s), first at index "
                                          f"{tuple(int(i) for i in bad[0])}; expected finite "
                                          "values")
    return arr


def _check_time(time, path):
    time = _float_array(time, path, "/time", 1, "(n_samples,)")
    if len(time) < 2:
        raise RecordingError(path, "/time", f"expected at least 2 samples, got {len(time)}")
    steps = np.diff(time)
    if not np.all(steps > 0):
        k = int(np.argmax(steps <= 0))
        raise RecordingError(path, "/time", f"not strictly increasing: t[{k + 1}] = "
                                            f"{time[k + 1]!r} ms <= t[{k}] = {time[k]!r} ms")
    dt = (time[-1] - time[0]) / (len(time) - 1)
    dev = np.abs(steps - dt)
    if dev.max() > TIME_RTOL * dt:
        k = int(np.argmax(dev))
        raise RecordingError(
            path, "/time",
            f"non-uniform step: t[{k + 1}] - t[{k}] = {steps[k]!r} ms differs from the mean "
            f"step {dt!r} ms by more than the tolerance (relative {TIME_RTOL:g} of the step)")
    return time


def _check_traces(time, voltage, current, path, gates=None, truth_voltage=None):
    T = len(time)
    voltage = _float_array(voltage, path, "/voltage", 2, f"(n_traces, {T})")
    n = voltage.shape[0]
    if n < 1 or voltage.shape[1] != T:
        raise RecordingError(path, "/voltage", f"expected shape (n_traces >= 1, {T}) to match "
                                               f"/time, got {voltage.shape}")
    current = _float_array(current, path, "/current", 2, f"({n}, {T})")
    if current.shape != voltage.shape:
        raise RecordingError(path, "/current", f"expected shape {voltage.shape} like /voltage, "
                                               f"got {current.shape}")
    if gates is not None:
        gates = _float_array(gates, path, "/truth/gates", 3, f"({n}, {T}, 3)")
        if gates.shape != (n, T, 3):
            raise RecordingError(path, "/truth/gates",
                                 f"expected shape ({n}, {T}, 3) (traces, samples, m/h/n), "
                                 f"got {gates.shape}")
    if truth_voltage is not None:
        truth_voltage = _float_array(truth_voltage, path, "/truth/voltage", 2, f"({n}, {T})")
        if truth_voltage.shape != voltage.shape:
            raise RecordingError(path, "/truth/voltage", f"expected shape {voltage.shape} like "
                                                         f"/voltage, got {truth_voltage.shape}")
    return voltage, current, gates, truth_voltage


def _check_names(names, n, path):
    if names is None:
        return tuple(f"trace_{k}" for k in range(n))
    names = tuple(str(x) for x in names)
    if len(names) != n:
        raise RecordingError(path, "/trace_names", f"expected {n} names (one per trace), "
                                                   f"got {len(names)}")
    return names


def trace_indices(names: Sequence[str], traces) -> list[int]:
    """Indices of ``traces`` among ``names``.

    Parameters
    ----------
    names
        The trace names, in order.
    traces
        ``None`` (all), an int, a name, a slice, or a sequence of ints and/or names.
        Negative ints count from the end.

    Raises
    ------
    ConfigError
        For an unknown name or an index out of range.
    """
    n = len(names)
    if traces is None:
        return list(range(n))
    if isinstance(traces, slice):
        return list(range(n))[traces]
    if isinstance(traces, (str, int, np.integer)):
        traces = [traces]
    out = []
    for t in traces:
        if isinstance(t, str):
            if t in names:
                out.append(names.index(t))
                continue
            try:
                t = int(t)
            except ValueError:
                raise ConfigError(f"no trace named {t!r}; traces are {', '.join(names)}") from None
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not -n <= t < n:
                raise ConfigError(f"trace index {t} out of range for {n} traces")
            out.append(int(t) % n)
        else:
            raise ConfigError(f"a trace is selected by index or name, got {t!r}")
    return out


# --- in memory ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Truth:
    """Ground truth of synthetic data.

    Attributes
    ----------
    kinetics : str
        Name of the rate-function set (:func:`hybridhh.kinetics.get_kinetics`), e.g.
        ``"hh1952"`` or ``"hh_modern"``.
    temperature : float
        °C at which the rates were evaluated.
    q10 : float
        Temperature coefficient of the rates.
    gates : ndarray (n_traces, n_samples, 3) or None
        m, h, n.
    voltage : ndarray (n_traces, n_samples) or None
        Noise-free membrane potential, mV (optional field ``/truth/voltage``).
    integrator : str or None
        Integrator that produced the data (optional attr).
    """

    kinetics: str
    temperature: float
    q10: float
    gates: np.ndarray | None = None
    voltage: np.ndarray | None = None
    integrator: str | None = None


@dataclass(frozen=True, eq=False)
class Recording:
    """Current-clamp traces on one uniform time grid, with the cell's known biophysics.

    Attributes
    ----------
    time : ndarray (n_samples,)
        Sample times, ms; strictly increasing and uniform.
    voltage : ndarray (n_traces, n_samples)
        Membrane potential, mV.
    current : ndarray (n_traces, n_samples)
        Injected current in ``current_units``, positive depolarises.
    trace_names : tuple of str
        One per trace (default ``trace_0``, ``trace_1``, ...).
    biophysics : Biophysics
        C_m, conductances, reversal potentials and temperature (°C).
    source : str
        Who or what made the data.
    description : str
        Free text ("" when none).
    truth : Truth or None
        Ground truth of synthetic data.
    noise_sigma : float or None
        SD (mV) of the Gaussian noise added to a synthetic V; ``None`` when unknown.
    noise_seed : int or None
        Seed of that noise.
    temperature_known : bool
        False when the file had no ``/biophysics`` temperature and no ``/truth`` either;
        ``biophysics.temperature`` then holds the assumed 6.3 °C.
    path : str or None
        The file it was read from.
    current_units : str
        ``"uA/cm^2"`` (a density; the default, and every file before the option) or
        ``"pA"`` (a real cell of unknown area: C_total, pF, converts I[uA/cm^2] =
        I[pA] / C_total[pF] with the convention C_m = 1 µF/cm²).
    cell : Cell or None
        Which cell parameters are known, unknown (bounds, start) or absent (``/cell``);
        None when the file says nothing (old files). A dict ``{name: {status, ...}}`` is
        turned into a :class:`~hybridhh.cell.Cell`.
    metadata : dict
        How it was recorded (``/metadata``; :data:`hybridhh.metadata.METADATA`):
        liquid_junction_potential (mV), lowpass (kHz), bridge_balance (MOhm),
        source_file, sweeps (one per trace), and free text; ``{}`` when none.

    The constructor validates shapes, finiteness, the time axis, the current units, the
    cell and the metadata and raises :class:`RecordingError`.
    """

    time: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    trace_names: tuple[str, ...] | None = None
    biophysics: Biophysics = dataclasses.field(default_factory=Biophysics)
    source: str = "unknown"
    description: str = ""
    truth: Truth | None = None
    noise_sigma: float | None = None
    noise_seed: int | None = None
    temperature_known: bool = True
    path: str | None = None
    current_units: str = "uA/cm^2"
    cell: Cell | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        where = self.path or _IN_MEMORY
        time = _check_time(self.time, where)
        gates = self.truth.gates if self.truth is not None else None
        tv = self.truth.voltage if self.truth is not None else None
        voltage, current, gates, tv = _check_traces(time, self.voltage, self.current, where,
                                                    gates, tv)
        names = _check_names(self.trace_names, voltage.shape[0], where)
        if not isinstance(self.biophysics, Biophysics):
            raise RecordingError(where, "/biophysics", "expected a Biophysics object, got "
                                                       f"{type(self.biophysics).__name__}")
        if self.noise_sigma is not None and not (math.isfinite(self.noise_sigma)
                                                 and self.noise_sigma >= 0):
            raise RecordingError(where, "/voltage/noise_sigma",
                                 f"expected a finite SD >= 0 mV, got {self.noise_sigma}")
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "voltage", voltage)
        object.__setattr__(self, "current", current)
        object.__setattr__(self, "trace_names", names)
        if self.current_units not in CURRENT_UNITS:
            raise RecordingError(where, "/current/units",
                                 f"unknown unit {self.current_units!r}; expected one of "
                                 f"{', '.join(map(repr, CURRENT_UNITS))} (convert others, "
                                 "e.g. nA, when importing: hybridhh import)")
        cell = self.cell
        if cell is not None and not isinstance(cell, Cell):
            try:
                cell = Cell(cell)
            except ConfigError as e:
                raise RecordingError(where, "/cell", str(e)) from None
        if cell is not None and self.current_units != "pA" \
                and cell["C_total"].status == "unknown":
            raise RecordingError(where, "/cell/C_total",
                                 "unknown C_total needs a current in pA; this current is in "
                                 f"{self.current_units} (a density: its C_m is known)")
        object.__setattr__(self, "cell", cell)
        try:
            metadata = check_metadata(self.metadata)
        except ConfigError as e:
            raise RecordingError(where, "/metadata", str(e)) from None
        if "sweeps" in metadata and len(metadata["sweeps"]) != voltage.shape[0]:
            raise RecordingError(where, "/metadata/sweeps",
                                 f"expected one sweep number per trace ({voltage.shape[0]}), "
                                 f"got {len(metadata['sweeps'])}")
        object.__setattr__(self, "metadata", metadata)
        if self.truth is not None:
            object.__setattr__(self, "truth", dataclasses.replace(self.truth, gates=gates,
                                                                  voltage=tv))

    # -- properties -------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Sampling step, ms (the mean step of the uniform time axis)."""
        return float((self.time[-1] - self.time[0]) / (len(self.time) - 1))

    @property
    def n_traces(self) -> int:
        return self.voltage.shape[0]

    @property
    def n_samples(self) -> int:
        return len(self.time)

    @property
    def duration(self) -> float:
        """``t[-1] - t[0]``, ms."""
        return float(self.time[-1] - self.time[0])

    @property
    def temperature(self) -> float | None:
        """The recording temperature, °C (``biophysics.temperature``), or None when the
        file does not state it (``temperature_known`` false)."""
        return self.biophysics.temperature if self.temperature_known else None

    @property
    def gates(self) -> np.ndarray | None:
        """True gates ``(n_traces, n_samples, 3)`` when the data are synthetic, else None."""
        return None if self.truth is None else self.truth.gates

    @property
    def stimulus(self):
        """The injected current as a :class:`hybridhh.protocols.Stimulus` (ms; in
        ``current_units``: µA/cm², or pA for a cell of unknown area)."""
        from .protocols import Stimulus

        return Stimulus(self.time, self.current, self.trace_names)

    def __len__(self) -> int:
        return self.n_traces

    # -- derived recordings ----------------------------------------------------------
    def select(self, traces) -> Recording:
        """A recording with only ``traces`` (index, name, slice or a sequence of these)."""
        idx = trace_indices(self.trace_names, traces)
        if not idx:
            raise ConfigError("selection is empty: no traces chosen")
        truth = self.truth
        if truth is not None:
            truth = dataclasses.replace(
                truth,
                gates=None if truth.gates is None else truth.gates[idx],
                voltage=None if truth.voltage is None else truth.voltage[idx],
            )
        metadata = dict(self.metadata)
        if "sweeps" in metadata:
            metadata["sweeps"] = [metadata["sweeps"][i] for i in idx]
        return dataclasses.replace(self, voltage=self.voltage[idx], current=self.current[idx],
                                   trace_names=tuple(self.trace_names[i] for i in idx),
                                   truth=truth, metadata=metadata)

    def summary(self) -> dict:
        """Plain-data summary (JSON-serialisable) of what the recording holds.

        Keys: path, source, description, n_traces, n_samples, duration (ms), dt (ms),
        t_start (ms), voltage (min, max, p1, p99 in mV), current (min, max in
        current_units), current_units, biophysics (dict with units implied),
        temperature_known, noise_sigma (mV), truth (dict or None), cell (``{name:
        {status, value, lower, upper, start, unit}}`` of the parameters not absent, or
        None), metadata (dict), traces (list of per-trace dicts: name, V min/max, I
        min/max).
        """
        v, i = self.voltage, self.current
        p1, p99 = np.percentile(v, [1, 99])
        truth = None
        if self.truth is not None:
            truth = {"kinetics": self.truth.kinetics, "temperature": self.truth.temperature,
                     "q10": self.truth.q10, "gates": self.truth.gates is not None,
                     "voltage": self.truth.voltage is not None,
                     "integrator": self.truth.integrator}
        return {
            "path": self.path,
            "source": self.source,
            "description": self.description,
            "n_traces": self.n_traces,
            "n_samples": self.n_samples,
            "duration": self.duration,
            "dt": self.dt,
            "t_start": float(self.time[0]),
            "voltage": {"min": float(v.min()), "max": float(v.max()),
                        "p1": float(p1), "p99": float(p99)},
            "current": {"min": float(i.min()), "max": float(i.max())},
            "current_units": self.current_units,
            "biophysics": self.biophysics.as_dict(),
            "temperature_known": self.temperature_known,
            "noise_sigma": self.noise_sigma,
            "truth": truth,
            "cell": None if self.cell is None else self.cell.as_dict(),
            "metadata": dict(self.metadata),
            "traces": [
                {"name": name, "V_min": float(v[k].min()), "V_max": float(v[k].max()),
                 "I_min": float(i[k].min()), "I_max": float(i[k].max())}
                for k, name in enumerate(self.trace_names)
            ],
        }


# --- reading --------------------------------------------------------------------------


def _attr(attrs, name, path, field, required):
    """The attribute's raw value; None when it is absent and not required."""
    if name in attrs:
        return attrs[name]
    if required:
        raise RecordingError(path, field, "missing attribute")
    return None


def _attr_str(attrs, name, path, field, required=True):
    value = _attr(attrs, name, path, field, required)
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordingError(path, field, "expected a utf-8 string") from None
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "OSU":
        value = value[()]
        value = value.decode("utf-8") if isinstance(value, bytes) else value
    if not isinstance(value, str):
        raise RecordingError(path, field, f"expected a string, got {value!r}")
    return value


def _attr_float(attrs, name, path, field, required=True):
    value = _attr(attrs, name, path, field, required)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise RecordingError(path, field, f"expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise RecordingError(path, field, f"expected a finite number, got {value}")
    return value


def _check_units(attrs, name, expected, path, field, required):
    unit = _attr_str(attrs, name, path, field, required=required)
    if unit is not None and unit != expected:
        raise RecordingError(path, field, f"unknown unit {unit!r}; expected {expected!r} "
                                          "(format_version 1 does not convert units)")


def _dataset(parent, name, path, required=True):
    import h5py

    field = (parent.name.rstrip("/") + "/" + name)
    if name not in parent:
        if required:
            raise RecordingError(path, field, "missing dataset")
        return None
    obj = parent[name]
    if not isinstance(obj, h5py.Dataset):
        raise RecordingError(path, field, f"expected a dataset, got a {type(obj).__name__}")
    return obj


def _read_array(parent, name, path, required=True):
    ds = _dataset(parent, name, path, required)
    if ds is None:
        return None
    if ds.dtype.kind != "f":
        raise RecordingError(path, ds.name, f"expected float64 data, got dtype {ds.dtype}")
    return ds[()]


def read_recording(path) -> Recording:
    """Read and validate a recording file (format ``hybridhh.recording`` v1).

    Parameters
    ----------
    path
        An HDF5 file.

    Returns
    -------
    Recording
        Time in ms, V in mV, current density in µA/cm², biophysics in the contract's units.

    Raises
    ------
    RecordingError
        Naming the file, the field and what was expected, for: a missing file or field, a
        wrong ``format``, an unknown ``format_version``, a shape mismatch, an unknown unit,
        non-finite samples, a non-uniform or non-increasing time axis (tolerance: relative
        :data:`TIME_RTOL` of the step), a missing or non-numeric biophysics attribute.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise RecordingError(path, None, "no such file")
    if path.is_dir():
        raise RecordingError(path, None, "is a directory, expected an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise RecordingError(path, None, f"cannot open as HDF5 ({e})") from None
    with f:
        fmt = _attr_str(f.attrs, "format", path, "/format")
        if fmt != FORMAT:
            raise RecordingError(path, "/format", f"expected {FORMAT!r}, got {fmt!r}")
        if "format_version" not in f.attrs:
            raise RecordingError(path, "/format_version", "missing attribute")
        version = f.attrs["format_version"]
        if isinstance(version, np.ndarray) and version.size == 1:
            version = version.reshape(())[()]
        if (not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_))
                or int(version) not in SUPPORTED_VERSIONS):
            raise RecordingError(path, "/format_version",
                                 f"unknown version {version!r}; this hybridhh reads "
                                 f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
        source = _attr_str(f.attrs, "source", path, "/source")
        description = _attr_str(f.attrs, "description", path, "/description",
                                required=False) or ""

        arrays = {}
        current_units = None
        for name, unit in DATASET_UNITS.items():
            ds = _dataset(f, name[1:], path)
            if name == "/current":
                current_units = _attr_str(ds.attrs, "units", path, "/current/units")
                if current_units not in CURRENT_UNITS:
                    raise RecordingError(path, "/current/units",
                                         f"unknown unit {current_units!r}; expected one of "
                                         f"{', '.join(map(repr, CURRENT_UNITS))} (the reader "
                                         "does not convert units: convert others, e.g. nA, "
                                         "when importing)")
            else:
                _check_units(ds.attrs, "units", unit, path, f"{name}/units", required=True)
            arrays[name] = _read_array(f, name[1:], path)
        time = _check_time(arrays["/time"], path)

        names = None
        ds = _dataset(f, "trace_names", path, required=False)
        if ds is not None:
            if ds.dtype.kind not in "OSU" or ds.ndim != 1:
                raise RecordingError(path, "/trace_names", "expected a 1-D array of utf-8 "
                                     f"strings, got dtype {ds.dtype}, shape {ds.shape}")
            try:
                names = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in ds[()]]
            except UnicodeDecodeError:
                raise RecordingError(path, "/trace_names", "expected utf-8 strings") from None

        vattrs = f["voltage"].attrs
        noise_sigma = _attr_float(vattrs, "noise_sigma", path, "/voltage/noise_sigma",
                                  required=False)
        noise_seed = None
        if "noise_seed" in vattrs:
            noise_seed = _attr_float(vattrs, "noise_seed", path, "/voltage/noise_seed")
            if noise_seed != int(noise_seed):
                raise RecordingError(path, "/voltage/noise_seed",
                                     f"expected an integer, got {noise_seed}")
            noise_seed = int(noise_seed)

        if "biophysics" not in f:
            raise RecordingError(path, "/biophysics", "missing group")
        bg = f["biophysics"]
        if not isinstance(bg, h5py.Group):
            raise RecordingError(path, "/biophysics", "expected a group of attributes")
        bio = {}
        for name in (*REQUIRED_BIOPHYSICS, "temperature"):
            field = f"/biophysics/{name}"
            value = _attr_float(bg.attrs, name, path, field,
                                required=name in REQUIRED_BIOPHYSICS)
            _check_units(bg.attrs, f"{name}_units", BIOPHYSICS_UNITS[name], path,
                         f"{field}_units", required=False)
            if value is not None:
                bio[name] = value

        truth = None
        if "truth" in f:
            tg = f["truth"]
            if not isinstance(tg, h5py.Group):
                raise RecordingError(path, "/truth", "expected a group")
            _check_units(tg.attrs, "temperature_units", "degC", path,
                         "/truth/temperature_units", required=False)
            truth = Truth(
                kinetics=_attr_str(tg.attrs, "kinetics", path, "/truth/kinetics"),
                temperature=_attr_float(tg.attrs, "temperature", path, "/truth/temperature"),
                q10=_attr_float(tg.attrs, "q10", path, "/truth/q10"),
                gates=_read_array(tg, "gates", path, required=False),
                voltage=_read_array(tg, "voltage", path, required=False),
                integrator=_attr_str(tg.attrs, "integrator", path, "/truth/integrator",
                                     required=False),
            )
            tvd = _dataset(tg, "voltage", path, required=False)
            if tvd is not None:
                _check_units(tvd.attrs, "units", "mV", path, "/truth/voltage/units",
                             required=False)
        cell = _read_cell(f, path)
        metadata = _read_metadata(f, path)

    temperature_known = True
    if "temperature" not in bio:
        if truth is not None:
            bio["temperature"] = truth.temperature
        else:
            bio["temperature"] = HH_REFERENCE_TEMPERATURE
            temperature_known = False
    try:
        biophysics = Biophysics(**bio)
    except ConfigError as e:
        raise RecordingError(path, "/biophysics", str(e)) from None

    return Recording(time=time, voltage=arrays["/voltage"], current=arrays["/current"],
                     trace_names=names, biophysics=biophysics, source=source,
                     description=description, truth=truth, noise_sigma=noise_sigma,
                     noise_seed=noise_seed, temperature_known=temperature_known,
                     path=str(path), current_units=current_units, cell=cell,
                     metadata=metadata)


def _group(f, name, path):
    import h5py

    if name not in f:
        return None
    g = f[name]
    if not isinstance(g, h5py.Group):
        raise RecordingError(path, f.name.rstrip("/") + "/" + name, "expected a group")
    return g


def _read_cell(f, path) -> Cell | None:
    """The optional ``/cell`` group: one subgroup per parameter."""
    g = _group(f, "cell", path)
    if g is None:
        return None
    params = {}
    for name in g:
        field = f"/cell/{name}"
        if name not in CELL_PARAMETERS:
            raise RecordingError(path, field, "unknown cell parameter; expected one of "
                                 f"{', '.join(CELL_PARAMETERS)}")
        sub = _group(g, name, path)
        _check_units(sub.attrs, "units", CELL_PARAMETERS[name][0], path, f"{field}/units",
                     required=False)
        status = _attr_str(sub.attrs, "status", path, f"{field}/status")
        values = {k: _attr_float(sub.attrs, k, path, f"{field}/{k}", required=False)
                  for k in ("value", "lower", "upper", "start")}
        try:
            params[name] = CellParameter(name, status, **values)
        except ConfigError as e:
            raise RecordingError(path, field, str(e)) from None
    return Cell(params)


def _read_metadata(f, path) -> dict:
    """The optional ``/metadata`` group's attributes (numbers with checked units)."""
    g = _group(f, "metadata", path)
    if g is None:
        return {}
    out = {}
    for key in g.attrs:
        if key.endswith("_units"):
            continue
        field = f"/metadata/{key}"
        kind, unit, _ = METADATA.get(key, ("text", None, ""))
        if kind == "text":
            out[key] = _attr_str(g.attrs, key, path, field)
        elif kind == "sweeps":
            value = np.asarray(g.attrs[key])
            if value.ndim > 1 or value.dtype.kind not in "iu":
                raise RecordingError(path, field, "expected a 1-D array of integers, got "
                                     f"{value!r}")
            out[key] = [int(x) for x in value.reshape(-1)]
        else:
            out[key] = _attr_float(g.attrs, key, path, field)
            _check_units(g.attrs, f"{key}_units", unit, path, f"{field}_units",
                         required=False)
    try:
        return check_metadata(out)
    except ConfigError as e:
        raise RecordingError(path, "/metadata", str(e)) from None


# --- writing --------------------------------------------------------------------------


def _write(f, rec: Recording):
    import h5py

    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    f.attrs["source"] = rec.source
    f.attrs["description"] = rec.description
    for name, unit in DATASET_UNITS.items():
        data = {"/time": rec.time, "/voltage": rec.voltage, "/current": rec.current}[name]
        ds = f.create_dataset(name[1:], data=np.asarray(data, dtype=np.float64))
        ds.attrs["units"] = rec.current_units if name == "/current" else unit
    if rec.noise_sigma is not None:
        f["voltage"].attrs["noise_sigma"] = float(rec.noise_sigma)
    if rec.noise_seed is not None:
        f["voltage"].attrs["noise_seed"] = np.int64(rec.noise_seed)
    f.create_dataset("trace_names", data=list(rec.trace_names),
                     dtype=h5py.string_dtype("utf-8"))
    bg = f.create_group("biophysics")
    for name, value in rec.biophysics.as_dict().items():
        if name == "temperature" and not rec.temperature_known:
            continue
        bg.attrs[name] = float(value)
        bg.attrs[f"{name}_units"] = BIOPHYSICS_UNITS[name]
    if rec.truth is not None:
        tg = f.create_group("truth")
        tg.attrs["kinetics"] = rec.truth.kinetics
        tg.attrs["temperature"] = float(rec.truth.temperature)
        tg.attrs["temperature_units"] = "degC"
        tg.attrs["q10"] = float(rec.truth.q10)
        if rec.truth.integrator is not None:
            tg.attrs["integrator"] = rec.truth.integrator
        if rec.truth.gates is not None:
            tg.create_dataset("gates", data=rec.truth.gates)
        if rec.truth.voltage is not None:
            tg.create_dataset("voltage", data=rec.truth.voltage).attrs["units"] = "mV"
    if rec.cell is not None:
        cg = f.create_group("cell")
        for name, p in rec.cell.items():
            sub = cg.create_group(name)
            sub.attrs["status"] = p.status
            sub.attrs["units"] = p.unit
            for k in ("value", "lower", "upper", "start"):
                if getattr(p, k) is not None:
                    sub.attrs[k] = float(getattr(p, k))
    if rec.metadata:
        mg = f.create_group("metadata")
        for key, value in rec.metadata.items():
            kind, unit, _ = METADATA.get(key, ("text", None, ""))
            if kind == "text":
                mg.attrs[key] = value
            elif kind == "sweeps":
                mg.attrs[key] = np.asarray(value, dtype=np.int64)
            else:
                mg.attrs[key] = float(value)
                mg.attrs[f"{key}_units"] = unit


def write_recording(path, rec: Recording) -> Path:
    """Write ``rec`` to ``path`` atomically (HDF5, format ``hybridhh.recording`` v1).

    The data go to a temporary file in the same directory, which then replaces ``path``
    in one ``os.replace``; on any error the temporary file is removed and an existing
    ``path`` is left untouched. The parent directory is created if needed.

    Returns
    -------
    Path
        The path written.
    """
    import h5py

    if not isinstance(rec, Recording):
        raise ConfigError(f"write_recording needs a Recording, got {type(rec).__name__}")

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            _write(f, rec)

    return atomic_write(path, write)


# --- synthetic recordings -------------------------------------------------------------


def recording_from_trajectory(traj, biophysics: Biophysics, kinetics, noise_sigma: float = 0.0,
                              seed: int = 0, source: str = "hybridhh.simulation",
                              description: str = "") -> Recording:
    """A synthetic recording from a simulation, with its ground truth.

    Parameters
    ----------
    traj
        A :class:`hybridhh.simulation.Trajectory` (time ms, V mV, gates, current µA/cm²).
    biophysics
        The biophysics used for the simulation (stored in ``/biophysics``).
    kinetics
        The kinetics used; needs ``name``, ``temperature`` (°C) and ``q10`` attributes
        (as :class:`hybridhh.kinetics.HHKinetics` has), stored in ``/truth``.
    noise_sigma
        SD (mV) of Gaussian measurement noise added to V; 0 for none. The noise-free V is
        kept in ``/truth/voltage`` when noise is added.
    seed
        Seeds the noise (``numpy.random.default_rng([seed, 1])``, a stream distinct from
        the protocols' ``default_rng(seed)``).
    source, description
        Stored in the file's root attrs.
    """
    missing = [a for a in ("name", "temperature", "q10") if not hasattr(kinetics, a)]
    if missing:
        raise ConfigError(
            f"kinetics {type(kinetics).__name__} has no {', '.join(missing)} attribute(s); "
            "a synthetic recording records them as ground truth")
    if not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise ConfigError(f"noise sigma must be a finite value >= 0 mV, got {noise_sigma}")
    V = _to_numpy(traj.V)
    gates = _to_numpy(traj.gates)
    if noise_sigma > 0:
        rng = np.random.default_rng([int(seed), 1])
        measured = V + noise_sigma * rng.standard_normal(V.shape)
    else:
        measured = V
    truth = Truth(kinetics=str(kinetics.name), temperature=float(kinetics.temperature),
                  q10=float(kinetics.q10), gates=gates,
                  voltage=V if noise_sigma > 0 else None,
                  integrator=getattr(traj, "method", None))
    return Recording(time=np.asarray(traj.time, dtype=np.float64), voltage=measured,
                     current=np.asarray(traj.current, dtype=np.float64),
                     trace_names=tuple(traj.names), biophysics=biophysics, source=source,
                     description=description, truth=truth, noise_sigma=float(noise_sigma),
                     noise_seed=int(seed) if noise_sigma > 0 else None)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def simulate_recording(stimulus, biophysics: Biophysics | None = None, kinetics=None,
                       method: str = "exp_euler", dt: float | None = None,
                       noise_sigma: float = 0.0, seed: int = 0,
                       source: str = "hybridhh simulate", description: str = "") -> Recording:
    """Simulate the reference model under ``stimulus`` and package it as a recording.

    Parameters
    ----------
    stimulus
        :class:`hybridhh.protocols.Stimulus` (µA/cm² on a uniform grid in ms).
    biophysics
        Default :meth:`Biophysics.standard` (modern convention, 6.3 °C).
    kinetics
        Default: :class:`~hybridhh.kinetics.HHKinetics` in the modern convention at
        ``biophysics.temperature``.
    method, dt
        Integrator name and integration step (ms), as in :func:`hybridhh.simulation.simulate`.
    noise_sigma, seed, source, description
        As in :func:`recording_from_trajectory`.
    """
    from .kinetics import HHKinetics
    from .simulation import simulate

    bio = biophysics or Biophysics.standard()
    kin = kinetics or HHKinetics("modern", temperature=bio.temperature)
    traj = simulate(stimulus, kin, bio, method=method, dt=dt)
    return recording_from_trajectory(traj, bio, kin, noise_sigma=noise_sigma, seed=seed,
                                     source=source, description=description)


def truth_kinetics(rec: Recording):
    """The reference kinetics object named in ``rec.truth`` (at its temperature and q10).

    Returns ``None`` for a recording without ground truth.

    Raises
    ------
    RecordingError
        When ``/truth/kinetics`` names no built-in kinetics set.
    """
    if rec.truth is None:
        return None
    from .kinetics import get_kinetics

    try:
        return get_kinetics(rec.truth.kinetics, rec.truth.temperature, rec.truth.q10)
    except HybridHHError as e:
        raise RecordingError(rec.path or _IN_MEMORY, "/truth/kinetics", str(e)) from None

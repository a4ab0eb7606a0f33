"""Read NWB intracellular (icephys) current-clamp data as a recording in pA.

Needs the optional dependency ``pynwb`` (``pip install 'hybridhh[nwb]'``).

A sweep is a ``CurrentClampSeries`` (the response, V) with its
``CurrentClampStimulusSeries`` (the injected current). The pairs come from the file's
intracellular-recordings table when it has one (its rows, with each reference's
``idx_start`` and ``count``), else from ``sweep_number``: every current-clamp series in
``acquisition`` with the stimulus series of the same sweep number in ``stimulus``. Sweeps
are numbered by their series' ``sweep_number`` when every one has a distinct number, else by
the table's rows from 0.

Every conversion is explicit and stated in the description: data x ``conversion`` +
``offset`` gives the series' unit (volts, amperes); then V x1000 -> mV and A x1e12 -> pA;
time: sample k at k / ``rate`` s (or ``timestamps`` minus the first) x1000 -> ms from the
start of each series. Refused: a response without a stimulus series, a voltage-clamp
response, a stimulus on another time grid than its response, sweeps of different lengths
or rates, mixed current units.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ConfigError, RecordingError
from .recording import Recording

__all__ = ["read_nwb", "VOLTAGE_TO_MV", "CURRENT_TO_PA"]

#: mV per unit of a response series.
VOLTAGE_TO_MV = {"volts": 1000.0, "V": 1000.0, "mV": 1.0}
#: pA per unit of a stimulus series.
CURRENT_TO_PA = {"amperes": 1e12, "A": 1e12, "nA": 1e3, "pA": 1.0}


#: pynwb's warning when it overrides a series' declared unit
_IGNORED_UNIT = re.compile(r"Unit '(.*)' for (\w+) '(.*)' is ignored and will be set to '(.*)'")


def _pynwb():
    try:
        import pynwb
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("reading NWB files needs pynwb: pip install 'hybridhh[nwb]'") from None
    return pynwb


def _pairs(nwb, path) -> tuple[list[tuple], str]:
    """``[(response, stimulus, r_start, r_count, s_start, s_count)]`` and where the pairs
    came from."""
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries, VoltageClampSeries

    table = getattr(nwb, "intracellular_recordings", None)
    pairs = []
    if table is not None and len(table) > 0:
        responses = table.category_tables["responses"]["response"]
        stimuli = table.category_tables["stimuli"]["stimulus"]
        for row in range(len(table)):
            resp, stim = responses[row], stimuli[row]
            field = f"intracellular_recordings row {row}"
            if not _valid(resp):
                raise RecordingError(path, field, "has no response series")
            if isinstance(resp.timeseries, VoltageClampSeries):
                raise RecordingError(path, field, f"response {resp.timeseries.name!r} is "
                                     "voltage clamp; hybridhh reads current clamp")
            if not _valid(stim):
                raise RecordingError(path, field, f"response {resp.timeseries.name!r} has no "
                                     "stimulus series (a CurrentClampStimulusSeries is needed "
                                     "for the injected current)")
            if not isinstance(stim.timeseries, CurrentClampStimulusSeries):
                raise RecordingError(path, field, f"stimulus {stim.timeseries.name!r} is a "
                                     f"{type(stim.timeseries).__name__}, expected a "
                                     "CurrentClampStimulusSeries")
            pairs.append((resp.timeseries, stim.timeseries, int(resp.idx_start),
                          int(resp.count), int(stim.idx_start), int(stim.count)))
        return pairs, "the intracellular-recordings table"
    responses = [s for s in nwb.acquisition.values() if isinstance(s, CurrentClampSeries)]
    if not responses:
        raise RecordingError(path, "acquisition", "no CurrentClampSeries (current-clamp "
                             "response) in the file")
    stimuli = {}
    for s in nwb.stimulus.values():
        if isinstance(s, CurrentClampStimulusSeries) and s.sweep_number is not None:
            stimuli.setdefault(int(s.sweep_number), []).append(s)
    for r in responses:
        if r.sweep_number is None:
            raise RecordingError(path, f"acquisition/{r.name}", "no sweep_number and no "
                                 "intracellular-recordings table: its stimulus series cannot "
                                 "be found")
        match = [s for s in stimuli.get(int(r.sweep_number), [])
                 if s.electrode is None or r.electrode is None or s.electrode is r.electrode
                 or s.electrode.name == r.electrode.name]
        if len(match) != 1:
            raise RecordingError(path, f"acquisition/{r.name}",
                                 f"{'no' if not match else len(match)} "
                                 f"CurrentClampStimulusSeries with sweep_number "
                                 f"{r.sweep_number} in /stimulus; expected exactly one")
        n_r, n_s = len(r.data), len(match[0].data)
        pairs.append((r, match[0], 0, n_r, 0, n_s))
    return pairs, "sweep_number (no intracellular-recordings table)"


def _valid(ref) -> bool:
    """A table cell that references a series (pynwb marks a missing one with None or -1)."""
    if ref is None or getattr(ref, "timeseries", None) is None:
        return False
    start, count = getattr(ref, "idx_start", None), getattr(ref, "count", None)
    return start is not None and count is not None and start >= 0 and count > 0


def _electrode_name(series) -> str:
    e = getattr(series, "electrode", None)
    return "?" if e is None else str(e.name)


def _time(series, start, count, path) -> tuple[np.ndarray, float, float]:
    """ms from the first sample used, the sampling rate (Hz), that sample's time (s)."""
    if series.rate is not None:
        rate = float(series.rate)
        if not rate > 0:
            raise RecordingError(path, f"{series.name}/rate", f"expected > 0 Hz, got {rate}")
        t0 = float(series.starting_time or 0.0) + start / rate
        return np.arange(count, dtype=np.float64) / rate * 1000.0, rate, t0
    ts = np.asarray(series.timestamps[start:start + count], dtype=np.float64)
    if len(ts) < 2:
        raise RecordingError(path, f"{series.name}/timestamps", "fewer than 2 samples")
    step = np.diff(ts)
    dt = (ts[-1] - ts[0]) / (len(ts) - 1)
    if not dt > 0 or np.abs(step - dt).max() > 1e-6 * dt:
        raise RecordingError(path, f"{series.name}/timestamps", "not uniform: hybridhh needs "
                             "one sampling step")
    return (ts - ts[0]) * 1000.0, 1.0 / dt, float(ts[0])


def _values(series, start, count, table, path, what) -> tuple[np.ndarray, str]:
    unit = str(series.unit)
    if unit not in table:
        raise RecordingError(path, f"{series.name}/unit", f"{what} in {unit!r}; expected one "
                             f"of {', '.join(table)}")
    data = np.asarray(series.data[start:start + count], dtype=np.float64)
    if data.ndim != 1:
        raise RecordingError(path, f"{series.name}/data", f"expected 1-D data, got shape "
                             f"{data.shape}")
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    return (data * float(series.conversion) + offset) * table[unit], unit


def read_nwb(path, *, sweeps: Sequence[int] | None = None,
             window: tuple[float, float] | None = None, voltage_channel: int | None = None,
             current_channel: int | None = None, temperature: float | None = None,
             metadata: dict | None = None, source: str | None = None) -> Recording:
    """Read an NWB file's current-clamp sweeps as a recording in pA with an unknown cell.

    ``voltage_channel`` picks the electrode (index in name order) when the file has more
    than one; ``current_channel`` does not apply (each response has its own stimulus
    series). Metadata: source_file, sweeps, bridge_balance (MOhm, from the series'
    ``bridge_balance`` in ohms, when all the sweeps share one), electrode_filtering (the
    electrode's free-text ``filtering``). See :func:`hybridhh.importing.import_recording`
    for the other arguments and the errors.
    """
    pynwb = _pynwb()
    from .importing import apply_window, pa_recording, select_sweeps

    path = Path(path)
    if current_channel is not None:
        raise ConfigError(f"{path}: --current-channel is for ABF files; in NWB each response "
                          "has its own stimulus series")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            io = pynwb.NWBHDF5IO(str(path), "r")
            nwb = io.read()
    except Exception as e:  # pynwb/hdmf/h5py raise many types on malformed files
        raise RecordingError(path, None, f"cannot read as NWB ({type(e).__name__}: {e})"
                             ) from None
    for w in caught:
        m = _IGNORED_UNIT.search(str(w.message))
        if m:  # pynwb replaced a declared unit: the data's scale would be lost silently
            io.close()
            raise RecordingError(path, f"{m.group(3)}/unit", f"the {m.group(2)} declares unit "
                                 f"{m.group(1)!r}, which pynwb replaces by {m.group(4)!r} (NWB "
                                 "2.1 fixes the unit): mixed current units, the data's scale "
                                 "is ambiguous; store the data in the standard unit with a "
                                 "conversion factor")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    try:
        pairs, paired_by = _pairs(nwb, path)
        electrodes = sorted({_electrode_name(p[0]) for p in pairs})
        if voltage_channel is None:
            if len(electrodes) > 1:
                raise ConfigError(f"{path}: current-clamp data from {len(electrodes)} "
                                  f"electrodes ({', '.join(electrodes)}); choose one with "
                                  "--voltage-channel N (0.."
                                  f"{len(electrodes) - 1}, in this order)")
            electrode = electrodes[0]
        else:
            if not 0 <= voltage_channel < len(electrodes):
                raise RecordingError(path, f"electrode {voltage_channel}",
                                     f"no such electrode; the file has {len(electrodes)} "
                                     f"({', '.join(electrodes)})")
            electrode = electrodes[voltage_channel]
        pairs = [p for p in pairs if _electrode_name(p[0]) == electrode]
        numbers = [p[0].sweep_number for p in pairs]
        if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
            numbered, numbering = {int(n): p for n, p in zip(numbers, pairs, strict=True)}, \
                "sweep_number"
        else:
            numbered, numbering = dict(enumerate(pairs)), "table row"
        chosen = select_sweeps(path, sweeps, sorted(numbered))

        V, I, names, units = [], [], [], []
        time = rate = first = None
        bridge, bias = set(), set()
        for s in chosen:
            resp, stim, r0, rn, s0, sn = numbered[s]
            field = f"sweep {s} ({resp.name}, {stim.name})"
            t, r_rate, r_start = _time(resp, r0, rn, path)
            ts, s_rate, s_start = _time(stim, s0, sn, path)
            if rn != sn or not np.isclose(r_rate, s_rate, rtol=1e-9) \
                    or abs(r_start - s_start) > 0.5 / r_rate or not np.allclose(t, ts):
                raise RecordingError(path, field, f"the stimulus ({sn} samples at {s_rate:g} "
                                     f"Hz from {s_start:g} s) is not on the response's grid "
                                     f"({rn} samples at {r_rate:g} Hz from {r_start:g} s)")
            if time is None:
                time, rate, first = t, r_rate, s
            elif len(t) != len(time) or r_rate != rate:
                raise RecordingError(path, field, f"{len(t)} samples at {r_rate:g} Hz, sweep "
                                     f"{first} has {len(time)} at {rate:g} Hz: sweeps of "
                                     "different lengths cannot share one time grid; import "
                                     "them separately")
            v, v_unit = _values(resp, r0, rn, VOLTAGE_TO_MV, path, "voltage")
            i, i_unit = _values(stim, s0, sn, CURRENT_TO_PA, path, "current")
            units.append((s, i_unit, v_unit))
            V.append(v)
            I.append(i)
            names.append(f"sweep_{s}")
            bridge.add(getattr(resp, "bridge_balance", None))
            bias.add(getattr(resp, "bias_current", None))
        i_units = sorted({u[1] for u in units})
        if len(i_units) > 1:
            raise RecordingError(path, "stimulus units",
                                 "mixed current units across the sweeps (" + ", ".join(
                                     f"sweep {s}: {u}" for s, u, _ in units) + "); import "
                                 "sweeps of one unit at a time")
        filtering = ""
        for p in pairs:
            if p[0].electrode is not None and p[0].electrode.filtering:
                filtering = str(p[0].electrode.filtering)
                break
        version = pynwb.__version__
    finally:
        io.close()

    time, V, I = apply_window(path, time, window, np.stack(V), np.stack(I))
    v_unit, i_unit = units[0][2], i_units[0]
    meta = {}
    if len(bridge) == 1 and None not in bridge:
        meta["bridge_balance"] = float(next(iter(bridge))) / 1e6
    if filtering:
        meta["electrode_filtering"] = filtering
    meta.update(metadata or {})
    bias_text = ""
    if bias - {None}:
        bias_text = "; bias current (not in /current) " + ", ".join(
            f"{b * 1e12:g} pA" for b in sorted(bias - {None}))
    win = "" if window is None else f"; window {window[0]:g}..{window[1]:g} ms of the sweep"
    description = (f"{path.name} (NWB, read with pynwb {version}): {len(chosen)} sweep(s) "
                   f"paired by {paired_by}, numbered by {numbering}; electrode {electrode}"
                   f"{win}; time = sample / rate ({rate:g} Hz) s x1000 -> ms from each "
                   f"series' start; V = CurrentClampSeries data x conversion + offset in "
                   f"{v_unit}, x{VOLTAGE_TO_MV[v_unit]:g} -> mV; current = "
                   f"CurrentClampStimulusSeries data x conversion + offset in {i_unit}, "
                   f"x{CURRENT_TO_PA[i_unit]:g} -> pA{bias_text}")
    return pa_recording(path, time, V, I, names=names, sweeps=chosen,
                        description=description,
                        source=source or f"hybridhh import {path.name}",
                        temperature=temperature, metadata=meta)

"""Convert Axon Binary Format (ABF) current-clamp files to a :class:`Recording`.

Needs the optional dependency ``pyabf`` (``pip install 'hybridhh[abf]'``).

Every conversion is explicit; nothing is guessed:

* time: the sweep's own time axis, s -> ms (every sweep on the same grid, starting at 0);
* voltage: the voltage channel must be in mV (anything else is an error);
* current: the commanded waveform (``sweepC``, built by pyABF from the epoch table) or,
  with ``current_channel``, a recorded current channel (pA or nA) minus its baseline (the
  median over the holding stretch Clampex puts before the first epoch, the first 1/64 of
  the sweep);
* current density: ABF files store no membrane area, so the caller gives the area (cm²)
  or the total capacitance (pF, with 1 µF/cm²): ``I[µA/cm²] = I[pA] * 1e-6 / area`` or
  ``I[pA] / capacitance``;
* biophysics and temperature are not in ABF files: the caller passes them (the
  description of the recording says which values were given).

:func:`read_abf_pa` (``hybridhh import``) needs none of that: it keeps the current in pA
and marks every cell parameter unknown. Both readers refuse a commanded current without an
epoch table (a DAC waveform that is disabled, or one that pyabf cannot rebuild), sweeps of
different lengths and a window outside the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .biophysics import Biophysics
from .errors import ConfigError, RecordingError
from .recording import Recording

__all__ = ["read_abf", "read_abf_pa", "CURRENT_TO_PA"]

#: pA per unit of a current channel or command.
CURRENT_TO_PA = {"pA": 1.0, "nA": 1000.0}


def _load(path):
    try:
        import pyabf
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("reading ABF files needs pyabf: pip install 'hybridhh[abf]'") from None
    path = Path(path)
    if not path.is_file():
        raise RecordingError(path, None, "no such file")
    try:
        return pyabf.ABF(str(path))
    except Exception as e:  # pyabf raises bare Exceptions on malformed files
        raise RecordingError(path, None, f"cannot read as ABF ({e})") from None


def _command_check(abf, path, dac: int) -> str:
    """What the commanded current of ``dac`` is built from; RecordingError when it is not
    an epoch table pyabf can turn into a waveform."""
    field = f"DAC {dac} command"
    if dac >= len(abf.dacUnits):
        raise RecordingError(path, field, f"no such DAC (the file has {len(abf.dacUnits)}); "
                             "give a recorded current channel")
    if abf.abfVersion["major"] == 1:
        enable = abf._headerV1.nWaveformEnable[dac]
        source = abf._headerV1.nWaveformSource[dac]
    else:
        enable = abf._dacSection.nWaveformEnable[dac]
        source = abf._dacSection.nWaveformSource[dac]
    hint = ("the commanded current cannot be built from the protocol; give a recorded "
            "current channel (--current-channel N)")
    if not enable or source == 0:
        raise RecordingError(path, field, f"no epoch table (the DAC waveform is disabled): {hint}")
    if source == 2:
        raise RecordingError(path, field, "the waveform comes from a stimulus file, not an "
                             f"epoch table: {hint}")
    if source != 1:
        raise RecordingError(path, field, f"unknown waveform source {source}: {hint}")
    try:
        import pyabf.waveform

        epochs = pyabf.waveform.EpochTable(abf, dac).epochs
    except Exception as e:  # pyabf raises bare Exceptions on odd headers
        raise RecordingError(path, field, f"cannot read the epoch table ({e}): {hint}") from None
    if not epochs:
        raise RecordingError(path, field, f"the epoch table has no epochs: {hint}")
    return f"{len(epochs)} epoch(s)"


def _read_traces(path, sweeps, voltage_channel: int, current_channel: int | None) -> dict:
    """V (mV), I (pA) and the sweep time (ms from the sweep's start) of ``sweeps``."""
    abf = _load(path)
    path = Path(path)
    if not 0 <= voltage_channel < abf.channelCount:
        raise RecordingError(path, f"channel {voltage_channel}",
                             f"no such channel; the file has {abf.channelCount} "
                             f"(0..{abf.channelCount - 1})")
    v_unit = abf.adcUnits[voltage_channel]
    if v_unit != "mV":
        raise RecordingError(path, f"channel {voltage_channel}", f"voltage channel in "
                             f"{v_unit!r}; expected 'mV' (is this a current-clamp file?)")
    if current_channel is None:
        i_unit = abf.dacUnits[voltage_channel] if voltage_channel < len(abf.dacUnits) else "?"
        epochs = _command_check(abf, path, voltage_channel)
        what = (f"commanded current (DAC {voltage_channel}, built from the protocol's epoch "
                f"table, {epochs}, by pyabf sweepC; the file records no current)")
    else:
        if not 0 <= current_channel < abf.channelCount:
            raise RecordingError(path, f"channel {current_channel}",
                                 f"no such channel; the file has {abf.channelCount} "
                                 f"(0..{abf.channelCount - 1})")
        if current_channel == voltage_channel:
            raise RecordingError(path, f"channel {current_channel}",
                                 "is the voltage channel; choose the current channel")
        i_unit = abf.adcUnits[current_channel]
        what = (f"recorded current (channel {current_channel}, minus its baseline: the median "
                "of the first 1/64 of each sweep, Clampex's holding stretch)")
    if i_unit not in CURRENT_TO_PA:
        raise RecordingError(path, "current", f"current in {i_unit!r}; expected one of "
                             f"{', '.join(CURRENT_TO_PA)}")
    to_pa = CURRENT_TO_PA[i_unit]

    from .importing import select_sweeps

    sweeps = select_sweeps(path, sweeps, abf.sweepList)
    V, I, names = [], [], []
    time = first = None
    for s in sweeps:
        abf.setSweep(s, channel=voltage_channel)
        t = np.asarray(abf.sweepX, dtype=np.float64) * 1000.0
        if time is None:
            time, first = t, s
        elif len(t) != len(time):
            raise RecordingError(path, f"sweep {s}", f"{len(t)} samples, sweep {first} has "
                                 f"{len(time)}: sweeps of different lengths cannot share one "
                                 "time grid; import them separately")
        elif not np.array_equal(t, time):
            raise RecordingError(path, f"sweep {s}", f"time axis differs from sweep {first}'s")
        v = np.asarray(abf.sweepY, dtype=np.float64)
        if current_channel is None:
            i_pa = np.asarray(abf.sweepC, dtype=np.float64) * to_pa
        else:
            abf.setSweep(s, channel=current_channel)
            i_pa = np.asarray(abf.sweepY, dtype=np.float64) * to_pa
            i_pa = i_pa - np.median(i_pa[: max(len(i_pa) // 64, 1)])
        if len(i_pa) != len(v) or not np.all(np.isfinite(i_pa)):
            raise RecordingError(path, f"sweep {s} current", "pyabf gave no finite current "
                                 "waveform of the sweep's length (is the protocol's command "
                                 "readable?)")
        V.append(v)
        I.append(i_pa)
        names.append(f"sweep_{s}")
    conv = f"{i_unit} -> pA x{to_pa:g}" if to_pa != 1 else "pA as stored"
    lowpass = None
    try:
        f = float(abf._adcSection.fTelegraphFilter[voltage_channel])
        lowpass = f / 1000.0 if math.isfinite(f) and f > 0 else None
    except (AttributeError, IndexError, TypeError):
        pass
    return {"abf": abf, "time": time, "V": np.stack(V), "I": np.stack(I), "names": names,
            "sweeps": sweeps, "what": what, "i_unit": i_unit, "conversion": conv,
            "lowpass": lowpass}


def _sweep_text(sweeps) -> str:
    from .importing import _ranges

    return f"sweeps {_ranges(sweeps) if sorted(sweeps) == list(sweeps) else sweeps} " \
           f"({len(sweeps)})"


def read_abf(path, biophysics: Biophysics, *, area: float | None = None,
             capacitance: float | None = None, sweeps: Sequence[int] | None = None,
             voltage_channel: int = 0, current_channel: int | None = None,
             window: tuple[float, float] | None = None, source: str | None = None
             ) -> Recording:
    """Read an ABF current-clamp file as a recording in µA/cm² (one trace per sweep).

    Parameters
    ----------
    path
        The ``.abf`` file.
    biophysics
        The known part of the cell, with its temperature (°C); stored as given.
    area
        Membrane area, cm². Give exactly one of ``area`` and ``capacitance``.
    capacitance
        Total membrane capacitance, pF (area = capacitance * 1e-6 cm² at 1 µF/cm²).
    sweeps
        Sweep numbers (default all).
    voltage_channel
        ADC channel holding V (must be in mV).
    current_channel
        ADC channel of a recorded current (pA or nA; its baseline is subtracted); default
        ``None`` uses the commanded current of the voltage channel's DAC (``sweepC``, pA).
    window
        ``(start, stop)`` in ms within the sweep: keep samples with ``start <= t <= stop``
        (time then starts at ``start``, not 0). Default: the whole sweep.
    source
        Default ``"abf:<file name>"``.

    Returns
    -------
    Recording
        V in mV, current density in µA/cm², time in ms.
    """
    if (area is None) == (capacitance is None):
        raise ConfigError("give exactly one of area (cm^2) and capacitance (pF): ABF files "
                          "store neither, and both convert pA to uA/cm^2")
    if area is not None and not (math.isfinite(area) and area > 0):
        raise ConfigError(f"area must be > 0 cm^2, got {area}")
    if capacitance is not None and not (math.isfinite(capacitance) and capacitance > 0):
        raise ConfigError(f"capacitance must be > 0 pF, got {capacitance}")
    area_cm2 = area if area is not None else capacitance * 1e-6
    from .importing import apply_window

    r = _read_traces(path, sweeps, voltage_channel, current_channel)
    path, abf, sweeps = Path(path), r["abf"], r["sweeps"]
    time, V, I = apply_window(path, r["time"], window, r["V"], r["I"] * 1e-6 / area_cm2)
    size = f"area {area:g} cm^2" if area is not None else f"capacitance {capacitance:g} pF"
    description = (f"{path.name}: protocol {abf.protocol!r}, recorded {abf.abfDateTime}, "
                   f"sweeps {sweeps[0]}..{sweeps[-1]} ({len(sweeps)}); current = "
                   f"{r['what']}, {r['i_unit']} -> uA/cm^2 with {size}; biophysics and "
                   "temperature given by the user, not in the file")
    return Recording(time=time, voltage=V, current=I, trace_names=r["names"],
                     biophysics=biophysics, source=source or f"abf:{path.name}",
                     description=description)


def read_abf_pa(path, *, sweeps: Sequence[int] | None = None,
                window: tuple[float, float] | None = None, voltage_channel: int | None = None,
                current_channel: int | None = None, temperature: float | None = None,
                metadata: dict | None = None, source: str | None = None) -> Recording:
    """Read an ABF current-clamp file as a recording in pA with an unknown cell.

    No area, capacitance or biophysics needed: the current stays in pA (nA x1000), every
    cell parameter is unknown (:func:`hybridhh.importing.pa_recording`), the temperature
    is ``temperature`` (°C) or absent. Time: pyabf's ``sweepX`` s x1000 -> ms, from the
    sweep's start (or the window's first sample); V: the voltage channel as stored (mV).
    Without ``current_channel`` the current is the command rebuilt from the protocol's
    epoch table (pyabf ``sweepC``), as the description says. Metadata: source_file,
    sweeps, lowpass (kHz, the telegraphed filter of the voltage channel when the header
    has one), and ``metadata``. See :func:`hybridhh.importing.import_recording` for the
    arguments and errors.
    """
    from .importing import apply_window, pa_recording

    voltage_channel = 0 if voltage_channel is None else int(voltage_channel)
    r = _read_traces(path, sweeps, voltage_channel, current_channel)
    path, abf = Path(path), r["abf"]
    time, V, I = apply_window(path, r["time"], window, r["V"], r["I"])
    win = "" if window is None else f"; window {window[0]:g}..{window[1]:g} ms of the sweep"
    description = (f"{path.name} (ABF {abf.abfVersionString}): protocol {abf.protocol!r}, "
                   f"recorded {abf.abfDateTime}, {_sweep_text(r['sweeps'])}{win}; "
                   f"time = pyabf sweepX s x1000 -> ms from the sweep start; V = channel "
                   f"{voltage_channel} in mV as stored; current = {r['what']}, "
                   f"{r['conversion']}")
    meta = {"lowpass": r["lowpass"]} if r["lowpass"] is not None else {}
    comment = str(getattr(abf, "abfFileComment", "") or "").strip()
    if comment:
        meta["file_comment"] = comment
    meta.update(metadata or {})
    return pa_recording(path, time, V, I, names=r["names"], sweeps=r["sweeps"],
                        description=description, source=source or f"hybridhh import {path.name}",
                        temperature=temperature, metadata=meta)

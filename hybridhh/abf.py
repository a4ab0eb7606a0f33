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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .biophysics import Biophysics
from .errors import ConfigError, RecordingError
from .recording import Recording

__all__ = ["read_abf", "CURRENT_TO_PA"]

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


def read_abf(path, biophysics: Biophysics, *, area: float | None = None,
             capacitance: float | None = None, sweeps: Sequence[int] | None = None,
             voltage_channel: int = 0, current_channel: int | None = None,
             window: tuple[float, float] | None = None, source: str | None = None
             ) -> Recording:
    """Read an ABF current-clamp file as a recording (one trace per sweep).

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
        ``(start, stop)`` in ms: keep samples with ``start <= t <= stop`` (time then starts
        at ``start``, not 0). Default: the whole sweep.
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
    abf = _load(path)
    path = Path(path)

    if not 0 <= voltage_channel < abf.channelCount:
        raise RecordingError(path, f"channel {voltage_channel}",
                             f"no such channel; the file has {abf.channelCount}")
    v_unit = abf.adcUnits[voltage_channel]
    if v_unit != "mV":
        raise RecordingError(path, f"channel {voltage_channel}", f"voltage channel in "
                             f"{v_unit!r}; expected 'mV' (is this a current-clamp file?)")
    if current_channel is None:
        i_unit = abf.dacUnits[voltage_channel] if voltage_channel < len(abf.dacUnits) else "?"
        what = f"commanded current (DAC {voltage_channel})"
    else:
        if not 0 <= current_channel < abf.channelCount:
            raise RecordingError(path, f"channel {current_channel}",
                                 f"no such channel; the file has {abf.channelCount}")
        i_unit = abf.adcUnits[current_channel]
        what = f"recorded current (channel {current_channel}, baseline subtracted)"
    if i_unit not in CURRENT_TO_PA:
        raise RecordingError(path, "current", f"current in {i_unit!r}; expected one of "
                             f"{', '.join(CURRENT_TO_PA)}")
    to_pa = CURRENT_TO_PA[i_unit]

    sweeps = list(abf.sweepList) if sweeps is None else [int(s) for s in sweeps]
    bad = [s for s in sweeps if s not in abf.sweepList]
    if bad or not sweeps:
        raise ConfigError(f"sweeps {bad or sweeps} not in {path.name} (it has sweeps "
                          f"0..{abf.sweepCount - 1})")

    V, I, names = [], [], []
    time = None
    for s in sweeps:
        abf.setSweep(s, channel=voltage_channel)
        t = np.asarray(abf.sweepX, dtype=np.float64) * 1000.0
        if time is None:
            time = t
        elif len(t) != len(time) or not np.array_equal(t, time):
            raise RecordingError(path, f"sweep {s}", "time axis differs from the first sweep")
        v = np.asarray(abf.sweepY, dtype=np.float64)
        if current_channel is None:
            i_pa = np.asarray(abf.sweepC, dtype=np.float64) * to_pa
        else:
            abf.setSweep(s, channel=current_channel)
            i_pa = np.asarray(abf.sweepY, dtype=np.float64) * to_pa
            i_pa = i_pa - np.median(i_pa[: max(len(i_pa) // 64, 1)])
        V.append(v)
        I.append(i_pa * 1e-6 / area_cm2)
        names.append(f"sweep_{s}")
    V, I = np.stack(V), np.stack(I)
    if window is not None:
        start, stop = window
        keep = (time >= start) & (time <= stop)
        if keep.sum() < 2:
            raise ConfigError(f"window {window} ms keeps fewer than 2 samples of the "
                              f"{time[0]:g}..{time[-1]:g} ms sweep")
        time, V, I = time[keep], V[:, keep], I[:, keep]

    size = f"area {area:g} cm^2" if area is not None else f"capacitance {capacitance:g} pF"
    description = (f"{path.name}: protocol {abf.protocol!r}, recorded {abf.abfDateTime}, "
                   f"sweeps {sweeps[0]}..{sweeps[-1]} ({len(sweeps)}); current = {what}, "
                   f"{i_unit} -> uA/cm^2 with {size}; biophysics and temperature given by "
                   "the user, not in the file")
    return Recording(time=time, voltage=V, current=I, trace_names=names,
                     biophysics=biophysics, source=source or f"abf:{path.name}",
                     description=description)

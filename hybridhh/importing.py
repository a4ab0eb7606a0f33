"""``hybridhh import``: a real current-clamp file (ABF or NWB) as a recording in pA.

:func:`import_recording` reads ``.abf`` (pyabf, :func:`hybridhh.abf.read_abf_pa`) and
``.nwb`` (pynwb, :func:`hybridhh.nwb.read_nwb`) files without asking for anything the
file does not hold: the current stays in pA (converted explicitly from nA or A), every
cell parameter (C_total, g's, E's) is ``unknown`` with its default bounds
(:class:`hybridhh.cell.Cell`), C_m is the convention 1 µF/cm², the temperature is the
caller's or absent. Every conversion is stated in the recording's description, and the
source file and sweep numbers go to its metadata.

The helpers here (:func:`select_sweeps`, :func:`apply_window`, :func:`pa_recording`) are
shared by the two readers so both check and say the same things.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .biophysics import Biophysics
from .cell import PARAMETERS, Cell, CellParameter
from .constants import HH_REFERENCE_TEMPERATURE
from .errors import ConfigError, RecordingError
from .recording import Recording

__all__ = ["IMPORTERS", "import_recording", "parse_sweeps", "select_sweeps", "apply_window",
           "pa_recording"]

#: File extension -> (reader, what it needs).
IMPORTERS = {".abf": ("hybridhh.abf", "read_abf_pa", "pyabf: pip install 'hybridhh[abf]'"),
             ".nwb": ("hybridhh.nwb", "read_nwb", "pynwb: pip install 'hybridhh[nwb]'")}


def import_recording(path, *, sweeps: Sequence[int] | None = None,
                     window: tuple[float, float] | None = None,
                     voltage_channel: int | None = None, current_channel: int | None = None,
                     temperature: float | None = None, metadata: dict | None = None,
                     known: dict | None = None) -> Recording:
    """Read an ABF or NWB current-clamp file as a recording in pA (one trace per sweep).

    Parameters
    ----------
    path
        ``.abf`` or ``.nwb`` file.
    sweeps
        Sweep numbers to keep, in that order (default all). ABF: pyabf's sweep numbers;
        NWB: the sweep numbers of the file (``sweep_number``, else the rows of its
        intracellular-recordings table, from 0).
    window
        ``(start, stop)``, ms from the start of the sweep: keep ``start <= t <= stop``
        (time then starts at the first kept sample). Must lie within the sweep.
    voltage_channel, current_channel
        ABF channels: the voltage (mV; default 0) and, optionally, a recorded current
        (pA or nA, baseline subtracted) used instead of the commanded waveform. NWB: the
        index of the series' electrode (``voltage_channel`` only; default: the only one).
    temperature
        Recording temperature, °C, when known (not stored in ABF files; NWB's
        ``icephys`` does not standardise it). Default: absent.
    metadata
        Extra metadata (:func:`hybridhh.metadata.check_metadata`), e.g. liquid junction
        potential or bridge balance; merged over what the file gives.
    known
        ``{name: value}`` of cell parameters the caller knows (C_total pF, g's mS/cm²,
        E's mV): marked known (a fit keeps them fixed); the others stay unknown.

    Raises
    ------
    RecordingError
        A missing or unreadable file, an unknown extension, a sweep out of range (saying
        how many there are), a window outside the sweep, a channel out of range, a
        command with no epoch table, an NWB response without its stimulus, mixed current
        units, sweeps of different lengths.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMPORTERS:
        raise RecordingError(path, None, f"unknown file type {path.suffix!r}; hybridhh "
                             f"import reads {', '.join(IMPORTERS)} files")
    if not path.is_file():
        raise RecordingError(path, None, "no such file")
    if temperature is not None and not math.isfinite(temperature):
        raise ConfigError(f"temperature must be a finite number of degC, got {temperature}")
    import importlib

    cell = _known_cell(known)
    module, name, _ = IMPORTERS[ext]
    reader = getattr(importlib.import_module(module), name)
    rec = reader(path, sweeps=sweeps, window=window, voltage_channel=voltage_channel,
                 current_channel=current_channel, temperature=temperature,
                 metadata=metadata)
    if cell is None:
        return rec
    given = ", ".join(f"{n} = {p.value:g} {p.unit}" for n, p in cell.items()
                      if p.status == "known")
    return dataclasses.replace(rec, cell=cell,
                               description=f"{rec.description}; known (given by the user): "
                                           f"{given}")


def _known_cell(known) -> Cell | None:
    """Every parameter unknown but those of ``known`` (name -> value), checked now."""
    if not known:
        return None
    unknown = set(known) - set(PARAMETERS)
    if unknown:
        raise ConfigError(f"known cell parameter(s) {', '.join(sorted(unknown))}: not a cell "
                          f"parameter; use {', '.join(PARAMETERS)}")
    return Cell({n: CellParameter(n, "known", value=known[n]) if n in known
                 else CellParameter(n, "unknown") for n in PARAMETERS})


def parse_sweeps(text: str) -> list[int]:
    """``"0,2,4"``, ``"0-5"`` (inclusive) or a mix (``"0-3,8"``) -> sweep numbers.

    Raises :class:`ConfigError` for anything else (a negative number, a reversed range).
    """
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        a, sep, b = part.partition("-")
        try:
            lo = int(a)
            hi = int(b) if sep else lo
        except ValueError:
            raise ConfigError(f"sweeps {text!r}: expected numbers like 0,2,4 or a range "
                              "like 0-5") from None
        if lo < 0 or hi < lo:
            raise ConfigError(f"sweeps {text!r}: {part!r} is not a range of sweep numbers "
                              ">= 0 (low-high, high >= low)")
        out.extend(range(lo, hi + 1))
    return out


def select_sweeps(path, requested: Sequence[int] | None, available: Sequence[int]) -> list[int]:
    """The requested sweep numbers (default all), each checked against ``available``."""
    available = list(available)
    if not available:
        raise RecordingError(path, "sweeps", "the file has no sweeps")
    if requested is None:
        return available
    requested = [int(s) for s in requested]
    if not requested:
        raise ConfigError(f"{path}: no sweeps chosen")
    twice = sorted({s for s in requested if requested.count(s) > 1})
    if twice:
        raise ConfigError(f"{path}: sweep(s) {', '.join(map(str, twice))} chosen more than "
                          "once; each sweep is one trace")
    bad = [s for s in requested if s not in available]
    if bad:
        raise RecordingError(path, "sweeps",
                             f"sweep(s) {', '.join(map(str, bad))} out of range: the file has "
                             f"{len(available)} sweep(s), numbered {_ranges(available)}")
    return requested


def _ranges(numbers) -> str:
    numbers = sorted(numbers)
    if len(numbers) == 1:
        return str(numbers[0])
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}..{numbers[-1]}"
    return ", ".join(map(str, numbers))


def apply_window(path, time: np.ndarray, window, *arrays: np.ndarray):
    """Keep ``start <= t <= stop`` (ms) of ``time`` and of each ``[n, T]`` array.

    ``time`` is measured from the start of the sweep; a sample within 1e-6 of a step of
    START or STOP counts as on it (times converted from s carry rounding). Raises
    :class:`RecordingError` (field ``window``) for a window that is not ordered or lies
    outside the sweep, or keeps fewer than 2 samples.
    """
    if window is None:
        return (time, *arrays)
    start, stop = (float(x) for x in window)
    t0, t1 = float(time[0]), float(time[-1])
    eps = 1e-6 * (t1 - t0) / max(len(time) - 1, 1)  # sample times are rounded (s -> ms)
    if not (math.isfinite(start) and math.isfinite(stop) and start < stop):
        raise RecordingError(path, "window", f"expected START < STOP (ms), got {start:g} "
                             f"{stop:g}")
    if start < t0 - eps or stop > t1 + eps:
        raise RecordingError(path, "window", f"{start:g}..{stop:g} ms lies outside the sweep "
                             f"({t0:g}..{t1:g} ms)")
    keep = (time >= start - eps) & (time <= stop + eps)
    if keep.sum() < 2:
        raise RecordingError(path, "window", f"{start:g}..{stop:g} ms keeps fewer than 2 "
                             f"samples of the {t0:g}..{t1:g} ms sweep")
    return (time[keep], *(a[:, keep] for a in arrays))


def pa_recording(path, time, voltage, current, *, names, sweeps, description: str,
                 source: str, temperature: float | None, metadata: dict | None = None
                 ) -> Recording:
    """A recording in pA of a cell with every parameter unknown (default bounds).

    ``time`` ms, ``voltage`` mV, ``current`` pA; ``/biophysics`` holds the modern HH
    values with C_m = 1 µF/cm² only because the format requires the group: ``/cell``
    marks all seven parameters unknown, so a fit estimates them.
    """
    known = temperature is not None
    bio = Biophysics.standard("modern", temperature if known else HH_REFERENCE_TEMPERATURE)
    meta = {"source_file": Path(path).name, "sweeps": list(sweeps), **(metadata or {})}
    temp_text = (f"temperature {temperature:g} degC given by the user" if known
                 else "temperature unknown (not in the file, not given)")
    description = (f"{description}; {temp_text}; cell parameters C_total, g_Na, g_K, g_L, "
                   "E_Na, E_K, E_L unknown (/cell), C_m = 1 uF/cm^2 by convention, "
                   "/biophysics holds placeholders")
    return Recording(time=time, voltage=voltage, current=current, trace_names=names,
                     biophysics=bio, source=source, description=description,
                     temperature_known=known, current_units="pA", cell=Cell.unknown(),
                     metadata=meta)

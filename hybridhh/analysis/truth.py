"""The reference kinetics a fit is compared with: :func:`resolve_truth` -> :class:`TruthSpec`.

A truth is a *name* of a built-in kinetics set (``"hh_modern"``, ``"hh1952"``...; at the
recording's temperature unless ``"name@T"`` or ``temperature=`` says otherwise), a
recording file with a ``/truth`` group, any kinetics object, or ``None``: then the fitted
recording's own ``/truth`` when it has one, else no truth (real data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["TruthSpec", "resolve_truth"]


@dataclass(frozen=True)
class TruthSpec:
    """A resolved reference kinetics set.

    Attributes
    ----------
    kinetics
        The kinetics object (``rates(V) -> (alpha, beta)``).
    label
        Human-readable, e.g. ``"hh_modern at 6.3 °C"``.
    info
        JSON-serialisable description: ``spec`` (what was asked for), ``kind`` (``name``,
        ``file``, ``recording``, ``object``), ``kinetics``, ``temperature`` (°C), ``q10``,
        ``file`` (when read from one).
    """

    kinetics: object
    label: str
    info: dict


def _kinetics_info(kin) -> dict:
    out = {"kinetics": str(getattr(kin, "name", type(kin).__name__))}
    for key in ("temperature", "q10"):
        v = getattr(kin, key, None)
        if isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def _label(kin) -> str:
    info = _kinetics_info(kin)
    t = info.get("temperature")
    return info["kinetics"] + (f" at {t:g} °C" if t is not None else "")


def resolve_truth(truth, temperature: float | None = None, recording=None) -> TruthSpec | None:
    """The reference kinetics for ``truth``.

    Parameters
    ----------
    truth
        ``None``: the ``/truth`` of ``recording`` if it has one, else ``None``.
        A name of a built-in kinetics set (:func:`hybridhh.kinetics.get_kinetics`),
        optionally with a temperature as ``"name@T"`` (°C). A path to a recording file
        (``.h5``) with a ``/truth`` group, or a :class:`~hybridhh.recording.Recording`
        with one. Or any kinetics object (used as it is).
    temperature
        °C for a named set (overrides ``@T``) or to re-evaluate a file's truth at another
        temperature. Default: ``@T``, else the temperature of ``recording`` (its
        biophysics), else 6.3 °C.
    recording
        The fitted :class:`~hybridhh.recording.Recording` (default truth and temperature).

    Raises
    ------
    ConfigError
        For a name that is neither a built-in set nor an existing file, a bad ``@T``, or a
        file without ``/truth``.
    """
    if truth is None:
        return _from_recording(recording, temperature)
    if hasattr(truth, "rates") and not isinstance(truth, (str, Path)):
        return TruthSpec(truth, _label(truth), {"spec": None, "kind": "object",
                                                **_kinetics_info(truth)})
    from ..recording import Recording

    if isinstance(truth, Recording):
        return _from_truth_recording(truth, temperature, truth.path)
    if not isinstance(truth, (str, Path)):
        raise ConfigError(f"truth must be a kinetics name, a recording (file or Recording) "
                          f"or a kinetics object, got {type(truth).__name__}")
    text = str(truth)
    if Path(text).is_file():
        return _from_file(text, temperature)
    return _from_name(text, temperature, recording)


def _recording_kinetics(rec, temperature: float | None):
    """The ``/truth`` kinetics of ``rec``, at ``temperature`` (°C) when given."""
    from ..kinetics import get_kinetics
    from ..recording import truth_kinetics

    kin = truth_kinetics(rec)
    if temperature is not None:
        kin = get_kinetics(rec.truth.kinetics, temperature, rec.truth.q10)
    return kin


def _from_recording(recording, temperature: float | None) -> TruthSpec | None:
    """The fitted recording's own ``/truth`` (None without one)."""
    if recording is None or recording.truth is None:
        return None
    kin = _recording_kinetics(recording, temperature)
    return TruthSpec(kin, _label(kin) + " (the recording's /truth)",
                     {"spec": None, "kind": "recording", **_kinetics_info(kin),
                      "file": recording.path})


def _from_file(text: str, temperature: float | None) -> TruthSpec:
    """The ``/truth`` of the recording file named ``text``."""
    from ..recording import read_recording

    return _from_truth_recording(read_recording(Path(text)), temperature, text)


def _from_truth_recording(rec, temperature: float | None, spec: str | None) -> TruthSpec:
    """The ``/truth`` of a recording given as the truth (read from the file ``spec``, or a
    :class:`~hybridhh.recording.Recording` object)."""
    where = repr(spec) if spec is not None else "recording"
    if rec.truth is None:
        raise ConfigError(f"truth {where}: it has no /truth group (real data?), so "
                          "it names no reference kinetics; give a kinetics name instead, "
                          "e.g. hh_modern")
    kin = _recording_kinetics(rec, temperature)
    name = Path(spec).name if spec is not None else "the given recording"
    return TruthSpec(kin, _label(kin) + f" (/truth of {name})",
                     {"spec": spec, "kind": "file", **_kinetics_info(kin),
                      "file": None if spec is None else str(spec)})


def _from_name(text: str, temperature: float | None, recording) -> TruthSpec:
    """A built-in kinetics set, ``NAME`` or ``NAME@T`` (T in °C)."""
    from ..kinetics import get_kinetics

    name, at, temp_text = text.partition("@")
    if at:
        try:
            t_at = float(temp_text)
        except ValueError:
            t_at = float("nan")
        if not math.isfinite(t_at):
            raise ConfigError(f"truth {text!r}: expected NAME@TEMPERATURE with a temperature in "
                              f"degC, e.g. hh_modern@6.3")
    else:
        t_at = None
    if temperature is None:
        temperature = t_at
    if temperature is None:
        temperature = (recording.biophysics.temperature if recording is not None else 6.3)
    try:
        kin = get_kinetics(name, temperature)
    except ConfigError as e:
        looks_like_file = text.endswith((".h5", ".hdf5")) or "/" in text
        what = "no such file" if looks_like_file else str(e)
        raise ConfigError(f"truth {text!r}: {what}; give a built-in kinetics name "
                          f"(hh_modern, hh1952, neuron_hh, hh; optionally NAME@degC) or a "
                          f"recording file with /truth") from None
    return TruthSpec(kin, _label(kin), {"spec": text, "kind": "name", **_kinetics_info(kin)})

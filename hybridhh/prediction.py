"""``predict(run_dir, data) -> Recording``: the fitted cell driven by another recording's stimuli.

A fit learns the kinetics of one cell (and, for a real recording, some of its cell
parameters); :func:`predict` runs that cell under the injected current of any recording
of it (another protocol, other sweeps, the training data themselves), on that
recording's time grid and from its first sample, exactly as the fit's own free run does
(:mod:`hybridhh.fitting.freerun`: V starts at the recorded V[0] with the model's
steady-state gates there; nothing recorded is fed back). The result is a recording with
the same trace names, time (ms) and current (in the data's own units) and the predicted
V (mV).

The cell is :func:`fitted_cell`: the run's ``result.json`` ``"biophysics"`` (what the fit
estimated, with ``C_total`` in pF for a recording in pA) when it has them, else the
biophysics the run was fitted with (``config.json``, ``data.biophysics``; no
``C_total``). A current in pA becomes a density by I[µA/cm²] = I[pA] / C_total[pF]
(the convention C_m = 1 µF/cm²: pA/pF = µA/µF), so a recording in pA needs a run that
knows C_total.

A prediction inherits the fit's quality verdict (``result.json`` ``"quality"``,
:mod:`hybridhh.fitting.quality`): a ``suspect`` or ``failed`` fit adds a note naming the run,
the verdict and its first reason, and the prediction's description records the verdict.
"""

from __future__ import annotations

import dataclasses
import math
import warnings as _warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .biophysics import Biophysics
from .errors import ConfigError, RecordingError, RunDirError, SimulationError

__all__ = ["FittedCell", "fitted_cell", "predict", "predict_cell", "cell_trace_data",
           "as_recording", "DENSITY", "PA"]

#: The current units a recording may state (``Recording.current_units``).
DENSITY = "uA/cm^2"
PA = "pA"
#: Largest difference (°C) between the data's and the fit's temperature that passes
#: without a note (the learned rates have no temperature dependence of their own).
TEMPERATURE_TOLERANCE = 0.5


@dataclass(frozen=True)
class FittedCell:
    """The cell a run fitted its kinetics with.

    Attributes
    ----------
    biophysics : Biophysics
        C_m (µF/cm²), g_Na, g_K, g_L (mS/cm²), E_Na, E_K, E_L (mV), temperature (°C).
    C_total : float or None
        Total membrane capacitance, pF: the scale of a current in pA (I / C_total is the
        density in µA/cm² with C_m = 1 µF/cm²). None when the run has none (fitted to a
        current density, or saved before the fitter wrote ``"biophysics"``).
    source : str
        Where the numbers come from: ``"result.json"`` (the fit's cell, estimated where
        the fit freed them) or ``"config.json"`` (the biophysics the run was fitted with).
    run_dir : Path
    quality : dict or None
        The fit's quality verdict (``result.json`` ``"quality"``: ``verdict``, ``reasons``,
        ...); None for a run saved before the verdict existed or without a result.json.
    """

    biophysics: Biophysics
    C_total: float | None
    source: str
    run_dir: Path
    quality: dict | None = None

    def as_dict(self) -> dict:
        """``{C_m, g_Na, ..., temperature, C_total, source}`` (units as the attributes)."""
        return {**self.biophysics.as_dict(), "C_total": self.C_total, "source": self.source}

    def density(self, current, units: str, where) -> np.ndarray:
        """``current`` (in ``units``: ``"uA/cm^2"`` or ``"pA"``) as a density, µA/cm².

        Raises :class:`ConfigError` naming the run for pA without a ``C_total``, and
        :class:`RecordingError` naming ``where`` (the recording) for another unit.
        """
        current = np.asarray(current, dtype=np.float64)
        if units == DENSITY:
            return current
        if units == PA:
            if self.C_total is None:
                raise ConfigError(
                    f"{where}: the current is in pA, which needs the cell's total capacitance "
                    f"C_total (pF) to become a density, and run {self.run_dir} has none "
                    f"({self.run_dir / 'result.json'} has no \"biophysics\" C_total: the run "
                    "was fitted to a current density, or by an older hybridhh); predict a "
                    "recording in uA/cm^2 with this run, or use a run fitted to pA data")
            return current / self.C_total
        raise RecordingError(where, "/current/units",
                             f"unknown unit {units!r}; expected {DENSITY!r} or {PA!r}")


def fitted_cell(run_dir) -> FittedCell:
    """The cell of the run in ``run_dir`` (:class:`FittedCell`).

    ``result.json`` ``"biophysics"`` when present (and its ``C_total``, pF), else
    ``config.json`` ``data.biophysics`` with ``C_total`` None. Raises
    :class:`RunDirError` naming the file and field when neither is usable. ``quality`` is
    ``result.json`` ``"quality"`` (None without one).
    """
    from .fitting import rundir as rd

    run_dir = rd.check_run_dir(run_dir, need=(rd.CONFIG,))
    saved, source, quality = None, None, None
    if (run_dir / rd.RESULT).is_file():
        result = rd.load_json(run_dir / rd.RESULT)
        saved, source = result.get("biophysics"), rd.RESULT
        quality = _quality(result.get("quality"), run_dir / rd.RESULT)
    if not saved:
        saved = (rd.load_json(run_dir / rd.CONFIG).get("data") or {}).get("biophysics")
        source = rd.CONFIG
        if not saved:
            raise RunDirError(f"{run_dir}: neither {rd.RESULT} \"biophysics\" nor {rd.CONFIG} "
                              "data.biophysics holds the cell the run was fitted with")
    path = run_dir / source
    names = [f.name for f in dataclasses.fields(Biophysics)]
    try:
        bio = Biophysics(**{n: saved[n] for n in names if n in saved})
    except (ConfigError, TypeError) as e:
        raise RunDirError(f"{path}: biophysics: {e}") from None
    c_total = saved.get("C_total") if source == rd.RESULT else None
    if c_total is not None:
        if (isinstance(c_total, bool) or not isinstance(c_total, (int, float))
                or not math.isfinite(c_total) or c_total <= 0):
            raise RunDirError(f"{path}: biophysics.C_total must be a finite number > 0 pF, "
                              f"got {c_total!r}")
        c_total = float(c_total)
    return FittedCell(bio, c_total, source, run_dir, quality)


def _quality(quality, path) -> dict | None:
    """``result.json``'s ``"quality"`` (None when absent), its verdict checked."""
    from .fitting.quality import VERDICTS

    if quality is None:
        return None
    verdict = quality.get("verdict") if isinstance(quality, dict) else None
    if verdict not in VERDICTS:
        raise RunDirError(f"{path}: quality.verdict must be one of {', '.join(VERDICTS)}, "
                          f"got {verdict!r}")
    return quality


def _verdict_note(cell: FittedCell) -> str | None:
    """The note for a prediction from a ``suspect`` or ``failed`` fit (None otherwise)."""
    from .fitting.rundir import RESULT

    quality = cell.quality
    if not quality or quality["verdict"] == "ok":
        return None
    verdict = quality["verdict"]
    reasons = [str(r) for r in quality.get("reasons") or ()]
    why = ""
    if reasons:
        more = (f"; {len(reasons) - 1} more reason(s) in {cell.run_dir / RESULT} "
                "\"quality\"") if len(reasons) > 1 else ""
        why = f" ({reasons[0]}{more})"
    inherits = ("do not trust this prediction" if verdict == "failed"
                else "treat this prediction with care")
    return (f"run {cell.run_dir}: the fit was judged {verdict.upper()}{why}; the prediction "
            f"inherits it: {inherits}")


def _verdict_text(cell: FittedCell) -> str:
    """The fit's verdict for the prediction's description."""
    from .fitting.rundir import RESULT

    if cell.quality:
        verdict = cell.quality["verdict"]
        return verdict if verdict == "ok" else verdict.upper()
    if (cell.run_dir / RESULT).is_file():
        return "not assessed (saved before verdicts existed)"
    return "not assessed (no result.json)"


def cell_trace_data(cell: FittedCell, rec, dtype=None):
    """The traces of ``rec`` as the fitted cell sees them
    (:class:`~hybridhh.fitting.data.TraceData`): V (mV), the current as a density
    (µA/cm², :meth:`FittedCell.density`) and the cell's biophysics."""
    import torch

    from .fitting.data import TraceData

    units = getattr(rec, "current_units", DENSITY) or DENSITY
    where = rec.path or "<recording>"
    current = cell.density(rec.current, units, where)
    return TraceData.from_arrays(rec.time, rec.voltage, current, cell.biophysics,
                                 rec.trace_names, dtype=dtype or torch.float64)


def as_recording(data):
    """``data`` as a :class:`~hybridhh.recording.Recording`: itself, or the file it names
    read (:class:`RecordingError` naming the file for one that is not a recording)."""
    from .recording import Recording, read_recording

    if isinstance(data, Recording):
        return data
    if isinstance(data, (str, Path)):
        return read_recording(data)  # RecordingError naming the file for a non-recording
    raise ConfigError(f"data must be a Recording or a recording file, got "
                      f"{type(data).__name__}")


def _note(message: str, notes: list | None) -> None:
    if notes is None:
        _warnings.warn(message, UserWarning, stacklevel=3)
    else:
        notes.append(message)


def _run(model, data, method: str, run_dir, where, notes):
    """``(method used, Trajectory)``: the free run with ``method``; exp_euler where it
    diverges (with a note)."""
    from .fitting.freerun import DIVERGED, free_run_trajectory

    try:
        return method, free_run_trajectory(model, data, method)
    except DIVERGED as e:
        if method == "exp_euler":
            raise SimulationError(f"run {run_dir}: the fitted model diverges under the stimuli "
                                  f"of {where} ({e})") from e
    _note(f"{method} diverged with the fitted model under the stimuli of {where} (too stiff "
          "at this step); the prediction uses exp_euler (first order, unconditionally stable "
          "for the gates)", notes)
    try:
        return "exp_euler", free_run_trajectory(model, data, "exp_euler")
    except DIVERGED as e:
        raise SimulationError(f"run {run_dir}: the fitted model diverges under the stimuli of "
                              f"{where} ({e})") from e


def predict(run_dir, data, *, out=None, method: str = "rk4", warnings: list | None = None,
            model=None):
    """The fitted cell of ``run_dir`` driven by the stimuli of ``data``.

    Parameters
    ----------
    run_dir
        A finished run directory (``hybridhh fit ... --out RUN_DIR``).
    data
        A :class:`~hybridhh.recording.Recording` or a recording file: any recording of the
        same cell (another protocol, other sweeps); its current in its own units
        (µA/cm², or pA with a run that knows C_total), any uniform time grid.
    out
        A file to write the prediction to (HDF5 recording, atomically); None: not written.
    method
        Integrator at the data's step (default ``"rk4"``, as :func:`hybridhh.compare`;
        ``"exp_euler"`` where RK4 diverges, with a note).
    warnings
        A list to collect notes in (a fit judged ``suspect`` or ``failed``, an integrator
        fallback, a temperature other than the fit's); None: they are issued as
        :class:`UserWarning`.
    model
        The run's model, when already loaded (else :func:`hybridhh.fitting.load_model`).

    Returns
    -------
    Recording
        The data's time (ms), current (its units) and trace names, the predicted V (mV),
        the fitted cell's biophysics, no truth, ``source`` ``"hybridhh predict"`` and a
        description saying what made it, ending with the fit's quality verdict.

    Raises
    ------
    RunDirError
        For a missing or unfinished run directory (or a result.json whose quality has no
        known verdict).
    RecordingError
        For a file that is not a recording (naming the file and field).
    ConfigError
        For data in pA with a run that has no C_total, or a bad integrator name.
    SimulationError
        When the fitted model diverges under these stimuli.
    """
    from .fitting import rundir as rd
    from .integrators import get_integrator
    from .recording import write_recording

    get_integrator(method)  # a bad name fails before any work
    run_dir = rd.check_run_dir(run_dir, need=(rd.CONFIG, rd.MODEL, rd.RESULT))
    cell = fitted_cell(run_dir)
    rec = as_recording(data)
    cell_trace_data(cell, rec)  # ConfigError for pA without C_total: before the model
    if model is None:
        from .fitting import load_model

        model = load_model(run_dir)
    pred, _ = predict_cell(model, cell, rec, method=method, warnings=warnings)
    if out is not None:
        write_recording(out, pred)
        pred = dataclasses.replace(pred, path=str(out))
    return pred


def predict_cell(model, cell: FittedCell, rec, *, method: str = "rk4",
                 warnings: list | None = None):
    """``(prediction, integrator used)``: :func:`predict` with the run's model and
    :class:`FittedCell` already loaded and ``rec`` a :class:`~hybridhh.recording.Recording`
    (what :func:`hybridhh.compare` calls)."""
    from .fitting import rundir as rd

    run_dir = cell.run_dir
    where = rec.path or "<recording>"
    traces = cell_trace_data(cell, rec)
    verdict_note = _verdict_note(cell)
    if verdict_note is not None:
        _note(verdict_note, warnings)
    if rec.temperature_known and abs(rec.biophysics.temperature - cell.biophysics.temperature
                                     ) > TEMPERATURE_TOLERANCE:
        _note(f"{where} states {rec.biophysics.temperature:g} °C and run {run_dir} was fitted "
              f"at {cell.biophysics.temperature:g} °C; the learned rates have no temperature "
              f"dependence, so the prediction is the cell at {cell.biophysics.temperature:g} °C",
              warnings)
    used, traj = _run(model, traces, method, run_dir, where, warnings)
    c_text = "" if cell.C_total is None else f", C_total {cell.C_total:.4g} pF"
    description = (f"hybridhh predict: the fitted cell of {run_dir} (kinetics {rd.MODEL}, cell "
                   f"parameters from {cell.source}{c_text}) driven by the injected current of "
                   f"{where}, {used} at its step {rec.dt:g} ms from its first sample (V0 the "
                   "recorded V[0], steady-state gates there); V is the prediction, the current "
                   f"the data's, in the data's units; the fit's quality verdict: "
                   f"{_verdict_text(cell)}")
    changes = dict(voltage=traj.V.detach().cpu().numpy().astype(np.float64), truth=None,
                   noise_sigma=None, noise_seed=None, biophysics=cell.biophysics,
                   source="hybridhh predict", description=description, path=None,
                   temperature_known=True)
    if getattr(rec, "cell", None) is not None:
        changes["cell"] = None  # the data's unknowns are the run's fitted values here
    return dataclasses.replace(rec, **changes), used

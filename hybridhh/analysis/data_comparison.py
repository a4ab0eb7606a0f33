"""The fit against measured traces without a truth: predicted vs measured features.

:func:`hybridhh.compare` calls :func:`data_comparison` for a recording without a truth:
the fitted cell predicts it (:func:`hybridhh.prediction.predict_cell`: the fit's own free
run under its stimuli, with the run's cell parameters), and
:func:`hybridhh.analysis.features.compare_traces` measures per trace spike count,
first-spike latency, the coincidence factor Γ, the subthreshold V RMSE and eFEL's
standard features, predicted vs measured, and summarises them. The recording is either
another recording of the cell (``hybridhh compare RUN --data DATA.h5``) or, for a fit
without a truth, the fitted recording itself (then each trace is marked ``train`` or
``holdout`` and the summary is also given per split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import COINCIDENCE_WINDOW, SPIKE_WINDOW, compare_traces, summarize_traces

__all__ = ["DataComparison", "data_comparison", "is_fitted_recording"]


@dataclass
class DataComparison:
    """What :func:`data_comparison` measured.

    Attributes
    ----------
    metrics : dict
        What ``compare.json`` holds under ``"data"`` (see :func:`data_comparison`).
    measured : Recording
        The recording compared with.
    predicted : Recording
        The fitted cell's prediction of it (:func:`hybridhh.predict`).
    other : bool
        True for a recording other than the fitted one.
    """

    metrics: dict
    measured: object
    predicted: object
    other: bool


def is_fitted_recording(run_dir, rec) -> bool:
    """Whether ``rec`` holds the traces the run in ``run_dir`` was fitted to: every fitted
    trace name, the same step and (where ``config.json`` records it) the same 1st–99th
    percentile range of V over those traces. A file of another protocol with the same
    trace names is not the fitted recording."""
    from ..fitting import rundir as rd

    data = (rd.load_json(Path(run_dir) / rd.CONFIG).get("data") or {})
    traces = list(data.get("traces") or [])
    if not traces or not set(traces) <= set(rec.trace_names):
        return False
    if data.get("dt") is not None and not np.isclose(rec.dt, data["dt"], rtol=1e-9, atol=0):
        return False
    if data.get("voltage_range"):
        v = rec.select(traces).voltage
        return bool(np.allclose(np.percentile(v, [1.0, 99.0]), data["voltage_range"],
                                rtol=1e-9, atol=1e-9))
    return True


def data_comparison(run_dir, data, *, model=None, method: str = "rk4",
                    delta: float = COINCIDENCE_WINDOW, spike_window=SPIKE_WINDOW,
                    threshold: float | None = None, splits: dict | None = None,
                    other: bool = True, warnings: list | None = None) -> DataComparison:
    """The fitted cell of ``run_dir`` against the measured traces of ``data``.

    Parameters
    ----------
    run_dir
        A run directory.
    data
        A :class:`~hybridhh.recording.Recording` or recording file.
    model
        The run's model when already loaded.
    method
        Integrator of the prediction (:func:`hybridhh.predict`).
    delta
        Δ of the coincidence factor, ms.
    spike_window
        (before, after) ms around each spike cut out of the subthreshold RMSE.
    threshold
        Spike threshold, mV (default: 50 mV above the measured resting potential).
    splits
        Trace name -> ``"train"`` / ``"holdout"`` for the fitted recording: rows are
        marked and summarised per split.
    other
        Whether ``data`` is another recording than the fitted one.
    warnings
        A list the notes of the prediction are appended to.

    Returns
    -------
    DataComparison
        ``metrics``: ``recording`` (path), ``source``, ``other``, ``current_units``,
        ``cell`` (:meth:`~hybridhh.prediction.FittedCell.as_dict`: the cell parameters
        the prediction used, and where they come from), ``method`` (the integrator
        used), and everything :func:`~hybridhh.analysis.features.compare_traces` returns
        (``threshold``, ``delta``, ``spike_window``, ``efel``, ``per_trace``,
        ``summary``), with ``summary_by_split`` when ``splits`` is given.
    """
    from ..prediction import DENSITY, as_recording, fitted_cell, predict_cell

    cell = fitted_cell(run_dir)
    rec = as_recording(data)
    if model is None:
        from ..fitting import load_model

        model = load_model(run_dir)
    notes = [] if warnings is None else warnings
    pred, used = predict_cell(model, cell, rec, method=method, warnings=notes)
    units = getattr(rec, "current_units", DENSITY) or DENSITY
    found = compare_traces(rec.time, rec.voltage, pred.voltage, rec.current,
                           names=rec.trace_names, threshold=threshold, units=units,
                           delta=delta, spike_window=spike_window)
    metrics = {"recording": rec.path, "source": rec.source, "other": other,
               "current_units": units, "cell": cell.as_dict(), "method": used, **found}
    if splits:
        for row in metrics["per_trace"]:
            row["split"] = splits.get(row["name"])
        metrics["summary_by_split"] = {
            s: summarize_traces([r for r in metrics["per_trace"] if r["split"] == s])
            for s in ("train", "holdout") if any(r["split"] == s for r in metrics["per_trace"])}
    if not found["efel"]:
        notes.append("eFEL is not installed: no AP amplitude, half width, AHP depth, ISI CV, "
                     "sag or input resistance (pip install 'hybridhh[features]')")
    return DataComparison(metrics, rec, pred, other)

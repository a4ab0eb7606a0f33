"""The free run: a model driven by the recorded stimuli, from the recorded first sample.

One definition, used by the fit (held-out selection of a stage) and by the comparison: the
model is started at the recorded V at t = 0 with its own steady-state gates there, driven
by the recorded currents on the recording's time grid. A learned model (anything with
``tabulate``) is simulated from its table over the recorded range plus ``margin`` mV
(0.05 mV spacing), which is what the fitter itself simulates.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SimulationError
from ..learned import StackedKinetics
from ..protocols import Stimulus
from ..simulation import Trajectory, simulate
from .data import TraceData

__all__ = ["DIVERGED", "free_run", "free_runs", "free_run_trajectory", "free_run_rmse"]

#: Voltage spacing (mV) of the table a learned model is simulated from.
TABLE_STEP = 0.05

#: What the free run of a diverging model raises: the simulator's own check on
#: non-finite values, or a table lookup at a NaN voltage (an index out of range, or torch's
#: RuntimeError for it). Catch these, and only these, where a diverging model is an
#: expected outcome (it is infinitely bad), never a bare ``Exception``.
DIVERGED = (SimulationError, IndexError, RuntimeError)


def _trace_data(data) -> TraceData:
    """``data`` as :class:`TraceData` (a :class:`~hybridhh.recording.Recording` is converted;
    its /truth is not read)."""
    return data if isinstance(data, TraceData) else TraceData.from_recording(data)


def free_run_trajectory(models, data, method: str = "exp_euler", margin: float = 30.0
                        ) -> Trajectory:
    """The free-running :class:`~hybridhh.simulation.Trajectory` (V and gates) of one model,
    or of several models in one batched simulation.

    Parameters
    ----------
    models
        A kinetics object (a fitted :class:`~hybridhh.learned.RateMLP` or a reference set)
        or a list of them. Several learned models run as one batch
        (:class:`~hybridhh.learned.StackedKinetics`), as fast as one; other kinetics
        objects only alone.
    data
        A :class:`~hybridhh.recording.Recording` or :class:`TraceData` (``B`` traces of ``T``
        samples).
    method
        Integrator name (:data:`hybridhh.integrators.INTEGRATORS`).
    margin
        mV beyond the recorded V range that a learned model's table covers.

    Returns
    -------
    Trajectory
        ``K * B`` traces, model after model, on the recording's time grid.
    """
    data = _trace_data(data)
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    with torch.no_grad():
        lo, hi = float(data.V.min()) - margin, float(data.V.max()) + margin
        tables = [m.tabulate(lo, hi, TABLE_STEP) if hasattr(m, "tabulate") else m
                  for m in models]
        B, T = data.V.shape
        K = len(models)
        kin = tables[0] if K == 1 else StackedKinetics(tables, B)
        stim = Stimulus(np.arange(T) * data.dt, data.I.repeat(K, 1).numpy(),
                        tuple(data.names) * K)
        return simulate(stim, kin, data.bio, method=method, V0=data.V[:, 0].repeat(K))


def free_runs(models, data, method: str = "exp_euler", margin: float = 30.0) -> torch.Tensor:
    """Free-running V ``[K, B, T]`` (mV) of ``K`` models (:func:`free_run_trajectory`)."""
    data = _trace_data(data)
    V = free_run_trajectory(list(models), data, method, margin).V
    return V.reshape(len(models), *data.V.shape)


def free_run(model, data, method: str = "exp_euler", margin: float = 30.0) -> torch.Tensor:
    """Free-running V ``[B, T]`` (mV) of ``model`` under the recorded stimuli of ``data``
    (a :class:`~hybridhh.recording.Recording` or :class:`TraceData`), started from the
    recorded V and the model's steady-state gates there."""
    return free_runs([model], data, method, margin)[0]


def free_run_rmse(models, data, method: str = "exp_euler", margin: float = 30.0
                  ) -> list[float]:
    """Free-running V RMSE (mV) of each of ``models`` against the recorded V of ``data``.

    One batched run (:func:`free_runs`) unless it diverges (:data:`DIVERGED`); then each
    model runs alone, and a diverging one gets ``inf``.
    """
    data = _trace_data(data)
    models = list(models)
    try:
        V = free_runs(models, data, method, margin)
    except DIVERGED:  # one of them diverges: find which, one by one
        return [_rmse_alone(m, data, method, margin) for m in models]
    return [float(torch.sqrt(((v - data.V) ** 2).mean())) for v in V]


def _rmse_alone(model, data: TraceData, method: str, margin: float) -> float:
    try:
        V = free_run(model, data, method, margin)
    except DIVERGED:  # a diverging model: infinitely bad
        return float("inf")
    return float(torch.sqrt(((V - data.V) ** 2).mean()))

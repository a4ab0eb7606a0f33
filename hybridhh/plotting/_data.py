"""What the figures draw: the traces of a recording or a simulation, and the rates of any
kinetics object, as numpy arrays (shared by the modules of :mod:`hybridhh.plotting`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.arrays import as_numpy
from ..errors import ConfigError, RecordingError

__all__ = ["MAX_TRACES", "Traces", "select_traces", "eval_rates", "eval_inf_tau"]

#: Traces drawn when ``traces=None`` and a recording has more (evenly spaced ones).
MAX_TRACES = 8


@dataclass
class Traces:
    """The traces to draw: time (ms) ``[T]``, V (mV) and I (µA/cm²) ``[B, T]``, gates
    ``[B, T, 3]`` or None, their names, their indices in the source (for colours), the
    source's trace count, its truth kinetics (or None) and a title."""

    time: np.ndarray
    V: np.ndarray
    I: np.ndarray
    gates: np.ndarray | None
    names: tuple[str, ...]
    index: list[int]  # indices into the original object, for colours
    n_total: int
    kinetics: object = None
    title: str = ""


def _default_selection(n: int) -> list[int]:
    if n <= MAX_TRACES:
        return list(range(n))
    return sorted({int(round(k)) for k in np.linspace(0, n - 1, MAX_TRACES)})


def select_traces(data, traces) -> Traces:
    """The ``traces`` (indices, names, a slice; None: all or :data:`MAX_TRACES` evenly
    spaced ones) of a Recording, a Trajectory or already selected :class:`Traces`."""
    from ..recording import Recording, trace_indices, truth_kinetics

    if isinstance(data, Traces):
        return data
    if isinstance(data, Recording):
        time, V, I = data.time, data.voltage, data.current
        gates, names = data.gates, tuple(data.trace_names)
        try:
            kin = truth_kinetics(data)
        except RecordingError:  # an unknown truth kinetics name: no n_inf curve
            kin = None
        title = Path(data.path).name if data.path else data.source
    elif all(hasattr(data, a) for a in ("time", "V", "current", "names")):
        time, V, I = as_numpy(data.time), as_numpy(data.V), as_numpy(data.current)
        gates, names = as_numpy(getattr(data, "gates", None)), tuple(data.names)
        kin = None
        title = f"simulation ({getattr(data, 'method', '?')})"
    else:
        raise ConfigError(f"cannot plot a {type(data).__name__}: expected a Recording or "
                          "a Trajectory")
    n = V.shape[0]
    idx = _default_selection(n) if traces is None else trace_indices(names, traces)
    if not idx:
        raise ConfigError("no traces selected to plot")
    return Traces(np.asarray(time, dtype=np.float64), V[idx], I[idx],
                   None if gates is None else gates[idx], tuple(names[i] for i in idx),
                   idx, n, kin, title)


def eval_rates(kinetics, V: np.ndarray):
    """``(alpha, beta)`` as numpy arrays ``(len(V), 3)`` in 1/ms for any kinetics object."""
    import torch

    dtype = torch.float64
    if isinstance(kinetics, torch.nn.Module):
        p = next(iter(kinetics.parameters()), None)
        if p is not None:
            dtype = p.dtype
    with torch.no_grad():
        alpha, beta = kinetics.rates(torch.as_tensor(V, dtype=dtype))
    return as_numpy(alpha), as_numpy(beta)


def eval_inf_tau(kinetics, V: np.ndarray):
    """``(x_inf, tau)`` as numpy arrays ``(len(V), 3)`` (tau in ms) for any kinetics object."""
    alpha, beta = eval_rates(kinetics, V)
    total = alpha + beta
    with np.errstate(divide="ignore", invalid="ignore"):
        return alpha / total, 1.0 / total


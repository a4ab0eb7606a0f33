"""Spikes: the one definition of a spike, its threshold and how spike trains are matched.

A spike is an upward crossing of a threshold placed :data:`SPIKE_ABOVE_REST` mV above the
cell's resting potential (:func:`spike_threshold`), so the 1952 voltage convention (rest
0 mV, spikes up to ~+100 mV) works as well as the modern one (rest -65 mV). Its time is
the crossing, linearly interpolated between the two samples around it; a crossing less
than :data:`REFRACTORY` ms after the previous counted one is the same spike (noise around
the threshold). Two spike trains are matched one to one, in order, within
:data:`MAX_SPIKE_SHIFT` ms (:func:`match_spikes`).

Used by :func:`hybridhh.compare`, the figures (:mod:`hybridhh.plotting`), the tests and
the benchmarks. Times in ms, voltages in mV.
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import as_numpy

__all__ = [
    "SPIKE_ABOVE_REST",
    "REFRACTORY",
    "MAX_SPIKE_SHIFT",
    "spike_threshold",
    "spike_times",
    "spike_indices",
    "match_spikes",
    "spike_metrics",
]

#: Spike threshold above the resting potential, mV.
SPIKE_ABOVE_REST = 50.0
#: A threshold crossing less than this (ms) after the previous counted one is the same spike.
REFRACTORY = 1.0
#: Largest time difference (ms) at which a model spike still matches a recorded one.
MAX_SPIKE_SHIFT = 5.0


def spike_threshold(rest: float) -> float:
    """The spike threshold (mV) of a cell resting at ``rest`` mV: ``rest +``
    :data:`SPIKE_ABOVE_REST` (-15 mV in the modern convention, 50 mV in the 1952 one)."""
    return float(rest) + SPIKE_ABOVE_REST


def _crossings(V, time, threshold: float, refractory: float):
    """Per trace of ``V`` (``[B, T]`` or ``[T]``): ``(k, t)``, the index of the last sample
    below ``threshold`` before each spike and the interpolated spike time (ms)."""
    V = np.atleast_2d(as_numpy(V))
    time = as_numpy(time)
    out = []
    for v in V:
        k = np.nonzero((v[:-1] < threshold) & (v[1:] >= threshold))[0]
        frac = (threshold - v[k]) / (v[k + 1] - v[k])
        t = time[k] + frac * (time[k + 1] - time[k])
        keep, last = [], -math.inf
        for j, s in enumerate(t):
            if s - last >= refractory:
                keep.append(j)
                last = s
        out.append((k[keep], np.asarray(t[keep], dtype=np.float64)))
    return out


def spike_times(V, time, threshold: float, refractory: float = REFRACTORY) -> list[np.ndarray]:
    """Spike times (ms): upward crossings of ``threshold`` (mV), linearly interpolated.

    A crossing within ``refractory`` ms of the previous counted one belongs to the same
    spike (noise around the threshold) and is dropped.

    Parameters
    ----------
    V
        Membrane potential, mV, ``[T]`` or ``[B, T]`` (numpy or torch).
    time
        Sample times, ms, ``[T]``.
    threshold
        mV; for a cell, :func:`spike_threshold` of its resting potential.
    refractory
        ms.

    Returns
    -------
    list of ndarray
        One array of spike times per trace (one list entry for a 1-D ``V``).
    """
    return [t for _, t in _crossings(V, time, threshold, refractory)]


def spike_indices(V, time, threshold: float, refractory: float = REFRACTORY
                  ) -> list[np.ndarray]:
    """The spikes of :func:`spike_times` as sample indices: per trace, the index ``k`` of the
    last sample below ``threshold`` before each spike (the crossing lies between samples
    ``k`` and ``k + 1``)."""
    return [k for k, _ in _crossings(V, time, threshold, refractory)]


def match_spikes(reference, model, max_shift: float = MAX_SPIKE_SHIFT) -> dict:
    """Match spike times one to one and measure their differences.

    The pairing keeps the order of spikes (no crossed pairs), pairs only spikes at most
    ``max_shift`` ms apart, matches as many spikes as possible and, among such pairings,
    minimises the summed absolute time difference (dynamic programming, like a sequence
    alignment).

    Parameters
    ----------
    reference, model
        Spike times, ms (1-D).

    Returns
    -------
    dict
        ``n_reference``, ``n_model``, ``matched``, ``missed`` (reference spikes without a
        partner), ``extra`` (model spikes without one), ``mean_abs`` and ``max_abs`` (ms, of
        ``model - reference`` over matched pairs; ``None`` when none matched) and ``diffs``
        (ms, per matched pair in reference order).
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    mod = np.sort(np.asarray(model, dtype=np.float64).ravel())
    n, m = len(ref), len(mod)
    # best[i][j] = (matches, -summed |dt|) over ref[:i] and mod[:j]
    best = [[(0, 0.0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, prev = best[i], best[i - 1]
        for j in range(1, m + 1):
            cand = max(prev[j], row[j - 1])
            d = abs(mod[j - 1] - ref[i - 1])
            if d <= max_shift:
                k, c = prev[j - 1]
                cand = max(cand, (k + 1, c - d))
            row[j] = cand
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
    pairs.reverse()
    diffs = np.array([mod[j] - ref[i] for i, j in pairs], dtype=np.float64)
    absd = np.abs(diffs)
    return {
        "n_reference": int(len(ref)),
        "n_model": int(len(mod)),
        "matched": int(len(pairs)),
        "missed": int(len(ref) - len(pairs)),
        "extra": int(len(mod) - len(pairs)),
        "mean_abs": float(absd.mean()) if len(absd) else None,
        "max_abs": float(absd.max()) if len(absd) else None,
        "diffs": [float(x) for x in diffs],
    }


def spike_metrics(V_reference, V_model, time, threshold: float, names=None,
                  max_shift: float = MAX_SPIKE_SHIFT) -> dict:
    """Spike-time errors of ``V_model`` against ``V_reference`` (``[B, T]``, mV).

    Returns
    -------
    dict
        Totals over the traces (``n_reference``, ``n_model``, ``matched``, ``missed``,
        ``extra``, ``mean_abs`` and ``max_abs`` in ms over all matched pairs,
        ``count_mismatch``: traces whose spike counts differ) and ``per_trace`` (one
        :func:`match_spikes` dict per trace, with ``name``, without ``diffs``).
    """
    ref = spike_times(V_reference, time, threshold)
    mod = spike_times(V_model, time, threshold)
    names = list(names) if names is not None else [f"trace_{k}" for k in range(len(ref))]
    per, diffs = [], []
    for name, r, m in zip(names, ref, mod, strict=True):
        s = match_spikes(r, m, max_shift)
        diffs += s.pop("diffs")
        per.append({"name": name, **s})
    absd = np.abs(np.asarray(diffs, dtype=np.float64))
    return {
        "n_reference": sum(p["n_reference"] for p in per),
        "n_model": sum(p["n_model"] for p in per),
        "matched": sum(p["matched"] for p in per),
        "missed": sum(p["missed"] for p in per),
        "extra": sum(p["extra"] for p in per),
        "mean_abs": float(absd.mean()) if len(absd) else None,
        "max_abs": float(absd.max()) if len(absd) else None,
        "count_mismatch": sum(p["n_reference"] != p["n_model"] for p in per),
        "per_trace": per,
    }

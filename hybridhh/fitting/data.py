"""Tensors a fit needs, prepared once from a recording (never from its /truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..biophysics import Biophysics
from ..errors import ConfigError

__all__ = ["TraceData", "resolve_holdout"]


@dataclass
class TraceData:
    """Recorded traces as float tensors, with the cell's known biophysics.

    ``V`` (mV) and ``I`` (µA/cm²) have shape ``[B, T]``; ``dt`` in ms.
    """

    V: torch.Tensor
    I: torch.Tensor
    dt: float
    bio: Biophysics
    names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, time, voltage, current, bio, names=None, dtype=torch.float64):
        time = np.asarray(time, dtype=np.float64)
        dt = float(time[1] - time[0])
        V = torch.as_tensor(np.asarray(voltage), dtype=dtype)
        I = torch.as_tensor(np.asarray(current), dtype=dtype)
        if V.shape != I.shape or V.ndim != 2 or V.shape[1] != len(time):
            raise ConfigError(f"voltage {tuple(V.shape)} and current {tuple(I.shape)} must both "
                              f"have shape (n_traces, {len(time)})")
        names = tuple(names) if names is not None else tuple(f"trace_{k}" for k in range(len(V)))
        return cls(V, I, dt, bio, names)

    @classmethod
    def from_recording(cls, rec, dtype=torch.float64) -> TraceData:
        """From a :class:`hybridhh.recording.Recording` (its /truth is not read)."""
        return cls.from_arrays(rec.time, rec.voltage, rec.current, rec.biophysics,
                               getattr(rec, "trace_names", None), dtype=dtype)

    def select(self, idx) -> TraceData:
        idx = list(idx)
        return TraceData(self.V[idx], self.I[idx], self.dt, self.bio,
                         tuple(self.names[i] for i in idx))

    def stride(self, step: float) -> int:
        """Samples per step of ``step`` ms: rounded to whole samples, at least 1."""
        return max(1, int(round(step / self.dt)))

    def along(self, path: torch.Tensor | None) -> TraceData:
        """These traces with V replaced by ``path`` (a noise-free V estimate, ``[B, T]``),
        or themselves when ``path`` is None."""
        if path is None:
            return self
        return TraceData(path, self.I, self.dt, self.bio, self.names)

    @property
    def n_traces(self) -> int:
        return self.V.shape[0]

    def voltage_range(self, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
        """The ``lo``–``hi`` percentile range of visited voltages (mV)."""
        v = self.V.detach().cpu().numpy().ravel()
        return float(np.percentile(v, lo)), float(np.percentile(v, hi))

    def resting_estimate(self) -> float:
        """Median V where the injected current is (nearly) zero; else the median of V[:, 0]."""
        I = self.I.abs()
        quiet = I <= 1e-3 * (I.max() + 1e-12)
        if quiet.sum() > 10:
            return float(self.V[quiet].median())
        return float(self.V[:, 0].median())

    def noise_estimate(self) -> float:
        """Measurement-noise SD (mV) estimated from third differences of V (robust, MAD)."""
        d3 = torch.diff(self.V, n=3, dim=1)
        mad = (d3 - d3.median()).abs().median()
        return float(1.4826 * mad / np.sqrt(20.0))


def resolve_holdout(names: tuple[str, ...], holdout) -> list[int]:
    """Indices (sorted) of the held-out traces among ``names`` for a ``FitConfig.holdout``
    value: ``"auto"`` (the last trace when there are 4 or more), None or empty (none), a
    trace name or index, or a sequence of them."""
    n = len(names)
    if holdout == "auto":
        return [n - 1] if n >= 4 else []
    if holdout in (None, (), []):
        return []
    if isinstance(holdout, (str, int)):
        holdout = (holdout,)
    idx = []
    for h in holdout:
        if isinstance(h, (int, np.integer)) or (isinstance(h, str) and h.lstrip("-").isdigit()
                                                 and h not in names):
            i = int(h)
            if not -n <= i < n:
                raise ConfigError(f"holdout index {i} out of range for {n} traces")
            idx.append(i % n)
        elif h in names:
            idx.append(names.index(h))
        else:
            raise ConfigError(f"holdout trace {h!r} not found; traces are {list(names)}")
    if len(set(idx)) >= n:
        raise ConfigError("holdout leaves no trace to train on")
    return sorted(set(idx))

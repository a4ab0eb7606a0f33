"""FitzHugh–Nagumo units: the two-variable caricature of an excitable neuron.

Equations (dimensionless: time in model units, ``v`` and ``w`` without units)::

    dv/dt = (v - v^3/3 - w + I) / tau
    dw/dt = eps (v + a - b w) / tau

with the classic ``a = 0.7``, ``b = 0.8``, ``eps = 0.08`` (FitzHugh 1961). ``tau`` is the
unit's time scale (1 by default; trainable per unit with ``train_time_scale=True``). Each
unit starts at its resting point for ``I = 0`` (``v ~ -1.199``, ``w ~ -0.624``). At these
parameters a constant drive ``I`` between about 0.33 and 1.42 gives a limit cycle
(repetitive "spiking"), below or above it a stable fixed point.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from .layers import ODELayer

__all__ = ["FHNField", "FHNLayer"]


class FHNField:
    """The FitzHugh–Nagumo vector field, its tangent map and its readout ``v``."""

    def __init__(self, a: float = 0.7, b: float = 0.8, eps: float = 0.08):
        for name, v in (("a", a), ("b", b), ("eps", eps)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"FHN {name} must be a finite number, got {v!r}")
        if eps <= 0:
            raise ConfigError(f"FHN eps must be > 0 (the recovery rate), got {eps}")
        if b <= 0:
            raise ConfigError(f"FHN b must be > 0, got {b}")
        self.a, self.b, self.eps = float(a), float(b), float(eps)
        # rest at I = 0: v - v^3/3 - (v + a)/b = 0, the most hyperpolarised real root
        roots = np.roots([-1.0 / 3.0, 0.0, 1.0 - 1.0 / self.b, -self.a / self.b])
        real = roots[np.abs(roots.imag) < 1e-9].real
        self.v0 = float(real.min())
        self.w0 = (self.v0 + self.a) / self.b

    def rest(self, batch, units, dtype, device):
        v = torch.full((batch, units), self.v0, dtype=dtype, device=device)
        return v, torch.full_like(v, self.w0)

    def f(self, s, I):
        v, w = s
        return v - v * v * v / 3.0 - w + I, self.eps * (v + self.a - self.b * w)

    def jvp(self, s, I, ds, dI):
        v, _ = s
        dv, dw = ds
        return (1.0 - v * v) * dv - dw + dI, self.eps * (dv - self.b * dw)

    def g(self, s):
        return s[0]

    def g_jvp(self, s, ds):
        return ds[0]


class FHNLayer(ODELayer):
    """``n_units`` FitzHugh–Nagumo units; unit ``j`` is driven by ``gain_j * x_j + bias_j``.

    Parameters
    ----------
    n_units
        Number of units (the input's last dimension).
    dt
        RK4 time step, model time units. At 0.5 the response differs from dt = 0.1 by at
        most 4e-4 (drives -1.5..2.5, default parameters).
    settle, readout
        The transient that is not read out, and the readout window after it (multiples of
        ``dt``). The response is ``v`` averaged over the states after each step of the
        readout window: for a constant drive a smooth one-dimensional function of the drive
        (the unit's f–I curve, :meth:`response_curve`).
    windows
        Split the readout window into this many equal windows and return ``[batch,
        windows, units]`` (a multi-statistic readout of a time-varying drive).
    input_dt
        How long each sample of a time-varying input ``[batch, time, units]`` is held (a
        multiple of ``dt``; ``time * input_dt`` must equal ``settle + readout``).
    gradient
        ``"sensitivity"`` (forward sensitivities, memory constant in time), ``"backprop"``
        (autograd through the steps with checkpointing) or ``"surrogate"`` (the derivative of
        ``sigmoid(drive)`` in the backward pass). The forward values do not depend on it.
    gain, bias, time_scale
        Initial per-unit input gain, bias, and time scale ``tau`` (trainable gain and bias;
        ``tau`` too with ``train_time_scale=True``).
    a, b, eps
        FitzHugh–Nagumo parameters, shared by all units.
    chunk
        Steps per checkpointed chunk in backprop mode (default ``ceil(sqrt(steps))``).
    dtype
        Parameter dtype (default torch's default); the input must have the same.
    """

    time_unit = "model time units"
    #: drives over which :func:`~hybridhh.nn.calibrate` looks for the best input range
    drive_range = (-2.0, 3.0)

    def __init__(self, n_units: int, *, dt: float = 0.5, settle: float = 50.0,
                 readout: float = 100.0, windows: int = 1, input_dt: float | None = None,
                 gradient: str = "sensitivity", gain: float = 1.0, bias: float = 0.0,
                 time_scale: float = 1.0, train_time_scale: bool = False,
                 a: float = 0.7, b: float = 0.8, eps: float = 0.08,
                 chunk: int | None = None, dtype=None):
        super().__init__(FHNField(a, b, eps), n_units, dt=dt, settle=settle, readout=readout,
                         windows=windows, input_dt=input_dt, gradient=gradient, gain=gain,
                         bias=bias, time_scale=time_scale, train_time_scale=train_time_scale,
                         chunk=chunk, dtype=dtype)

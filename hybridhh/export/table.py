"""Gate kinetics tabulated for a simulator: values and slopes on a uniform voltage grid,
read back by cubic Hermite interpolation (what the exported NMODL mechanism computes).

Why cubic Hermite and not linear: a mechanism's rates are read at every time step, and a
spike amplifies rate errors into timing errors. On a 0.1 mV grid, linear interpolation of
the squid-axon x_inf and tau is off by 3e-6 (x_inf) and 6e-6 (tau, relative), which moves
a 100 ms spiking trace by up to 0.3 mV at dt 0.025 ms; that error falls as step² only
(0.01 mV spacing: 3e-3 mV, 20001 nodes per quantity). Hermite interpolation with the exact
slopes (autograd of the model) errs as step⁴: at 0.1 mV, 1e-11 (x_inf) and 3e-11 (tau),
and the same trace moves by 3e-7 mV (0.5 mV: 2e-4 mV). 0.1 mV keeps the file at ~0.5 MB
with that error far below anything measurable; :func:`interpolation_error` measures it
for each export (it goes into the mechanism's header). Outside the grid the end values
hold (no extrapolation of a curve beyond where it was tabulated).

Units: V in mV, tau in ms, slopes per mV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["Grid", "GateTable", "tabulate", "hermite", "interpolation_error",
           "DEFAULT_VMIN", "DEFAULT_VMAX", "DEFAULT_STEP"]

#: The default tabulated range (mV) and spacing (mV): see the module docstring.
DEFAULT_VMIN, DEFAULT_VMAX, DEFAULT_STEP = -120.0, 80.0, 0.1


@dataclass(frozen=True)
class Grid:
    """A uniform voltage grid ``vmin, vmin + step, ..., vmax`` (mV); validates itself."""

    vmin: float = DEFAULT_VMIN
    vmax: float = DEFAULT_VMAX
    step: float = DEFAULT_STEP

    def __post_init__(self):
        for name in ("vmin", "vmax", "step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"table {name} must be a finite number (mV), got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.step > 0:
            raise ConfigError(f"table step must be > 0 mV, got {self.step}")
        if not self.vmax > self.vmin:
            raise ConfigError(f"table vmax ({self.vmax} mV) must be greater than vmin "
                              f"({self.vmin} mV)")
        span = (self.vmax - self.vmin) / self.step
        if abs(span - round(span)) > 1e-6:
            raise ConfigError(f"table step ({self.step} mV) must divide vmax - vmin "
                              f"({self.vmax - self.vmin} mV) into a whole number of steps")
        if round(span) > 1_000_000:
            raise ConfigError(f"table of {round(span) + 1} nodes is too large; use a step of "
                              f"at least {(self.vmax - self.vmin) / 1e6:g} mV")

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(round((self.vmax - self.vmin) / self.step)) + 1

    @property
    def V(self) -> np.ndarray:
        """The nodes, mV."""
        return self.vmin + self.step * np.arange(self.n)


@dataclass(frozen=True)
class GateTable:
    """One gate's ``x_inf`` (dimensionless) and ``tau`` (ms) with their slopes (1/mV,
    ms/mV) at the nodes of ``grid``; arrays of shape ``[grid.n]``."""

    grid: Grid
    x_inf: np.ndarray
    tau: np.ndarray
    dx_inf: np.ndarray
    dtau: np.ndarray

    def __post_init__(self):
        for name in ("x_inf", "tau", "dx_inf", "dtau"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (self.grid.n,):
                raise ConfigError(f"gate table {name} has shape {a.shape}, expected "
                                  f"({self.grid.n},) (one value per node)")
            if not np.all(np.isfinite(a)):
                raise ConfigError(f"gate table {name} has non-finite values")
            object.__setattr__(self, name, a)
        if np.any(self.x_inf < 0) or np.any(self.x_inf > 1):
            raise ConfigError("gate table x_inf must lie in [0, 1]")
        if np.any(self.tau <= 0):
            raise ConfigError("gate table tau must be > 0 ms")

    def __call__(self, V):
        """``(x_inf, tau)`` at ``V`` (mV) by the mechanism's interpolation."""
        g = self.grid
        return (hermite(self.x_inf, self.dx_inf, g, V), hermite(self.tau, self.dtau, g, V))


def tabulate(inf_tau, grid: Grid) -> list[GateTable]:
    """Tables of every gate of ``inf_tau``.

    ``inf_tau(V) -> (x_inf, tau)``, each ``V.shape + (G,)`` for a float64 tensor ``V`` (mV):
    the ``inf_tau`` of a kinetics object (:func:`hybridhh.kinetics.inf_tau`). The slopes
    come from autograd (the model's own derivative, elementwise in V); a function autograd
    cannot see through gets central differences (h = 1e-4 mV) instead.
    """
    V = torch.as_tensor(grid.V, dtype=torch.float64).requires_grad_(True)
    with torch.enable_grad():
        x_inf, tau = (torch.as_tensor(a) for a in inf_tau(V))
        if x_inf.requires_grad and tau.requires_grad:
            slopes = []
            for q in (x_inf, tau):
                cols = [torch.autograd.grad(q[:, k].sum(), V, retain_graph=True,
                                            allow_unused=True)[0]
                        for k in range(q.shape[1])]
                slopes.append(torch.stack([torch.zeros_like(V) if c is None else c
                                           for c in cols], 1))
            dx, dt = (s.detach().numpy() for s in slopes)
        else:
            dx, dt = _central_slopes(inf_tau, grid.V)
    x_inf, tau = x_inf.detach().double().numpy(), tau.detach().double().numpy()
    return [GateTable(grid, x_inf[:, k], tau[:, k], dx[:, k], dt[:, k])
            for k in range(x_inf.shape[1])]


def _central_slopes(inf_tau, V, h: float = 1e-4):
    def ev(v):
        with torch.no_grad():
            x, t = inf_tau(torch.as_tensor(v, dtype=torch.float64))
        return (np.asarray(torch.as_tensor(x).double()), np.asarray(torch.as_tensor(t).double()))

    (xp, tp), (xm, tm) = ev(V + h), ev(V - h)
    return (xp - xm) / (2 * h), (tp - tm) / (2 * h)


def hermite(value, slope, grid: Grid, V) -> np.ndarray:
    """Cubic Hermite interpolation of nodes ``value`` with ``slope`` (per mV) at ``V`` (mV),
    the end values outside the grid: the formula of the mechanism's C code, in numpy."""
    V = np.asarray(V, dtype=np.float64)
    x = np.clip((V - grid.vmin) / grid.step, 0.0, grid.n - 1)
    i = np.minimum(np.floor(x).astype(int), grid.n - 2)
    s = x - i
    y0, y1 = value[i], value[i + 1]
    d0, d1 = slope[i] * grid.step, slope[i + 1] * grid.step
    dy = y1 - y0
    return y0 + s * (d0 + s * ((3.0 * dy - 2.0 * d0 - d1) + s * (d0 + d1 - 2.0 * dy)))


def interpolation_error(inf_tau, tables: list[GateTable], points: int = 4) -> dict:
    """How far the interpolated tables are from ``inf_tau`` itself between the nodes.

    Evaluates both at ``points`` evenly spaced voltages inside every grid cell. Returns
    ``{"x_inf": max |error|, "tau": max |relative error|}`` over all gates.
    """
    grid = tables[0].grid
    frac = (np.arange(points) + 0.5) / points
    V = (grid.V[:-1, None] + grid.step * frac[None, :]).reshape(-1)
    with torch.no_grad():
        x_ref, t_ref = (np.asarray(torch.as_tensor(a).double())
                        for a in inf_tau(torch.as_tensor(V, dtype=torch.float64)))
    ex = et = 0.0
    for k, tab in enumerate(tables):
        x, t = tab(V)
        ex = max(ex, float(np.max(np.abs(x - x_ref[:, k]))))
        et = max(et, float(np.max(np.abs(t / t_ref[:, k] - 1.0))))
    return {"x_inf": ex, "tau": et}

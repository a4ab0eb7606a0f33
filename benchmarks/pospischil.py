"""The baseline a user would try on a real cell: a parametric single-compartment model.

Pospischil et al. 2008 (Biol Cybern 99:427), the classic rate forms of cortical neurons:
a fast Na current (m³h) and a delayed rectifier (n⁴), both shifted by a threshold parameter
V_T, a slow non-inactivating K current I_M (p, time scale τ_max) and a leak. The cell's
unknowns are the same as the hybrid fit's: C_total (pF, for a current in pA, C_m = 1 µF/cm²
by convention), g_Na, g_Kd, g_M, g_L (mS/cm²) and E_Na, E_K (K and M), E_L (mV). V_T (mV) and
τ_max (ms) are the two nonlinear parameters.

Fitted the way a user would fit it: ``scipy.optimize.least_squares`` on the free-running V
(the model driven by the recorded current from the first recorded sample, every sample a
residual), from several starts (multi-start), with the passive start (C_total, g_L, E_L) from
the hyperpolarising steps when given. The model is integrated by exponential Euler on the
gates and on V (stable through spikes) at the sample interval; the Jacobian's forward
differences run as one batch (every perturbed parameter set beside the others).
A teacher-forced variant (gates along the recorded V, increments linear in the cell's
coefficients, solved exactly inside (V_T, τ_max) least squares) was tried first and
collapsed on 171116sh_0018 (C_total 4,700 pF, g_Kd 0): the fixed Pospischil spike shape
cannot explain the recorded spikes' increments, and the fit gives up on them.

Units: ms, mV, pA, pF, mS/cm², 1/ms.
"""

from __future__ import annotations

import time as _time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares

__all__ = ["PospischilCell", "rates", "fit_pospischil", "simulate_pospischil"]


def _exprel(x):
    """x / (exp(x) - 1), continuous at 0."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 1e-6
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 - x / 2.0, safe / np.expm1(safe))


def rates(V, V_T, tau_max):
    """Steady states and time constants (ms) of m, h, n, p at V (mV), Pospischil 2008."""
    u = V - V_T
    a_m = 0.32 * 4.0 * _exprel(-(u - 13.0) / 4.0)
    b_m = 0.28 * 5.0 * _exprel((u - 40.0) / 5.0)
    a_h = 0.128 * np.exp(-(u - 17.0) / 18.0)
    b_h = 4.0 / (1.0 + np.exp(-(u - 40.0) / 5.0))
    a_n = 0.032 * 5.0 * _exprel(-(u - 15.0) / 5.0)
    b_n = 0.5 * np.exp(-(u - 10.0) / 40.0)
    p_inf = 1.0 / (1.0 + np.exp(-(V + 35.0) / 10.0))
    tau_p = tau_max / (3.3 * np.exp((V + 35.0) / 20.0) + np.exp(-(V + 35.0) / 20.0))
    x_inf = np.stack([a_m / (a_m + b_m), a_h / (a_h + b_h), a_n / (a_n + b_n), p_inf])
    tau = np.stack([1.0 / (a_m + b_m), 1.0 / (a_h + b_h), 1.0 / (a_n + b_n), tau_p])
    return x_inf, tau


@dataclass
class PospischilCell:
    """A fitted Pospischil cell (pF, mS/cm², mV, ms)."""

    C_total: float
    g_Na: float
    E_Na: float
    g_Kd: float
    E_K: float
    g_M: float
    g_L: float
    E_L: float
    V_T: float
    tau_max: float

    def as_dict(self) -> dict:
        return asdict(self)


#: Fitted parameters: name, transform ("log" fits log(x)), start, lower, upper.
PARAMETERS = (
    ("C_total", "log", 200.0, 5.0, 2000.0),
    ("g_Na", "log", 50.0, 1.0, 500.0),
    ("E_Na", "lin", 50.0, 30.0, 90.0),
    ("g_Kd", "log", 5.0, 0.1, 200.0),
    ("E_K", "lin", -90.0, -110.0, -60.0),
    ("g_M", "log", 0.05, 1e-4, 5.0),
    ("g_L", "log", 0.03, 1e-3, 5.0),
    ("E_L", "lin", -65.0, -100.0, -30.0),
    ("V_T", "lin", -55.0, -75.0, -35.0),
    ("tau_max", "log", 500.0, 20.0, 5000.0),
)
NAMES = tuple(p[0] for p in PARAMETERS)
_LOG = np.array([p[1] == "log" for p in PARAMETERS])


def _to_theta(values: dict) -> np.ndarray:
    x = np.array([float(values[n]) for n in NAMES])
    return np.where(_LOG, np.log(np.where(_LOG, x, 1.0)), x)


def _from_theta(theta) -> np.ndarray:
    return np.where(_LOG[:, None], np.exp(theta), theta) if np.ndim(theta) == 2 else \
        np.where(_LOG, np.exp(theta), theta)


def _run(P, I, dt, V0):
    """V [K, B, T] for K parameter sets P [10, K] (natural units), I [B, T] pA, V0 [B]."""
    P = np.asarray(P, dtype=np.float64).reshape(len(NAMES), -1)
    C, gNa, ENa, gK, EK, gM, gL, EL, VT, tmax = (p[:, None] for p in P)
    B, T = I.shape
    V = np.broadcast_to(np.asarray(V0, dtype=np.float64), (P.shape[1], B)).copy()
    x, _ = rates(V, VT, tmax)
    out = np.empty((P.shape[1], B, T))
    out[:, :, 0] = V
    for k in range(T - 1):
        x_inf, tau = rates(V, VT, tmax)
        x = x_inf + (x - x_inf) * np.exp(-dt / tau)
        m, h, n, p = x
        gna, gk, gm = gNa * m ** 3 * h, gK * n ** 4, gM * p
        G = gna + gk + gm + gL
        V_inf = (gna * ENa + (gk + gm) * EK + gL * EL + 0.5 * (I[:, k] + I[:, k + 1]) / C) / G
        V = V_inf + (V - V_inf) * np.exp(-dt * G)
        out[:, :, k + 1] = V
    return out


def simulate_pospischil(cell: PospischilCell, I, dt, V0):
    """Free-running V [B, T] (mV) of ``cell`` driven by I [B, T] (pA, sampled every dt ms)
    from V0 [B] (mV), the gates starting at their steady state."""
    I = np.atleast_2d(np.asarray(I, dtype=np.float64))
    values = cell.as_dict()
    return _run(np.array([values[n] for n in NAMES]), I, dt, np.atleast_1d(V0))[0]


def fit_pospischil(V, I, dt, *, start: dict | None = None, n_starts: int = 6, seed: int = 0,
                   max_nfev: int = 30, stride: int = 4) -> dict:
    """Fit the cell to recorded V [B, T] (mV) and I [B, T] (pA) sampled every dt (ms).

    ``start``: known start values by name (e.g. the passive analysis' C_total, g_L, E_L);
    the first start is the defaults updated by it, the others draw the active parameters
    (g_Na, g_Kd, g_M, V_T, tau_max) log-uniformly/uniformly within a factor/±8 mV of it
    (``seed``). The residual is the free-running V minus the recorded V at every
    ``stride``-th sample. Returns ``{"cell": PospischilCell, "rmse": mV, "starts": [...],
    "wall": s}``.
    """
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    I = np.atleast_2d(np.asarray(I, dtype=np.float64))
    t0 = _time.perf_counter()
    base = {p[0]: p[2] for p in PARAMETERS}
    base.update(start or {})
    lo = _to_theta({p[0]: p[3] for p in PARAMETERS})
    hi = _to_theta({p[0]: p[4] for p in PARAMETERS})
    rng = np.random.default_rng(seed)
    starts = [np.clip(_to_theta(base), lo + 1e-9, hi - 1e-9)]
    for _ in range(n_starts - 1):
        th = starts[0].copy()
        for name, width in (("g_Na", 1.0), ("g_Kd", 1.0), ("g_M", 1.5), ("tau_max", 1.0),
                            ("V_T", 8.0)):
            j = NAMES.index(name)
            th[j] += rng.uniform(-width, width)
        starts.append(np.clip(th, lo + 1e-9, hi - 1e-9))
    target = V[:, ::stride].ravel()

    def residual_batch(thetas):
        return _run(_from_theta(np.stack(thetas, 1)), I, dt, V[:, 0])[:, :, ::stride].reshape(
            len(thetas), -1) - target

    def fun(th):
        return residual_batch([th])[0]

    def jac(th):
        step = 1e-4 * np.maximum(1.0, np.abs(th))
        rows = residual_batch([th] + [th + step[j] * np.eye(len(th))[j] for j in range(len(th))])
        return ((rows[1:] - rows[0]) / step[:, None]).T

    runs = []
    for th0 in starts:
        res = least_squares(fun, th0, jac=jac, bounds=(lo, hi), max_nfev=max_nfev, x_scale=1.0)
        runs.append({"start": dict(zip(NAMES, _from_theta(th0).tolist(), strict=True)),
                     "fitted": dict(zip(NAMES, _from_theta(res.x).tolist(), strict=True)),
                     "rmse": float(np.sqrt(np.mean(res.fun ** 2))), "nfev": int(res.nfev)})
    best = min(runs, key=lambda r: r["rmse"])
    return {"cell": PospischilCell(**best["fitted"]), "rmse": best["rmse"], "starts": runs,
            "wall": _time.perf_counter() - t0}

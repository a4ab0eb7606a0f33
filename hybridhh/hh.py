"""The HH current balance and the ODE right-hand side, for any kinetics.

State: membrane potential ``V`` (mV, shape ``[batch]``) and gates ``x`` (shape
``[batch, 3]``, order m, h, n). Equations (units: ms, mV, µA/cm², mS/cm², µF/cm²)::

    C_m dV/dt = I_inj - g_Na m^3 h (V - E_Na) - g_K n^4 (V - E_K) - g_L (V - E_L)
    dx/dt     = alpha_x(V) (1 - x) - beta_x(V) x          for x in m, h, n
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import torch

from .biophysics import Biophysics
from .errors import SimulationError
from .kinetics import inf_tau


def conductances(x, bio: Biophysics):
    """Na and K conductance densities ``(g_Na m^3 h, g_K n^4)`` in mS/cm²; ``x[..., 3]``."""
    m, h, n = x[..., 0], x[..., 1], x[..., 2]
    return bio.g_Na * m**3 * h, bio.g_K * n**4


def ionic_current(V, x, bio: Biophysics):
    """Total ionic current density (µA/cm², outward positive) at ``V`` (mV) and gates ``x``."""
    g_na, g_k = conductances(x, bio)
    return g_na * (V - bio.E_Na) + g_k * (V - bio.E_K) + bio.g_L * (V - bio.E_L)


def linear_current(x, bio: Biophysics):
    """The ionic current as ``g_total * V - g_E``: ``(g_total, g_E)`` at gates ``x``.

    ``g_total`` in mS/cm², ``g_E`` in µA/cm². The current is linear in V at fixed gates,
    which the exponential and implicit integrators use.
    """
    g_na, g_k = conductances(x, bio)
    g_tot = g_na + g_k + bio.g_L
    g_e = g_na * bio.E_Na + g_k * bio.E_K + bio.g_L * bio.E_L
    return g_tot, g_e


def rhs(V, x, I_inj, kinetics, bio: Biophysics):
    """Time derivatives ``(dV/dt [mV/ms], dx/dt [1/ms])`` of the HH system."""
    alpha, beta = kinetics.rates(V)
    dx = alpha * (1.0 - x) - beta * x
    dV = (I_inj - ionic_current(V, x, bio)) / bio.C_m
    return dV, dx


def steady_state_gates(V, kinetics):
    """Gates at their steady state ``x_inf(V)``; shape ``V.shape + (3,)``."""
    x_inf, _ = inf_tau(kinetics, V)
    return x_inf


def resting_potential(kinetics, bio: Biophysics, I_hold: float = 0.0,
                      bracket: tuple[float, float] | None = None) -> float:
    """The voltage (mV) where the steady-state current balances ``I_hold`` (µA/cm²).

    Solves ``I_ion(V, x_inf(V)) = I_hold`` with Brent's method, searching between the
    lowest and highest reversal potentials unless ``bracket`` is given.
    """
    lo, hi = bracket or (min(bio.E_K, bio.E_L, bio.E_Na), max(bio.E_K, bio.E_L, bio.E_Na))

    def balance(V):
        V = torch.as_tensor(V, dtype=torch.float64)
        with torch.no_grad():
            return (ionic_current(V, steady_state_gates(V, kinetics), bio) - I_hold).numpy()

    def f(v):
        return float(balance([v])[0])

    # the steady-state I-V curve can be N-shaped: take the most hyperpolarised root
    grid = np.linspace(lo, hi, 801)
    vals = balance(grid)
    sign = np.nonzero(np.diff(np.sign(vals)) != 0)[0]
    if len(sign) == 0:
        raise SimulationError(
            f"no resting potential between {lo} and {hi} mV for holding current {I_hold} uA/cm^2"
        )
    i = sign[0]
    return float(scipy.optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-12, rtol=1e-14))

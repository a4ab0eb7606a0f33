"""One table of integrators, picked by name.

Fixed-step methods advance a batched state ``(V [B], x [B, 3])`` by one step ``dt`` (ms)
given the stimulus at the times they need (µA/cm², shape ``[B]``). They are plain torch
code, so gradients flow through them when parameters of the kinetics require grad.

============== ===== =================================================================
name           order what it does
============== ===== =================================================================
exp_euler      1     gates by their exact exponential step at V_n, then V by its exact
                     exponential step with the *new* gates and I(t+dt/2) (sequential)
ind_exp_euler  1     every variable by its own exponential step from the state at t_n,
                     the others held at t_n (independent; I at t_n)
rk4            4     classical Runge–Kutta; I at t, t+dt/2, t+dt
neuron         1     NEURON's fixed-step order: implicit (backward Euler) V with the old
                     gates and I(t+dt/2), then the gates' exact exponential step at V_{n+1}
dopri5         5(4)  adaptive, through torchdiffeq (``rtol``/``atol``)
lsoda          -     adaptive, scipy ``solve_ivp(method="LSODA")``; a reference for tests
============== ===== =================================================================

``exp_euler`` is first order for the full state but *staggered*: read with the gates at the
half steps ``t_n - dt/2``, it is the midpoint rule (gates from ``V_n``, V from the gates at
``t_{n+1/2}`` and ``I(t_{n+1/2})``). So when it starts with the gates at their steady state
(the default initial state: ``dx/dt = 0`` there, and the half-step offset of the initial
gates costs nothing) V converges with order 2, while the gates, reported at ``t_n``, keep
order 1 (measured in ``tests/test_integrators.py``). From an arbitrary initial state V is
first order too.

The fixed-step methods see the stimulus only through the ``needs`` times inside a step; the
simulator's step boundaries fall on the stimulus samples, so within a step the
piecewise-linear stimulus is smooth and every method keeps its order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _gate_step(V, x, kinetics, dt):
    """Exact exponential step of the gates at fixed V."""
    alpha, beta = kinetics.rates(V)
    total = alpha + beta
    # x_inf + (x - x_inf) exp(-dt (alpha + beta)), as one lerp
    return torch.lerp(alpha / total, x, torch.exp(total * -dt))


def _linear_current(x, bio):
    """``(g_total [mS/cm²], g_E [µA/cm²])`` at gates ``x``: :func:`model.linear_current`,
    written with fewer tensor ops (it runs once per step)."""
    m, h, n = x.unbind(-1)
    g_na = m**3 * h * bio.g_Na
    g_k = n.square().square() * bio.g_K
    g_tot = g_na + g_k + bio.g_L
    g_e = torch.add(g_na * bio.E_Na, g_k, alpha=bio.E_K) + bio.g_L * bio.E_L
    return g_tot, g_e


def _voltage_exp_step(V, x, I, bio, dt):
    """Exact exponential step of V at fixed gates (the current is linear in V)."""
    g_tot, g_e = _linear_current(x, bio)
    V_inf = (I + g_e) / g_tot
    return torch.lerp(V_inf, V, torch.exp(g_tot * (-dt / bio.C_m)))


def rhs(V, x, I_inj, kinetics, bio):
    """``(dV/dt [mV/ms], dx/dt [1/ms])``: :func:`hybridhh.hh.rhs` with fewer tensor ops
    (``dx = alpha - (alpha + beta) x``, ``C dV = I + g_E - g_total V``)."""
    alpha, beta = kinetics.rates(V)
    dx = torch.addcmul(alpha, alpha + beta, x, value=-1.0)
    g_tot, g_e = _linear_current(x, bio)
    dV = torch.addcmul(I_inj + g_e, g_tot, V, value=-1.0) / bio.C_m
    return dV, dx


def exp_euler_step(V, x, I, kinetics, bio, dt):
    x_new = _gate_step(V, x, kinetics, dt)
    return _voltage_exp_step(V, x_new, I["mid"], bio, dt), x_new


def ind_exp_euler_step(V, x, I, kinetics, bio, dt):
    return _voltage_exp_step(V, x, I["start"], bio, dt), _gate_step(V, x, kinetics, dt)


def neuron_step(V, x, I, kinetics, bio, dt):
    g_tot, g_e = _linear_current(x, bio)
    c = bio.C_m / dt
    V_new = (c * V + I["mid"] + g_e) / (c + g_tot)
    return V_new, _gate_step(V_new, x, kinetics, dt)


def rk4_step(V, x, I, kinetics, bio, dt):
    k1v, k1x = rhs(V, x, I["start"], kinetics, bio)
    k2v, k2x = rhs(V + 0.5 * dt * k1v, x + 0.5 * dt * k1x, I["mid"], kinetics, bio)
    k3v, k3x = rhs(V + 0.5 * dt * k2v, x + 0.5 * dt * k2x, I["mid"], kinetics, bio)
    k4v, k4x = rhs(V + dt * k3v, x + dt * k3x, I["end"], kinetics, bio)
    V_new = V + dt / 6.0 * (k1v + 2 * k2v + 2 * k3v + k4v)
    x_new = x + dt / 6.0 * (k1x + 2 * k2x + 2 * k3x + k4x)
    return V_new, x_new


@dataclass(frozen=True)
class Integrator:
    """An entry of the integrator table."""

    name: str
    order: int | None
    adaptive: bool
    step: object = None  # the step function of a fixed-step method
    needs: tuple[str, ...] = ()  # stimulus times a step uses: "start", "mid", "end"
    description: str = ""


INTEGRATORS: dict[str, Integrator] = {
    i.name: i
    for i in (
        Integrator("exp_euler", 1, False, exp_euler_step, ("mid",),
                   "sequential exponential Euler (gates, then V)"),
        Integrator("ind_exp_euler", 1, False, ind_exp_euler_step, ("start",),
                   "independent exponential Euler (all from t_n)"),
        Integrator("rk4", 4, False, rk4_step, ("start", "mid", "end"), "classical Runge-Kutta"),
        Integrator("neuron", 1, False, neuron_step, ("mid",),
                   "NEURON fixed-step order (implicit V, then exponential gates)"),
        Integrator("dopri5", 5, True, description="adaptive Dormand-Prince via torchdiffeq"),
        Integrator("lsoda", None, True, description="adaptive LSODA via scipy (reference)"),
    )
}


def get_integrator(name: str) -> Integrator:
    from .errors import ConfigError

    try:
        return INTEGRATORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown integrator {name!r}; choose one of {', '.join(INTEGRATORS)}"
        ) from None

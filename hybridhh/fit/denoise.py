"""Stage 1b, for noisy recordings: the noise-free voltage path, estimated with the kinetics.

Teacher forcing computes gates and currents along the *recorded* V. With measurement
noise on V those regressors are noisy and the loss's optimum moves away from the true
kinetics (errors in variables; 1 mV noise: tau errors of 10-65 % at the optimum,
``benchmarks/noise_bias.py``). Smoothing V first does not help: the spikes are too sharp
for any fixed filter (Savitzky–Golay over 0.4 ms moves the optimum by 3-30 % on clean data).

Instead the noise-free path ``U`` (one value per sample) is an unknown too, estimated
together with the kinetics by minimising (weak-constraint state estimation)::

    sum_k (y_k - U_k)² / sigma²  +  sum_k F_k(U, kinetics)² / q²   (per sample, averaged)
    + smoothness |D² P|²

``y``: the recorded V; ``sigma``: its noise SD (estimated from the data); ``F``: the
teacher-forcing residual of the hybrid model along ``U`` at every sample (the voltage
increment the model predicts minus the increment of ``U``); ``q``: how far (mV) the path
may depart from the model per sample step; ``P``: the kinetics on voltage nodes
(:class:`~hybridhh.fit.gauss_newton.NodeTable`) with its roughness penalty. As ``q``
shrinks this becomes the maximum-likelihood fit of a deterministic model; the path is a
model-based smoother that follows the spikes. Both unknowns go to one L-BFGS (the node
values scaled by ``scale``; alternating path and kinetics steps converges far more slowly:
the two trade off along a flat valley).

Measured on the default set with 1 mV noise (training traces, 150 000 samples; one
objective + gradient 72 ms on 2 cores):

* Started at the truth (true curves on the nodes), 1500 iterations: tau median
  0.7/1.0/0.9 % (m/h/n), p90 <= 3 %, x_inf <= 0.005, the path within 0.072 mV RMS of the
  noise-free V. The objective's optimum is (nearly) the truth; smoothness 0.1 instead of
  0.01: 0.9/2.3/0.6 %, p90 7.6 %.
* Started from the fit's Gauss–Newton result on the noisy data (tau medians 9/26/80 %),
  1000 iterations: 2.2/6.1/27 %, objective 0.9953 against 0.9905 in the truth's basin:
  still converging, slowest along n. Node scale 0.03, or n's alone 0.3 or 0.03:
  slower; scale 1: far slower; L-BFGS history 300: slightly faster per second
  but 3× the memory. Alternating path-only and kinetics-only (Levenberg–Marquardt) steps
  crawled: 14 rounds moved 12/26/42 % to 25/26/25 %.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..model import ionic_current
from .data import TraceData
from .gauss_newton import NodeTable, second_difference
from .scan import linear_scan

__all__ = ["path_residual", "estimate_path"]


def path_residual(U: torch.Tensor, data: TraceData, kinetics) -> torch.Tensor:
    """Teacher-forcing residual ``[B, T - 1]`` (mV) along a voltage path ``U [B, T]``.

    Gates by exponential midpoint along ``U`` from steady state, the ionic current by the
    trapezoidal rule (as :class:`~hybridhh.fit.teacher.TeacherForcing` at stride 1);
    differentiable in ``U`` and in the kinetics (anything with ``inf_tau(V)``).
    """
    bio, h = data.bio, data.dt
    Um = 0.5 * (U[:, 1:] + U[:, :-1])
    x_inf, tau = kinetics.inf_tau(Um)  # [B, T-1, 3]
    log_a = (-h / tau).movedim(-1, 0)
    x0 = kinetics.inf_tau(U[:, 0])[0].movedim(-1, 0)
    x = linear_scan(log_a, -torch.expm1(log_a) * x_inf.movedim(-1, 0), x0)  # [3, B, T]
    I_ion = ionic_current(U, x.movedim(0, -1), bio)
    charge = 0.5 * h * (data.I[:, 1:] + data.I[:, :-1] - I_ion[:, 1:] - I_ion[:, :-1])
    return charge / bio.C_m - (U[:, 1:] - U[:, :-1])


def estimate_path(data: TraceData, table: NodeTable, sigma: float, q: float = 0.03,
                  iterations: int = 1500, scale: float = 0.1, smoothness: float = 0.1,
                  chunk: int = 100, callback: Callable | None = None):
    """The noise-free path and the kinetics, jointly (see the module docstring).

    Parameters
    ----------
    data
        The recorded traces (``y = data.V``, mV).
    table
        Starting kinetics on voltage nodes; updated in place with the estimate.
    sigma
        Measurement-noise SD of V, mV (> 0).
    q
        Allowed departure of the path from the model per sample step, mV.
    iterations
        L-BFGS iterations in all (run in chunks of ``chunk``).
    scale
        The node values (logit x_inf, log tau) move as ``P0 + scale * u`` (``u``
        optimised with the path): their step scale relative to the path's (mV).
    smoothness
        Weight of the second-difference roughness of the node values.
    callback
        ``callback(iterations done, objective)`` after each chunk.

    Returns
    -------
    U : Tensor ``[B, T]``
        The estimated noise-free V (mV).
    objective : float
    """
    y = data.V
    P0 = table.P.detach().clone()
    D2 = second_difference(P0.shape[1], P0.dtype)
    U = y.detach().clone().requires_grad_(True)
    u = torch.zeros_like(P0, requires_grad=True)
    opt = torch.optim.LBFGS([U, u], lr=1.0, max_iter=chunk, history_size=100,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0,
                            tolerance_change=0.0)
    n = y.numel()

    def objective():
        P = P0 + scale * u
        F = path_residual(U, data, NodeTable(table.nodes, P))
        return ((((y - U) / sigma) ** 2).sum() + ((F / q) ** 2).sum()) / n \
            + smoothness * (P @ D2.T).square().sum()

    def closure():
        opt.zero_grad()
        L = objective()
        if torch.isfinite(L):
            L.backward()
        return L

    best = (float("inf"), U.detach().clone(), u.detach().clone())
    done = 0
    with torch.enable_grad():
        while done < iterations:
            step = min(chunk, iterations - done)
            opt.param_groups[0]["max_iter"] = step
            try:
                opt.step(closure)
            except (IndexError, RuntimeError):  # NaN inside the strong-Wolfe search
                break
            done += step
            with torch.no_grad():
                value = float(objective())
            if not (torch.isfinite(U).all() and torch.isfinite(u).all()) or value != value:
                break
            if value < best[0]:
                best = (value, U.detach().clone(), u.detach().clone())
            if callback is not None:
                callback(done, value)
    value, U_best, u_best = best
    if value == float("inf"):  # not one finite chunk: keep the start
        return y.detach().clone(), float("inf")
    table.P = (P0 + scale * u_best).detach()
    return U_best, value

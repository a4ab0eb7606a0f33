"""Stage 1b, for noisy recordings: the noise-free state path, estimated with the kinetics.

Teacher forcing computes gates and currents along the *recorded* V. With measurement
noise on V those regressors are noisy and the loss's optimum moves away from the true
kinetics (errors in variables; 1 mV noise: tau errors of 10-65 % at the optimum,
``benchmarks/noise_bias.py``). Smoothing V first does not help: the spikes are too sharp
for any fixed filter (Savitzky–Golay over 0.4 ms moves the optimum by 3-30 % on clean data).

Instead the noise-free state at every sample — the voltage ``U`` and the gates ``x`` of
m, h, n — is unknown too, estimated together with the kinetics ``P`` (logit x_inf and
log tau on voltage nodes, :class:`~hybridhh.fitting.gauss_newton.NodeTable`) by weighted
least squares (weak-constraint state estimation, as in 4D-Var smoothers)::

    sum_k (y_k - U_k)² / sigma²                          the recording
  + sum_k FV_k(U, x)² / q²                               the current balance, per step
  + sum_k,g Fx_k,g(U, x, P)² / q_gate²  (+ x_0 at rest)  the gate equations, per step
  + smoothness |D² P|²                                    roughness of the node curves

(the data and model sums divided by the number of samples). ``y``: the recorded V;
``sigma``: its noise SD, estimated from the data; ``FV``: the trapezoidal voltage
increment the model predicts minus the increment of ``U`` (as teacher forcing's
residual); ``Fx``: ``x[k+1] - (x_inf + (x[k] - x_inf) exp(-dt / tau))`` at the step's
midpoint voltage (the exponential-midpoint gate step). ``q`` (mV) says how far the path
may depart from the model per sample step, ``q_gate`` the same for the gates (tiny: they
are deterministic, so as both shrink this becomes the maximum-likelihood fit of the model).

Every residual couples only neighbouring samples, so the Jacobian is sparse and exact,
and Levenberg–Marquardt solves its normal equations directly: per trace, the state
block is banded (4 unknowns per sample, bandwidth 7), factored by banded Cholesky, and
the kinetics (~330 unknowns) come from the Schur complement; the damping acts on the
kinetics, and geodesic acceleration (the residual's curvature along the step) bends the
steps along the curved valley where the gate equations hold.

Making the gates unknowns is what keeps it local: with the gates eliminated (gates
following ``U`` exactly, as an earlier version of this stage did with one L-BFGS on
``U`` and ``P``), the gates' memory (tau_h, tau_n up to ~1000 samples) couples every
sample to every earlier one, and first-order methods crawled along the valley where the
path and the kinetics trade off (1 mV noise, 3000 iterations, 450 s: tau median 6/5/11 %).

Measured on the default set with 0.3 and 1 mV noise (training traces, 15 × 10 001 samples
at 0.01 ms), started from the fit's Gauss–Newton result on the noisy data: see
:class:`~hybridhh.fitting.config.DenoiseConfig`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import LinAlgError, cho_factor, cho_solve, cho_solve_banded, cholesky_banded
from scipy.linalg.lapack import dtbtrs
from scipy.special import expit
from tqdm.auto import tqdm

from ..hh import ionic_current
from .data import TraceData
from .gauss_newton import NodeTable, second_difference
from .grid import grid_weights
from .scan import linear_scan
from .trainer import progress_lines

if TYPE_CHECKING:
    from .config import FitConfig

__all__ = ["PathSmoother", "estimate_path", "runs", "path_stage"]


class PathSmoother:
    """The weak-constraint least-squares problem of stage 1b on one recording.

    Parameters
    ----------
    data
        The recorded traces (``y = data.V``, mV; ``data.I``, µA/cm²).
    nodes
        Voltage nodes of the kinetics (mV, uniform).
    sigma, q, q_gate
        Noise SD of V (mV), allowed model error per step of V (mV) and of the gates.
    smoothness
        Weight of the second-difference roughness of the node values.

    A *state* is ``(U [B, T], X [3, B, T], P [6, N])`` (numpy, float64): path, gates
    (m, h, n) and node values (logit x_inf, log tau of m, h, n).
    """

    def __init__(self, data: TraceData, nodes: torch.Tensor, sigma: float, q: float,
                 q_gate: float, smoothness: float):
        self.data, self.bio, self.dt = data, data.bio, data.dt
        self.y = data.V.detach().cpu().numpy().astype(np.float64)
        self.B, self.T = self.y.shape
        self.nodes = nodes.detach().cpu().to(torch.float64)
        self.N = len(nodes)
        self.sigma, self.q, self.q_gate, self.smoothness = sigma, q, q_gate, smoothness
        D2 = second_difference(self.N, torch.float64).numpy()
        self.D2 = D2
        self.RtR = np.kron(np.eye(6), D2.T @ D2)
        I = data.I.detach().cpu().numpy().astype(np.float64)
        self.charge = 0.5 * self.dt * (I[:, 1:] + I[:, :-1]) / self.bio.C_m  # mV per step
        self.norm = 1.0 / np.sqrt(self.y.size)

    # -- the kinetics on the nodes -------------------------------------------------------
    def _curves(self, V: np.ndarray, P: np.ndarray):
        """Node curves at ``V``: values ``[6, *V.shape]``, their V-slopes (mV⁻¹), and the
        hat-function node index ``j`` and weight ``w`` of node ``j + 1``."""
        start, step = float(self.nodes[0]), float(self.nodes[1] - self.nodes[0])
        j, w = grid_weights(torch.as_tensor(V), start, step, self.N)
        j, w = j.numpy(), w.numpy()
        s = (V - start) / step
        inside = (s > 0) & (s < self.N - 1)  # constant outside the nodes
        values = P[:, j] * (1 - w) + P[:, j + 1] * w
        slope = np.where(inside, (P[:, j + 1] - P[:, j]) / step, 0.0)
        return values, slope, j, w

    def gates(self, U: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Gates ``[3, B, T]`` following ``U`` exactly (from steady state): the start."""
        table = NodeTable(self.nodes, torch.as_tensor(P))
        Ut = torch.as_tensor(U)
        x_inf, tau = table.inf_tau(0.5 * (Ut[:, 1:] + Ut[:, :-1]))
        log_a = (-self.dt / tau).movedim(-1, 0)
        x0 = table.inf_tau(Ut[:, 0])[0].movedim(-1, 0)
        return linear_scan(log_a, -torch.expm1(log_a) * x_inf.movedim(-1, 0), x0).numpy()

    def evaluate(self, U: np.ndarray, X: np.ndarray, P: np.ndarray) -> dict:
        """Residuals (unscaled) and the local quantities their Jacobian needs."""
        h = self.dt
        values, slope, j, w = self._curves(0.5 * (U[:, 1:] + U[:, :-1]), P)
        with np.errstate(over="ignore", invalid="ignore"):  # a wild trial: objective inf
            xi = expit(values[:3])
            tau = np.exp(values[3:])
            a = np.exp(-h / tau)
            I_ion = ionic_current(U, np.moveaxis(X, 0, -1), self.bio)
            FV = self.charge - 0.5 * h / self.bio.C_m * (I_ion[:, 1:] + I_ion[:, :-1]) \
                - (U[:, 1:] - U[:, :-1])
            Fx = X[:, :, 1:] - a * X[:, :, :-1] - (1 - a) * xi
            v0, s0, j0, w0 = self._curves(U[:, 0], P[:3])
            xi0 = expit(v0)
        return dict(U=U, X=X, P=P, FV=FV, Fx=Fx, F0=X[:, :, 0] - xi0, a=a, xi=xi, tau=tau,
                    slope=slope, j=j, w=w, xi0=xi0, s0=s0, j0=j0, w0=w0)

    def objective(self, ev: dict) -> float:
        """The normalised objective (see the module docstring) of an :meth:`evaluate`."""
        n = self.y.size
        value = ((((ev["U"] - self.y) / self.sigma) ** 2).sum()
                 + ((ev["FV"] / self.q) ** 2).sum()
                 + ((ev["Fx"] / self.q_gate) ** 2).sum()
                 + ((ev["F0"] / self.q_gate) ** 2).sum()) / n \
            + self.smoothness * ((ev["P"] @ self.D2.T) ** 2).sum()
        return float(value) if np.isfinite(value) else float("inf")

    def system(self, b: int, ev: dict):
        """Scaled residual ``r`` of trace ``b`` and its exact Jacobians: ``Jz`` with respect
        to the trace's state (``[U_k, m_k, h_k, n_k]`` per sample, interleaved) and ``JP``
        with respect to the node values (flattened ``[6 N]``); ``|r|²`` summed over the
        traces plus the roughness is :meth:`objective`. Sparse CSR."""
        bio, h, T, N = self.bio, self.dt, self.T, self.N
        U, X = ev["U"][b], ev["X"][:, b]
        rows, cols, vals, prow, pcol, pval = [], [], [], [], [], []

        def state(r, c, v):
            rows.append(r), cols.append(c), vals.append(v)

        def kinetics(r, curve, j, w, d):  # d * (hat weights) on the nodes j, j + 1
            prow.extend((r, r)), pcol.extend((curve * N + j, curve * N + j + 1))
            pval.extend((d * (1 - w), d * w))

        k, kk = np.arange(T), np.arange(T - 1)
        s = self.norm / self.sigma  # the recording
        state(k, 4 * k, np.full(T, s))
        # the current balance: FV_k(U_k, U_k+1, x_k, x_k+1)
        s, r0 = self.norm / self.q, T
        m, hh, n = X
        G = bio.g_Na * m**3 * hh + bio.g_K * n**4 + bio.g_L  # dI/dV at fixed gates
        dI = (bio.g_Na * 3 * m * m * hh * (U - bio.E_Na), bio.g_Na * m**3 * (U - bio.E_Na),
              bio.g_K * 4 * n**3 * (U - bio.E_K))  # dI/dx
        c2 = -0.5 * h / bio.C_m
        r = r0 + kk
        state(r, 4 * kk, (1 + c2 * G[:-1]) * s)
        state(r, 4 * kk + 4, (-1 + c2 * G[1:]) * s)
        for g in range(3):
            state(r, 4 * kk + 1 + g, c2 * dI[g][:-1] * s)
            state(r, 4 * kk + 5 + g, c2 * dI[g][1:] * s)
        r0 += T - 1
        # the gate steps: Fx_k = x_k+1 - a x_k - (1 - a) x_inf, a and x_inf at (U_k + U_k+1)/2
        s = self.norm / self.q_gate
        j, w = ev["j"][b], ev["w"][b]
        for g in range(3):
            a, xi, tau = ev["a"][g, b], ev["xi"][g, b], ev["tau"][g, b]
            da = a * (h / tau)  # da / dlog tau
            dxi = xi * (1 - xi)  # dx_inf / dlogit
            lag = X[g][:-1] - xi
            dU = -0.5 * s * (da * ev["slope"][3 + g, b] * lag + (1 - a) * dxi * ev["slope"][g, b])
            r = r0 + kk
            state(r, 4 * kk + 5 + g, np.full(T - 1, s))
            state(r, 4 * kk + 1 + g, -a * s)
            state(r, 4 * kk, dU)
            state(r, 4 * kk + 4, dU)
            kinetics(r, g, j, w, -(1 - a) * dxi * s)
            kinetics(r, 3 + g, j, w, -da * lag * s)
            r0 += T - 1
        # the gates start at rest: F0 = x_0 - x_inf(U_0)
        for g in range(3):
            xi0 = ev["xi0"][g, b]
            r = np.array([r0])
            state(r, np.array([1 + g]), np.array([s]))
            state(r, np.array([0]), np.array([-xi0 * (1 - xi0) * ev["s0"][g, b] * s]))
            kinetics(r, g, np.array([ev["j0"][b]]), np.array([ev["w0"][b]]),
                     np.array([-xi0 * (1 - xi0) * s]))
            r0 += 1
        Jz = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(r0, 4 * T))
        JP = sp.csr_matrix((np.concatenate(pval), (np.concatenate(prow), np.concatenate(pcol))),
                           shape=(r0, 6 * N))
        return self.residual(b, ev), Jz, JP

    def residual(self, b: int, ev: dict) -> np.ndarray:
        """The scaled residual of trace ``b`` (the ``r`` of :meth:`system`)."""
        n = self.norm
        return np.concatenate([(ev["U"][b] - self.y[b]) * (n / self.sigma),
                               ev["FV"][b] * (n / self.q),
                               ev["Fx"][:, b].reshape(-1) * (n / self.q_gate),
                               ev["F0"][:, b] * (n / self.q_gate)])


def _banded(A: sp.spmatrix) -> np.ndarray:
    """Upper banded storage (LAPACK) of the symmetric sparse ``A``."""
    dia = A.todia()
    bw = int(dia.offsets.max())
    ab = np.zeros((bw + 1, A.shape[0]))
    for offset, row in zip(dia.offsets, dia.data, strict=True):
        if offset >= 0:
            ab[bw - offset] += row
    return ab


def _lower_solve(cb: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``R⁻ᵀ B`` for the upper banded Cholesky factor ``cb`` (``A = RᵀR``)."""
    x, info = dtbtrs(cb, B, uplo="U", trans="T")
    if info != 0:
        raise LinAlgError(f"dtbtrs failed (info={info})")
    return x


def _reduced(cb: np.ndarray, Bm: sp.csr_matrix, g: np.ndarray, chunk: int = 8192):
    """``(Bmᵀ A⁻¹ Bm, Bmᵀ A⁻¹ g)`` for ``A = RᵀR``, ``R`` upper banded (``cb``).

    Both are ``WᵀW`` and ``Wᵀw`` with ``[W | w] = R⁻ᵀ [Bm | g]``, a forward substitution
    done ``chunk`` rows at a time (each chunk's first rows couple to the last ``bw`` rows of
    the one before), so the memory is ``chunk × columns``, not trace length × columns.
    """
    bw, n = cb.shape[0] - 1, cb.shape[1]
    k = Bm.shape[1]
    WW, Wg = np.zeros((k, k)), np.zeros(k)
    prev = None
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        rhs = np.concatenate([Bm[r0:r1].toarray(), g[r0:r1, None]], axis=1)
        if prev is not None and bw:
            m = min(bw, r1 - r0)
            C = np.zeros((bw, m))  # C[t, i] = R[r0 - bw + t, r0 + i], t >= i
            for i in range(m):
                C[i:, i] = cb[: bw - i, r0 + i]
            rhs[:m] -= C.T @ prev
        X = _lower_solve(np.ascontiguousarray(cb[:, r0:r1]), rhs)
        WW += X[:, :-1].T @ X[:, :-1]
        Wg += X[:, :-1].T @ X[:, -1]
        prev = X[-bw:] if bw else None
    return WW, Wg


def estimate_path(data: TraceData, table: NodeTable, sigma: float, q: float = 0.03,
                  q_gate: float = 1e-4, iterations: int = 30, smoothness: float = 0.01,
                  tol: float = 1e-6, lam: float = 1e-3, geodesic: float | None = 0.75,
                  callback: Callable | None = None):
    """The noise-free path and the kinetics, jointly (see the module docstring).

    Parameters
    ----------
    data
        The recorded traces (``y = data.V``, mV).
    table
        Starting kinetics on voltage nodes; updated in place with the estimate.
    sigma
        Measurement-noise SD of V, mV (> 0).
    q, q_gate
        Allowed departure from the model per sample step: of V (mV) and of the gates.
    iterations
        Levenberg–Marquardt iterations at most; it stops earlier when an iteration lowers
        the objective by less than ``tol`` (relative), or when no step lowers it.
    smoothness
        Weight of the second-difference roughness of the node values.
    lam
        Initial Marquardt damping (relative to the diagonal of the kinetics block).
    geodesic
        Geodesic acceleration (as in :func:`~hybridhh.fitting.gauss_newton.levenberg_marquardt`):
        the step ``v`` corrected by the residual's curvature along it, ``v + a/2``, is
        tried next to ``v`` while ``2|a|/|v| <=`` this (kinetics part, scaled norms), and
        the better of the two is taken (a trial costs a fraction of an iteration's
        factorisation). None: plain Levenberg–Marquardt.
    callback
        ``callback(iterations done, objective)`` after each iteration.

    Returns
    -------
    U : Tensor ``[B, T]``
        The estimated noise-free V (mV), the dtype of ``data.V``.
    objective : float
        ``inf`` (and ``U`` the recording, ``table`` unchanged) if not even the start is finite.
    """
    pb = PathSmoother(data, table.nodes, sigma, q, q_gate, smoothness)
    B, T = pb.B, pb.T
    P = table.P.detach().cpu().numpy().astype(np.float64)
    U = pb.y.copy()
    ev = pb.evaluate(U, pb.gates(U, P), P)
    value = pb.objective(ev)
    if not np.isfinite(value):
        return data.V.detach().clone(), float("inf")

    def moved(ev, Z, p, t=1.0):  # the state moved by t * (Z, p)
        return pb.evaluate(ev["U"] + t * Z[..., 0], ev["X"] + t * np.moveaxis(Z[..., 1:], -1, 0),
                           ev["P"] + t * p.reshape(P.shape))

    for it in range(iterations):
        # normal equations [A_b Bm_b; Bm_bᵀ C] per trace b, reduced to the kinetics
        S = smoothness * pb.RtR.copy()
        rhs = -smoothness * (pb.RtR @ P.reshape(-1))
        traces = []
        try:
            for b in range(B):
                r, Jz, JP = pb.system(b, ev)
                cb = cholesky_banded(_banded((Jz.T @ Jz).tocsr()), check_finite=False)
                Bm = (Jz.T @ JP).tocsc()
                gz = Jz.T @ r
                # only the columns of the nodes this trace visits are non-zero
                used = np.flatnonzero(np.diff(Bm.indptr))
                WW, Wg = _reduced(cb, Bm[:, used].tocsr(), gz)
                S[np.ix_(used, used)] -= WW
                rhs[used] += Wg
                S += (JP.T @ JP).toarray()
                rhs -= JP.T @ r
                traces.append((cb, Bm, gz, Jz, JP, r))
        except (LinAlgError, ValueError):  # a non-finite state: keep the best so far
            break
        S = 0.5 * (S + S.T)
        D = np.diag(S).clip(min=1e-12 * np.diag(S).max())

        def solve(factor, rhs, gzs, traces=traces):  # the kinetics, then each trace's state
            p = cho_solve(factor, rhs)
            Z = np.stack([cho_solve_banded((t[0], False), -gz - t[1] @ p, check_finite=False)
                          for t, gz in zip(traces, gzs, strict=True)]).reshape(B, T, 4)
            return p, Z

        before = value
        for _ in range(8):
            try:
                factor = cho_factor(S + lam * np.diag(D))
            except LinAlgError:
                lam *= 4.0
                continue
            p, Z = solve(factor, rhs, [t[2] for t in traces])
            if not (np.isfinite(p).all() and np.isfinite(Z).all()):
                lam *= 4.0
                continue
            steps = [(p, Z)]
            if geodesic is not None:
                # the residual's second derivative along the step, by central differences
                # (h = 0.1 of the step), bends the step along the curved valley
                h = 0.1
                ev_p, ev_m = moved(ev, Z, p, h), moved(ev, Z, p, -h)
                rpp = [(pb.residual(b, ev_p) - 2 * t[5] + pb.residual(b, ev_m)) / h**2
                       for b, t in enumerate(traces)]
                gzs = [t[3].T @ q2 for t, q2 in zip(traces, rpp, strict=True)]
                rhs_a = -sum(t[4].T @ q2 for t, q2 in zip(traces, rpp, strict=True))
                for t, gz in zip(traces, gzs, strict=True):
                    rhs_a += t[1].T @ cho_solve_banded((t[0], False), gz, check_finite=False)
                pa, Za = solve(factor, rhs_a, gzs)
                ratio = 2.0 * np.sqrt((D * pa * pa).sum() / (D * p * p).sum())
                if np.isfinite(ratio) and ratio <= geodesic:
                    steps.insert(0, (p + 0.5 * pa, Z + 0.5 * Za))
            # the better of the plain and the accelerated step, if it lowers the objective
            trials = [moved(ev, Z, p) for p, Z in steps]
            values = [pb.objective(t) for t in trials]
            k = int(np.argmin(values))
            if values[k] < value:
                ev, value = trials[k], values[k]
                P, U = ev["P"], ev["U"]
                lam = max(lam / 3.0, 1e-9)
                break
            lam *= 4.0
        if callback is not None:
            callback(it + 1, value)
        if not value < before or before - value <= tol * abs(before):
            break
    table.P = torch.as_tensor(P, dtype=table.P.dtype)
    return torch.as_tensor(U, dtype=data.V.dtype), value


def runs(noise: float, config: FitConfig) -> bool:
    """Whether stage 1b runs in a fit with ``config`` on training traces whose estimated
    noise SD on V is ``noise`` mV: above ``config.denoise.threshold``, with iterations to
    run and a Gauss–Newton stage for it to follow."""
    dn = config.denoise
    return (dn.threshold is not None and noise > dn.threshold and dn.iterations > 0
            and bool(config.teacher.gauss_newton))


def path_stage(train: TraceData, sigma: float, config: FitConfig, context: dict,
               quiet: bool = True) -> Callable[[NodeTable], None]:
    """Stage 1b as the Gauss–Newton phase runs it: ``stage(table)`` estimates the
    noise-free V path of ``train`` (noise SD ``sigma``, mV) jointly with ``table`` (updated
    in place) by :func:`estimate_path` with ``config.denoise``, and puts the path in
    ``context["path"]`` (saved in checkpoints), along which the later stages run."""
    dn = config.denoise

    def stage(table: NodeTable) -> None:
        lines = progress_lines(quiet)
        t0 = time.perf_counter()
        done = [0]
        with tqdm(total=dn.iterations, desc="denoise", disable=quiet or lines,
                  leave=False) as bar:
            def tick(k, value):
                bar.set_postfix(objective=f"{value:.4g}")
                bar.update(k - bar.n)
                done[0] = k
            path, value = estimate_path(train, table, sigma, dn.q, dn.q_gate,
                                        dn.iterations, dn.smoothness, callback=tick)
        context["path"] = path
        if lines:
            print(f"denoise: noise {sigma:.3g} mV, {done[0]} iterations, "
                  f"objective {value:.4g}, {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)

    return stage

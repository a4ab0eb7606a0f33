"""Noise study (issue 4): which loss keeps the true kinetics as its optimum under V noise?

A fit can only be as good as the optimum of its loss. This script starts *at the truth*
(the true HH curves tabulated on 3 mV nodes, :class:`~hybridhh.fitting.gauss_newton.NodeTable`)
and runs Levenberg–Marquardt on each candidate loss; how far the curves drift is the bias
of that loss at that noise level, independent of the basin-finding start of a real fit.

Losses compared (all on the default synthetic training set of ``benchmarks/fit.py``,
:func:`hybridhh.benchmarking.make_data`):

* ``increments w=1``: the teacher-forcing loss the fitter uses (:class:`TeacherForcing`,
  0.02 ms steps): gates and ionic current along the *recorded* V, residual on the voltage
  increments. Noise enters the regressors (gates, current), so the optimum moves
  (errors in variables).
* ``increments w=25``: the same summed over 25 steps (0.5 ms).
* ``shooting``: free-running RK4 (0.04 ms) on 256 windows of 3 ms, loss on V itself.
  Each window starts from a Savitzky–Golay-smoothed V (41 samples, order 2) and the gates
  teacher forcing gives along the smoothed V; the residual is against the raw (noisy) V.
  The Jacobian (``torch.func.jacfwd`` through the integrator) holds the start gates fixed.
* ``joint path``: the fitter's stage 1b (:mod:`hybridhh.fitting.denoise`, noisy data only):
  the noise-free state path (V and gates) and the node table estimated together by
  Levenberg–Marquardt (``--joint-iterations``, at most, default 30) with the default
  ``DenoiseConfig``; its "at truth" column is its objective at the end (the objective
  needs the path).

Prints a table and writes ``benchmarks/results/noise_bias.json``::

    python benchmarks/noise_bias.py              # 0 and 1 mV noise, about 4 min
    python benchmarks/noise_bias.py --noise 0.5 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.signal import savgol_filter

from hybridhh.analysis.metrics import kinetics_errors
from hybridhh.benchmarking import make_data
from hybridhh.fitting.config import DenoiseConfig
from hybridhh.fitting.data import TraceData
from hybridhh.fitting.denoise import estimate_path
from hybridhh.fitting.gauss_newton import NodeTable, levenberg_marquardt, voltage_nodes
from hybridhh.fitting.ode import MultipleShooting
from hybridhh.fitting.teacher import TeacherForcing
from hybridhh.hh import ionic_current
from hybridhh.kinetics import HHKinetics

OUT = Path(__file__).parent / "results" / "noise_bias.json"


class Shooting:
    """Multiple-shooting V loss with the interface :func:`levenberg_marquardt` expects
    (``loss(kinetics)``, ``jacobian(table, nodes) -> (r, J [6, N, M])``).

    Windows are those of :class:`~hybridhh.fitting.ode.MultipleShooting`; the integration
    is a plain RK4 loop instead of ``odeint`` so that ``torch.func.jacfwd`` can run
    through it."""

    def __init__(self, data: TraceData, smooth: TraceData, window: float = 3.0,
                 stride: int = 4, max_windows: int = 256, seed: int = 0):
        self.teacher = TeacherForcing(smooth, stride=1)
        ms = MultipleShooting(data, window, self.teacher, max_windows, stride=stride)
        self.n = ms.n
        span = self.n * stride
        w = ms.select(torch.Generator().manual_seed(seed))
        self.b, self.s = w[:, 0], w[:, 1]
        cols = self.s[:, None] + torch.arange(0, span + 1)[None, :]
        self.V_obs = data.V[self.b[:, None], cols[:, ::stride]][:, 1:]
        I = data.I[self.b[:, None], cols]
        self.I0, self.I1 = I[:, :-1:stride], I[:, stride::stride]
        self.Ih = I[:, stride // 2:-1:stride] if stride % 2 == 0 else 0.5 * (self.I0 + self.I1)
        self.h, self.bio = data.dt * stride, data.bio
        self.V0 = smooth.V[self.b, self.s]
        self.norm = 1.0 / math.sqrt(self.V_obs.numel())

    def start_gates(self, kin):
        return self.teacher.gates(kin)[:, self.b, self.s].T

    def residual(self, kin, x0):
        h, bio = self.h, self.bio

        def f(V, x, I):
            x_inf, tau = kin.inf_tau(V)
            return (I - ionic_current(V, x, bio)) / bio.C_m, (x_inf - x) / tau

        V, x, out = self.V0, x0, []
        for k in range(self.n):
            I0, Ih, I1 = self.I0[:, k], self.Ih[:, k], self.I1[:, k]
            k1 = f(V, x, I0)
            k2 = f(V + 0.5 * h * k1[0], x + 0.5 * h * k1[1], Ih)
            k3 = f(V + 0.5 * h * k2[0], x + 0.5 * h * k2[1], Ih)
            k4 = f(V + h * k3[0], x + h * k3[1], I1)
            V = V + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            x = x + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            out.append(V)
        return (torch.stack(out, 1) - self.V_obs).reshape(-1) * self.norm

    @torch.no_grad()
    def loss(self, kin):
        V = self.residual(kin, self.start_gates(kin)).square().sum()
        return V if torch.isfinite(V) else torch.tensor(math.inf)

    def normalised_residual(self, kin):
        """The residual with the start gates of the last :meth:`jacobian` call held fixed,
        as the Jacobian does (used by geodesic acceleration)."""
        return self.residual(kin, self._x0)

    def jacobian(self, table, nodes):
        x0, shape = self.start_gates(table).detach(), table.P.shape
        self._x0 = x0
        f = lambda p: self.residual(NodeTable(nodes, p.reshape(shape)), x0)
        p = table.P.reshape(-1).clone()
        return f(p), torch.func.jacfwd(f)(p).T.reshape(shape[0], shape[1], -1)


def true_table(truth, V):
    nodes = voltage_nodes(V, 3.0)
    x_inf, tau = truth.inf_tau(nodes)
    return NodeTable(nodes, torch.cat([torch.logit(x_inf).T, torch.log(tau).T], 0))


class JointPath:
    """Stage 1b as a "problem" for :func:`run`: ``solve(table)`` runs it from ``table``."""

    def __init__(self, data: TraceData, sigma: float, iterations: int):
        self.data, self.sigma, self.iterations = data, sigma, iterations
        self.cfg = DenoiseConfig()

    def loss(self, table):
        return float("nan")  # the objective needs the path; reported after the solve

    def solve(self, table):
        c = self.cfg
        _, value = estimate_path(self.data, table, self.sigma, c.q, c.q_gate,
                                 self.iterations, c.smoothness)
        return value


def run(name, problem, truth, V, vrange, iterations):
    table = true_table(truth, V)
    t0 = time.perf_counter()
    at_truth = float(problem.loss(table))
    if hasattr(problem, "solve"):
        at_truth = problem.solve(table)  # the objective at its end, from the truth
    else:
        levenberg_marquardt(problem, table, iterations, 1e-4)
    errs = kinetics_errors(table, truth, *vrange)
    return {"loss": name, "loss_at_truth": at_truth, "iterations": iterations,
            "wall": time.perf_counter() - t0,
            **{f"{k}_{g}": errs[g][k] for g in "mhn" for k in ("tau_median", "tau_p90",
                                                                "xinf_max")}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="*", default=[0.0, 1.0], help="SD, mV")
    ap.add_argument("--iterations", type=int, default=15,
                    help="most LM iterations (geodesic LM stops earlier once converged)")
    ap.add_argument("--joint-iterations", type=int, default=30,
                    help="most LM iterations of the joint path estimate (noisy data only)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    truth = HHKinetics("modern")
    rows = []
    def trio(row, k, scale=100.0, fmt="{:5.1f}"):
        return "/".join(fmt.format(scale * row[f"{k}_{g}"]) for g in "mhn")

    print(f"{'noise':>5} {'loss':<16} {'at truth':>9} {'tau50% m/h/n':>17} "
          f"{'tau90% m/h/n':>17} {'xinf m/h/n':>18} {'s':>5}")
    for sigma in args.noise:
        rec, _ = make_data(noise=sigma)
        data = TraceData.from_recording(rec).select(range(rec.n_traces - 1))  # as a fit
        smooth = TraceData(torch.as_tensor(savgol_filter(data.V.numpy(), 41, 2, axis=1)),
                           data.I, data.dt, data.bio, data.names)
        vrange = data.voltage_range()
        problems = [("increments w=1", TeacherForcing(data, stride=2)),
                    ("increments w=25", TeacherForcing(data, window=25, stride=2)),
                    ("shooting", Shooting(data, smooth))]
        if sigma > 0:
            problems.append(("joint path", JointPath(data, data.noise_estimate(),
                                                     args.joint_iterations)))
        for name, problem in problems:
            row = run(name, problem, truth, data.V, vrange, args.iterations)
            row["noise"] = sigma
            rows.append(row)

            print(f"{sigma:5.2f} {name:<16} {row['loss_at_truth']:9.3g} "
                  f"{trio(row, 'tau_median'):>17} {trio(row, 'tau_p90'):>17} "
                  f"{trio(row, 'xinf_max', 1.0, '{:.3f}'):>18} {row['wall']:5.0f}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"rows": rows}, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""Stage 1, teacher forcing: gates driven by the recorded V, loss on the current balance.

Along the recorded voltage every gate obeys a linear ODE, advanced exactly over each sample
step with the rates at the step's midpoint voltage (exponential midpoint, 2nd order)::

    x[k+1] = x_inf + (x[k] - x_inf) exp(-dt / tau),   at V[k+1/2] = (V[k] + V[k+1]) / 2

a linear recurrence solved in parallel (:func:`linear_scan`). The model's ionic current
then predicts how V should change; the loss compares predicted and recorded voltage
*increments* over a window of ``w`` samples (trapezoidal rule)::

    V[k+w] - V[k]  ≈  sum_{j=k}^{k+w-1} dt/C (I_inj - I_ion)[j+1/2]

With ``w = 1`` this is the classic dV/dt loss; a longer window keeps the loss on V itself
so measurement noise enters once per window instead of being differentiated. The loss is
the mean squared residual divided by the variance of the recorded increments.

Steps are a fixed number of samples (``stride``), or *adaptive*: as long as that, but
shorter wherever V moves fast (:func:`adaptive_samples`). The discretisation error of
both the exponential-midpoint gate step and the trapezoidal current sits on the spikes,
so adaptive steps give a loss whose optimum is closer to the true kinetics with fewer
terms (measured in docs/method.md).

As a stage of the fit, :func:`phases` makes stage 1's optimisation phases (multi-start or
Adam, L-BFGS resolutions, the Gauss–Newton stage with stage 1b's path estimate inside it),
all on :class:`TeacherLosses`, the losses of the training traces.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.signal import savgol_filter

from .data import TraceData
from .gauss_newton import NodeTable, curves, distill, levenberg_marquardt, voltage_nodes
from .grid import grid_weights
from .model import build_model
from .scan import linear_scan
from .trainer import Phase, make_optimizer

if TYPE_CHECKING:
    from ..learned import RateMLP
    from .config import FitConfig

__all__ = ["TeacherForcing", "TeacherLosses", "adaptive_samples", "grid_weights", "phases"]


def adaptive_samples(V: torch.Tensor, dv: float, max_stride: int) -> torch.Tensor:
    """Indices of the samples teacher forcing steps between, per trace ``[B, T']``.

    A step ends where the recorded V has travelled ``dv`` mV (path length) since the
    last kept sample, and after at most ``max_stride`` samples: steps are short on
    spikes, where V and the gates change fast, and long where V is slow, where the
    exponential-midpoint step is nearly exact. The path is measured on V smoothed by a
    cubic Savitzky–Golay filter over ``2 max_stride + 1`` samples, so that measurement
    noise does not make every step one sample long. Traces with fewer steps are padded
    by repeating their last index; a zero-length step adds nothing to the loss.
    """
    B, T = V.shape
    width = 2 * max_stride + 1
    if T > width and max_stride > 1:
        V = torch.as_tensor(savgol_filter(V.numpy(), width, 3, axis=-1), dtype=V.dtype)
    path = torch.nn.functional.pad((V[:, 1:] - V[:, :-1]).abs().cumsum(-1), (1, 0))
    bucket = torch.floor(path / dv)
    keep = torch.zeros(B, T, dtype=torch.bool)
    keep[:, 1:] = bucket[:, 1:] != bucket[:, :-1]
    keep[:, ::max_stride] = True
    keep[:, -1] = True
    count = keep.sum(-1)
    idx = torch.full((B, int(count.max())), T - 1, dtype=torch.long)
    for b in range(B):
        idx[b, : int(count[b])] = torch.nonzero(keep[b]).reshape(-1)
    return idx


class TeacherForcing:
    """The teacher-forcing loss of a :class:`~hybridhh.learned.RateMLP` on fixed data.

    Parameters
    ----------
    data
        Training traces.
    window
        Increment window ``w`` in steps (>= 1).
    stride
        Step between the samples used, in recorded samples (uniform steps).
    grid_step
        Voltage grid step (mV) on which the MLP is tabulated each evaluation.
    margin
        The grid covers the recorded range plus this margin (mV) on each side.
    adaptive
        None: uniform steps of ``stride`` samples. A number ``dv`` (mV): steps of at most
        ``stride`` samples that end wherever V has travelled ``dv`` mV
        (:func:`adaptive_samples`); each step's residual is weighted by
        ``sqrt(mean step / step)`` so that the loss still weighs time evenly, as the
        uniform loss does. Requires ``window == 1``.
    cell
        A :class:`~hybridhh.fitting.cellfit.CellEstimate` with free parameters: while it is
        active, every loss and Jacobian is minimised over the cell first (variable
        projection, see :mod:`hybridhh.fitting.cellfit`); None: the data's biophysics.
    """

    def __init__(self, data: TraceData, window: int = 1, stride: int = 1,
                 grid_step: float = 0.05, margin: float = 2.0, adaptive: float | None = None,
                 cell=None):
        self.data = data
        self.cell = cell
        self.window = int(window)
        self.stride = int(stride)
        self.adaptive = adaptive
        B, T0 = data.V.shape
        if adaptive is None:
            idx = torch.arange(0, T0, self.stride).expand(B, -1)
        else:
            if self.window != 1:
                raise ValueError("adaptive teacher-forcing steps need window == 1")
            idx = adaptive_samples(data.V, float(adaptive), self.stride)
        V = data.V.gather(1, idx)
        self.V = V
        #: step lengths (ms) ``[B, T - 1]``; zero for the padding of adaptive steps
        self.h = (idx[:, 1:] - idx[:, :-1]).to(V.dtype) * data.dt
        self.vmin = float(V.min()) - margin
        self.grid_step = grid_step
        self.n_grid = int(np.ceil((float(V.max()) + margin - self.vmin) / grid_step)) + 1
        self.vmax = self.vmin + (self.n_grid - 1) * grid_step
        # the recorded V is fixed: grid indices and weights are computed once
        self._mid = self._weights(0.5 * (V[:, 1:] + V[:, :-1]))
        self._start = self._weights(V[:, 0])
        self.weight = None
        if adaptive is not None:
            real = self.h > 0
            mean = float(self.h[real].mean())
            self.weight = torch.where(real, (mean / self.h.clamp(min=1e-300)).sqrt(), 0.0)
        self.observed = self._weigh(V[:, self.window:] - V[:, :-self.window])
        #: number of residual terms (the padding of adaptive steps excluded)
        self.n_terms = self.observed.numel() if adaptive is None else int(real.sum())
        self.scale = float(self.observed.square().sum() / self.n_terms
                           - (self.observed.sum() / self.n_terms) ** 2)
        # residual scale with which loss == sum of squares (normalised_residual, jacobian)
        self._norm = 1.0 / (self.scale * self.n_terms) ** 0.5
        # injected charge over each step (µA ms/cm²), trapezoidal on the recorded grid
        Q = torch.nn.functional.pad((0.5 * data.dt * (data.I[:, 1:] + data.I[:, :-1])).cumsum(-1),
                                    (1, 0))
        Qk = Q.gather(1, idx)
        self._charge = Qk[:, 1:] - Qk[:, :-1]

    def _weigh(self, r):
        return r if self.weight is None else r * self.weight

    def _weights(self, V):
        k, w = grid_weights(V, self.vmin, self.grid_step, self.n_grid)
        return k.reshape(-1), w.reshape(-1), tuple(V.shape)

    @staticmethod
    def _lookup(table, weights):
        """Linear interpolation of ``table [C, n_grid]`` -> ``[C, *shape]``."""
        k, w, shape = weights
        lo = table.index_select(1, k)
        hi = table.index_select(1, k + 1)
        return (lo + (hi - lo) * w).reshape(table.shape[0], *shape)

    def grid(self) -> torch.Tensor:
        return self.vmin + self.grid_step * torch.arange(self.n_grid, dtype=self.data.V.dtype)

    def gates(self, model):
        """Gates ``[3, B, T]`` (m, h, n) along the recorded V, from steady state at t=0."""
        return self._gates(model)[0]

    def _gates(self, model):
        """Gates ``[3, B, T]``, the initial gates and the per-step columns used by the
        Jacobian: decay ``log_a``, x_inf and 1/tau at the step midpoints ``[3, B, T-1]``."""
        x_inf, tau = model.inf_tau(self.grid())  # [n_grid, 3]
        cols = self._lookup(torch.cat([x_inf, 1.0 / tau], dim=1).T, self._mid)  # [6, B, T-1]
        xi, rate = cols[:3], cols[3:]
        log_a = -self.h * rate
        x0 = self._lookup(x_inf.T, self._start)  # [3, B]
        x = linear_scan(log_a, -torch.expm1(log_a) * xi, x0)
        return x, x0, log_a, xi, rate

    @property
    def bio(self):
        """The biophysics the residual uses: the cell's current estimate while it is being
        solved for, else the data's."""
        cell = self.cell
        return cell.biophysics() if cell is not None and cell.active else self.data.bio

    @property
    def _charge_scale(self) -> float:
        cell = self.cell
        return cell.scale if cell is not None and cell.active else 1.0

    def current(self, x):
        """Ionic current ``[B, T]`` (µA/cm²) along the recorded V for gates ``x [3, B, T]``."""
        V, bio = self.V, self.bio
        m, h, n = x
        return (bio.g_Na * m**3 * h * (V - bio.E_Na) + bio.g_K * (n * n) ** 2 * (V - bio.E_K)
                + bio.g_L * (V - bio.E_L))

    def _increments(self, F):
        """Window sums along the last axis: ``w`` consecutive per-step terms."""
        if self.window == 1:
            return F
        S = torch.nn.functional.pad(F.cumsum(-1), (1, 0))
        return S[..., self.window:] - S[..., :-self.window]

    def residual(self, model):
        """Predicted minus recorded V increments (mV), ``[B, T - w]`` (at the solved cell)."""
        x = self.gates(model)
        self.solve_cell(x)
        return self._residual(x)

    def _residual(self, x):
        """The residual for gates ``x [3, B, T]`` along the recorded V."""
        I_ion = self.current(x)
        F = (self._charge_scale * self._charge
             - 0.5 * self.h * (I_ion[:, 1:] + I_ion[:, :-1])) / self.bio.C_m
        return self._increments(self._weigh(F)) - self.observed

    @torch.no_grad()
    def cell_columns(self, x):
        """The residual's columns for the cell's seven linear coefficients and the observed
        increments, normalised as :meth:`jacobian`: ``(A [M, 7], b [M])`` with ``residual
        * norm == A @ linear(cell) - b`` (see :mod:`hybridhh.fitting.cellfit`)."""
        x = x.detach()
        m, h, n = x
        V, C_m, half = self.V, self.bio.C_m, 0.5 * self.h
        c = self._norm / C_m

        def trap(X):  # the trapezoid of X over each step
            return half * (X[:, 1:] + X[:, :-1])

        def col(F):
            return (self._increments(self._weigh(F)) * c).reshape(-1)

        cols = [col(self._charge)]
        for X in (m**3 * h, (n * n) ** 2, torch.ones_like(V)):
            cols += [col(-trap(X * V)), col(trap(X))]
        return torch.stack(cols, dim=1), (self.observed * self._norm).reshape(-1)

    def solve_cell(self, x) -> None:
        """Solve the cell for gates ``x`` while it is active (else nothing)."""
        if self.cell is not None and self.cell.active:
            self.cell.solve(*self.cell_columns(x))

    def normalised_residual(self, model) -> torch.Tensor:
        """The residual ``[M]`` scaled so that ``loss == (r**2).sum()`` (as :meth:`jacobian`)."""
        return (self.residual(model) * self._norm).reshape(-1)

    @torch.no_grad()
    def jacobian(self, model, nodes: torch.Tensor):
        """The normalised residual and its Jacobian with respect to the model's kinetics
        at voltage ``nodes`` (mV, uniform), for a Gauss–Newton step.

        A perturbation of the kinetics is written on hat functions centred at the nodes:
        ``delta logit x_inf(V) = sum_j phi_j(V) du_j`` and likewise for ``log tau``. Each
        gate's sensitivity to ``du_j`` obeys the same linear recurrence as the gate
        itself (with a forcing where V visits node j), so all of them come from one
        batched :func:`linear_scan`, exactly, with no autograd.

        Returns
        -------
        r : Tensor ``[M]``
            Residual scaled so that ``loss == (r**2).sum()``.
        J : Tensor ``[6, N, M]``
            ``dr / d(logit x_inf of m, h, n; log tau of m, h, n)`` at the ``N`` nodes.
        """
        span = self.h
        N = nodes.shape[0]
        step = float(nodes[1] - nodes[0])
        x, x0, log_a, xi, rate = self._gates(model)
        norm = self._norm
        self.solve_cell(x)
        bio = self.bio
        r = (self._residual(x) * norm).reshape(-1)

        def hats(Vq):  # node index and weight of the hat functions at Vq
            return grid_weights(Vq, float(nodes[0]), step, N)

        def spread(c, j, w):  # c [...] -> [N, ...], c split onto nodes j, j+1
            out = torch.zeros((N,) + tuple(c.shape), dtype=c.dtype)
            out.scatter_add_(0, j[None], (c * (1 - w))[None])
            out.scatter_add_(0, (j + 1)[None], (c * w)[None])
            return out

        jm, wm = hats(0.5 * (self.V[:, 1:] + self.V[:, :-1]))
        j0, w0 = hats(self.V[:, 0])
        V = self.V
        m, h, n = x
        dI = (bio.g_Na * 3 * m * m * h * (V - bio.E_Na), bio.g_Na * m**3 * (V - bio.E_Na),
              bio.g_K * 4 * n**3 * (V - bio.E_K))
        a = torch.exp(log_a)
        J = torch.empty(6, N, r.numel(), dtype=r.dtype)
        for g in range(3):
            f_logit = (1 - a[g]) * xi[g] * (1 - xi[g])
            f_logtau = a[g] * span * rate[g] * (x[g][:, :-1] - xi[g])
            s0 = spread(x0[g] * (1 - x0[g]), j0, w0)
            for kind, f in enumerate((f_logit, f_logtau)):
                sens = linear_scan(log_a[g], spread(f, jm, wm),
                                   s0 if kind == 0 else torch.zeros_like(s0))
                dIs = dI[g] * sens
                dF = (-0.5 * norm / bio.C_m) * span * (dIs[..., 1:] + dIs[..., :-1])
                J[3 * kind + g] = self._increments(self._weigh(dF)).reshape(N, -1)
        if self.cell is not None and self.cell.active:  # Kaufman's projection
            D = self.cell.directions(self.cell_columns(x)[0])
            if D is not None:
                Jf = J.reshape(6 * N, -1)
                Jf -= (Jf @ D) @ torch.linalg.solve(D.T @ D, D.T)
        return r, J

    def loss(self, model, robust: float | None = None):
        """Normalised mean squared residual; with ``robust=c`` the Cauchy loss
        ``c² log(1 + r²/c²)`` (on the normalised residual), which bounds the pull of
        samples a poor model misses by far (used early, from a generic start)."""
        r2 = self.residual(model).square() / self.scale  # (at the solved cell)
        if robust is None:
            return r2.sum() / self.n_terms
        c2 = robust * robust
        return c2 * torch.log1p(r2 / c2).sum() / self.n_terms


class TeacherLosses:
    """The teacher-forcing losses of a fit's training traces, one per step, each made once.

    ``losses(stride, adaptive=None)`` is the :class:`TeacherForcing` loss on steps of
    ``stride`` samples (adaptive steps with ``adaptive`` mV, see :class:`TeacherForcing`)
    along the recorded V, or, once stage 1b has put a noise-free V path in
    ``context["path"]`` (:func:`hybridhh.fitting.denoise.path_stage`), along that path.
    Phases ask for their loss when they run, so the phases after stage 1b see the path.
    ``cell``: the fit's :class:`~hybridhh.fitting.cellfit.CellEstimate` (None: the cell is
    known); :meth:`commit_cell` writes it into the training data and freezes it.
    """

    def __init__(self, train: TraceData, window: int, context: dict, cell=None,
                 others=()):
        self.train, self.window, self.context = train, window, context
        self.cell, self.others = cell, tuple(others)
        self._made: dict[tuple, TeacherForcing] = {}

    def commit_cell(self) -> None:
        """Freeze the cell estimate and write it into the training data (and ``others``,
        e.g. the held-out traces); the losses made so far are dropped (they hold the
        charge of the old current scale). Its values go into the context (checkpoints)."""
        if self.cell is None or self.cell.frozen:
            return
        from .cellfit import commit

        commit(self.cell, self.train, *self.others)
        self.context["cell"] = self.cell.state()
        self._made.clear()

    def __call__(self, stride: int, adaptive: float | None = None) -> TeacherForcing:
        key = (stride, adaptive, "path" in self.context)
        if key not in self._made:
            self._made[key] = TeacherForcing(self.train.along(self.context.get("path")),
                                             window=self.window, stride=stride,
                                             adaptive=adaptive, cell=self.cell)
        return self._made[key]


def phases(model: RateMLP, train: TraceData, config: FitConfig, losses: TeacherLosses,
           denoise: Callable[[NodeTable], None] | None = None) -> list[Phase]:
    """Stage 1's phases for ``model`` on the training traces ``train``, in order.

    ``teacher/starts`` (a multi-start of ``config.teacher.starts`` candidates, each the Adam
    phase and the first L-BFGS resolution) or ``teacher/adam``; ``teacher/lbfgsI-STEPms``
    for the L-BFGS resolutions; ``teacher/gauss-newton`` right after the first L-BFGS
    resolution (after the last phase when there is none). ``denoise``: stage 1b
    (:func:`hybridhh.fitting.denoise.path_stage`), run inside the Gauss–Newton phase, then
    named ``teacher/gauss-newton+denoise``; None: no stage 1b.
    """
    t = config.teacher
    params = model.parameters
    out = []
    lbfgs = list(enumerate(t.lbfgs))
    if t.adam_steps and t.starts > 1:
        # multi-start: each candidate runs the Adam phase and the first L-BFGS resolution
        # (where a wrong basin shows as a loss 10-100x higher); the best one goes on
        first = lbfgs.pop(0)[1] if lbfgs else None
        judged = bool(t.start_gn and t.gauss_newton)
        out.append(Phase("teacher/starts", params,
                         partial(_candidate, model=model, train=train, config=config,
                                 losses=losses, first=first),
                         max(t.max_starts, t.starts) if judged else t.starts, "select",
                         options={"enough": _enough(train, config, losses)} if judged else {}))
    elif t.adam_steps:
        out.append(Phase("teacher/adam", params,
                         partial(_loss, losses, model, train.stride(t.adam_dt), None, t.robust),
                         t.adam_steps, "adam", t.adam_lr))
    for i, (step_ms, steps) in lbfgs:
        stride, steps = train.stride(float(step_ms)), int(steps)
        # entries after the first run after the Gauss-Newton stage, on its adaptive steps
        adaptive = t.adaptive if (i > 0 and t.gauss_newton) else None
        if steps:
            out.append(Phase(f"teacher/lbfgs{i + 1}-{stride * train.dt:g}ms", params,
                             partial(_loss, losses, model, stride, adaptive, None), steps,
                             "lbfgs", 1.0, {**_lbfgs_options(t), "restart_every": t.lbfgs_restart}))
    if t.gauss_newton:
        # right after the phase that ran the first L-BFGS resolution (the multi-start, or
        # the first L-BFGS phase), else after the last teacher phase
        at = next((i for i, p in enumerate(out) if p.optimizer in ("select", "lbfgs")),
                  len(out) - 1)
        out.insert(at + 1, Phase(
            "teacher/gauss-newton" + ("+denoise" if denoise else ""), params,
            partial(_gauss_newton, model=model, train=train, config=config, losses=losses,
                    denoise=denoise), 1, "select"))
    return out


def _enough(train: TraceData, config: FitConfig, losses: TeacherLosses):
    """The multi-start's stopping rule: ``enough(best, done)`` is true once ``done`` >=
    ``config.teacher.starts`` candidates ran and the best Gauss–Newton objective is within
    :data:`~hybridhh.fitting.quality.OBJECTIVE_SUSPECT` times the loss's floor (noise plus
    discretisation, :func:`~hybridhh.fitting.quality.objective_floor`): the level the
    quality verdict accepts. Until then more candidates run, up to ``max_starts``."""
    t = config.teacher
    floor: list[float] = []

    def enough(best: float, done: int) -> bool:
        if done < t.starts:
            return False
        if not floor:  # once, when first needed (a resumed fit computes the same)
            from .quality import OBJECTIVE_SUSPECT, objective_floor

            tf = losses(train.stride(float(t.gauss_newton[0][0])), t.adaptive)
            f = objective_floor(None, tf, train.noise_estimate())["floor"]
            floor.append(OBJECTIVE_SUSPECT * f if f > 0 else 0.0)
        return best <= floor[0]

    return enough


def _lbfgs_options(t) -> dict:
    return {"max_iter": t.lbfgs_max_iter, "history_size": t.lbfgs_history}


def _loss(losses: TeacherLosses, model, stride: int, adaptive, robust, step: int):
    """A plain teacher-forcing phase's loss (looked up when it runs: see TeacherLosses)."""
    return losses(stride, adaptive).loss(model, robust)


def _candidate(k: int, *, model, train: TraceData, config: FitConfig, losses: TeacherLosses,
               first) -> tuple[float, dict]:
    """Candidate ``k`` of the multi-start: a fresh MLP on ``model``'s prior (seed
    ``config.seed + 1000 k``), started from the curves of its kind
    (``config.teacher.start_kinds``, cycled: ``"refined"`` the model's own prior,
    ``"generic"`` the generic prior before stage 0 refined it), the Adam phase, then the
    first L-BFGS resolution ``first`` = (step ms, steps) if there is one, then, with
    ``config.teacher.start_gn`` > 0 and a Gauss–Newton stage, that many
    Levenberg–Marquardt iterations on its table; returns (the last of these objectives,
    the MLP's state). Candidates of different kinds are compared on the Gauss–Newton
    objective: the L-BFGS loss does not tell their basins apart."""
    t = config.teacher
    cand = build_model(train, dataclasses.replace(config, seed=config.seed + 1000 * k),
                       model.prior)
    kind = t.start_kinds[k % len(t.start_kinds)]
    if kind == "generic":  # the generic prior's curves, carried by an MLP on this prior
        nodes = voltage_nodes(train.V, t.gn_node_step)
        with torch.no_grad():
            goal = NodeTable(nodes, curves(build_model(train, config), nodes))
        distill(cand, goal, t.distill_iter)
    opt = make_optimizer("adam", cand.parameters(), t.adam_lr)
    tf = losses(train.stride(t.adam_dt))
    for _ in range(t.adam_steps):
        opt.zero_grad()
        loss = tf.loss(cand, t.robust)
        if not torch.isfinite(loss):
            return float("inf"), cand.state_dict()
        loss.backward()
        opt.step()
    if first is not None:
        tf = losses(train.stride(float(first[0])))
        opt = make_optimizer("lbfgs", cand.parameters(), 1.0, _lbfgs_options(t))

        def closure():
            opt.zero_grad()
            loss = tf.loss(cand)
            if torch.isfinite(loss):
                loss.backward()
            return loss

        for _ in range(int(first[1])):
            opt.step(closure)
            if not all(torch.isfinite(p).all() for p in cand.parameters()):
                return float("inf"), cand.state_dict()
    if t.start_gn and t.gauss_newton:
        nodes = voltage_nodes(train.V, t.gn_node_step)
        with torch.no_grad():
            table = NodeTable(nodes, curves(cand, nodes))
        gn = losses(train.stride(float(t.gauss_newton[0][0])), t.adaptive)
        value, _ = levenberg_marquardt(gn, table, t.start_gn, t.gn_smoothness,
                                       geodesic=t.gn_geodesic)
        return value, cand.state_dict()
    with torch.no_grad():
        return float(tf.loss(cand)), cand.state_dict()


def _gauss_newton(step: int, *, model, train: TraceData, config: FitConfig,
                  losses: TeacherLosses, denoise=None) -> tuple[float, dict]:
    """The Gauss–Newton phase: Levenberg–Marquardt on the tabulated kinetics (then, with
    ``denoise``, stage 1b: the noise-free V path estimated jointly with the table), then the
    MLP fitted to the table; returns (loss at the last Gauss–Newton resolution, model
    state) for the select phase."""
    t = config.teacher
    nodes = voltage_nodes(train.V, t.gn_node_step)
    with torch.no_grad():
        table = NodeTable(nodes, curves(model, nodes))
    if losses.cell is not None and not losses.cell.frozen:
        losses.cell.solving = True  # the cell is estimated with the kinetics from here
    for step_ms, iterations in t.gauss_newton:  # non-empty: the phase exists only then
        tf = losses(train.stride(float(step_ms)), t.adaptive)
        levenberg_marquardt(tf, table, int(iterations), t.gn_smoothness,
                            geodesic=t.gn_geodesic)
    if losses.cell is not None and losses.cell.active:
        # the cell estimated with the kinetics is final: the later stages see it as known
        fix_gauge(losses.cell, table, train.voltage_range())
        with torch.no_grad():
            tf.loss(table)  # the cell solved for the final table
        losses.commit_cell()
        tf = losses(train.stride(float(t.gauss_newton[-1][0])), t.adaptive)
    if denoise is not None:
        denoise(table)  # the later teacher-forcing losses run along the estimated path
        tf = losses(train.stride(float(t.gauss_newton[-1][0])), t.adaptive)
    cand = copy.deepcopy(model)
    distill(cand, table, t.distill_iter)
    with torch.no_grad():
        return float(tf.loss(cand)), cand.state_dict()


#: The largest x_inf the gauge fix lets a gate reach.
GAUGE_MAX = 0.999


def _boltzmann_asymptote(V: np.ndarray, x: np.ndarray, rising: bool) -> float:
    """The asymptote ``A`` of ``A / (1 + exp(-(V - V_half) / k))`` (k > 0 rising, < 0
    falling) fitted to ``x`` at ``V`` by least squares; nan where the fit fails."""
    from scipy.optimize import curve_fit

    sign = 1.0 if rising else -1.0

    def f(v, A, vh, k):
        return A / (1.0 + np.exp(-sign * (v - vh) / k))

    vh0 = float(V[np.argmin(np.abs(x - 0.5 * x.max()))])
    try:
        (A, _, _), _ = curve_fit(f, V, x, p0=(float(x.max()), vh0, 8.0),
                                 bounds=([1e-3, V.min() - 100, 0.5], [10.0, V.max() + 100, 100]),
                                 maxfev=2000)
    except (RuntimeError, ValueError):
        return float("nan")
    return float(A)


@torch.no_grad()
def fix_gauge(cell, table: NodeTable, voltage_range) -> dict:
    """Fix the gauge of an estimated g_Na or g_K on ``table`` (in place); returns the
    factor applied to each gate's x_inf.

    ``m -> c m`` with ``g_Na -> g_Na / c³`` (likewise h; and n with g_K) leaves every
    trajectory unchanged, because each gate obeys a linear ODE with x(0) = x_inf(V0):
    current clamp sees ``g_Na m³h`` and ``g_K n⁴``, never the conductance apart from the
    gates' scale, so a fit that estimates the conductance drifts along this flat
    direction. The gauge chosen: a gate opens fully, i.e. the Boltzmann curve fitted to
    its x_inf over the visited ``voltage_range`` (mV) has asymptote 1 (m and n at high V,
    h at low V); x_inf is scaled by 1/asymptote, but no node beyond :data:`GAUGE_MAX`. Where
    the table's end node (beyond the visited range) is already near 1, this limits the
    fix (measured on a NEURON twin: g_Na within 1 %, g_K 42 % high, n_inf low by the same
    factor).
    The conductance follows when the cell is solved again.
    """
    gates = ([0, 1] if "g_Na" in cell.free else []) + ([2] if "g_K" in cell.free else [])
    lo, hi = voltage_range
    nodes = table.nodes.numpy()
    inside = (nodes >= lo) & (nodes <= hi)
    P = table.P.clone()
    factors = {}
    for g in gates:
        x = torch.sigmoid(P[g])
        A = _boltzmann_asymptote(nodes[inside], x.numpy()[inside], rising=g != 1)
        if not np.isfinite(A):
            continue
        # no node above GAUGE_MAX: the scaling stays an exact symmetry (measured: capping
        # the nodes beyond the visited range instead breaks it at the spike peaks)
        c = min(1.0 / A, GAUGE_MAX / float(x.max()))
        P[g] = torch.logit((c * x).clamp(1e-12, GAUGE_MAX))
        factors["mhn"[g]] = c
    table.P = P
    return factors

"""Stage 2, the neural ODE: free-running multiple shooting on the recorded voltage.

The recording is cut into windows. Each window starts from the recorded V and the gates
that teacher forcing estimates at that instant, and the hybrid model then runs *free*
(torchdiffeq ``odeint``, fixed-step RK4) under the recorded stimulus; the loss is the
mean squared difference between simulated and recorded V (mV²) over the window. No
derivative of the data is taken, so measurement noise on V is averaged, not amplified.
Short windows keep the problem well conditioned (a spike-time shift cannot grow large);
longer windows follow.

As a stage of the fit, :func:`phases` makes one phase per window length, ``ode/Wms``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torchdiffeq import odeint

from ..errors import ConfigError
from ..hh import ionic_current
from ..learned import TabulatedKinetics
from .data import TraceData
from .teacher import TeacherForcing, TeacherLosses
from .trainer import Phase

if TYPE_CHECKING:
    from .config import FitConfig

__all__ = ["FIXED_STEP_METHODS", "ADAPTIVE_METHODS", "METHODS", "STEP_TAU", "RATE_CAP",
           "MultipleShooting", "stable_rate", "stable_stride", "phases"]

#: torchdiffeq's fixed-step methods, as the stage runs them (step ``ODEConfig.dt``, rates
#: capped by :func:`stable_rate`)
FIXED_STEP_METHODS = ("rk4", "euler", "midpoint", "heun2", "heun3")
#: torchdiffeq's adaptive methods, as the stage runs them (rtol = atol = 1e-11, no cap)
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "adaptive_heun")
#: the integrators stage 2 can use (``ODEConfig.method``)
METHODS = FIXED_STEP_METHODS + ADAPTIVE_METHODS

#: the integration step is at most this many times the model's fastest time constant
#: over the visited voltages (1st-99th percentile; RK4 on a gate is stable up to 2.8 tau):
#: 2 keeps 0.04 ms on the default set (fastest tau_m there 0.065 ms), and takes 0.02 ms at
#: 18.5 degC (0.015 ms there)
STEP_TAU = 2.0

#: a fixed step of h ms sees each gate's rate 1/tau softly capped at RATE_CAP / h
#: (:func:`stable_rate`): RK4 is stable on a decaying mode up to h/tau = 2.785
RATE_CAP = 2.5
#: how sharply the cap sets in: the rate changes by (h/(tau RATE_CAP))^8 / 8 relative,
#: 8e-5 at h = tau, 2 % at h = 2 tau
CAP_SHARPNESS = 8


def stable_rate(rate, h: float):
    """A gate's relaxation rate ``1/tau`` (1/ms) as a fixed step of ``h`` ms integrates it.

    ``z / (1 + (z / RATE_CAP)**8)**(1/8) / h`` with ``z = h * rate``: the rate itself
    where the step resolves it (relative change (z / RATE_CAP)^8 / 8: 8e-5 at z = 1), and
    at most ``RATE_CAP / h`` where it does not. RK4 on ``dx/dt = (x_inf - x) rate`` diverges
    once ``h * rate > 2.785``; a gate whose tau is well below the step then relaxes to x_inf
    over a few steps (by 0.65 a step at the cap) instead of within one. Where that happens
    the voltage does not see it: at 18.5 °C and the 0.02 ms step the cap bites below about
    -95 mV (tau_m < 0.012 ms), where m_inf³ < 1e-8; on the default set (6.3 °C, 0.04 ms) it
    changes tau_m by at most 2 %, at -110 mV. Smooth in the rate, so the loss stays smooth
    in the parameters.

    Parameters
    ----------
    rate
        Tensor of ``1/tau`` (1/ms), positive.
    h
        The integration step, ms.
    """
    z = rate * h
    return z / (1 + (z / RATE_CAP) ** CAP_SHARPNESS) ** (1 / CAP_SHARPNESS) / h


def stable_stride(model, data: TraceData, step: float) -> int:
    """Samples per RK4 step: ``step`` (ms) rounded to whole samples, and at most
    :data:`STEP_TAU` times the model's fastest time constant over the visited voltages
    (1st-99th percentile of V).

    Parameters
    ----------
    model
        A kinetics object with ``inf_tau(V)`` (the model as the stage starts).
    data
        The training traces (their V range and sample step ``dt``, ms).
    step
        The wanted integration step, ms.

    Returns
    -------
    int
        At least 1. Beyond the visited range (at 18.5 °C tau_m falls to 0.004 ms at
        -115 mV) the gates' rates are capped (:func:`stable_rate`) so RK4 stays stable; the
        step is chosen for accuracy where the cell spends its time.
    """
    with torch.no_grad():
        lo, hi = data.voltage_range()
        V = torch.linspace(lo, hi, 512, dtype=data.V.dtype)
        tau_min = float(model.inf_tau(V)[1].min())
    return max(1, min(data.stride(step), int(STEP_TAU * tau_min / data.dt)))


class MultipleShooting:
    """The multiple-shooting loss on windows of ``window`` ms.

    Parameters
    ----------
    data
        Training traces.
    window
        Window length, ms.
    teacher
        Teacher forcing at stride 1 on the same traces, or on their denoised V
        (:mod:`hybridhh.fitting.denoise`): supplies V and the gates at window starts.
    max_windows
        Windows used per loss evaluation (a seeded random subset when there are more).
    stride
        Integration step in samples of the recording.
    margin
        The model is tabulated over the recorded range plus this margin (mV).
    """

    def __init__(self, data: TraceData, window: float, teacher: TeacherForcing,
                 max_windows: int = 256, stride: int = 2, margin: float = 15.0,
                 method: str = "rk4"):
        self.data = data
        self.teacher = teacher
        self.stride = stride
        self.method = method
        B, T = data.V.shape
        self.n = max(1, int(round(window / (data.dt * stride))))  # steps per window
        span = self.n * stride
        starts = torch.arange(0, T - span, span)
        if len(starts) == 0:
            raise ConfigError(f"ode window {window} ms is not shorter than the traces "
                              f"({T * data.dt:g} ms)")
        bb, ss = torch.meshgrid(torch.arange(B), starts, indexing="ij")
        self.windows = torch.stack([bb.reshape(-1), ss.reshape(-1)], 1)  # [N, 2]
        self.max_windows = max_windows
        self.vmin = float(data.V.min()) - margin
        self.vmax = float(data.V.max()) + margin
        self.t = torch.arange(self.n + 1, dtype=data.V.dtype) * (data.dt * stride)
        self._samples = torch.arange(0, span + 1)  # every sample of a window
        self._offsets = self._samples[::stride]  # the integration grid's

    def start_gates(self, model):
        """Teacher-forced gates ``[3, B, T]`` of ``model``: each window starts from the
        gates that the *current* model has along the recorded V, so the start states stay
        consistent with the model as it changes (and the gradient flows through them)."""
        return self.teacher.gates(model)

    def select(self, generator: torch.Generator | None):
        N = len(self.windows)
        if N <= self.max_windows:
            return self.windows
        idx = torch.randperm(N, generator=generator)[: self.max_windows].sort().values
        return self.windows[idx]

    def simulate(self, model, windows):
        """Free-running V ``[n_windows, n_steps + 1]`` and the recorded V on the same samples."""
        d = self.data
        b, s = windows[:, 0], windows[:, 1]
        cols = s[:, None] + self._offsets[None, :]
        V_obs = d.V[b[:, None], cols]
        # every stimulus sample of the window, also those inside an integration step
        I_win = d.I[b[:, None], s[:, None] + self._samples[None, :]]
        x0 = self.start_gates(model)[:, b, s].T  # [n, 3]
        h = float(self.t[1])
        dt, last = d.dt, self.n * self.stride - 1
        bio = d.bio
        adaptive = self.method in ADAPTIVE_METHODS
        if hasattr(model, "tabulate"):  # the MLP on a 0.05 mV grid (keeps the autograd graph)
            table = model.tabulate(self.vmin, self.vmax)
            if not adaptive:  # the rates a fixed step cannot resolve, capped on the table
                # (once per evaluation: in the right-hand side the cap cost ~30 % more time)
                table = TabulatedKinetics(table.vmin, table.step, table.x_inf,
                                          1.0 / stable_rate(1.0 / table.tau, h))
            kinetics = table.inf_rate
        else:  # e.g. the true kinetics in tests
            def kinetics(V):
                x_inf, tau = model.inf_tau(V)
                return x_inf, (1.0 / tau if adaptive else stable_rate(1.0 / tau, h))

        # The right-hand side is called ~600 times per window set and evaluation, on small
        # tensors, so its cost is the number of torch operations: the stimulus is
        # interpolated with Python scalars, the kinetics come from one packed table.
        def f(t, y):
            u = float(t) / dt
            k = min(int(u + 1e-9), last)
            frac = u - k
            I = I_win[:, k] if frac < 1e-9 else torch.lerp(I_win[:, k], I_win[:, k + 1], frac)
            V, x = y[:, 0], y[:, 1:]
            x_inf, inv_tau = kinetics(V)
            dV = (I - ionic_current(V, x, bio)) / bio.C_m
            return torch.cat([dV[:, None], (x_inf - x) * inv_tau], 1)

        # the start V is the teacher's (the recorded V, or its denoised path)
        y0 = torch.cat([self.teacher.V[b, s][:, None], x0], 1)
        if adaptive:
            y = odeint(f, y0, self.t, method=self.method, rtol=1e-11, atol=1e-11,
                       options={"step_t": self.t})
        else:
            y = odeint(f, y0, self.t, method=self.method, options={"step_size": h})
        return y[..., 0].T, V_obs

    def loss(self, model, generator=None):
        V_sim, V_obs = self.simulate(model, self.select(generator))
        return (V_sim - V_obs).square().mean()


def phases(model, train: TraceData, config: FitConfig, losses: TeacherLosses,
           context: dict) -> list[Phase]:
    """Stage 2's phases for ``model`` on the training traces ``train``: one ``ode/Wms``
    phase per entry of ``config.ode.windows``, none when the stage is off or has no steps.
    The windows start from the gates of ``losses(1)`` (teacher forcing on every sample,
    along stage 1b's path when there is one); ``context`` keeps the integration step."""
    o = config.ode
    if not (o.enabled and o.steps):
        return []
    options = {"max_iter": o.max_iter} if o.optimizer == "lbfgs" else {}
    return [Phase(f"ode/{w:g}ms", model.parameters,
                  _ShootingLoss(model, train, w, config, losses, context), o.steps,
                  o.optimizer, o.lr, options)
            for w in o.windows]


def _stride(model, train: TraceData, step: float, context: dict) -> int:
    """The RK4 step (samples), capped by the model's fastest tau over the visited voltages
    as the stage starts (:func:`stable_stride`; the gate rates beyond are capped in the
    stage itself); kept in ``context``, so a resumed fit uses the same step."""
    if "ode_stride" not in context:
        context["ode_stride"] = torch.tensor(stable_stride(model, train, step))
    return int(context["ode_stride"])


class _ShootingLoss:
    """The loss of one ``ode/Wms`` phase: :class:`MultipleShooting` on windows of
    ``window`` ms, made when the phase first runs (after the stages before it)."""

    def __init__(self, model, train: TraceData, window: float, config: FitConfig,
                 losses: TeacherLosses, context: dict):
        self.model, self.train, self.window = model, train, window
        self.config, self.losses, self.context = config, losses, context
        self._shooting: MultipleShooting | None = None

    def __call__(self, step: int):
        o = self.config.ode
        if self._shooting is None:
            self._shooting = MultipleShooting(
                self.train, self.window, self.losses(1), o.max_windows,
                stride=_stride(self.model, self.train, o.dt, self.context), method=o.method)
        # L-BFGS needs the same windows at every evaluation; Adam draws new ones
        g = torch.Generator().manual_seed(self.config.seed * 100003
                                          + (0 if o.optimizer == "lbfgs" else step))
        return self._shooting.loss(self.model, g)

"""Simulate a single-compartment HH cell (any kinetics) under a stimulus.

``simulate(stimulus, kinetics, biophysics, method=...)`` returns a :class:`Trajectory` of
V and the gates sampled on the stimulus' time grid, batched over its traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .biophysics import Biophysics
from .errors import ConfigError, SimulationError
from .hh import resting_potential, rhs, steady_state_gates
from .integrators import get_integrator
from .integrators import rhs as _rhs_fast
from .kinetics import HHKinetics
from .protocols import Stimulus

__all__ = ["Trajectory", "simulate", "interpolate_stimulus"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A simulation result.

    Attributes
    ----------
    time : ndarray (T,)
        ms.
    V : Tensor (B, T)
        Membrane potential, mV.
    gates : Tensor (B, T, 3)
        m, h, n.
    current : ndarray (B, T)
        The injected current density, µA/cm².
    names : tuple of str
        Trace names.
    method : str
        Integrator used.
    """

    time: np.ndarray
    V: torch.Tensor
    gates: torch.Tensor
    current: np.ndarray
    names: tuple[str, ...]
    method: str


def interpolate_stimulus(current: torch.Tensor, t0: float, dt: float, t):
    """Piecewise-linear value of a sampled current ``[B, T]`` at time ``t`` (ms)."""
    T = current.shape[-1]
    s = (t - t0) / dt
    s = s.clamp(0, T - 1) if isinstance(s, torch.Tensor) else min(max(s, 0.0), T - 1.0)
    k = int(min(int(s), T - 2))
    frac = s - k
    return current[:, k] * (1.0 - frac) + current[:, k + 1] * frac


def _initial_state(V0, x0, kinetics, bio, B, dtype):
    if V0 is None:
        V0 = resting_potential(kinetics, bio)
    V = torch.as_tensor(V0, dtype=dtype)
    if V.ndim == 0:
        V = V.expand(B)
    if V.shape != (B,):
        raise ConfigError(f"V0 must be a scalar or have shape ({B},), got {tuple(V.shape)}")
    V = V.clone()
    if x0 is None:
        # under the caller's grad mode: with grad=True the initial gates depend on the
        # kinetics' parameters, and the gradient must see it
        x = steady_state_gates(V, kinetics).to(dtype)
    else:
        x = torch.as_tensor(x0, dtype=dtype)
        if x.ndim == 1:
            x = x.expand(B, 3)
        if x.shape != (B, 3):
            raise ConfigError(f"x0 must have shape (3,) or ({B}, 3), got {tuple(x.shape)}")
        x = x.clone()
    return V, x


def simulate(
    stimulus: Stimulus,
    kinetics=None,
    biophysics: Biophysics | None = None,
    method: str = "exp_euler",
    dt: float | None = None,
    V0=None,
    x0=None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dtype: torch.dtype = torch.float64,
    grad: bool = False,
    compile: bool = False,
) -> Trajectory:
    """Simulate the HH equations for every trace of ``stimulus``.

    Parameters
    ----------
    stimulus
        Injected current density (µA/cm²) on a uniform time grid (ms); one trace per cell.
    kinetics
        Any kinetics object (``rates(V) -> (alpha, beta)``); default: NEURON ``hh``
        (modern convention) at ``biophysics.temperature``.
    biophysics
        Default: :meth:`Biophysics.standard` (modern).
    method
        A name from :data:`hybridhh.integrators.INTEGRATORS`.
    dt
        Integration step (ms) of fixed-step methods; must divide the stimulus step into an
        integer number of substeps. Default: the stimulus step.
    V0, x0
        Initial voltage (mV; scalar or ``[B]``) and gates (``[3]`` or ``[B, 3]``). Default:
        the resting potential and the gates' steady state there.
    rtol, atol
        Tolerances of the adaptive methods.
    grad
        Keep the autograd graph (for fitting); off by default for speed.
    compile
        Run the step function of a fixed-step method through ``torch.compile`` (one fused
        kernel per step; see ``benchmarks/simulate.py`` for what it gains). The first call
        per integrator, kinetics, biophysics, dt and batch size compiles (seconds to tens of
        seconds on CPU; shapes are static); later calls in the same process reuse it, up to
        torch's recompile limit (8 variants per integrator, then eager). Needs a C++
        compiler; adaptive methods raise :class:`ConfigError`.

    Returns
    -------
    Trajectory
        V (mV) and gates sampled on ``stimulus.time``.
    """
    bio = Biophysics.standard() if biophysics is None else biophysics
    kin = HHKinetics("modern", temperature=bio.temperature) if kinetics is None else kinetics
    integ = get_integrator(method)
    if compile and integ.adaptive:
        raise ConfigError(f"compile=True applies to fixed-step methods only, not {method!r}")
    B = stimulus.n_traces
    I = torch.as_tensor(stimulus.current, dtype=dtype)
    t0, dts = float(stimulus.time[0]), stimulus.dt
    with torch.set_grad_enabled(grad):
        V, x = _initial_state(V0, x0, kin, bio, B, dtype)
        if integ.adaptive:
            if dt is not None:
                raise ConfigError(f"dt is not used by the adaptive integrator {method!r}; "
                                  "set rtol/atol instead")
            Vs, xs = (_dopri5 if method == "dopri5" else _lsoda)(
                V, x, I, stimulus.time, kin, bio, rtol, atol)
        else:
            Vs, xs = _fixed_step(integ, V, x, I, t0, dts, dt, kin, bio, compile)
    if not (torch.isfinite(Vs).all() and torch.isfinite(xs).all()):
        raise SimulationError(
            f"simulation with {method!r} produced non-finite values; "
            "try a smaller dt or a more stable integrator (exp_euler, neuron)"
        )
    return Trajectory(stimulus.time, Vs, xs, stimulus.current, stimulus.names, method)


#: torch.compile'd step functions by integrator name (compiled lazily, once per process)
_COMPILED_STEPS: dict = {}


def _compiled_step(integ):
    fn = _COMPILED_STEPS.get(integ.name)
    if fn is None:
        fn = torch.compile(integ.step, dynamic=False)
        _COMPILED_STEPS[integ.name] = fn
    return fn


def _substep_stimulus(I, n_sub, offset):
    """Stimulus at substep ``j + offset`` (in substeps) of every sample interval.

    ``I`` is ``[B, T]``; returns ``[(T-1) * n_sub, B]``, one contiguous row per step.
    """
    B, T = I.shape
    frac = (torch.arange(n_sub, dtype=I.dtype) + offset) / n_sub  # [n_sub]
    # time-major and contiguous: each step then reads one contiguous row (a transposed
    # view would hand every step B scattered elements, T apart in memory)
    IT = I.T.contiguous()  # [T, B]
    I0 = IT[:-1]
    dI = IT[1:] - I0
    out = (I0[:, None, :] + dI[:, None, :] * frac[None, :, None]).reshape(-1, B)
    return out.contiguous()


def _fixed_step(integ, V, x, I, t0, dts, dt, kin, bio, compile=False):
    dt = dts if dt is None else float(dt)
    n_sub = dts / dt
    if dt <= 0 or abs(n_sub - round(n_sub)) > 1e-6 or round(n_sub) < 1:
        raise ConfigError(
            f"integration dt ({dt} ms) must divide the stimulus step ({dts} ms) into a whole "
            "number of substeps"
        )
    n_sub = int(round(n_sub))
    T = I.shape[1]
    # stimulus at the substep times a step needs, piecewise linear between samples
    offsets = {"start": 0.0, "mid": 0.5, "end": 1.0}
    names = integ.needs
    rows = [_substep_stimulus(I, n_sub, offsets[k]).unbind(0) for k in names]
    step = _compiled_step(integ) if compile else integ.step
    Vs, xs = [V], [x]
    i = 0
    for _ in range(T - 1):
        for _ in range(n_sub):
            V, x = step(V, x, {k: r[i] for k, r in zip(names, rows, strict=True)}, kin, bio, dt)
            i += 1
        Vs.append(V)
        xs.append(x)
    return torch.stack(Vs, dim=1), torch.stack(xs, dim=1)


def _state_to_y(V, x):
    return torch.cat([V[:, None], x], dim=1)


def _kink_times(I, time):
    """Sample times where the piecewise-linear stimulus of any trace changes slope.

    Always includes the first and last time. A slope change below 1e-12 of the largest
    current (rounding in a ramp) does not count.
    """
    d2 = (I[:, 2:] - 2.0 * I[:, 1:-1] + I[:, :-2]).abs().amax(dim=0)  # [T-2]
    tol = 1e-12 * max(float(I.abs().max()), 1.0)
    idx = torch.nonzero(d2 > tol).flatten() + 1
    idx = torch.cat([torch.tensor([0]), idx, torch.tensor([len(time) - 1])])
    return torch.as_tensor(time, dtype=I.dtype)[idx]


#: Stand-in for a non-finite derivative in dopri5's trial stages (mV/ms, 1/ms).
_BAD_DERIVATIVE = 1e10


def _dopri5(V, x, I, time, kin, bio, rtol, atol):
    from torchdiffeq import odeint

    t0, dts = float(time[0]), float(time[1] - time[0])
    T = I.shape[1]
    IT = I.T.contiguous()  # [T, B]: one contiguous row per sample
    dIT = torch.cat([IT[1:] - IT[:-1], torch.zeros_like(IT[:1])])

    def f(t, y):
        s = min(max((float(t) - t0) / dts, 0.0), T - 1.0)
        k = min(int(s), T - 2)
        It = torch.add(IT[k], dIT[k], alpha=s - k)
        dV, dx = _rhs_fast(y[:, 0], y[:, 1:], It, kin, bio)
        # a trial step far too long can push a stage to absurd voltages where the rates
        # overflow; a NaN would make torchdiffeq abort ("underflow in dt"), a huge finite
        # derivative makes it reject the step and retry with a shorter one
        return torch.nan_to_num(torch.cat([dV.unsqueeze(1), dx], dim=1),
                                nan=_BAD_DERIVATIVE, posinf=_BAD_DERIVATIVE,
                                neginf=-_BAD_DERIVATIVE)

    tt = torch.as_tensor(time, dtype=I.dtype)
    # steps end on every sample where the piecewise-linear stimulus has a kink: between
    # them it is smooth, so the method keeps its order and never strides over an onset
    y = odeint(f, _state_to_y(V, x), tt, rtol=rtol, atol=atol, method="dopri5",
               options={"step_t": _kink_times(I, time)})
    return y[..., 0].T.contiguous(), y[..., 1:].permute(1, 0, 2).contiguous()


def _lsoda(V, x, I, time, kin, bio, rtol, atol):
    import scipy.integrate

    t0, dts = float(time[0]), float(time[1] - time[0])
    Inp = I.detach().cpu().numpy()
    dtype = I.dtype
    Vs, xs = [], []
    for b in range(I.shape[0]):
        Ib = Inp[b]

        def f(t, y, Ib=Ib):
            s = min(max((t - t0) / dts, 0.0), len(Ib) - 1.0)
            k = min(int(s), len(Ib) - 2)
            It = Ib[k] + (Ib[k + 1] - Ib[k]) * (s - k)
            yt = torch.as_tensor(y, dtype=dtype)
            dV, dx = rhs(yt[:1], yt[None, 1:], torch.tensor([It], dtype=dtype), kin, bio)
            return np.concatenate([dV.numpy(), dx[0].numpy()])

        y0 = np.concatenate([[float(V[b])], x[b].detach().numpy()])
        # max_step: from rest the derivatives vanish and LSODA would stride over a brief
        # stimulus without ever sampling it; one sample step per step at most prevents it
        sol = scipy.integrate.solve_ivp(f, (time[0], time[-1]), y0, method="LSODA",
                                        t_eval=time, rtol=rtol, atol=atol, max_step=dts)
        if not sol.success:
            raise SimulationError(f"LSODA failed on trace {b}: {sol.message}")
        Vs.append(sol.y[0])
        xs.append(sol.y[1:].T)
    return (torch.as_tensor(np.stack(Vs), dtype=dtype),
            torch.as_tensor(np.stack(xs), dtype=dtype))

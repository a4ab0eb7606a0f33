"""Fixed-step RK4 over a bank of independent ODE units, and its three gradient modes.

A *field* describes one kind of unit (:class:`~hybridhh.nn.fhn.FHNField`,
:class:`~hybridhh.nn.hh.HHField`): its state is a tuple of tensors, each ``[batch, units]``
or ``[batch, units, k]``; it provides

* ``f(s, I)``: the time derivative of the state at drive ``I`` (``[batch, units]``);
* ``jvp(s, I, ds, dI)``: the derivative's directional derivative, for ``K`` tangents at once
  (``ds`` components ``[K, *component.shape]``, ``dI`` broadcastable to ``[K, batch, units]``);
* ``g(s)`` and ``g_jvp(s, ds)``: the readout quantity (``[batch, units]``) and its tangent;
* ``rest(batch, units, dtype, device)``: the initial state.

Every unit ``j`` runs ``ds/dt = r_j f(s, I)`` with a per-unit rate ``r_j = exp(-p_j)``
(``p`` = log time scale). The input is held constant over each step (a static drive, or a
time-varying one held for whole input samples that are a whole number of steps long), and
the response is the readout's time average over the readout window (the integral of the
readout integrated with the state by the same RK4 stages, so fourth order in ``dt``),
optionally in ``windows`` equal consecutive windows.

Gradient modes
--------------
``backprop``
    Autograd through the RK4 steps, recomputed chunk by chunk in the backward pass
    (:func:`torch.utils.checkpoint.checkpoint`): memory ~ ``steps / chunk + chunk`` states.
``sensitivity``
    Forward sensitivities: the tangents of the state with respect to the drive and the time
    scales are integrated with the state by the same RK4 stages (the RK4 map of the
    variational system is the derivative of the RK4 map, so the gradients equal backprop's
    to rounding). No tape, memory constant in time; cost grows with the number of tangents
    (two or three for a static drive or for parameters only; one per input sample when a
    time-varying input itself needs a gradient).
``surrogate``
    The ODE forward, and in the backward pass the derivative of a logistic sigmoid of the
    drive, as if the unit were ``sigmoid(I)`` (Bogatenko et al. 2023); no gradient to the
    time scales.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

GRADIENTS = ("backprop", "sensitivity", "surrogate")


def _rate(r, k):
    """Per-unit rate ``r [units]`` shaped to multiply a component ``k [..., units, *extra]``."""
    extra = k.dim() - 2 if k.dim() >= 2 else 0
    return r.reshape(r.shape + (1,) * extra) if extra > 0 else r


def _scaled(field, s, I, r):
    return tuple(_rate(r, k) * k for k in field.f(s, I))


def rk4_step(field, s, I, r, dt):
    """One classic RK4 step of ``ds/dt = r f(s, I)`` (``I`` held over the step).

    Returns ``(s_new, q)``: ``q`` is the step's average of the readout, ``(g(Y1) + 2 g(Y2)
    + 2 g(Y3) + g(Y4)) / 6`` over the stage states ``Y``: RK4 applied to ``dQ/dt = g(s)``,
    so the readout window's average is fourth order in ``dt`` like the state.
    """
    h = 0.5 * dt
    k1 = _scaled(field, s, I, r)
    y2 = tuple(x + h * k for x, k in zip(s, k1, strict=True))
    k2 = _scaled(field, y2, I, r)
    y3 = tuple(x + h * k for x, k in zip(s, k2, strict=True))
    k3 = _scaled(field, y3, I, r)
    y4 = tuple(x + dt * k for x, k in zip(s, k3, strict=True))
    k4 = _scaled(field, y4, I, r)
    c = dt / 6.0
    q = (field.g(s) + 2.0 * field.g(y2) + 2.0 * field.g(y3) + field.g(y4)) / 6.0
    return tuple(x + c * (a + 2.0 * b + 2.0 * e + d)
                 for x, a, b, e, d in zip(s, k1, k2, k3, k4, strict=True)), q


def _stage(field, s, ds, I, dI, r, dr):
    """``r f(s, I)`` and its tangents ``r J ds + r f_I dI + dr f`` (``dr`` may be None)."""
    f = field.f(s, I)
    df = field.jvp(s, I, ds, dI)
    k = tuple(_rate(r, x) * x for x in f)
    dk = []
    for x, dx in zip(f, df, strict=True):
        t = _rate(r, x) * dx
        if dr is not None:
            t = t + _rate(dr, x) * x  # dr [K, 1, units] broadcasts over batch
        dk.append(t)
    return k, tuple(dk)


def rk4_step_tangent(field, s, ds, I, dI, r, dr, dt):
    """RK4 step of the state and of ``K`` tangents through the same stages (no tape).

    Returns ``(s_new, ds_new, q, dq)``, ``q`` as in :func:`rk4_step` and ``dq`` its tangents.
    """
    h = 0.5 * dt
    k1, d1 = _stage(field, s, ds, I, dI, r, dr)
    y2 = tuple(x + h * k for x, k in zip(s, k1, strict=True))
    e2 = tuple(x + h * k for x, k in zip(ds, d1, strict=True))
    k2, d2 = _stage(field, y2, e2, I, dI, r, dr)
    y3 = tuple(x + h * k for x, k in zip(s, k2, strict=True))
    e3 = tuple(x + h * k for x, k in zip(ds, d2, strict=True))
    k3, d3 = _stage(field, y3, e3, I, dI, r, dr)
    y4 = tuple(x + dt * k for x, k in zip(s, k3, strict=True))
    e4 = tuple(x + dt * k for x, k in zip(ds, d3, strict=True))
    k4, d4 = _stage(field, y4, e4, I, dI, r, dr)
    c = dt / 6.0
    s_new = tuple(x + c * (a + 2.0 * b + 2.0 * e + d)
                  for x, a, b, e, d in zip(s, k1, k2, k3, k4, strict=True))
    ds_new = tuple(x + c * (a + 2.0 * b + 2.0 * e + d)
                   for x, a, b, e, d in zip(ds, d1, d2, d3, d4, strict=True))
    q = (field.g(s) + 2.0 * field.g(y2) + 2.0 * field.g(y3) + field.g(y4)) / 6.0
    dq = (field.g_jvp(s, ds) + 2.0 * field.g_jvp(y2, e2) + 2.0 * field.g_jvp(y3, e3)
          + field.g_jvp(y4, e4)) / 6.0
    return s_new, ds_new, q, dq


class Schedule:
    """Step counts of one run: ``n_settle`` steps of transient, then ``n_read`` steps whose
    states are averaged, in ``windows`` windows of ``n_read // windows`` steps; a
    time-varying input sample lasts ``per_sample`` steps."""

    def __init__(self, n_settle: int, n_read: int, windows: int, per_sample: int, dt: float):
        self.n_settle, self.n_read, self.windows = n_settle, n_read, windows
        self.per_sample, self.dt = per_sample, dt
        self.n_steps = n_settle + n_read
        self.per_window = n_read // windows

    def window(self, n: int) -> int:
        """Window of the state after step ``n`` (0-based), or -1 during the settle time."""
        if n < self.n_settle:
            return -1
        return (n - self.n_settle) // self.per_window


def _drive(I, n, sched):
    """The drive during step ``n``: ``I`` static ``[B, U]`` or time-varying ``[B, T, U]``."""
    return I if I.dim() == 2 else I[:, n // sched.per_sample]


# --- plain / backprop ------------------------------------------------------------------------


def _run_chunk(field, sched, start, stop, trajectory, I, r, *s):
    acc = [None] * sched.windows
    traj = []
    for n in range(start, stop):
        s, q = rk4_step(field, s, _drive(I, n, sched), r, sched.dt)
        if trajectory:
            traj.append(field.g(s))
        w = sched.window(n)
        if w >= 0:
            acc[w] = q if acc[w] is None else acc[w] + q
    zero = torch.zeros_like(s[0] if s[0].dim() == 2 else s[0][..., 0])
    out = torch.stack([zero if a is None else a for a in acc])  # [W, B, U]
    traj = torch.stack(traj, 1) if trajectory else zero[:, :0]
    return (out, traj, *s)


def integrate(field, sched, I, r, s0, *, trajectory=False, chunk=None, use_checkpoint=True):
    """Run the schedule with autograd (backprop mode, or no grad at all).

    Returns ``(mean [B, W, U], trajectory [B, steps, U] or None)``.
    """
    chunk = chunk or max(1, int(math.ceil(math.sqrt(sched.n_steps))))
    grad = torch.is_grad_enabled() and (I.requires_grad or r.requires_grad or any(
        p.requires_grad for p in getattr(field, "parameters", lambda: [])()))
    s = tuple(s0)
    total, trajs = None, []
    for start in range(0, sched.n_steps, chunk):
        stop = min(start + chunk, sched.n_steps)
        if grad and use_checkpoint:
            out, traj, *s = checkpoint(_run_chunk, field, sched, start, stop, trajectory,
                                       I, r, *s, use_reentrant=False)
        else:
            out, traj, *s = _run_chunk(field, sched, start, stop, trajectory, I, r, *s)
        total = out if total is None else total + out
        if trajectory:
            trajs.append(traj)
    mean = (total / sched.per_window).permute(1, 0, 2)
    return mean, (torch.cat(trajs, 1) if trajectory else None)


# --- forward sensitivities ---------------------------------------------------------------------


def _tangent_plan(x, static, x_grad, p_grad):
    """Which tangents to carry: the drive (static), each input sample (a time-varying input
    that needs a gradient), or the gain and bias directions; and the log time scale."""
    names = []
    if static:
        names.append("I")
    elif x_grad:
        names += [("sample", k) for k in range(x.shape[1])]
    else:
        names += ["gain", "bias"]
    if p_grad:
        names.append("p")
    return names


def sensitivity_run(field, sched, x, gain, bias, p, need_x, need_p):
    """Forward pass with tangents: the mean readout and its Jacobian factors.

    ``x`` static ``[B, U]`` or time-varying ``[B, T, U]``; the drive is ``gain * x + bias``.
    Returns ``(mean [B, W, U], J [K, B, W, U], names)``; ``J[k]`` is the derivative of the
    mean along tangent ``names[k]``.
    """
    static = x.dim() == 2
    names = _tangent_plan(x, static, need_x, need_p)
    K = len(names)
    B, U = x.shape[0], x.shape[-1]
    r = torch.exp(-p)
    dr = None
    if need_p:
        dr = torch.zeros(K, 1, U, dtype=x.dtype, device=x.device)
        dr[names.index("p")] = -r  # d r / d p
    s = field.rest(B, U, x.dtype, x.device)
    ds = tuple(torch.zeros((K,) + c.shape, dtype=c.dtype, device=c.device) for c in s)
    J = torch.zeros(K, sched.windows, B, U, dtype=x.dtype, device=x.device)
    I_static = gain * x + bias if static else None
    if static:
        dI_static = torch.zeros(K, 1, 1, dtype=x.dtype, device=x.device)
        dI_static[0] = 1.0
    mean = torch.zeros(sched.windows, B, U, dtype=x.dtype, device=x.device)
    for n in range(sched.n_steps):
        if static:
            I, dI = I_static, dI_static
        else:
            k = n // sched.per_sample
            xk = x[:, k]
            I = gain * xk + bias
            dI = torch.zeros(K, B, U, dtype=x.dtype, device=x.device)
            if need_x:
                dI[k] = 1.0
            else:
                dI[0] = xk
                dI[1] = 1.0
        s, ds, q, dq = rk4_step_tangent(field, s, ds, I, dI, r, dr, sched.dt)
        w = sched.window(n)
        if w >= 0:
            mean[w] += q
            J[:, w] += dq
    scale = 1.0 / sched.per_window
    return (mean * scale).permute(1, 0, 2), (J * scale).permute(0, 2, 1, 3), names


class SensitivityFunction(torch.autograd.Function):
    """The mean readout with gradients from forward sensitivities (see module docstring)."""

    @staticmethod
    def forward(ctx, x, gain, bias, p, field, sched):
        need_x = ctx.needs_input_grad[0]
        need_p = ctx.needs_input_grad[3]
        with torch.no_grad():
            mean, J, names = sensitivity_run(field, sched, x, gain, bias, p, need_x, need_p)
        ctx.names, ctx.static = names, x.dim() == 2
        ctx.save_for_backward(x, gain, J)
        return mean

    @staticmethod
    def backward(ctx, gy):
        x, gain, J = ctx.saved_tensors
        names = ctx.names
        gx = ggain = gbias = gp = None
        if ctx.static:
            gI = (gy * J[0]).sum(1)  # [B, U]
            gx = gI * gain
            ggain = (gI * x).sum(0)
            gbias = gI.sum(0)
        elif names[0] == "gain":
            ggain = (gy * J[0]).sum((0, 1))
            gbias = (gy * J[1]).sum((0, 1))
        else:
            T = x.shape[1]
            gI = (gy.unsqueeze(0) * J[:T]).sum(2).permute(1, 0, 2)  # [B, T, U]
            gx = gI * gain
            ggain = (gI * x).sum((0, 1))
            gbias = gI.sum((0, 1))
        if "p" in names:
            gp = (gy * J[names.index("p")]).sum((0, 1))
        return gx, ggain, gbias, gp, None, None


# --- surrogate ---------------------------------------------------------------------------------


def surrogate_term(I, sched, trajectory: bool):
    """A zero-valued term whose gradient is the surrogate's: ``sigmoid(I) - sigmoid(I)``.

    Shapes: ``[B, W, U]`` for the mean (a time-varying drive averaged over the input
    samples that fall inside each readout window), ``[B, steps, U]`` for the trajectory.
    """
    sig = torch.sigmoid(I)
    if I.dim() == 2:
        if trajectory:
            S = sig.unsqueeze(1).expand(-1, sched.n_steps, -1)
        else:
            S = sig.unsqueeze(1).expand(-1, sched.windows, -1)
    elif trajectory:
        S = sig.repeat_interleave(sched.per_sample, dim=1)
    else:
        per_step = sig.repeat_interleave(sched.per_sample, dim=1)[:, sched.n_settle:]
        S = per_step.reshape(I.shape[0], sched.windows, sched.per_window, -1).mean(2)
    return S - S.detach()

"""The common module behind :class:`~hybridhh.nn.FHNLayer` and :class:`~hybridhh.nn.HHLayer`:
argument checks, the per-unit input gain/bias and time scale, the three gradient modes."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, SimulationError
from . import _integrate
from ._integrate import GRADIENTS, Schedule


def _steps(name: str, value: float, dt: float, *, allow_zero: bool) -> int:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    n = round(value / dt)
    if abs(n * dt - value) > 1e-9 * max(1.0, abs(value)):
        raise ConfigError(f"{name} = {value} is not a whole number of steps dt = {dt}; "
                          f"use a multiple of dt, e.g. {n * dt:g}")
    return n


class ODELayer(nn.Module):
    """A bank of ``n_units`` independent ODE units driven by ``gain * x + bias``.

    Subclasses set ``self.field`` and the time unit. See :class:`~hybridhh.nn.FHNLayer`
    for the arguments.
    """

    time_unit = "model time units"
    drive_range = (-1.0, 1.0)

    def __init__(self, field, n_units: int, *, dt: float, settle: float, readout: float,
                 windows: int = 1, input_dt: float | None = None, gradient: str = "sensitivity",
                 gain: float = 1.0, bias: float = 0.0, time_scale: float = 1.0,
                 train_time_scale: bool = False, chunk: int | None = None, dtype=None):
        super().__init__()
        if isinstance(n_units, bool) or not isinstance(n_units, int) or n_units < 1:
            raise ConfigError(f"n_units must be a positive integer, got {n_units!r}")
        if not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
            raise ConfigError(f"dt must be a positive time step ({self.time_unit}), got {dt!r}")
        if gradient not in GRADIENTS:
            raise ConfigError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ConfigError(f"windows must be a positive integer, got {windows!r}")
        if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
            raise ConfigError(f"chunk must be a positive number of steps or None, got {chunk!r}")
        for name, v in (("gain", gain), ("bias", bias), ("time_scale", time_scale)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v!r}")
        if time_scale <= 0:
            raise ConfigError(f"time_scale must be > 0, got {time_scale}")
        self.field = field
        self.n_units, self.dt, self.gradient = n_units, float(dt), gradient
        self.settle, self.readout, self.windows, self.chunk = settle, readout, windows, chunk
        self.n_settle = _steps("settle", settle, dt, allow_zero=True)
        self.n_read = _steps("readout", readout, dt, allow_zero=False)
        if self.n_read % windows:
            raise ConfigError(f"readout ({self.n_read} steps) must split into windows = "
                              f"{windows} equal windows; choose readout as a multiple of "
                              f"{windows} * dt = {windows * dt:g}")
        self.input_dt = float(dt if input_dt is None else input_dt)
        self.per_sample = _steps("input_dt", self.input_dt, dt, allow_zero=False)
        dtype = dtype or torch.get_default_dtype()
        self.gain = nn.Parameter(torch.full((n_units,), float(gain), dtype=dtype))
        self.bias = nn.Parameter(torch.full((n_units,), float(bias), dtype=dtype))
        log_ts = torch.full((n_units,), math.log(time_scale), dtype=dtype)
        if train_time_scale:
            self.log_time_scale = nn.Parameter(log_ts)
        else:
            self.register_buffer("log_time_scale", log_ts)

    @property
    def duration(self) -> float:
        """Settle plus readout time (the length a time-varying input must span)."""
        return (self.n_settle + self.n_read) * self.dt

    def extra_repr(self) -> str:
        return (f"n_units={self.n_units}, dt={self.dt}, settle={self.settle}, "
                f"readout={self.readout}, windows={self.windows}, gradient={self.gradient!r}")

    def _check(self, x, return_trajectory):
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"input must be a torch tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3) or x.shape[-1] != self.n_units:
            raise ConfigError(
                f"input must be [batch, units] (a constant drive) or [batch, time, units] "
                f"(a time-varying one) with units = {self.n_units}, got shape {tuple(x.shape)}")
        if x.dtype != self.gain.dtype:
            raise ConfigError(f"input dtype {x.dtype} differs from the layer's "
                              f"{self.gain.dtype}; convert one of them (layer.to(dtype))")
        n_steps = self.n_settle + self.n_read
        if x.dim() == 3 and x.shape[1] * self.per_sample != n_steps:
            raise ConfigError(
                f"a time-varying input of {x.shape[1]} samples x input_dt {self.input_dt:g} "
                f"lasts {x.shape[1] * self.input_dt:g} {self.time_unit}, but settle + readout "
                f"= {self.duration:g}; give {n_steps // self.per_sample} samples or set "
                f"input_dt = {self.duration / x.shape[1]:g} (a multiple of dt)")
        if return_trajectory and self.gradient == "sensitivity":
            raise ConfigError(
                "return_trajectory=True needs gradient='backprop' or 'surrogate': sensitivity "
                "mode keeps memory constant by storing only the readout's derivatives")

    def schedule(self) -> Schedule:
        return Schedule(self.n_settle, self.n_read, self.windows, self.per_sample, self.dt)

    def forward(self, x: torch.Tensor, return_trajectory: bool = False):
        """The response to drive ``gain * x + bias``.

        ``x``: ``[batch, units]`` (constant over settle + readout) or ``[batch, time,
        units]`` (sample ``k`` held for ``input_dt``; ``time * input_dt`` must equal settle +
        readout). Returns the readout averaged over the readout window, ``[batch, units]``
        (``[batch, windows, units]`` with ``windows > 1``), or with ``return_trajectory``
        ``(that, trajectory [batch, steps, units])``: the readout after every step.
        """
        self._check(x, return_trajectory)
        sched = self.schedule()
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(
            p.requires_grad for p in (self.gain, self.bias, self.log_time_scale)))
        if self.gradient == "sensitivity" and needs_grad:
            mean = _integrate.SensitivityFunction.apply(
                x, self.gain, self.bias, self.log_time_scale, self.field, sched)
            self._check_finite(mean)
            return mean[:, 0] if self.windows == 1 else mean
        I = self.gain * x + self.bias
        r = torch.exp(-self.log_time_scale)
        s0 = self.field.rest(x.shape[0], self.n_units, x.dtype, x.device)
        if self.gradient == "surrogate" or not needs_grad:
            with torch.no_grad():
                mean, traj = _integrate.integrate(self.field, sched, I.detach(), r.detach(),
                                                  s0, trajectory=return_trajectory)
            if self.gradient == "surrogate" and needs_grad:
                mean = mean + _integrate.surrogate_term(I, sched, False)
                if return_trajectory:
                    traj = traj + _integrate.surrogate_term(I, sched, True)
        else:
            mean, traj = _integrate.integrate(self.field, sched, I, r, s0,
                                              trajectory=return_trajectory, chunk=self.chunk)
        self._check_finite(mean)
        mean = mean[:, 0] if self.windows == 1 else mean
        return (mean, traj) if return_trajectory else mean

    def _check_finite(self, mean):
        if not bool(torch.isfinite(mean).all()):
            with torch.no_grad():
                ts = torch.exp(self.log_time_scale)
            raise SimulationError(
                f"{type(self).__name__}: the units diverged (non-finite response) at dt = "
                f"{self.dt:g} {self.time_unit}: the drive (|gain| up to "
                f"{float(self.gain.detach().abs().max()):.3g}, |bias| up to "
                f"{float(self.bias.detach().abs().max()):.3g}) or 1/time_scale (time scale "
                f"down to {float(ts.min()):.3g}) is too large for RK4 at this step; bound the "
                "drive (e.g. tanh before the layer), lower dt, or clip the gradients")

    @torch.no_grad()
    def response_curve(self, drive) -> torch.Tensor:
        """The f–I curve: the mean readout of one unit held at each constant ``drive``
        (the drive itself, before gain and bias; time scale of unit 0). 1-D in, 1-D out."""
        drive = torch.as_tensor(drive, dtype=self.gain.dtype).reshape(-1, 1)
        sched = Schedule(self.n_settle, self.n_read, 1, 1, self.dt)
        r = torch.exp(-self.log_time_scale[:1])
        s0 = self.field.rest(drive.shape[0], 1, drive.dtype, drive.device)
        mean, _ = _integrate.integrate(self.field, sched, drive, r, s0)
        return mean[:, 0, 0]

"""Rate-function sets: the voltage-dependent kinetics of the gates m, h, n.

A *kinetics* object is anything with a ``rates(V) -> (alpha, beta)`` method: ``V`` is a
tensor of membrane potentials (mV) of any shape, ``alpha`` and ``beta`` have shape
``V.shape + (3,)`` in the gate order m, h, n, in 1/ms. The reference HH rates below and the
learned MLP (:mod:`hybridhh.learned`) are both kinetics objects, so one simulator, one
set of integrators and one metrics/plotting code path serve them alike.

The six 1952 rate functions are small pure functions of the *modern-convention* voltage
(rest about -65 mV, as in NEURON's ``hh``), at 6.3 °C. They accept torch tensors or numpy
arrays and return the same kind. ``alpha_m`` and ``alpha_n`` have removable singularities
(at -40 and -55 mV); they are evaluated through :func:`exprel`, never as a bare 0/0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .constants import CONVENTIONS, HH_Q10, HH_REFERENCE_TEMPERATURE, MODERN_REST
from .errors import ConfigError

__all__ = [
    "exprel",
    "alpha_m",
    "beta_m",
    "alpha_h",
    "beta_h",
    "alpha_n",
    "beta_n",
    "q10_factor",
    "HHKinetics",
    "inf_tau",
    "inf_tau_from_rates",
    "rates_from_inf_tau",
    "get_kinetics",
    "KINETICS_NAMES",
]


def _array_api(fn):
    """Let a torch function of tensors also take and return numpy arrays or floats."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if any(isinstance(a, torch.Tensor) for a in args):
            return fn(*args, **kwargs)
        targs = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in args]
        out = fn(*targs, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.numpy() for o in out)
        return out.numpy()

    return wrapper


@_array_api
def exprel(x):
    """Relative error exponential ``(exp(x) - 1) / x``, equal to 1 at ``x = 0``.

    Accurate to about 1e-16 relative everywhere, and differentiable at 0 (no NaN in the
    backward pass): near zero a Taylor series replaces the quotient.
    """
    small = x.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(x), x)
    series = 1.0 + x * (0.5 + x * (1.0 / 6.0 + x / 24.0))
    return torch.where(small, series, torch.expm1(safe) / safe)


# --- the 1952 rates, modern convention, 6.3 °C, 1/ms; V in mV --------------------------


@_array_api
def alpha_m(V):
    """Na activation opening rate, ``0.1 (V+40) / (1 - exp(-(V+40)/10))``, 1/ms."""
    return 1.0 / exprel(-(V + 40.0) / 10.0)


@_array_api
def beta_m(V):
    """Na activation closing rate, ``4 exp(-(V+65)/18)``, 1/ms."""
    return 4.0 * torch.exp(-(V + 65.0) / 18.0)


@_array_api
def alpha_h(V):
    """Na inactivation removal rate, ``0.07 exp(-(V+65)/20)``, 1/ms."""
    return 0.07 * torch.exp(-(V + 65.0) / 20.0)


@_array_api
def beta_h(V):
    """Na inactivation rate, ``1 / (1 + exp(-(V+35)/10))``, 1/ms."""
    return torch.sigmoid((V + 35.0) / 10.0)


@_array_api
def alpha_n(V):
    """K activation opening rate, ``0.01 (V+55) / (1 - exp(-(V+55)/10))``, 1/ms."""
    return 0.1 / exprel(-(V + 55.0) / 10.0)


@_array_api
def beta_n(V):
    """K activation closing rate, ``0.125 exp(-(V+65)/80)``, 1/ms."""
    return 0.125 * torch.exp(-(V + 65.0) / 80.0)


_ALPHAS = (alpha_m, alpha_h, alpha_n)
_BETAS = (beta_m, beta_h, beta_n)


# The fused evaluation of all six rates. With w = V_modern + 65 mV (the displacement from
# the 1952 rest) every rate is a function of one affine argument (w - K) / D:
#   column  rate      K    D     rate from the argument a
#   0       alpha_m   25  -10    a / expm1(a)               (removable singularity at a=0)
#   1       alpha_n   10  -10    0.1 a / expm1(a)           (removable singularity at a=0)
#   2       alpha_h    0  -20    0.07 exp(a)
#   3       beta_m     0  -18    4 exp(a)
#   4       beta_h    30  -10    1 / (1 + exp(a))
#   5       beta_n     0  -80    0.125 exp(a)
_FUSED_K = (25.0, 10.0, 0.0, 0.0, 30.0, 0.0)
_FUSED_D = (-10.0, -10.0, -20.0, -18.0, -10.0, -80.0)
_FUSED_CONST: dict = {}
#: Below this |a| the quotient a / expm1(a) is replaced by its series 1 - a/2 + a^2/12
#: (truncation error a^4/720 < 2e-19): exact at a = 0 and with an exact gradient there.
_EXPREL_SERIES_BELOW = 1e-4


def _fused_constants(dtype, device, phi: float):
    key = (dtype, device, phi)
    c = _FUSED_CONST.get(key)
    if c is None:
        if len(_FUSED_CONST) > 64:  # many temperatures: keep the cache small
            _FUSED_CONST.clear()
        c = (torch.tensor(_FUSED_K, dtype=dtype, device=device)[:, None],
             torch.tensor(_FUSED_D, dtype=dtype, device=device)[:, None],
             torch.tensor((phi, 0.07 * phi, 0.1 * phi), dtype=dtype, device=device),
             torch.tensor((4.0 * phi, phi, 0.125 * phi), dtype=dtype, device=device))
        _FUSED_CONST[key] = c
    return c


def _fused_hh_rates(V, shift: float, phi: float):
    """All six HH rates of ``V + shift`` (= w, mV above the 1952 rest) times ``phi``.

    Works on a flat, rate-major ``[6, N]`` layout so every elementwise op runs over
    contiguous memory (strided slices are many times slower on CPU).
    """
    if not V.is_floating_point():
        V = V.to(torch.get_default_dtype())
    K, D, scale_alpha, scale_beta = _fused_constants(V.dtype, V.device, phi)
    w = V.reshape(-1)
    if shift != 0.0:
        w = w + shift
    a = (w - K) / D  # [6, N]
    u = a[:2]
    small = u.abs() < _EXPREL_SERIES_BELOW
    us = torch.where(small, 1.0, u)
    ratio = torch.where(small, 1.0 + u * (u * (1.0 / 12.0) - 0.5), us / torch.expm1(us))
    e = torch.exp(a[2:])  # alpha_h, beta_m, beta_h, beta_n (before scaling)
    shape = V.shape + (3,)
    alpha = (torch.stack((ratio[0], e[0], ratio[1]), dim=-1) * scale_alpha).reshape(shape)
    beta = (torch.stack((e[1], torch.reciprocal(1.0 + e[2]), e[3]), dim=-1)
            * scale_beta).reshape(shape)
    return alpha, beta


def q10_factor(temperature: float, q10: float = HH_Q10,
               reference: float = HH_REFERENCE_TEMPERATURE) -> float:
    """Rate multiplier ``q10 ** ((temperature - reference) / 10)`` (temperatures in °C)."""
    return float(q10 ** ((temperature - reference) / 10.0))


def convention_offset(convention: str) -> float:
    """Voltage (mV) to add to a voltage of ``convention`` to get the modern one."""
    if convention == "modern":
        return 0.0
    if convention == "hh1952":
        return MODERN_REST
    raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


@dataclass(frozen=True)
class HHKinetics:
    """The Hodgkin–Huxley 1952 rate functions in either voltage convention.

    Parameters
    ----------
    convention
        ``"modern"`` (rest about -65 mV, NEURON ``hh``) or ``"hh1952"`` (rest 0 mV).
    temperature
        °C; all six rates are multiplied by ``q10 ** ((temperature - 6.3) / 10)``.
    q10
        Temperature coefficient (3 in NEURON's ``hh``).
    """

    convention: str = "modern"
    temperature: float = HH_REFERENCE_TEMPERATURE
    q10: float = HH_Q10

    def __post_init__(self):
        convention_offset(self.convention)  # validates
        if not math.isfinite(self.temperature):
            raise ConfigError(f"temperature must be finite (degC), got {self.temperature}")

    @property
    def name(self) -> str:
        return "hh_modern" if self.convention == "modern" else "hh1952"

    @property
    def phi(self) -> float:
        return q10_factor(self.temperature, self.q10)

    def rates(self, V):
        """``(alpha, beta)``, each of shape ``V.shape + (3,)`` (gates m, h, n), 1/ms.

        ``V`` (mV, in this set's convention) may be a torch tensor (any float dtype and
        device; the result has the same), a numpy array or a float (the result is numpy).
        The six rates are evaluated in one fused pass (one ``exp`` and one ``expm1``
        call), equal to the reference functions :func:`alpha_m` ... to rounding.
        """
        if isinstance(V, torch.Tensor):
            return _fused_hh_rates(V, convention_offset(self.convention) - MODERN_REST,
                                   self.phi)
        a, b = _fused_hh_rates(torch.as_tensor(np.asarray(V, dtype=np.float64)),
                               convention_offset(self.convention) - MODERN_REST, self.phi)
        return a.numpy(), b.numpy()

    def inf_tau(self, V):
        """``(x_inf, tau)`` of the three gates (dimensionless, ms)."""
        return inf_tau_from_rates(*self.rates(V))


def inf_tau_from_rates(alpha, beta):
    """Steady state ``alpha/(alpha+beta)`` and time constant ``1/(alpha+beta)`` (ms)."""
    total = alpha + beta
    return alpha / total, 1.0 / total


def inf_tau(kinetics, V):
    """``(x_inf, tau)`` of any kinetics object: its own ``inf_tau`` if it has one."""
    if hasattr(kinetics, "inf_tau"):
        return kinetics.inf_tau(V)
    return inf_tau_from_rates(*kinetics.rates(V))


def rates_from_inf_tau(x_inf, tau):
    """Inverse of :func:`inf_tau`: ``alpha = x_inf / tau``, ``beta = (1 - x_inf) / tau``."""
    return x_inf / tau, (1.0 - x_inf) / tau


KINETICS_NAMES = ("hh_modern", "hh1952")


def get_kinetics(name: str, temperature: float = HH_REFERENCE_TEMPERATURE, q10: float = HH_Q10):
    """A built-in kinetics set by name.

    ``"hh_modern"`` (alias ``"neuron_hh"``, ``"hh"``): the 1952 rates in modern convention,
    as NEURON's ``hh``. ``"hh1952"``: the same rates in the 1952 convention (rest 0 mV).
    """
    aliases = {"hh_modern": "modern", "neuron_hh": "modern", "hh": "modern", "hh1952": "hh1952"}
    if name not in aliases:
        raise ConfigError(
            f"unknown kinetics {name!r}; built-in sets are {sorted(aliases)}"
        )
    return HHKinetics(convention=aliases[name], temperature=temperature, q10=q10)

"""Hodgkin–Huxley units: the single-compartment HH cell of :mod:`hybridhh.hh` as a unit.

Units: time ms, V mV, drive µA/cm² (the layer's ``gain * x + bias``), conductances mS/cm²,
C_m µF/cm². The kinetics are the reference 1952 rates (modern convention, 6.3 °C) or any
kinetics object (``rates(V) -> (alpha, beta)``), e.g. a fitted model: pass its run
directory and the learned rates become the units' gates.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..biophysics import Biophysics
from ..constants import MODERN_REST
from ..errors import ConfigError
from ..hh import resting_potential, steady_state_gates
from ..kinetics import HHKinetics, convention_offset
from .layers import ODELayer

__all__ = ["HHField", "HHLayer", "fitted_kinetics"]


def fitted_kinetics(run_dir, vmin: float = -120.0, vmax: float = 80.0, step: float = 0.05):
    """``(kinetics, biophysics)`` of a fitted run directory (:func:`hybridhh.load_fit`).

    The learned model is tabulated every ``step`` mV over ``vmin..vmax`` (linear
    interpolation, flat outside), which is what the fitter itself simulates; the cell is
    the fit's own (``result.json`` ``biophysics``, without ``C_total``) where recorded,
    else the standard squid axon.
    """
    from ..fitting.api import load_fit

    result = load_fit(run_dir)
    with torch.no_grad():
        table = result.model.tabulate(vmin, vmax, step)
    bio = dict(result.biophysics or {})
    bio.pop("C_total", None)
    return table, (Biophysics(**bio) if bio else Biophysics.standard())


def _hh_rates_and_slopes(kin: HHKinetics, V):
    """The six HH rates (1/ms) and their V derivatives (1/(ms mV)), gate order m, h, n."""
    phi = kin.phi
    w = V + (convention_offset(kin.convention) - MODERN_REST)  # mV above the 1952 rest

    def ratio(a):  # a / expm1(a) and its derivative in a
        small = a.abs() < 1e-4
        safe = torch.where(small, torch.ones_like(a), a)
        e = torch.expm1(safe)
        r = torch.where(small, 1.0 + a * (a / 12.0 - 0.5), safe / e)
        dr = torch.where(small, -0.5 + a / 6.0, (e - safe * (e + 1.0)) / (e * e))
        return r, dr

    r_m, dr_m = ratio((w - 25.0) / -10.0)
    r_n, dr_n = ratio((w - 10.0) / -10.0)
    e_h = torch.exp(w / -20.0)
    e_bm = torch.exp(w / -18.0)
    e_bh = torch.exp((w - 30.0) / -10.0)
    e_bn = torch.exp(w / -80.0)
    s_bh = torch.reciprocal(1.0 + e_bh)
    alpha = torch.stack((r_m, 0.07 * e_h, 0.1 * r_n), -1) * phi
    beta = torch.stack((4.0 * e_bm, s_bh, 0.125 * e_bn), -1) * phi
    da = torch.stack((dr_m / -10.0, 0.07 * e_h / -20.0, 0.1 * dr_n / -10.0), -1) * phi
    db = torch.stack((4.0 * e_bm / -18.0, -e_bh * s_bh * s_bh / -10.0,
                      0.125 * e_bn / -80.0), -1) * phi
    return alpha, beta, da, db


class HHField:
    """The HH vector field (state ``(V [B, U], gates [B, U, 3])``), its tangent map and
    its readout ``V``."""

    def __init__(self, kinetics, biophysics: Biophysics):
        self.kinetics, self.bio = kinetics, biophysics
        self.v0 = resting_potential(kinetics, biophysics)
        with torch.no_grad():
            x0 = steady_state_gates(torch.tensor([self.v0], dtype=torch.float64), kinetics)
        self.x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(3)

    def rest(self, batch, units, dtype, device):
        V = torch.full((batch, units), self.v0, dtype=dtype, device=device)
        x = self.x0.to(dtype=dtype, device=device).expand(batch, units, 3).clone()
        return V, x

    def _rates(self, V):
        a, b = self.kinetics.rates(V)
        return a.to(V.dtype), b.to(V.dtype)

    def f(self, s, I):
        V, x = s
        bio = self.bio
        alpha, beta = self._rates(V)
        m, h, n = x[..., 0], x[..., 1], x[..., 2]
        i_ion = (bio.g_Na * m * m * m * h * (V - bio.E_Na) + bio.g_K * (n * n) * (n * n)
                 * (V - bio.E_K) + bio.g_L * (V - bio.E_L))
        return (I - i_ion) / bio.C_m, alpha * (1.0 - x) - beta * x

    def rates_and_slopes(self, V):
        """``(alpha, beta, dalpha/dV, dbeta/dV)``: closed forms for the reference rates,
        forward-mode autodiff (:func:`torch.func.jvp`) for any other kinetics."""
        if isinstance(self.kinetics, HHKinetics):
            return _hh_rates_and_slopes(self.kinetics, V)
        (alpha, beta), (da, db) = torch.func.jvp(self._rates, (V,), (torch.ones_like(V),))
        return alpha, beta, da, db

    def jvp(self, s, I, ds, dI):
        V, x = s
        dV, dx = ds
        bio = self.bio
        alpha, beta, da, db = self.rates_and_slopes(V)
        m, h, n = x[..., 0], x[..., 1], x[..., 2]
        dm, dh, dn = dx[..., 0], dx[..., 1], dx[..., 2]
        g_na = bio.g_Na * m * m * m * h
        g_k = bio.g_K * (n * n) * (n * n)
        d_ion = ((g_na + g_k + bio.g_L) * dV
                 + bio.g_Na * (3.0 * m * m * h * dm + m * m * m * dh) * (V - bio.E_Na)
                 + bio.g_K * 4.0 * n * n * n * dn * (V - bio.E_K))
        dVdt = (dI - d_ion) / bio.C_m
        dxdt = (da * (1.0 - x) - db * x) * dV.unsqueeze(-1) - (alpha + beta) * dx
        return dVdt, dxdt

    def g(self, s):
        return s[0]

    def g_jvp(self, s, ds):
        return ds[0]


class HHLayer(ODELayer):
    """``n_units`` Hodgkin–Huxley cells; cell ``j`` is injected ``gain_j * x_j + bias_j``
    µA/cm².

    The response is the membrane potential (mV) averaged over the readout window (ms),
    a smooth function of the drive: about -65 mV at rest, rising with depolarising drive,
    and with the repetitive firing above about 6 µA/cm² (6.3 °C) its time average.

    Parameters
    ----------
    n_units
        Number of cells.
    kinetics
        None: the reference HH rates (:class:`~hybridhh.kinetics.HHKinetics`, modern
        convention, 6.3 °C). A kinetics object (``rates(V)``), or a fitted run directory
        (str or Path; see :func:`fitted_kinetics`, which also supplies the fit's cell).
        A kinetics module with trainable parameters (an untabulated
        :class:`~hybridhh.learned.RateMLP`) needs ``gradient="backprop"``, the only mode
        that differentiates through them.
    biophysics
        The cell (:class:`~hybridhh.biophysics.Biophysics`); default the standard squid axon
        or the fitted run's cell.
    dt, settle, readout, input_dt
        Time step, transient, readout window and input sample length, ms (multiples of
        ``dt``). RK4 at 0.05 ms is stable for the squid axon at 6.3 °C.
    windows, gradient, gain, bias, chunk, dtype
        As for :class:`~hybridhh.nn.FHNLayer`; ``gain`` in µA/cm² per input unit, ``bias``
        in µA/cm². HH units have no trainable time scale (temperature sets it).
    """

    time_unit = "ms"
    #: drives (µA/cm²) over which :func:`~hybridhh.nn.calibrate` looks for the input range
    drive_range = (-10.0, 60.0)

    def __init__(self, n_units: int, *, kinetics=None, biophysics: Biophysics | None = None,
                 dt: float = 0.05, settle: float = 20.0, readout: float = 50.0,
                 windows: int = 1, input_dt: float | None = None,
                 gradient: str = "sensitivity", gain: float = 1.0, bias: float = 0.0,
                 chunk: int | None = None, dtype=None):
        bio = biophysics
        if kinetics is None:
            kinetics = HHKinetics()
        elif isinstance(kinetics, (str, Path)):
            kinetics, fitted_bio = fitted_kinetics(kinetics)
            bio = bio or fitted_bio
        elif not callable(getattr(kinetics, "rates", None)):
            raise ConfigError("kinetics must be None (the reference HH rates), a kinetics "
                              "object with rates(V) -> (alpha, beta), or a fitted run "
                              f"directory; got {type(kinetics).__name__}")
        trainable = [p for p in getattr(kinetics, "parameters", lambda: [])()
                     if getattr(p, "requires_grad", False)]
        if trainable and gradient != "backprop":
            raise ConfigError(
                f"kinetics {type(kinetics).__name__} has trainable parameters, which only "
                f"gradient='backprop' differentiates (got {gradient!r}); freeze them "
                "(kinetics.requires_grad_(False)), pass a fitted run directory (tabulated, "
                "fixed), or use gradient='backprop'")
        if bio is not None and not isinstance(bio, Biophysics):
            raise ConfigError(f"biophysics must be a Biophysics, got {type(bio).__name__}")
        field = HHField(kinetics, bio or Biophysics.standard())
        super().__init__(field, n_units, dt=dt, settle=settle, readout=readout,
                         windows=windows, input_dt=input_dt, gradient=gradient, gain=gain,
                         bias=bias, chunk=chunk, dtype=dtype)

"""The MLP that stands in for the six rate functions (a kinetics object like the reference).

``RateMLP(V) -> (x_inf, tau)`` for the gates m, h, n. The network sees a scaled voltage
``u = (V - center) / scale`` where ``center`` and ``scale`` come from the cell's reversal
potentials, so the same network works in either voltage convention. Its output is added
to a *generic prior* that knows only which gates activate (m, n) and which inactivate (h),
placed relative to the cell's resting potential and reversal potentials; the last layer
starts at zero, so an untrained model *is* the prior.

Two parametrisations (``parametrisation=``):

``"inf_tau"`` (default)
    ``x_inf = sigmoid(o1)``, ``tau = tau_min + exp(o2)`` (ms). Steady state and time
    constant are separate outputs, so the optimiser can move one without the other.
``"alpha_beta"``
    ``alpha = softplus(o1)``, ``beta = softplus(o2)`` (1/ms), the textbook form.

Both give smooth, positive rates. Evaluating an MLP at every sample is wasteful: use
:meth:`RateMLP.tabulate` to evaluate it once on a voltage grid and
:class:`TabulatedKinetics` to interpolate it linearly, which is what the fitter does.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import nn

from ..biophysics import Biophysics
from ..errors import ConfigError
from .prior import GatePrior
from .tabulated import TabulatedKinetics

__all__ = ["GateMLPs", "RateMLP"]


class GateMLPs(nn.Module):
    """Three independent two-hidden-layer tanh MLPs (one per gate), evaluated together.

    Input ``u [..., 1]`` -> output ``[..., 6]`` ordered (o_m, o_h, o_n, p_m, p_h, p_n) like
    the shared network. Separate weights keep the gates' curvature apart, which the
    optimiser finds much easier than one trunk shared by all gates.
    """

    def __init__(self, width: int, dtype=torch.float64):
        super().__init__()

        def uniform(shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(shape, dtype=dtype).uniform_(-bound, bound))

        self.w1, self.b1 = uniform((3, width), 1), uniform((3, width), 1)
        self.w2, self.b2 = uniform((3, width, width), width), uniform((3, width), width)
        self.w3 = nn.Parameter(torch.zeros(3, width, 2, dtype=dtype))
        self.b3 = nn.Parameter(torch.zeros(3, 2, dtype=dtype))
        self.width = width

    def forward(self, u):
        h = torch.tanh(u[..., None] * self.w1 + self.b1)  # [..., 3, W]
        h = torch.tanh(torch.einsum("...gw,gwv->...gv", h, self.w2) + self.b2)
        o = torch.einsum("...gw,gwo->...go", h, self.w3) + self.b3  # [..., 3, 2]
        return torch.cat([o[..., 0], o[..., 1]], dim=-1)


class RateMLP(nn.Module):
    """Two-hidden-layer MLP giving the kinetics of m, h, n.

    Parameters
    ----------
    biophysics
        The known part of the cell; its reversal potentials set the input scaling.
    prior
        The generic starting point the network output is added to.
    width
        Hidden-layer width.
    parametrisation
        ``"inf_tau"`` or ``"alpha_beta"`` (see module docstring).
    tau_min
        Lower bound on tau (ms) in the ``inf_tau`` parametrisation.
    input_gain
        The input is ``input_gain * (V - center) / half_span`` with ``center`` and
        ``half_span`` the midpoint and half distance of E_K and E_Na: a gain above 1 lets
        the tanh units resolve the steep parts of x_inf without large first-layer weights.
    """

    def __init__(self, biophysics: Biophysics, prior: GatePrior, width: int = 64,
                 parametrisation: str = "inf_tau", tau_min: float = 1e-3,
                 input_gain: float = 3.0, separate: bool = True,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        if parametrisation not in ("inf_tau", "alpha_beta"):
            raise ConfigError(
                f"parametrisation must be 'inf_tau' or 'alpha_beta', got {parametrisation!r}")
        if width < 1:
            raise ConfigError(f"width must be >= 1, got {width}")
        self.parametrisation = parametrisation
        self.prior = prior
        self.tau_min = float(tau_min)
        self.center = 0.5 * (biophysics.E_Na + biophysics.E_K)
        self.scale = 0.5 * abs(biophysics.E_Na - biophysics.E_K) / input_gain
        self.input_gain = float(input_gain)
        self.separate = bool(separate)
        self.width = int(width)
        if self.separate:
            self.net = GateMLPs(width, dtype)
        else:
            self.net = nn.Sequential(
                nn.Linear(1, width), nn.Tanh(),
                nn.Linear(width, width), nn.Tanh(),
                nn.Linear(width, 6),
            ).to(dtype)
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def config(self) -> dict:
        """What :meth:`from_config` needs to rebuild the module (state dict aside)."""
        return {"parametrisation": self.parametrisation, "prior": asdict(self.prior),
                "tau_min": self.tau_min, "width": self.width, "separate": self.separate,
                "input_gain": self.input_gain,
                "E_Na": self.center + self.scale * self.input_gain,
                "E_K": self.center - self.scale * self.input_gain}

    @classmethod
    def from_config(cls, cfg: dict, dtype=torch.float64) -> RateMLP:
        bio = Biophysics(E_Na=cfg["E_Na"], E_K=cfg["E_K"])
        return cls(bio, GatePrior(**cfg["prior"]), width=cfg["width"],
                   parametrisation=cfg["parametrisation"], tau_min=cfg["tau_min"],
                   input_gain=cfg["input_gain"], separate=cfg.get("separate", False),
                   dtype=dtype)

    @property
    def _dtype(self):
        return next(self.parameters()).dtype

    def _outputs(self, V):
        o = self.net(((V - self.center) / self.scale)[..., None])
        p_inf, p_logtau = self.prior.outputs(V)
        if self.parametrisation == "inf_tau":
            return p_inf + o[..., :3], p_logtau + o[..., 3:]
        # alpha_beta: the prior in the same terms: log alpha, log beta
        alpha0 = torch.sigmoid(p_inf) / torch.exp(p_logtau)
        beta0 = torch.sigmoid(-p_inf) / torch.exp(p_logtau)
        return _inv_softplus(alpha0) + o[..., :3], _inv_softplus(beta0) + o[..., 3:]

    def inf_tau(self, V):
        """``(x_inf, tau)``, each ``V.shape + (3,)``; tau in ms."""
        V = torch.as_tensor(V, dtype=self._dtype)
        a, b = self._outputs(V)
        if self.parametrisation == "inf_tau":
            return torch.sigmoid(a), self.tau_min + torch.exp(b.clamp(max=12.0))
        alpha, beta = nn.functional.softplus(a), nn.functional.softplus(b)
        total = alpha + beta
        return alpha / total, 1.0 / total

    def logit_logtau(self, V):
        """``(logit x_inf, log tau)``, each ``V.shape + (3,)``: the smooth, unbounded
        quantities the Gauss–Newton fit works with (see :mod:`hybridhh.fitting.gauss_newton`)."""
        V = torch.as_tensor(V, dtype=self._dtype)
        a, b = self._outputs(V)
        if self.parametrisation == "inf_tau":
            tau_min = torch.full_like(b, math.log(self.tau_min))
            return a, torch.logaddexp(tau_min, b.clamp(max=12.0))
        log_alpha = torch.log(nn.functional.softplus(a))
        log_beta = torch.log(nn.functional.softplus(b))
        return log_alpha - log_beta, -torch.logaddexp(log_alpha, log_beta)

    def rates(self, V):
        """``(alpha, beta)`` in 1/ms, each ``V.shape + (3,)``."""
        V = torch.as_tensor(V, dtype=self._dtype)
        if self.parametrisation == "alpha_beta":
            a, b = self._outputs(V)
            return nn.functional.softplus(a), nn.functional.softplus(b)
        x_inf, tau = self.inf_tau(V)
        return x_inf / tau, (1.0 - x_inf) / tau

    def forward(self, V):
        return self.inf_tau(V)

    def tabulate(self, vmin: float, vmax: float, step: float = 0.05) -> TabulatedKinetics:
        """The model evaluated on a voltage grid (keeps the autograd graph)."""
        n = int(round((vmax - vmin) / step)) + 1
        grid = vmin + step * torch.arange(n, dtype=self._dtype)
        x_inf, tau = self.inf_tau(grid)
        return TabulatedKinetics(vmin, step, x_inf, tau)


def _inv_softplus(y):
    return y + torch.log(-torch.expm1(-y))

"""The generic gate prior: a two-state gate per channel (Boltzmann x_inf, bell-shaped tau).

It knows only that m and n activate and h inactivates; the MLP (:mod:`.mlp`) is added to it,
and an untrained model *is* the prior. Units: mV, ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["GATE_DIRECTIONS", "GatePrior", "PriorKinetics"]

#: Gate directions of the generic prior: +1 activates with depolarisation, -1 inactivates.
GATE_DIRECTIONS = (1.0, -1.0, 1.0)


@dataclass(frozen=True)
class GatePrior:
    """A smooth starting point for the kinetics: one two-state (thermodynamic) gate each.

    Each gate has rates ``alpha = A exp(d (V - V_half) / (2 k))`` and
    ``beta = A exp(-d (V - V_half) / (2 k))``, i.e. a Boltzmann steady state
    ``x_inf = sigmoid(d (V - V_half) / k)`` and a bell-shaped time constant
    ``tau = tau_max / cosh((V - V_half) / (2 k))`` with ``tau_max = 1 / (2 A)``. The
    direction ``d`` is +1 for m and n (activate with depolarisation) and -1 for h
    (inactivates). :meth:`generic` places a zero-knowledge start relative to the cell's
    resting potential; the fitter refines these 9 numbers on the data
    (:class:`PriorKinetics`) before the MLP is trained on top of them.

    Attributes
    ----------
    V_half : tuple of 3 floats
        Half-activation voltages of m, h, n, mV.
    slope : tuple of 3 floats
        Boltzmann slopes ``k``, mV (> 0).
    tau_max : tuple of 3 floats
        Peak time constants, ms.
    """

    V_half: tuple
    slope: tuple
    tau_max: tuple

    @classmethod
    def generic(cls, V_rest: float, offset_activation: float = 15.0,
                offset_inactivation: float = 0.0, slope: float = 8.0,
                tau_max: float | tuple = 3.0) -> GatePrior:
        """Activation gates (m, n) alike, half-open ``offset_activation`` mV above rest;
        h half-inactivated ``offset_inactivation`` mV above rest; one slope; one tau."""
        taus = (tau_max,) * 3 if isinstance(tau_max, (int, float)) else tuple(tau_max)
        return cls(
            V_half=(V_rest + offset_activation, V_rest + offset_inactivation,
                    V_rest + offset_activation),
            slope=(slope,) * 3,
            tau_max=tuple(float(t) for t in taus),
        )

    def outputs(self, V: torch.Tensor, V_half=None, slope=None, tau_max=None):
        """``(logit x_inf, log tau)``, each ``V.shape + (3,)``."""
        def t(x, default):
            return torch.as_tensor(default if x is None else x, dtype=V.dtype)

        vh, k, tm = t(V_half, self.V_half), t(slope, self.slope), t(tau_max, self.tau_max)
        z = (V[..., None] - vh) / k
        d = torch.tensor(GATE_DIRECTIONS, dtype=V.dtype)
        half = 0.5 * z.abs()
        log_cosh = half + torch.log1p(torch.exp(-2.0 * half)) - math.log(2.0)
        return d * z, torch.log(tm) - log_cosh


class PriorKinetics(nn.Module):
    """The two-state prior with trainable parameters (a kinetics object, 9 numbers)."""

    def __init__(self, prior: GatePrior, dtype=torch.float64):
        super().__init__()
        self.prior = prior
        # well-scaled unknowns: V_half in units of 10 mV, log slope, log tau_max
        self.v10 = nn.Parameter(torch.tensor(prior.V_half, dtype=dtype) / 10.0)
        self.log_slope = nn.Parameter(torch.log(torch.tensor(prior.slope, dtype=dtype)))
        self.log_tau = nn.Parameter(torch.log(torch.tensor(prior.tau_max, dtype=dtype)))

    def _params(self):
        return 10.0 * self.v10, torch.exp(self.log_slope), torch.exp(self.log_tau)

    def inf_tau(self, V):
        V = torch.as_tensor(V, dtype=self.v10.dtype)
        o_inf, o_tau = self.prior.outputs(V, *self._params())
        return torch.sigmoid(o_inf), torch.exp(o_tau.clamp(-12.0, 12.0))

    def rates(self, V):
        x_inf, tau = self.inf_tau(V)
        return x_inf / tau, (1.0 - x_inf) / tau

    def to_prior(self) -> GatePrior:
        """The current parameters as a (frozen) :class:`GatePrior`."""
        return GatePrior(*(tuple(float(x) for x in p.detach()) for p in self._params()))

"""The learned kinetics: the generic prior, the rate MLP on top of it, and its table.

A learned model is a *kinetics object* like :class:`hybridhh.kinetics.HHKinetics`: it maps
a voltage tensor (mV) to rates (1/ms), so one simulator and one set of metrics serve both.
"""

from .mlp import GateMLPs, RateMLP
from .prior import GATE_DIRECTIONS, GatePrior, PriorKinetics
from .tabulated import StackedKinetics, TabulatedKinetics

__all__ = ["GATE_DIRECTIONS", "GateMLPs", "GatePrior", "PriorKinetics", "RateMLP",
           "StackedKinetics", "TabulatedKinetics"]

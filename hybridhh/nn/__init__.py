"""Neuron models as the units of an artificial network (torch modules).

:class:`FHNLayer` (FitzHugh–Nagumo) and :class:`HHLayer` (Hodgkin–Huxley, reference or
fitted kinetics) are banks of independent ODE units; each maps its input current to a
time-averaged response (or a trajectory), with exact gradients (``"backprop"``,
``"sensitivity"``) or the sigmoid surrogate (``"surrogate"``). :func:`calibrate` puts them in
place of a trained network's activation without retraining. See ``docs/nn.md``.
"""

from .calibrate import Calibrated, calibrate
from .fhn import FHNLayer
from .hh import HHLayer

__all__ = ["Calibrated", "FHNLayer", "HHLayer", "calibrate"]

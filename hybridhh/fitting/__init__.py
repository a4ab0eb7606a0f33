"""The fitter: learn the six HH rate functions from V and I.

Public API: :func:`fit`, :class:`FitConfig`, :class:`FitResult`, :func:`load_model`,
:func:`load_fit`. Stage 1 (:mod:`.teacher`) is teacher forcing on the current balance;
stage 2 (:mod:`.shooting`) trains the hybrid model as a neural ODE on V.
"""

from .api import FitResult, fit, free_run, load_fit, load_model
from .config import DenoiseConfig, FitConfig, ODEConfig, PriorConfig, TeacherConfig

__all__ = ["fit", "FitConfig", "FitResult", "load_model", "load_fit", "free_run",
           "PriorConfig", "TeacherConfig", "DenoiseConfig", "ODEConfig"]

"""The fitter: learn the six HH rate functions from V and I.

Public API: :func:`fit`, :class:`FitConfig`, :class:`FitResult`, :func:`load_model`,
:func:`load_fit`, :func:`free_run`. A fit runs its stages in order, one module each:
stage 0 ``prior`` (:mod:`.prior`, the prior refined on the data), stage 1 ``teacher``
(:mod:`.teacher`, teacher forcing on the current balance, with the Gauss–Newton stage of
:mod:`.gauss_newton`), stage 1b ``denoise`` (:mod:`.denoise`, noisy recordings only) and
stage 2 ``ode`` (:mod:`.ode`, the hybrid model trained as a neural ODE on V). Each stage's
settings are the section of :class:`FitConfig` of the same name.
"""

from .api import FitResult, fit, load_fit, load_model
from .config import DenoiseConfig, FitConfig, ODEConfig, PriorConfig, TeacherConfig
from .freerun import free_run

__all__ = ["fit", "FitConfig", "FitResult", "load_model", "load_fit", "free_run",
           "PriorConfig", "TeacherConfig", "DenoiseConfig", "ODEConfig"]

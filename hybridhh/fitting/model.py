"""The model a fit trains: the MLP rates (:class:`~hybridhh.learned.RateMLP`) on a prior,
built from the fit's configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..learned import GatePrior, RateMLP
from .data import TraceData

if TYPE_CHECKING:
    from .config import FitConfig

__all__ = ["generic_prior", "build_model"]


def generic_prior(data: TraceData, config: FitConfig) -> GatePrior:
    """The generic prior of ``config.prior`` placed at the data's resting potential."""
    p = config.prior
    return GatePrior.generic(data.resting_estimate(), offset_activation=p.offset_activation,
                             offset_inactivation=p.offset_inactivation, slope=p.slope,
                             tau_max=p.tau_max)


def build_model(data: TraceData, config: FitConfig, prior: GatePrior | None = None) -> RateMLP:
    """The untrained model: the MLP on ``prior`` (default: the generic prior placed at the
    data's resting potential, unrefined), initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    prior = generic_prior(data, config) if prior is None else prior
    return RateMLP(data.bio, prior, width=config.width, parametrisation=config.parametrisation,
                   input_gain=config.input_gain, separate=config.separate)

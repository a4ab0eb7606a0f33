"""Analysis of a fit: how far the learned kinetics and the free-running model are from the truth.

One module per concept:

* :mod:`~hybridhh.analysis.truth`: the reference kinetics (:func:`resolve_truth`);
* :mod:`~hybridhh.analysis.metrics`: the kinetics error metrics and the fit targets (the
  one definition used by the fit, the benchmarks, compare and the report);
* :mod:`~hybridhh.analysis.spikes`: the one spike definition (threshold, times, matching);
* :mod:`~hybridhh.analysis.comparison`: :func:`compare`, which measures a run directory
  against a truth and writes ``compare.json`` and its figures
  (:func:`hybridhh.plotting.write_comparison_figures`);
* :mod:`~hybridhh.analysis.arrays`: numpy conversion of tensors.

Importing this package does not import torch (the figures use it without torch).
"""

from __future__ import annotations

from . import arrays, comparison, metrics, spikes, truth
from .arrays import *  # noqa: F403
from .comparison import *  # noqa: F403
from .metrics import *  # noqa: F403
from .spikes import *  # noqa: F403
from .truth import *  # noqa: F403

#: every public name of the submodules (each module's own ``__all__``)
__all__ = [*truth.__all__, *metrics.__all__, *spikes.__all__, *comparison.__all__,
           *arrays.__all__]

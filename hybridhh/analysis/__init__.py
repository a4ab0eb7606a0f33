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

from .arrays import as_numpy
from .comparison import (
    COMPARE_DIR,
    COMPARE_JSON,
    Comparison,
    FreeRun,
    compare,
    file_digest,
    load_comparison,
    load_run,
    summary_lines,
    wide_voltage_range,
)
from .metrics import (
    TARGETS,
    kinetics_errors,
    kinetics_metrics,
    meets_targets,
    rate_errors_in_ranges,
    summarize_errors,
)
from .spikes import (
    MAX_SPIKE_SHIFT,
    REFRACTORY,
    SPIKE_ABOVE_REST,
    match_spikes,
    spike_indices,
    spike_metrics,
    spike_threshold,
    spike_times,
)
from .truth import TruthSpec, resolve_truth

__all__ = [
    # truth
    "TruthSpec",
    "resolve_truth",
    # metrics
    "TARGETS",
    "kinetics_errors",
    "summarize_errors",
    "meets_targets",
    "rate_errors_in_ranges",
    "kinetics_metrics",
    # spikes
    "SPIKE_ABOVE_REST",
    "REFRACTORY",
    "MAX_SPIKE_SHIFT",
    "spike_threshold",
    "spike_times",
    "spike_indices",
    "match_spikes",
    "spike_metrics",
    # comparison
    "COMPARE_DIR",
    "COMPARE_JSON",
    "Comparison",
    "FreeRun",
    "compare",
    "file_digest",
    "load_comparison",
    "load_run",
    "summary_lines",
    "wide_voltage_range",
    # arrays
    "as_numpy",
]

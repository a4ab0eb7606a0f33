"""Figures: recordings and simulations, rate functions (true or learned), comparisons.

Every function takes ``ax=None`` (or ``axes=None``) and returns the
:class:`matplotlib.figure.Figure` it drew on; without axes it makes a new figure. Figures
are made with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``, so
nothing here touches the global backend or leaks figures in long runs; saving renders
with Agg. Units on every axis: time ms, membrane potential mV, current density µA/cm²,
rates 1/ms, time constants ms.

One module per kind of figure:

* :mod:`~hybridhh.plotting.traces`: stimulus, V, gates, phase plane and the overview of a
  :class:`hybridhh.recording.Recording` (gates from its ``truth`` when present) or a
  :class:`hybridhh.simulation.Trajectory` (its simulated gates);
* :mod:`~hybridhh.plotting.rates`: rate functions, where the data constrain them, and the
  error of learned kinetics against true ones;
* :mod:`~hybridhh.plotting.comparison`: the free-running model against the recording, the
  training curves, and the figure files of :func:`hybridhh.compare`.

Importing this package does not import torch.
"""

from __future__ import annotations

from ._style import STYLE, save_figure
from .comparison import COMPARISON_FIGURES, plot_free_run, plot_training, write_comparison_figures
from .rates import (
    mark_rate_ranges,
    mark_voltage_range,
    not_visited_ranges,
    plot_kinetics_error,
    plot_rates,
)
from .traces import (
    MAX_TRACES,
    plot_gates,
    plot_phase_plane,
    plot_recording,
    plot_stimulus,
    plot_voltage,
)

__all__ = [
    # traces
    "MAX_TRACES",
    "plot_recording",
    "plot_stimulus",
    "plot_voltage",
    "plot_gates",
    "plot_phase_plane",
    # rates
    "plot_rates",
    "not_visited_ranges",
    "mark_rate_ranges",
    "mark_voltage_range",
    "plot_kinetics_error",
    # comparison
    "COMPARISON_FIGURES",
    "plot_free_run",
    "plot_training",
    "write_comparison_figures",
    # output
    "STYLE",
    "save_figure",
]

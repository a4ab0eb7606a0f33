"""Figures of traces: stimulus, membrane potential, gates, phase plane, and the overview
of a recording or simulation (:func:`plot_recording`).

Each function takes a :class:`hybridhh.recording.Recording` (gates from its ``truth`` when
present) or a :class:`hybridhh.simulation.Trajectory` (its simulated gates), ``traces``
(indices, names or a slice; default all, or :data:`MAX_TRACES` evenly spaced ones) and
``ax=None`` / ``axes=None``, and returns the figure it drew on.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..analysis.spikes import spike_indices
from ..constants import GATES
from ..errors import ConfigError
from ._data import MAX_TRACES, eval_inf_tau, select_traces
from ._style import (
    GATE_LABELS,
    LABEL_DVDT,
    LABEL_I,
    LABEL_TIME,
    LABEL_V,
    STYLE,
    new_axes,
    trace_colors,
)

__all__ = ["MAX_TRACES", "plot_stimulus", "plot_voltage", "plot_gates", "plot_phase_plane",
           "plot_recording"]


def plot_stimulus(data, traces=None, ax=None) -> Figure:
    """Injected current density (µA/cm²) against time (ms), one line per trace."""
    with matplotlib.rc_context(STYLE):
        tr = select_traces(data, traces)
        fig, ax = new_axes(ax, (6.0, 2.0))
        for k, c in enumerate(trace_colors(len(tr.names))):
            ax.plot(tr.time, tr.I[k], color=c, lw=0.9, label=tr.names[k])
        ax.axhline(0.0, color="0.6", lw=0.5, zorder=0)
        ax.set_xlabel(LABEL_TIME)
        ax.set_ylabel(LABEL_I)
        ax.set_xlim(tr.time[0], tr.time[-1])
    return fig


def plot_voltage(data, traces=None, ax=None) -> Figure:
    """Membrane potential (mV) against time (ms), one line per trace."""
    with matplotlib.rc_context(STYLE):
        tr = select_traces(data, traces)
        fig, ax = new_axes(ax)
        for k, c in enumerate(trace_colors(len(tr.names))):
            ax.plot(tr.time, tr.V[k], color=c, lw=0.9, label=tr.names[k])
        ax.set_xlabel(LABEL_TIME)
        ax.set_ylabel(LABEL_V)
        ax.set_xlim(tr.time[0], tr.time[-1])
    return fig


def plot_gates(data, traces=None, axes=None) -> Figure:
    """Gates m, h, n (dimensionless, 0–1) against time (ms).

    ``axes``: three axes (one per gate, colours = traces) or a single axes (all gates;
    colours = traces, line styles m solid, h dashed, n dotted). Default: three stacked axes.
    """
    with matplotlib.rc_context(STYLE):
        tr = select_traces(data, traces)
        if tr.gates is None:
            raise ConfigError("no gates to plot: the recording has no /truth/gates")
        if axes is None:
            fig = Figure(figsize=(6.0, 4.0), layout="constrained")
            axes = fig.subplots(3, 1, sharex=True)
        single = not isinstance(axes, (Sequence, np.ndarray))
        axs = [axes] * 3 if single else list(np.ravel(axes))
        if len(axs) != 3:
            raise ConfigError(f"plot_gates needs 1 or 3 axes, got {len(axs)}")
        styles = ("-", "--", ":") if single else ("-", "-", "-")
        colors = trace_colors(len(tr.names))
        for g, (ax, gate) in enumerate(zip(axs, GATES, strict=True)):
            for k, c in enumerate(colors):
                ax.plot(tr.time, tr.gates[k, :, g], color=c, lw=0.9, ls=styles[g],
                        label=f"{gate}: {tr.names[k]}" if single else tr.names[k])
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("gates m, h, n" if single else GATE_LABELS[gate])
            ax.set_xlim(tr.time[0], tr.time[-1])
        axs[-1].set_xlabel(LABEL_TIME)
        fig = axs[0].figure
    return fig


def _limit_cycle(V, I, time):
    """Slice of the latest inter-spike cycle of tonic firing, or None.

    Tonic firing: the injected current is constant over two consecutive inter-spike
    intervals and they differ by at most 5 %; the trajectory has then settled on the limit
    cycle of the HH system at that current. Spikes (:func:`hybridhh.analysis.spike_indices`)
    are crossings of 60 % of the trace's range (the cell's rest is not known here), and
    only in a trace spanning 40 mV or more (action potentials span ~100 mV).
    """
    lo, hi = np.min(V), np.max(V)
    if hi - lo < 40.0:  # no action potentials
        return None
    s = spike_indices(V, time, lo + 0.6 * (hi - lo))[0]
    for j in range(len(s) - 2, 0, -1):
        a, b, c = s[j - 1], s[j], s[j + 1]
        seg = I[a:c + 1]
        if np.ptp(seg) > 1e-9 * (1.0 + np.abs(seg).max()):
            continue
        if abs((c - b) - (b - a)) <= 0.05 * (c - b):
            return slice(b, c + 1)
    return None


def plot_phase_plane(data, traces=None, ax=None, kinetics=None) -> Figure:
    """Phase plane: V–n when gates are known, else V–dV/dt.

    Each trace is drawn thin; for a trace firing tonically under a constant current its
    latest inter-spike cycle (the limit cycle it has settled on) is drawn bold. With gates,
    the steady state n_inf(V) of ``kinetics`` (default: the recording's truth kinetics,
    when known) is drawn dashed, and the start of each trace is marked with a dot.
    """
    with matplotlib.rc_context(STYLE):
        tr = select_traces(data, traces)
        fig, ax = new_axes(ax, (4.0, 4.0))
        dt = float(tr.time[1] - tr.time[0])
        have_gates = tr.gates is not None
        kin = kinetics if kinetics is not None else tr.kinetics
        cycle_drawn = False
        for k, c in enumerate(trace_colors(len(tr.names))):
            V = tr.V[k]
            y = tr.gates[k, :, 2] if have_gates else np.gradient(V, dt)
            ax.plot(V, y, color=c, lw=0.6, alpha=0.55)
            cyc = _limit_cycle(V, tr.I[k], tr.time)
            if cyc is not None:
                ax.plot(V[cyc], y[cyc], color=c, lw=2.0,
                        label=None if cycle_drawn else "limit cycle (tonic firing)")
                cycle_drawn = True
            if have_gates:
                ax.plot(V[0], y[0], "o", color=c, ms=3.5, mec="white", mew=0.5)
        if have_gates and kin is not None:
            lo, hi = ax.get_xlim()
            v = np.linspace(lo, hi, 400)
            n_inf = eval_inf_tau(kin, v)[0][:, 2]
            ax.plot(v, n_inf, color="0.3", ls="--", lw=0.9, label="n$_\\infty$(V)", zorder=1)
            ax.set_xlim(lo, hi)
        if have_gates:
            ax.set_ylabel("n (K activation)")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title("phase plane V–n")
        else:
            ax.set_ylabel(LABEL_DVDT)
            ax.axhline(0.0, color="0.6", lw=0.5, zorder=0)
            ax.set_title("phase plane V–dV/dt")
        ax.set_xlabel(LABEL_V)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    return fig


def plot_recording(data, traces=None, axes=None, kinetics=None, title: str | None = None
                   ) -> Figure:
    """Overview of a recording or simulation: stimulus, V, gates and the phase plane.

    Layout: left column stimulus (µA/cm²), V (mV) and, when gates are known, m, h, n
    against a shared time axis (ms); right column the trace legend and the phase plane
    (V–n with its limit cycle, or V–dV/dt without gates).

    Parameters
    ----------
    data
        :class:`~hybridhh.recording.Recording` or :class:`~hybridhh.simulation.Trajectory`.
    traces
        Which traces (indices, names or a slice); default all, or :data:`MAX_TRACES`
        evenly spaced ones for a larger recording.
    axes
        Optional mapping panel -> axes with keys among ``"current"``, ``"voltage"``,
        ``"gates"`` (1 or 3 axes), ``"phase"``; only those panels are drawn.
    kinetics
        For the n_inf curve of the phase plane (default: the truth kinetics).
    title
        Figure title (default: file name and trace count).
    """
    with matplotlib.rc_context(STYLE):
        tr = select_traces(data, traces)
        if axes is not None:
            unknown = set(axes) - {"current", "voltage", "gates", "phase"}
            if unknown:
                raise ConfigError(f"unknown panel(s) {sorted(unknown)}; panels are current, "
                                  "voltage, gates, phase")
            if "current" in axes:
                plot_stimulus(tr, ax=axes["current"])
            if "voltage" in axes:
                plot_voltage(tr, ax=axes["voltage"])
            if "gates" in axes and tr.gates is not None:
                plot_gates(tr, axes=axes["gates"])
            if "phase" in axes:
                plot_phase_plane(tr, ax=axes["phase"], kinetics=kinetics)
            return np.ravel(np.asarray(next(iter(axes.values())), dtype=object))[0].figure

        have_gates = tr.gates is not None
        heights = [1.0, 2.0] + ([0.8, 0.8, 0.8] if have_gates else [])
        fig = Figure(figsize=(11.0, 7.5 if have_gates else 5.0), layout="constrained")
        gs = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[2.1, 1.0])
        ax_i = fig.add_subplot(gs[0, 0])
        ax_v = fig.add_subplot(gs[1, 0], sharex=ax_i)
        plot_stimulus(tr, ax=ax_i)
        plot_voltage(tr, ax=ax_v)
        left = [ax_i, ax_v]
        if have_gates:
            ax_g = [fig.add_subplot(gs[2 + g, 0], sharex=ax_i) for g in range(3)]
            plot_gates(tr, axes=ax_g)
            left += ax_g
        for a in left[:-1]:
            a.set_xlabel("")
            a.tick_params(labelbottom=False)
        ax_p = fig.add_subplot(gs[1:, 1])
        plot_phase_plane(tr, ax=ax_p, kinetics=kinetics)
        # trace legend in the free top-right cell
        ax_l = fig.add_subplot(gs[0, 1])
        ax_l.axis("off")
        handles, labels = ax_v.get_legend_handles_labels()
        ax_l.legend(handles, labels, loc="center left", ncol=2 if len(labels) > 4 else 1,
                    title="traces", handlelength=1.5, columnspacing=1.0)
        if title is None:
            shown = (f"{len(tr.names)} of {tr.n_total} traces" if len(tr.names) < tr.n_total
                     else f"{tr.n_total} trace{'s' if tr.n_total > 1 else ''}")
            title = f"{tr.title} — {shown}" if tr.title else shown
        fig.suptitle(title, fontsize=10)
    return fig


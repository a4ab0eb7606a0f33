"""Figures: recordings and simulations, and rate functions (true or learned).

Every function takes ``ax=None`` (or ``axes=None``) and returns the
:class:`matplotlib.figure.Figure` it drew on; without axes it makes a new figure. Figures
are made with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``, so
nothing here touches the global backend or leaks figures in long runs; saving renders
with Agg. Units on every axis: time ms, membrane potential mV, current density µA/cm²,
rates 1/ms, time constants ms.

Functions that plot traces accept a :class:`hybridhh.recording.Recording` (gates from its
``truth`` when present) or a :class:`hybridhh.simulation.Trajectory` (its simulated gates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .constants import GATES
from .errors import ConfigError

__all__ = [
    "MAX_TRACES",
    "plot_recording",
    "plot_stimulus",
    "plot_voltage",
    "plot_gates",
    "plot_phase_plane",
    "plot_rates",
    "not_visited_ranges",
    "save_figure",
]

#: Traces drawn when ``traces=None`` and a recording has more (evenly spaced ones).
MAX_TRACES = 8

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.0,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}

LABEL_TIME = "time (ms)"
LABEL_V = "V (mV)"
LABEL_I = "I$_{\\mathrm{inj}}$ (µA/cm²)"
LABEL_DVDT = "dV/dt (mV/ms)"
GATE_LABELS = {"m": "m (Na act.)", "h": "h (Na inact.)", "n": "n (K act.)"}


# --- data adapters --------------------------------------------------------------------


@dataclass
class _Traces:
    time: np.ndarray
    V: np.ndarray
    I: np.ndarray
    gates: np.ndarray | None
    names: tuple[str, ...]
    index: list[int]  # indices into the original object, for colours
    n_total: int
    kinetics: object = None
    title: str = ""


def _np(x):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _default_selection(n: int) -> list[int]:
    if n <= MAX_TRACES:
        return list(range(n))
    return sorted({int(round(k)) for k in np.linspace(0, n - 1, MAX_TRACES)})


def _traces(data, traces) -> _Traces:
    from .recording import Recording, trace_indices, truth_kinetics

    if isinstance(data, _Traces):
        return data
    if isinstance(data, Recording):
        time, V, I = data.time, data.voltage, data.current
        gates, names = data.gates, tuple(data.trace_names)
        try:
            kin = truth_kinetics(data)
        except Exception:  # an unknown truth kinetics name: plot without the n_inf curve
            kin = None
        title = Path(data.path).name if data.path else data.source
    elif all(hasattr(data, a) for a in ("time", "V", "current", "names")):
        time, V, I = _np(data.time), _np(data.V), _np(data.current)
        gates, names = _np(getattr(data, "gates", None)), tuple(data.names)
        kin = None
        title = f"simulation ({getattr(data, 'method', '?')})"
    else:
        raise ConfigError(f"cannot plot a {type(data).__name__}: expected a Recording or "
                          "a Trajectory")
    n = V.shape[0]
    idx = _default_selection(n) if traces is None else trace_indices(names, traces)
    if not idx:
        raise ConfigError("no traces selected to plot")
    return _Traces(np.asarray(time, dtype=np.float64), V[idx], I[idx],
                   None if gates is None else gates[idx], tuple(names[i] for i in idx),
                   idx, n, kin, title)


def _colors(n: int):
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    if n <= 10:
        return [cmap(k) for k in range(n)]
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def _new_axes(ax, figsize=(6.0, 3.0)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


# --- trace panels ---------------------------------------------------------------------


def plot_stimulus(data, traces=None, ax=None) -> Figure:
    """Injected current density (µA/cm²) against time (ms), one line per trace."""
    with matplotlib.rc_context(STYLE):
        tr = _traces(data, traces)
        fig, ax = _new_axes(ax, (6.0, 2.0))
        for k, c in enumerate(_colors(len(tr.names))):
            ax.plot(tr.time, tr.I[k], color=c, lw=0.9, label=tr.names[k])
        ax.axhline(0.0, color="0.6", lw=0.5, zorder=0)
        ax.set_xlabel(LABEL_TIME)
        ax.set_ylabel(LABEL_I)
        ax.set_xlim(tr.time[0], tr.time[-1])
    return fig


def plot_voltage(data, traces=None, ax=None) -> Figure:
    """Membrane potential (mV) against time (ms), one line per trace."""
    with matplotlib.rc_context(STYLE):
        tr = _traces(data, traces)
        fig, ax = _new_axes(ax)
        for k, c in enumerate(_colors(len(tr.names))):
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
        tr = _traces(data, traces)
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
        colors = _colors(len(tr.names))
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


def _spike_times(V, dt):
    """Indices of upward threshold crossings (spikes) of a trace, or an empty array."""
    lo, hi = np.min(V), np.max(V)
    if hi - lo < 40.0:  # no action potentials (they span ~100 mV)
        return np.array([], dtype=int)
    thr = lo + 0.6 * (hi - lo)
    up = np.nonzero((V[:-1] < thr) & (V[1:] >= thr))[0]
    refractory = max(int(round(1.0 / dt)), 1)  # 1 ms: count each spike once
    keep = [i for j, i in enumerate(up) if j == 0 or i - up[j - 1] > refractory]
    return np.array(keep, dtype=int)


def _limit_cycle(V, I, dt):
    """Slice of the latest inter-spike cycle of tonic firing, or None.

    Tonic firing: the injected current is constant over two consecutive inter-spike
    intervals and they differ by at most 5 %; the trajectory has then settled on the limit
    cycle of the HH system at that current.
    """
    s = _spike_times(V, dt)
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
        tr = _traces(data, traces)
        fig, ax = _new_axes(ax, (4.0, 4.0))
        dt = float(tr.time[1] - tr.time[0])
        have_gates = tr.gates is not None
        kin = kinetics if kinetics is not None else tr.kinetics
        cycle_drawn = False
        for k, c in enumerate(_colors(len(tr.names))):
            V = tr.V[k]
            y = tr.gates[k, :, 2] if have_gates else np.gradient(V, dt)
            ax.plot(V, y, color=c, lw=0.6, alpha=0.55)
            cyc = _limit_cycle(V, tr.I[k], dt)
            if cyc is not None:
                ax.plot(V[cyc], y[cyc], color=c, lw=2.0,
                        label=None if cycle_drawn else "limit cycle (tonic firing)")
                cycle_drawn = True
            if have_gates:
                ax.plot(V[0], y[0], "o", color=c, ms=3.5, mec="white", mew=0.5)
        if have_gates and kin is not None:
            lo, hi = ax.get_xlim()
            v = np.linspace(lo, hi, 400)
            n_inf = _eval_inf_tau(kin, v)[0][:, 2]
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
        tr = _traces(data, traces)
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


# --- rate functions -------------------------------------------------------------------


def _eval_rates(kinetics, V: np.ndarray):
    """``(alpha, beta)`` as numpy arrays ``(len(V), 3)`` in 1/ms for any kinetics object."""
    import torch

    dtype = torch.float64
    if isinstance(kinetics, torch.nn.Module):
        p = next(iter(kinetics.parameters()), None)
        if p is not None:
            dtype = p.dtype
    with torch.no_grad():
        alpha, beta = kinetics.rates(torch.as_tensor(V, dtype=dtype))
    return _np(alpha), _np(beta)


def _eval_inf_tau(kinetics, V: np.ndarray):
    alpha, beta = _eval_rates(kinetics, V)
    total = alpha + beta
    with np.errstate(divide="ignore", invalid="ignore"):
        return alpha / total, 1.0 / total


def not_visited_ranges(voltages, vmin: float, vmax: float, bin_width: float = 1.0,
                       min_count: int = 1) -> list[tuple[float, float]]:
    """Voltage ranges (mV) within ``[vmin, vmax]`` that the data hardly visit.

    The samples are binned in ``bin_width`` mV bins; runs of bins with fewer than
    ``min_count`` samples are merged into ``(lo, hi)`` ranges.
    """
    v = np.ravel(_np(voltages))
    edges = np.arange(vmin, vmax + bin_width, bin_width)
    counts, edges = np.histogram(v, bins=edges)
    out, start = [], None
    for k, c in enumerate(counts):
        if c < min_count and start is None:
            start = edges[k]
        elif c >= min_count and start is not None:
            out.append((float(start), float(edges[k])))
            start = None
    if start is not None:
        out.append((float(start), float(min(edges[-1], vmax))))
    return out


_KIN_COLORS = ("black", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")


def plot_rates(kinetics_list, labels: Sequence[str] | None = None, vmin: float = -100.0,
               vmax: float = 50.0, axes=None, voltages=None, not_visited=None, hist_ax=None,
               n_points: int = 401) -> Figure:
    """Rate functions of one or more kinetics sets, per gate.

    One row per gate (m, h, n) and three columns: alpha (solid) and beta (dashed) on a log
    scale (1/ms), the steady state x_inf, the time constant tau (ms); all against V (mV).
    Each kinetics set has its own colour (the first black: put the truth first).

    Parameters
    ----------
    kinetics_list
        Kinetics objects (``rates(V) -> (alpha, beta)``, torch tensor in, shape
        ``V.shape + (3,)``), or a single one.
    labels
        Legend labels (default ``kinetics.name`` or the class name).
    vmin, vmax
        Voltage range, mV (in the kinetics' convention).
    axes
        A 3×3 array of axes (rows m, h, n; columns rates, x_inf, tau); default a new figure.
    voltages
        Optional voltage samples (mV, any shape) the data visited, e.g. ``rec.voltage``;
        drawn as a histogram above the grid (or on ``hist_ax``).
    not_visited
        ``(lo, hi)`` ranges (mV) shaded grey as "not visited". Default: computed with
        :func:`not_visited_ranges` when ``voltages`` is given; ``[]`` for none.
    hist_ax
        Axes for the histogram when ``axes`` is given.
    n_points
        Voltages evaluated.
    """
    if not isinstance(kinetics_list, (list, tuple)):
        kinetics_list = [kinetics_list]
    if not kinetics_list:
        raise ConfigError("plot_rates needs at least one kinetics object")
    if labels is None:
        labels = [str(getattr(k, "name", type(k).__name__)) for k in kinetics_list]
    if len(labels) != len(kinetics_list):
        raise ConfigError(f"{len(labels)} labels for {len(kinetics_list)} kinetics sets")
    if not vmax > vmin:
        raise ConfigError(f"vmax ({vmax} mV) must be above vmin ({vmin} mV)")
    V = np.linspace(vmin, vmax, n_points)
    if not_visited is None:
        not_visited = (not_visited_ranges(voltages, vmin, vmax) if voltages is not None
                       else [])

    with matplotlib.rc_context(STYLE):
        if axes is None:
            rows = 4 if voltages is not None else 3
            heights = ([0.7] if voltages is not None else []) + [1.0, 1.0, 1.0]
            fig = Figure(figsize=(10.0, 2.3 * sum(heights) + 0.6), layout="constrained")
            gs = fig.add_gridspec(rows, 3, height_ratios=heights)
            off = rows - 3
            first = fig.add_subplot(gs[off, 0])
            grid = np.empty((3, 3), dtype=object)
            for r in range(3):
                for c in range(3):
                    grid[r, c] = first if (r, c) == (0, 0) else fig.add_subplot(
                        gs[off + r, c], sharex=first)
            if voltages is not None:
                hist_ax = fig.add_subplot(gs[0, :], sharex=first)
        else:
            grid = np.asarray(axes, dtype=object)
            if grid.shape != (3, 3):
                raise ConfigError(f"plot_rates needs a 3x3 array of axes, got {grid.shape}")
            fig = grid[0, 0].figure

        curves = []
        for kin in kinetics_list:
            alpha, beta = _eval_rates(kin, V)
            if alpha.shape != (n_points, 3) or beta.shape != (n_points, 3):
                raise ConfigError(f"{type(kin).__name__}.rates(V) must return two arrays of "
                                  f"shape V.shape + (3,), got {alpha.shape}, {beta.shape}")
            with np.errstate(divide="ignore", invalid="ignore"):
                curves.append((alpha, beta, alpha / (alpha + beta), 1.0 / (alpha + beta)))

        for g, gate in enumerate(GATES):
            ax_r, ax_x, ax_t = grid[g]
            for k, (alpha, beta, x_inf, tau) in enumerate(curves):
                col = _KIN_COLORS[k % len(_KIN_COLORS)]
                lw = 1.6 if k == 0 else 1.2
                ax_r.plot(V, alpha[:, g], color=col, lw=lw, ls="-")
                ax_r.plot(V, beta[:, g], color=col, lw=lw, ls="--")
                ax_x.plot(V, x_inf[:, g], color=col, lw=lw, label=labels[k])
                ax_t.plot(V, tau[:, g], color=col, lw=lw)
            ax_r.set_yscale("log")
            ax_r.set_ylabel(f"α$_{gate}$, β$_{gate}$ (1/ms)")
            ax_x.set_ylabel(f"{gate}$_\\infty$")
            ax_x.set_ylim(-0.03, 1.03)
            ax_t.set_ylabel(f"τ$_{gate}$ (ms)")
            ax_t.set_ylim(bottom=0)
            for ax in grid[g]:
                for lo, hi in not_visited:
                    ax.axvspan(lo, hi, color="0.88", lw=0, zorder=0)
                ax.set_xlim(vmin, vmax)
                if g < 2:
                    ax.tick_params(labelbottom=False)
                else:
                    ax.set_xlabel(LABEL_V)
        grid[0, 0].set_title("rates α (solid), β (dashed)")
        grid[0, 1].set_title("steady state")
        grid[0, 2].set_title("time constant")

        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Line2D([], [], color=_KIN_COLORS[k % len(_KIN_COLORS)], lw=1.4,
                          label=labels[k]) for k in range(len(curves))]
        if not_visited:
            handles.append(Patch(color="0.88", label="not visited by the data"))
        grid[0, 1].legend(handles=handles, loc="best")

        if voltages is not None and hist_ax is not None:
            v = np.ravel(_np(voltages))
            edges = np.arange(vmin, vmax + 1.0, 1.0)
            hist_ax.hist(v, bins=edges, color="0.4", log=True)
            for lo, hi in not_visited:
                hist_ax.axvspan(lo, hi, color="0.88", lw=0, zorder=0)
            outside = np.mean((v < vmin) | (v > vmax))
            hist_ax.set_ylabel("samples per mV")
            hist_ax.set_xlabel(LABEL_V)
            hist_ax.set_xlim(vmin, vmax)
            hist_ax.set_title("visited voltages" + (f" ({outside:.1%} of samples outside "
                                                     "the range)" if outside > 0 else ""))
    return fig


# --- output ---------------------------------------------------------------------------


def save_figure(fig: Figure, path, dpi: int | None = None) -> Path:
    """Save ``fig`` (PNG, PDF, SVG... by the suffix) creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=dpi)
    return path


# --- comparison figures (hybridhh.compare, hybridhh.report) --------------------------

__all__ += ["mark_voltage_range", "plot_kinetics_error", "plot_free_run", "plot_training"]


def mark_rate_ranges(rate_axes, ranges: dict) -> None:
    """Bars at the bottom of each gate's rate panel: where the data constrain its alpha
    (solid) and beta (dashed), ``ranges = {"alpha_m": (lo, hi), ...}`` (mV, see
    :mod:`hybridhh.fitting.constrained`). ``rate_axes``: the m, h, n rate axes."""
    from matplotlib.transforms import blended_transform_factory

    for gate, ax in zip(("m", "h", "n"), rate_axes, strict=True):
        tr = blended_transform_factory(ax.transData, ax.transAxes)
        for kind, y, ls in (("alpha", 0.05, "-"), ("beta", 0.11, "--")):
            if f"{kind}_{gate}" in ranges:
                lo, hi = ranges[f"{kind}_{gate}"]
                ax.plot([lo, hi], [y, y], transform=tr, color="tab:green", lw=2.5, ls=ls,
                        solid_capstyle="butt", zorder=3)
    # in the first legend of the figure (mark_voltage_range, after this, keeps them)
    from matplotlib.lines import Line2D

    _extend_legend(rate_axes[0].figure.axes,
                   [Line2D([], [], color="tab:green", lw=2.5, ls=ls) for ls in ("-", "--")],
                   ["data constrain α", "data constrain β"])


def _extend_legend(axs, handles, labels, legend_loc: str | None = None) -> None:
    """Add ``handles``/``labels`` to the first existing legend among ``axs``, redrawn at
    ``legend_loc`` (default ``"best"``; ``"figure"``: one row below the figure)."""
    for a in axs:
        leg = a.get_legend()
        if leg is None:
            continue
        handles = list(leg.legend_handles) + list(handles)
        labels = [t.get_text() for t in leg.texts] + list(labels)
        with matplotlib.rc_context(STYLE):
            if legend_loc == "figure":  # one row under the figure, off the curves
                leg.remove()
                a.figure.legend(handles, labels, loc="outside lower center",
                                ncol=len(labels))
            else:
                a.legend(handles, labels, loc=legend_loc or "best")
        return


def mark_voltage_range(axes, lo: float, hi: float, label: str | None = None,
                       legend_loc: str | None = None) -> Figure:
    """Dotted vertical lines at ``lo`` and ``hi`` (mV) on every axes of ``axes`` (e.g. the
    1st–99th percentile of the recorded V, where the data constrain the rates).

    With ``label``, the line is added to the first existing legend among ``axes`` (redrawn
    at ``legend_loc``, default ``"best"``; ``"figure"``: one row below the figure).
    """
    from matplotlib.lines import Line2D

    axs = [a for a in np.ravel(np.asarray(axes, dtype=object)) if a is not None]
    for a in axs:
        for v in (lo, hi):
            a.axvline(v, color="0.35", ls=":", lw=0.9, zorder=1)
    if label:
        _extend_legend(axs, [Line2D([], [], color="0.35", ls=":", lw=0.9)], [label],
                       legend_loc)
    return axs[0].figure if axs else None


def plot_kinetics_error(learned, truth, vmin: float = -100.0, vmax: float = 50.0,
                        constrained: tuple[float, float] | None = None, axes=None,
                        n_points: int = 401, band: float = 0.10) -> Figure:
    """How far learned kinetics are from the true ones, against V (mV).

    Four panels: the ratios learned/true of tau, alpha and beta (log scale, 1 = exact;
    the band marks ±``band``, e.g. 10 %) and the difference of x_inf (learned − true), one
    line per gate. Outside ``constrained`` (mV; e.g. the 1st–99th percentile of the data)
    the background is grey: there the learned curves are extrapolation.

    Parameters
    ----------
    learned, truth
        Kinetics objects (``rates(V) -> (alpha, beta)``).
    axes
        Four axes (tau, alpha, beta, x_inf); default a new 2×2 figure.
    """
    V = np.linspace(vmin, vmax, n_points)
    la, lb = _eval_rates(learned, V)
    ta, tb = _eval_rates(truth, V)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = {"tau": (ta + tb) / (la + lb), "alpha": la / ta, "beta": lb / tb}
        dx = la / (la + lb) - ta / (ta + tb)
    with matplotlib.rc_context(STYLE):
        if axes is None:
            fig = Figure(figsize=(9.0, 5.5), layout="constrained")
            axs = list(np.ravel(fig.subplots(2, 2, sharex=True)))
        else:
            axs = list(np.ravel(np.asarray(axes, dtype=object)))
            if len(axs) != 4:
                raise ConfigError(f"plot_kinetics_error needs 4 axes, got {len(axs)}")
            fig = axs[0].figure
        colors = {"m": "tab:red", "h": "tab:blue", "n": "tab:green"}
        titles = {"tau": "time constant τ: learned / true",
                  "alpha": "opening rate α: learned / true",
                  "beta": "closing rate β: learned / true"}
        inside = (np.ones_like(V, dtype=bool) if constrained is None
                  else (V >= constrained[0]) & (V <= constrained[1]))
        for ax, key in zip(axs[:3], ("tau", "alpha", "beta"), strict=True):
            r = ratios[key]
            for g, gate in enumerate(GATES):
                ax.plot(V, r[:, g], color=colors[gate], label=gate)
            ax.set_yscale("log")
            ax.axhspan(1.0 - band, 1.0 + band, color="tab:green", alpha=0.15, lw=0)
            ax.axhline(1.0, color="0.3", lw=0.6)
            with np.errstate(divide="ignore", invalid="ignore"):
                dev = np.nanmax(np.maximum(r[inside], 1.0 / r[inside]))
            lim = float(np.clip(1.3 * dev if np.isfinite(dev) else 20.0, 1.3, 20.0))
            ax.set_ylim(1.0 / lim, lim)
            ticks = ((0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0) if lim > 2.5 else
                     (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0))
            ticks = [t for t in ticks if 1.0 / lim <= t <= lim]
            ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_yticks([], minor=True)
            ax.set_ylabel(f"{key} learned / true")
            ax.set_title(titles[key])
        ax = axs[3]
        for g, gate in enumerate(GATES):
            ax.plot(V, dx[:, g], color=colors[gate], label=gate)
        ax.axhline(0.0, color="0.3", lw=0.6)
        big = np.nanmax(np.abs(dx[inside])) if inside.any() else 1.0
        lim = float(np.clip(1.5 * big, 0.05, 1.05))
        ax.set_ylim(-lim, lim)
        ax.set_ylabel("x$_\\infty$ learned − true")
        ax.set_title("steady state x$_\\infty$: difference")
        for ax in axs:
            if constrained is not None:
                lo, hi = constrained
                ax.axvspan(vmin, lo, color="0.88", lw=0, zorder=0)
                ax.axvspan(hi, vmax, color="0.88", lw=0, zorder=0)
            ax.set_xlim(vmin, vmax)
        for ax in axs[2:]:
            ax.set_xlabel(LABEL_V)
        from matplotlib.patches import Patch

        handles, labels = axs[0].get_legend_handles_labels()
        handles.append(Patch(facecolor="tab:green", alpha=0.3, label=f"±{band:.0%}"))
        if constrained is not None:
            handles.append(Patch(facecolor="0.85", edgecolor="0.6", lw=0.5,
                                 label="extrapolation (outside 1st–99th percentile of "
                                       "the recorded V)"))
        if axes is None:
            fig.legend(handles=handles, loc="outside upper center", ncol=len(handles))
        else:
            axs[0].legend(handles=handles, loc="best", fontsize=7)
    return fig


def plot_free_run(time, V_recorded, V_model, gates_model=None, gates_recorded=None,
                  names: Sequence[str] | None = None, traces=None, max_traces: int = 4,
                  threshold: float | None = None, axes=None, title: str | None = None
                  ) -> Figure:
    """Free-running model against the recording: V and gates per trace.

    One column per trace (at most ``max_traces``, evenly spaced, unless ``traces`` picks
    them); rows: V (mV; recorded black, model red), then m, h, n (true gates black when
    known, model red), against time (ms).

    Parameters
    ----------
    time
        ms, ``[T]``.
    V_recorded, V_model
        mV, ``[B, T]``.
    gates_model, gates_recorded
        ``[B, T, 3]`` or None.
    names
        Trace names (column titles).
    traces
        Indices into the B traces to draw.
    threshold
        Spike threshold (mV), drawn dotted on the V panels.
    axes
        A ``(1 or 4) × n_columns`` array of axes; default a new figure.
    """
    t = np.asarray(time, dtype=np.float64)
    Vr, Vm = np.atleast_2d(_np(V_recorded)), np.atleast_2d(_np(V_model))
    gm, gr = _np(gates_model), _np(gates_recorded)
    B = Vr.shape[0]
    names = list(names) if names is not None else [f"trace_{k}" for k in range(B)]
    if traces is None:
        idx = (list(range(B)) if B <= max_traces else
               sorted({int(round(k)) for k in np.linspace(0, B - 1, max_traces)}))
    else:
        idx = [int(k) for k in traces]
    with_gates = gm is not None
    rows = 4 if with_gates else 1
    with matplotlib.rc_context(STYLE):
        if axes is None:
            heights = [1.8] + ([0.75] * 3 if with_gates else [])
            fig = Figure(figsize=(max(2.9 * len(idx) + 0.9, 7.0), 1.7 * sum(heights) + 0.8),
                         layout="constrained")
            grid = np.asarray(fig.subplots(rows, len(idx), sharex=True, squeeze=False,
                                           gridspec_kw={"height_ratios": heights}))
        else:
            grid = np.asarray(axes, dtype=object)
            if grid.ndim == 1:
                grid = grid[None, :] if rows == 1 else grid[:, None]
            if grid.shape != (rows, len(idx)):
                raise ConfigError(f"plot_free_run needs a {rows}x{len(idx)} array of axes, got "
                                  f"{grid.shape}")
            fig = grid[0, 0].figure
        for c, k in enumerate(idx):
            ax = grid[0, c]
            ax.plot(t, Vr[k], color="black", lw=1.0,
                    label="recorded V" + (", true gates" if with_gates and gr is not None
                                          else ""))
            ax.plot(t, Vm[k], color="tab:red", lw=0.9, alpha=0.85, label="model (free-running)")
            if threshold is not None:
                ax.axhline(threshold, color="0.5", ls=":", lw=0.8,
                           label=f"spike threshold {threshold:.0f} mV")
            rmse = float(np.sqrt(np.mean((Vm[k] - Vr[k]) ** 2)))
            ax.set_title(f"{names[k]}\nV RMSE {rmse:.2f} mV")
            if c == 0:
                ax.set_ylabel(LABEL_V)
            if with_gates:
                for g, gate in enumerate(GATES):
                    ax = grid[1 + g, c]
                    if gr is not None:
                        ax.plot(t, gr[k, :, g], color="black", lw=1.0, label="true")
                    ax.plot(t, gm[k, :, g], color="tab:red", lw=0.9, alpha=0.85,
                            label="model")
                    ax.set_ylim(-0.03, 1.03)
                    if c == 0:
                        ax.set_ylabel(GATE_LABELS[gate])
            for r in range(rows):
                grid[r, c].set_xlim(t[0], t[-1])
            grid[rows - 1, c].set_xlabel(LABEL_TIME)
        handles, labels = grid[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles))
        if title:
            fig.suptitle(title, fontsize=10)
    return fig


def plot_training(history: Sequence[dict], axes=None) -> Figure:
    """Training curves from ``metrics.jsonl`` records (``phase``, ``step``, ``loss``,
    optional ``errors``).

    Panels, against the fit's wall time (s; the optimiser step counted over all phases when
    records lack ``elapsed``): the teacher-forcing loss
    (normalised current residual, dimensionless; log scale), the neural-ODE loss (V mean
    squared error, mV²; log scale) when there is such a stage, and the worst-gate rate
    errors (fractions; log scale, with the targets dashed) when they were logged. Phase
    boundaries are marked.

    Parameters
    ----------
    history
        The records, in order (:func:`hybridhh.fitting.rundir.read_metrics`).
    axes
        One axes per panel present; default a new figure.
    """
    from .metrics import TARGETS

    recs = [r for r in history if "loss" in r and "phase" in r]
    if not recs:
        raise ConfigError("no training records to plot (metrics.jsonl is empty)")
    # against wall time when every record has it (phases differ a lot in cost per step)
    timed = all(isinstance(r.get("elapsed"), (int, float)) for r in recs)
    x = (np.array([r["elapsed"] for r in recs], dtype=np.float64) if timed
         else np.arange(1, len(recs) + 1, dtype=np.float64))
    phases = []  # (name, first index, last index)
    for k, r in enumerate(recs):
        if not phases or phases[-1][0] != r["phase"]:
            phases.append([r["phase"], k, k])
        phases[-1][2] = k
    kinds = [("teacher", "teacher-forcing loss\n(normalised, dimensionless)"),
             ("ode", "neural-ODE loss\n(V MSE, mV²)")]
    present = [(kind, lab) for kind, lab in kinds
               if any(p[0].split("/")[0] == kind for p in phases)]
    other = [p for p in phases if p[0].split("/")[0] not in ("teacher", "ode")]
    if other:
        present.append(("other", "loss"))
    err_recs = [(k, r["errors"]) for k, r in enumerate(recs) if isinstance(r.get("errors"),
                                                                              dict)]
    n_panels = len(present) + (1 if err_recs else 0)
    with matplotlib.rc_context(STYLE):
        if axes is None:
            fig = Figure(figsize=(9.0, 2.2 * n_panels + 0.4), layout="constrained")
            axs = list(np.ravel(fig.subplots(n_panels, 1, sharex=True, squeeze=False)))
        else:
            axs = list(np.ravel(np.asarray(axes, dtype=object)))
            if len(axs) != n_panels:
                raise ConfigError(f"plot_training needs {n_panels} axes, got {len(axs)}")
            fig = axs[0].figure
        colors = _colors(len(phases))
        for ax, (kind, lab) in zip(axs, present, strict=False):
            for (name, a, b), col in zip(phases, colors, strict=True):
                pk = name.split("/")[0]
                if (kind == "other" and pk in ("teacher", "ode")) or (kind != "other"
                                                                      and pk != kind):
                    continue
                y = np.array([recs[k]["loss"] for k in range(a, b + 1)], dtype=np.float64)
                y = np.where(y > 0, y, np.nan)
                ax.plot(x[a:b + 1], y, color=col, lw=1.0, label=name)
            ax.set_yscale("log")
            ax.set_ylabel(lab)
            ax.legend(loc="upper right", ncol=2)
        if err_recs:
            ax = axs[-1]
            ks = x[[k for k, _ in err_recs]]
            styles = {"tau_median": "tab:red", "tau_p90": "tab:orange",
                      "xinf_max": "tab:blue", "rate_median": "tab:purple"}
            for key, col in styles.items():
                vals = [e.get(key, np.nan) for _, e in err_recs]
                ax.plot(ks, vals, "o-", color=col, ms=3, lw=1.0, label=key)
                if key in TARGETS:
                    ax.axhline(TARGETS[key], color=col, ls="--", lw=0.7)
            ax.set_yscale("log")
            ax.set_ylabel("worst-gate rate error\n(fraction; targets dashed)")
            ax.legend(loc="upper right", ncol=4)
        for ax in axs:
            for _, a, _b in phases[1:]:
                ax.axvline(0.5 * (x[a - 1] + x[a]), color="0.7", lw=0.6, zorder=0)
        axs[-1].set_xlabel("wall time since the start of the fit (s)" if timed
                           else "optimiser step (all phases, in order)")
        axs[0].set_title("training curves (phase boundaries grey)")
    return fig

"""Figures: recordings and simulations, and rate functions (true or learned).

Every function takes ``ax=None`` (or ``axes=None``) and returns the
:class:`matplotlib.figure.Figure` it drew on; without axes it makes a new figure. Figures
are made with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``, so
nothing here touches the global backend or leaks figures in long runs; saving renders
with Agg. Units on every axis: time ms, membrane potential mV, current density µA/cm²,
rates 1/ms, time constants ms.

Functions that plot traces accept a :class:`hybridhh.recording.Recording` (gates from its
``truth`` when present) or a :class:`hybridhh.simulate.Trajectory` (its simulated gates).
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
        :class:`~hybridhh.recording.Recording` or :class:`~hybridhh.simulate.Trajectory`.
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

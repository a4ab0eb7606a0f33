"""Figures of rate functions: alpha, beta, x_inf and tau against V (:func:`plot_rates`),
where the data constrain them, and the error of learned kinetics against true ones
(:func:`plot_kinetics_error`). Voltages in mV, rates in 1/ms, time constants in ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..analysis.arrays import as_numpy
from ..analysis.metrics import interpolate_bands
from ..constants import GATES
from ..errors import ConfigError
from ._data import eval_rates
from ._style import LABEL_V, STYLE

__all__ = ["not_visited_ranges", "plot_rates", "mark_rate_ranges", "mark_voltage_range",
           "plot_kinetics_error"]


def not_visited_ranges(voltages, vmin: float, vmax: float, bin_width: float = 1.0,
                       min_count: int = 1) -> list[tuple[float, float]]:
    """Voltage ranges (mV) within ``[vmin, vmax]`` that the data hardly visit.

    The samples are binned in ``bin_width`` mV bins; runs of bins with fewer than
    ``min_count`` samples are merged into ``(lo, hi)`` ranges.
    """
    v = np.ravel(as_numpy(voltages))
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
               n_points: int = 401, bands=None) -> Figure:
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
    bands
        Error bands to shade around the curves, one entry per kinetics set (a fit's
        :attr:`~hybridhh.fitting.FitResult.bands`, or None for none), or a single dict for
        a single kinetics set. Shaded in the set's colour where the bands reach.
    """
    if not isinstance(kinetics_list, (list, tuple)):
        kinetics_list = [kinetics_list]
    if isinstance(bands, dict):
        bands = [bands]
    bands = list(bands) if bands is not None else [None] * len(kinetics_list)
    if len(bands) != len(kinetics_list):
        raise ConfigError(f"{len(bands)} band sets for {len(kinetics_list)} kinetics sets")
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
            alpha, beta = eval_rates(kin, V)
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
                if bands[k]:
                    _shade(grid[g], V, bands[k], gate, alpha, beta, x_inf, tau, g, col)
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
        shaded = [k for k, b in enumerate(bands) if b]
        for k in shaded:
            handles.append(Patch(color=_KIN_COLORS[k % len(_KIN_COLORS)], alpha=0.18,
                                 label=f"{100 * bands[k].get('level', 0.9):.0f} % band"
                                 + (f" ({labels[k]})" if len(curves) > 1 else "")))
        if not_visited:
            handles.append(Patch(color="0.88", label="not visited by the data"))
        grid[0, 1].legend(handles=handles, loc="best")

        if voltages is not None and hist_ax is not None:
            v = np.ravel(as_numpy(voltages))
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


def _shade(row_axes, V, bands, gate, alpha, beta, x_inf, tau, g, color) -> None:
    """Fill the error bands of one gate around its curves (rates, x_inf, tau panels)."""
    value = {f"alpha_{gate}": alpha[:, g], f"beta_{gate}": beta[:, g],
             f"{gate}_inf": x_inf[:, g], f"tau_{gate}": tau[:, g]}
    band = interpolate_bands(bands, V, value, names=list(value))
    ax_r, ax_x, ax_t = row_axes
    for ax, name in ((ax_r, f"alpha_{gate}"), (ax_r, f"beta_{gate}"), (ax_x, f"{gate}_inf"),
                     (ax_t, f"tau_{gate}")):
        lo, hi = band[name]
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(V, lo, hi, where=ok, color=color, alpha=0.18, lw=0, zorder=1)


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
    la, lb = eval_rates(learned, V)
    ta, tb = eval_rates(truth, V)
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


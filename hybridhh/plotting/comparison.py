"""Figures of a comparison (:func:`hybridhh.compare`): the free-running model against the
recording (:func:`plot_free_run`), the training curves (:func:`plot_training`), and the
figure files of ``compare`` (:func:`write_comparison_figures`, :data:`COMPARISON_FIGURES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..analysis.arrays import as_numpy
from ..analysis.metrics import TARGETS
from ..constants import GATES
from ..errors import ConfigError
from ._style import GATE_LABELS, LABEL_TIME, LABEL_V, STYLE, save_figure, trace_colors
from .rates import mark_rate_ranges, mark_voltage_range, plot_kinetics_error, plot_rates

__all__ = ["COMPARISON_FIGURES", "plot_free_run", "plot_training", "write_comparison_figures"]

#: The figures :func:`write_comparison_figures` writes: key -> (file name, title).
COMPARISON_FIGURES = {
    "rates": ("rates.png", "Learned vs true rate functions"),
    "kinetics_error": ("kinetics_error.png", "Error of the learned kinetics against V"),
    "free_run_train": ("free_run_train.png", "Free-running model on training traces"),
    "free_run_holdout": ("free_run_holdout.png", "Free-running model on held-out traces"),
    "training": ("training.png", "Training curves"),
}


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
    Vr, Vm = np.atleast_2d(as_numpy(V_recorded)), np.atleast_2d(as_numpy(V_model))
    gm, gr = as_numpy(gates_model), as_numpy(gates_recorded)
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
        colors = trace_colors(len(phases))
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


def _show_traces(fr, n: int = 4) -> list[int]:
    """Up to ``n`` traces of ``fr`` (a :class:`~hybridhh.analysis.FreeRun`) to draw: evenly
    spaced ones, always with the worst V fit."""
    B = len(fr.names)
    if B <= n:
        return list(range(B))
    rmse = np.sqrt(np.mean((fr.V_model - fr.V_recorded) ** 2, axis=1))
    worst = int(np.argmax(rmse))
    even = [int(round(k)) for k in np.linspace(0, B - 1, n - 1)]
    return sorted(set(even) | {worst}) if worst not in even else sorted(
        set(int(round(k)) for k in np.linspace(0, B - 1, n)))


def _truth_label(info: dict) -> str:
    t = info.get("temperature")
    return f"true ({info['kinetics']}" + (f", {t:g} °C)" if t is not None else ")")


def write_comparison_figures(comp, out_dir) -> dict:
    """Write the figures of a comparison into ``out_dir`` (:data:`COMPARISON_FIGURES`).

    Parameters
    ----------
    comp
        A :class:`~hybridhh.analysis.Comparison` (what :func:`hybridhh.compare` measured).
    out_dir
        The folder (it must exist).

    Returns
    -------
    dict
        Figure key -> file, for the figures that apply: ``rates`` (learned and true rates,
        where the data constrain them), ``kinetics_error`` (with a truth),
        ``free_run_train`` / ``free_run_holdout`` (with such traces), ``training`` (with a
        training history).
    """
    from ..analysis.comparison import wide_voltage_range

    out_dir = Path(out_dir)
    written = {}
    lo, hi = comp.metrics["voltage_range"]
    vmin, vmax = wide_voltage_range((lo, hi), comp.recording.voltage)
    learned_label = "learned (hybrid MLP)"
    kin = [comp.fit.model]
    labels = [learned_label]
    band = [getattr(comp.fit, "bands", None)]  # shaded around the learned curves
    if comp.truth is not None:
        kin = [comp.truth.kinetics, comp.fit.model]
        labels = [_truth_label(comp.truth.info), learned_label]
        band = [None] + band
    fig = plot_rates(kin, labels, vmin=vmin, vmax=vmax, voltages=comp.recording.voltage,
                     bands=band)
    if comp.fit.constrained:  # fig.axes: the 3x3 grid row by row (rate panels at 0, 3, 6)
        mark_rate_ranges([fig.axes[0], fig.axes[3], fig.axes[6]], comp.fit.constrained)
    mark_voltage_range(fig.axes, lo, hi, label="1st–99th percentile of V", legend_loc="figure")
    written["rates"] = save_figure(fig, out_dir / COMPARISON_FIGURES["rates"][0])
    if comp.truth is not None:
        fig = plot_kinetics_error(comp.fit.model, comp.truth.kinetics, vmin, vmax,
                                  constrained=(lo, hi))
        written["kinetics_error"] = save_figure(
            fig, out_dir / COMPARISON_FIGURES["kinetics_error"][0])
    thr = comp.metrics["free_run"]["spike_threshold"]
    method = comp.metrics["free_run"]["method"]
    for key, fr, what in (("free_run_train", comp.train, "training"),
                          ("free_run_holdout", comp.holdout, "held-out")):
        if fr is None:
            continue
        fig = plot_free_run(fr.time, fr.V_recorded, fr.V_model, fr.gates_model, fr.gates_true,
                            names=fr.names, traces=_show_traces(fr), threshold=thr,
                            title=f"free-running model ({method}) on the {what} traces")
        written[key] = save_figure(fig, out_dir / COMPARISON_FIGURES[key][0])
    if comp.fit.history:
        fig = plot_training(comp.fit.history)
        written["training"] = save_figure(fig, out_dir / COMPARISON_FIGURES["training"][0])
    return written

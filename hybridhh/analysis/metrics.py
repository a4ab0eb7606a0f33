"""Kinetics error metrics: the one definition used by the fit benchmark, compare and reports.

All metrics are evaluated on a uniform voltage grid over the range the data visited
(by default its 1st–99th percentile), where the data constrain the rates. Relative errors
are fractions (0.05 = 5 %), the x_inf error is absolute; voltages in mV.
"""

from __future__ import annotations

import numpy as np

from ..constants import GATES, RATE_NAMES

__all__ = ["TARGETS", "BAND_QUANTITIES", "kinetics_errors", "summarize_errors",
           "meets_targets", "rate_errors_in_ranges", "kinetics_metrics", "interpolate_bands",
           "band_coverage"]

#: The quantities that have error bands (:mod:`hybridhh.fitting.bands`), in the rates CSV's
#: order: the six rates (1/ms), then x_inf and tau (ms) of each gate.
BAND_QUANTITIES = RATE_NAMES + tuple(c for g in GATES for c in (f"{g}_inf", f"tau_{g}"))

#: The fit targets (issue 4): tau median / p90 relative error, x_inf max abs error,
#: alpha and beta median relative error.
TARGETS = {"tau_median": 0.05, "tau_p90": 0.10, "xinf_max": 0.03, "rate_median": 0.10}


def _eval(kinetics, V):
    import torch  # here, not at the top: the figures import this module without torch

    with torch.no_grad():
        Vt = torch.as_tensor(V, dtype=torch.float64)
        alpha, beta = kinetics.rates(Vt)
        alpha, beta = (torch.as_tensor(a, dtype=torch.float64) for a in (alpha, beta))
        total = alpha + beta
        return (alpha.numpy(), beta.numpy(), (alpha / total).numpy(), (1.0 / total).numpy())


def kinetics_errors(learned, truth, vmin: float, vmax: float, step: float = 0.5) -> dict:
    """Per-gate errors of ``learned`` against ``truth`` on ``[vmin, vmax]`` (mV).

    Returns
    -------
    dict
        ``{gate: {"tau_median", "tau_p90", "xinf_max", "alpha_median", "beta_median"}}``
        with relative errors as fractions (0.05 = 5 %), plus ``"range": [vmin, vmax]``.
    """
    V = np.arange(vmin, vmax + 0.5 * step, step)
    la, lb, lx, lt = _eval(learned, V)
    ta, tb, tx, tt = _eval(truth, V)
    out = {"range": [float(vmin), float(vmax)]}
    for g, name in enumerate(GATES):
        rel_tau = np.abs(lt[:, g] - tt[:, g]) / tt[:, g]
        out[name] = {
            "tau_median": float(np.median(rel_tau)),
            "tau_p90": float(np.percentile(rel_tau, 90)),
            "xinf_max": float(np.max(np.abs(lx[:, g] - tx[:, g]))),
            "alpha_median": float(np.median(np.abs(la[:, g] - ta[:, g]) / ta[:, g])),
            "beta_median": float(np.median(np.abs(lb[:, g] - tb[:, g]) / tb[:, g])),
        }
    return out


def summarize_errors(errors: dict) -> dict:
    """Worst gate for each metric: ``tau_median``, ``tau_p90``, ``xinf_max``, ``rate_median``."""
    gates = [errors[g] for g in GATES]
    return {
        "tau_median": max(e["tau_median"] for e in gates),
        "tau_p90": max(e["tau_p90"] for e in gates),
        "xinf_max": max(e["xinf_max"] for e in gates),
        "rate_median": max(max(e["alpha_median"], e["beta_median"]) for e in gates),
    }


def meets_targets(errors: dict, targets: dict | None = None) -> bool:
    """Whether every gate meets every target (default :data:`TARGETS`)."""
    targets = targets or TARGETS
    s = summarize_errors(errors)
    return all(s[k] < v for k, v in targets.items())


def rate_errors_in_ranges(learned, truth, ranges: dict, step: float = 0.5) -> dict:
    """Relative error of each rate of ``learned`` against ``truth`` over that rate's own
    range (``ranges``: ``{"alpha_m": (lo, hi), ...}``, mV, e.g. where the data constrain
    it, :attr:`hybridhh.fitting.FitResult.constrained`).

    Returns
    -------
    dict
        ``{rate: {"range": [lo, hi], "median", "p90", "max"}}`` (fractions).
    """
    out = {}
    for rate, (lo, hi) in ranges.items():
        kind, gate = rate.split("_")
        g = GATES.index(gate)
        V = np.arange(lo, hi + 0.5 * step, step)
        learned_rate = _eval(learned, V)[0 if kind == "alpha" else 1][:, g]
        true_rate = _eval(truth, V)[0 if kind == "alpha" else 1][:, g]
        rel = np.abs(learned_rate - true_rate) / true_rate
        out[rate] = {"range": [float(lo), float(hi)], "median": float(np.median(rel)),
                     "p90": float(np.percentile(rel, 90)), "max": float(np.max(rel))}
    return out


def kinetics_metrics(learned, truth, vmin: float, vmax: float, targets: dict | None = None
                     ) -> dict:
    """Kinetics errors of ``learned`` against ``truth`` over ``[vmin, vmax]`` (mV).

    The definitions are those of :func:`kinetics_errors` (relative errors as fractions,
    x_inf error absolute).

    Returns
    -------
    dict
        ``range`` (mV), ``gates`` ({gate: {tau_median, tau_p90, xinf_max, alpha_median,
        beta_median}}), ``worst`` (worst gate per target metric, :func:`summarize_errors`),
        ``targets``, ``pass`` (per target metric) and ``meets_targets``.
    """
    targets = dict(targets or TARGETS)
    errors = kinetics_errors(learned, truth, vmin, vmax)
    worst = summarize_errors(errors)
    return {
        "range": errors["range"],
        "gates": {g: errors[g] for g in ("m", "h", "n")},
        "worst": worst,
        "targets": targets,
        "pass": {k: bool(worst[k] < v) for k, v in targets.items()},
        "meets_targets": bool(meets_targets(errors, targets)),
    }


def _is_inf(name: str) -> bool:
    return name.endswith("_inf")


def _to_space(name: str, y):
    """log of a rate or tau, logit of an x_inf (the space bands are interpolated in)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_inf(name):
            y = np.clip(y, 1e-300, 1.0 - 1e-16)
            return np.log(y) - np.log1p(-y)
        return np.log(y)


def _from_space(name: str, z):
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z)) if _is_inf(name) else np.exp(z)


def interpolate_bands(bands: dict, V, value: dict | None = None, names=None) -> dict:
    """The error bands (:func:`hybridhh.fitting.bands.fit_bands`) at voltages ``V`` (mV).

    The band's lower and upper offsets from the fitted curve, in log space (rates, tau) or
    logit space (x_inf), are interpolated linearly in V and put around ``value[name]`` (the
    fitted curve at ``V``; default: the band's own curve, interpolated the same way). Outside
    the voltages the bands cover (``bands["V"]``) the result is NaN: there is no band.

    ``names``: the quantities wanted (default all of :data:`BAND_QUANTITIES`).

    Returns
    -------
    dict
        ``{name: (lo, hi)}`` for each name, numpy arrays of ``len(V)``, in the quantity's
        units.
    """
    V = np.asarray(V, dtype=np.float64)
    grid = np.asarray(bands["V"], dtype=np.float64)
    outside = (V < grid[0] - 1e-9) | (V > grid[-1] + 1e-9)
    out = {}
    for name in BAND_QUANTITIES if names is None else names:
        centre = _to_space(name, bands["value"][name])
        lo = np.interp(V, grid, _to_space(name, bands["lo"][name]) - centre)
        hi = np.interp(V, grid, _to_space(name, bands["hi"][name]) - centre)
        mid = (np.interp(V, grid, centre) if value is None
               else _to_space(name, value[name]))
        lo, hi = _from_space(name, mid + lo), _from_space(name, mid + hi)
        lo[outside], hi[outside] = np.nan, np.nan
        out[name] = (lo, hi)
    return out


def _quantities(kinetics, V) -> dict:
    """``{name: values}`` of :data:`BAND_QUANTITIES` for ``kinetics`` at ``V`` (mV)."""
    alpha, beta, x_inf, tau = _eval(kinetics, V)
    out = {}
    for g, gate in enumerate(GATES):
        out[f"alpha_{gate}"], out[f"beta_{gate}"] = alpha[:, g], beta[:, g]
        out[f"{gate}_inf"], out[f"tau_{gate}"] = x_inf[:, g], tau[:, g]
    return {name: out[name] for name in BAND_QUANTITIES}


def band_coverage(bands: dict, truth, vmin: float, vmax: float, step: float = 0.5) -> dict:
    """How often the ``truth`` lies inside the error ``bands`` on ``[vmin, vmax]`` (mV).

    Parameters
    ----------
    bands
        Error bands of a fit (:func:`hybridhh.fitting.bands.fit_bands`,
        :attr:`hybridhh.fitting.FitResult.bands`).
    truth
        The true kinetics (``rates(V)``).
    vmin, vmax, step
        The voltage grid (mV), e.g. the visited range (1st–99th percentile of V).

    Returns
    -------
    dict
        Per name of :data:`BAND_QUANTITIES`, the fraction of the grid's voltages where
        ``lo <= truth <= hi`` (a voltage outside the bands' range counts as not covered);
        ``"min"``, the smallest of those fractions; ``"worst"``, its quantity;
        ``"median_width"``, per quantity the median width of the band on the grid,
        relative to the fitted value for rates and tau (``(hi - lo) / value``), absolute
        (``hi - lo``) for x_inf; ``"level"``, the bands' nominal level; ``"range"``,
        ``[vmin, vmax]``.
    """
    V = np.arange(vmin, vmax + 0.5 * step, step)
    true = _quantities(truth, V)
    band = interpolate_bands(bands, V)
    centre = interpolate_bands({**bands, "lo": bands["value"], "hi": bands["value"]}, V)
    out, widths = {}, {}
    for name in BAND_QUANTITIES:
        lo, hi = band[name]
        with np.errstate(invalid="ignore"):
            inside = (true[name] >= lo) & (true[name] <= hi)
            width = hi - lo if _is_inf(name) else (hi - lo) / centre[name][0]
        out[name] = float(np.mean(inside))
        widths[name] = float(np.nanmedian(width)) if np.isfinite(width).any() else float("nan")
    worst = min(BAND_QUANTITIES, key=lambda n: out[n])
    return {**out, "min": out[worst], "worst": worst, "median_width": widths,
            "level": float(bands.get("level", float("nan"))),
            "range": [float(vmin), float(vmax)]}

"""Kinetics error metrics: the one definition used by the fit benchmark, compare and reports.

All metrics are evaluated on a uniform voltage grid over the range the data visited
(by default its 1st–99th percentile), where the data constrain the rates. Relative errors
are fractions (0.05 = 5 %), the x_inf error is absolute; voltages in mV.
"""

from __future__ import annotations

import numpy as np

from ..constants import GATES

__all__ = ["TARGETS", "kinetics_errors", "summarize_errors", "meets_targets",
           "rate_errors_in_ranges", "kinetics_metrics"]

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

"""Features of recordings without a truth: how well a prediction matches a measured trace.

Where no reference kinetics exist (a real cell), a fit is judged by what its predicted V
shares with the measured V under the same stimulus. Per trace:

* **spike count** and **first-spike latency**: spikes are those of
  :mod:`hybridhh.analysis.spikes` (upward crossings of a threshold, by default
  :func:`~hybridhh.analysis.spikes.spike_threshold` of the measured resting potential,
  the same for both traces); the latency is the first spike at or after the stimulus
  onset minus the onset (ms), the onset read from the current (:func:`stimulus_window`);
* **coincidence factor** Γ (Kistler et al. 1997, Jolivet et al. 2008) with precision
  Δ = :data:`COINCIDENCE_WINDOW` ms (:func:`coincidence_factor`);
* **subthreshold V RMSE** (mV) with the spikes of either trace cut out,
  :data:`SPIKE_WINDOW` ms around each threshold crossing (:func:`subthreshold_rmse`);
* **standard features** by eFEL (``pip install hybridhh[features]``): AP amplitude (mV,
  from the spike onset), half width (ms), AHP depth (mV: the AHP minimum minus the
  pre-stimulus base), ISI CV (eFEL's default skips the first ISI), sag (mV,
  hyperpolarising steps) and input resistance (steps without spikes): see
  :data:`FEATURES` and :func:`efel_features`.

Times in ms, V in mV, currents in the recording's units (µA/cm² or pA). Importing this
module imports neither torch nor eFEL.
"""

from __future__ import annotations

import numpy as np

from .arrays import as_numpy
from .spikes import match_spikes, spike_threshold, spike_times

__all__ = [
    "COINCIDENCE_WINDOW",
    "SPIKE_WINDOW",
    "FEATURES",
    "stimulus_window",
    "resting_potential",
    "coincidence_factor",
    "first_spike_latency",
    "subthreshold_mask",
    "subthreshold_rmse",
    "efel_features",
    "compare_traces",
    "summarize_traces",
]

#: Precision Δ (ms) of the coincidence factor: spikes at most this far apart coincide.
COINCIDENCE_WINDOW = 2.0
#: ms before and after each threshold crossing (of either trace) left out of the
#: subthreshold RMSE: the upstroke from its onset, the spike and its fast AHP.
SPIKE_WINDOW = (3.0, 12.0)
#: The current departs from its value at the first sample where it differs by more than
#: this fraction of its largest departure (:func:`stimulus_window`).
STIMULUS_TOLERANCE = 0.01
#: A window is a step when the current stays within this fraction of its median departure
#: on all but 5 % of the window's samples.
STEP_TOLERANCE = 0.05

#: The eFEL features reported: our name -> (eFEL feature, how per-spike values are
#: combined, unit). ``input_resistance`` is eFEL's ``voltage_deflection`` over the step
#: amplitude (eFEL's ``ohmic_input_resistance`` with the step as ``stimulus_current``).
FEATURES = {
    "AP_amplitude": ("AP_amplitude", "mean", "mV"),
    "AP_half_width": ("AP_duration_half_width", "mean", "ms"),
    "AHP_depth": ("AHP_depth", "mean", "mV"),
    "ISI_CV": ("ISI_CV", "value", "1"),
    "sag": ("sag_amplitude", "value", "mV"),
    "input_resistance": ("voltage_deflection", "value",
                         "MOhm for a current in pA, kOhm cm^2 for uA/cm^2"),
}


# --- the stimulus -----------------------------------------------------------------------


def stimulus_window(time, current, tolerance: float = STIMULUS_TOLERANCE) -> dict | None:
    """Where the injected current departs from its value at the first sample.

    Parameters
    ----------
    time
        ms, ``[T]``.
    current
        ``[T]``, any units.
    tolerance
        Fraction of the largest departure that counts as a departure.

    Returns
    -------
    dict or None
        ``start`` (ms, the first departing sample), ``end`` (ms, the sample after the last
        departing one, at most the last sample), ``amplitude`` (the median departure over
        the window, in the current's units) and ``step`` (whether the current stays within
        :data:`STEP_TOLERANCE` of that amplitude on 95 % of the window: a step, not noise);
        None for a constant current.
    """
    t = np.asarray(time, dtype=np.float64)
    dev = np.asarray(as_numpy(current), dtype=np.float64) - float(as_numpy(current)[0])
    big = np.abs(dev).max()
    if not big > 0:
        return None
    on = np.nonzero(np.abs(dev) > tolerance * big)[0]
    k0, k1 = int(on[0]), int(on[-1])
    inside = dev[k0:k1 + 1]
    amplitude = float(np.median(inside))
    near = np.abs(inside - amplitude) <= STEP_TOLERANCE * abs(amplitude)
    return {"start": float(t[k0]), "end": float(t[min(k1 + 1, len(t) - 1)]),
            "amplitude": amplitude, "step": bool(amplitude != 0 and near.mean() >= 0.95)}


def resting_potential(voltage, current) -> float:
    """Resting potential (mV): the median V over all samples where the current is at its
    first value (outside every :func:`stimulus_window`); the median first sample when
    fewer than 10 such samples exist."""
    V = np.atleast_2d(as_numpy(voltage))
    I = np.atleast_2d(as_numpy(current))
    dev = np.abs(I - I[:, :1])
    big = dev.max(axis=1, keepdims=True)
    quiet = dev <= STIMULUS_TOLERANCE * np.where(big > 0, big, 1.0)
    if quiet.sum() >= 10:
        return float(np.median(V[quiet]))
    return float(np.median(V[:, 0]))


# --- spike trains -----------------------------------------------------------------------


def coincidence_factor(reference, model, duration: float,
                       delta: float = COINCIDENCE_WINDOW) -> float | None:
    """The coincidence factor Γ of two spike trains (Kistler, Gerstner & van Hemmen 1997).

    .. math::

        Γ = \\frac{N_{coinc} - ⟨N_{coinc}⟩}{\\tfrac12 (N_{ref} + N_{model})}
            \\frac{1}{1 - 2 ν Δ},
        \\qquad ⟨N_{coinc}⟩ = 2 ν Δ N_{ref}, \\quad ν = N_{model} / T

    ``N_coinc`` counts pairs of a reference and a model spike at most Δ apart, each spike
    in at most one pair (:func:`~hybridhh.analysis.spikes.match_spikes` with
    ``max_shift=delta``); ``⟨N_coinc⟩`` is the number a Poisson train of the model's rate
    ν would reach by chance. Γ = 1 for identical trains, ≈ 0 for independent ones (its
    mean is 0 for a Poisson model), negative when the model avoids the reference spikes.

    Parameters
    ----------
    reference, model
        Spike times, ms (the measured and the predicted train).
    duration
        T, ms: the length of the recording the trains come from.
    delta
        Δ, ms.

    Returns
    -------
    float or None
        None when neither train has a spike or 2νΔ ≥ 1 (the model fires so fast that
        chance coincides with everything).
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    mod = np.asarray(model, dtype=np.float64).ravel()
    if not (duration > 0 and delta > 0):
        raise ValueError(f"duration and delta must be > 0 ms, got {duration}, {delta}")
    n_ref, n_mod = len(ref), len(mod)
    if n_ref + n_mod == 0:
        return None
    chance = 2.0 * (n_mod / duration) * delta
    if chance >= 1.0:
        return None
    n_coinc = match_spikes(ref, mod, max_shift=delta)["matched"] if n_ref and n_mod else 0
    return float((n_coinc - chance * n_ref) / (0.5 * (n_ref + n_mod)) / (1.0 - chance))


def first_spike_latency(spikes, onset: float | None) -> float | None:
    """ms from ``onset`` (ms) to the first of ``spikes`` (ms) at or after it; None without
    an onset or such a spike."""
    if onset is None:
        return None
    s = np.asarray(spikes, dtype=np.float64)
    s = s[s >= onset]
    return float(s.min() - onset) if len(s) else None


def subthreshold_mask(time, *trains, window=SPIKE_WINDOW) -> np.ndarray:
    """``[T]`` bool: True at the samples farther than ``window`` = (before, after) ms from
    every spike of every train in ``trains`` (spike times, ms)."""
    t = np.asarray(time, dtype=np.float64)
    keep = np.ones(len(t), dtype=bool)
    before, after = window
    for train in trains:
        for s in np.asarray(train, dtype=np.float64).ravel():
            keep &= ~((t >= s - before) & (t <= s + after))
    return keep


def subthreshold_rmse(time, V_reference, V_model, *trains, window=SPIKE_WINDOW
                      ) -> tuple[float | None, float]:
    """``(RMSE in mV, fraction of samples used)`` of ``V_model - V_reference`` (``[T]``,
    mV) on the samples of :func:`subthreshold_mask` (spikes of ``trains`` cut out); the
    RMSE is None when no sample is left."""
    keep = subthreshold_mask(time, *trains, window=window)
    if not keep.any():
        return None, 0.0
    d = np.asarray(as_numpy(V_model), dtype=np.float64)[keep] - \
        np.asarray(as_numpy(V_reference), dtype=np.float64)[keep]
    return float(np.sqrt(np.mean(d * d))), float(keep.mean())


# --- eFEL ---------------------------------------------------------------------------------


def _efel():
    try:
        import efel
    except ImportError:
        return None
    return efel


def efel_features(time, voltage, windows, threshold: float, units: str = "uA/cm^2"
                  ) -> list[dict] | None:
    """The :data:`FEATURES` of each trace, by eFEL; None when eFEL is not installed.

    Parameters
    ----------
    time
        ms, ``[T]`` (eFEL gets it from 0).
    voltage
        mV, ``[B, T]``.
    windows
        Per trace its :func:`stimulus_window` (or None: the whole trace, and no
        sag or input resistance): eFEL's ``stim_start`` / ``stim_end``.
    threshold
        Spike threshold, mV (eFEL's ``Threshold`` setting, as our spike definition).
    units
        The current's units: ``"pA"`` gives the input resistance in MΩ, ``"uA/cm^2"`` in
        kΩ·cm².

    Returns
    -------
    list of dict or None
        Per trace ``{name: value or None}`` over :data:`FEATURES`: per-spike features
        averaged over the spikes, None where eFEL cannot compute one (no spike, fewer than
        four spikes for the ISI CV, a depolarising or non-step stimulus for the sag, a step
        with spikes for the input resistance). eFEL interpolates to ``interp_step`` = the
        recording's step; a stimulus lasting to the last sample ends one step earlier for
        eFEL (it needs a sample after ``stim_end``).
    """
    efel = _efel()
    if efel is None:
        return None
    t = np.asarray(time, dtype=np.float64)
    t = t - t[0]
    V = np.atleast_2d(as_numpy(voltage)).astype(np.float64)
    dt = float(t[1] - t[0])
    traces, steps = [], []
    for v, w in zip(V, windows, strict=True):
        t0 = float(t[0]) if w is None else w["start"] - float(time[0])
        t1 = float(t[-1]) if w is None else w["end"] - float(time[0])
        # eFEL needs a sample at or after stim_end on its interpolated grid, which may end
        # just short of the last sample: a stimulus lasting to the end stops one step early
        t1 = min(t1, float(t[-1]) - dt)
        if not t1 > t0:
            t0, t1 = float(t[0]), float(t[-1]) - dt
        traces.append({"T": t, "V": v, "stim_start": [t0], "stim_end": [t1]})
        steps.append(w if w is not None and w["step"] else None)
    names = sorted({spec[0] for spec in FEATURES.values()} | {"peak_time"})
    efel.reset()
    try:
        efel.set_setting("Threshold", float(threshold))
        efel.set_setting("interp_step", dt)
        values = efel.get_feature_values(traces, names, raise_warnings=False)
    finally:
        efel.reset()
    scale = 1000.0 if units == "pA" else 1.0  # mV/pA = GOhm -> MOhm; mV/(uA/cm^2) = kOhm cm^2
    out = []
    for vals, step in zip(values, steps, strict=True):
        row = {}
        spiking = vals.get("peak_time") is not None and len(vals["peak_time"]) > 0
        for key, (name, how, _) in FEATURES.items():
            x = vals.get(name)
            if x is None or len(x) == 0 or not np.all(np.isfinite(x)):
                row[key] = None
                continue
            x = float(np.mean(x)) if how == "mean" else float(x[0])
            if key == "sag" and (step is None or step["amplitude"] >= 0):
                x = None
            elif key == "input_resistance":
                x = (None if step is None or spiking or step["amplitude"] == 0
                     else scale * x / step["amplitude"])
            row[key] = x
        out.append(row)
    return out


# --- measured against predicted -----------------------------------------------------------


def _trace_row(name, time, v_meas, v_pred, window, threshold, delta, spike_window,
               meas_features, pred_features) -> dict:
    s_meas = spike_times(v_meas, time, threshold)[0]
    s_pred = spike_times(v_pred, time, threshold)[0]
    onset = None if window is None else window["start"]
    duration = float(time[-1] - time[0] + (time[1] - time[0]))
    rmse, used = subthreshold_rmse(time, v_meas, v_pred, s_meas, s_pred, window=spike_window)
    lat_m, lat_p = first_spike_latency(s_meas, onset), first_spike_latency(s_pred, onset)

    def side(spikes, lat, feats):
        return {"spike_count": int(len(spikes)), "latency": lat,
                "spike_times": [float(x) for x in spikes], **(feats or {})}

    errors = {}
    for key in FEATURES:
        m = (meas_features or {}).get(key)
        p = (pred_features or {}).get(key)
        errors[key] = None if m is None or p is None else p - m
    return {
        "name": name,
        "stimulus": window,
        "measured": side(s_meas, lat_m, meas_features),
        "predicted": side(s_pred, lat_p, pred_features),
        "spike_count_diff": int(len(s_pred) - len(s_meas)),
        "latency_diff": None if lat_m is None or lat_p is None else lat_p - lat_m,
        "coincidence": coincidence_factor(s_meas, s_pred, duration, delta),
        "subthreshold_rmse": rmse,
        "subthreshold_fraction": used,
        "feature_errors": errors,
    }


def compare_traces(time, V_measured, V_predicted, current, *, names=None,
                   threshold: float | None = None, units: str = "uA/cm^2",
                   delta: float = COINCIDENCE_WINDOW, spike_window=SPIKE_WINDOW) -> dict:
    """Measured against predicted V, trace by trace, and summarised.

    Parameters
    ----------
    time
        ms, ``[T]``.
    V_measured, V_predicted
        mV, ``[B, T]``.
    current
        The injected current, ``[B, T]`` (``units``): where the stimulus starts and ends.
    names
        Trace names (default ``trace_0`` ...).
    threshold
        Spike threshold, mV (default :func:`~hybridhh.analysis.spikes.spike_threshold` of
        the measured :func:`resting_potential`).
    units
        The current's units (``"uA/cm^2"`` or ``"pA"``).
    delta
        Δ of the coincidence factor, ms.
    spike_window
        (before, after) ms around each spike cut out of the subthreshold RMSE.

    Returns
    -------
    dict
        ``threshold`` (mV), ``delta`` (ms), ``spike_window`` (ms), ``units``, ``efel``
        (whether eFEL computed the standard features), ``per_trace`` (per trace: ``name``,
        ``stimulus`` (:func:`stimulus_window`), ``measured`` and ``predicted``
        (``spike_count``, ``latency`` ms, ``spike_times`` ms, the :data:`FEATURES`),
        ``spike_count_diff`` (predicted − measured), ``latency_diff`` (ms),
        ``coincidence`` (Γ), ``subthreshold_rmse`` (mV), ``subthreshold_fraction`` (of the
        samples used), ``feature_errors`` (predicted − measured)) and ``summary``
        (:func:`summarize_traces`).
    """
    t = np.asarray(time, dtype=np.float64)
    Vm = np.atleast_2d(as_numpy(V_measured)).astype(np.float64)
    Vp = np.atleast_2d(as_numpy(V_predicted)).astype(np.float64)
    I = np.atleast_2d(as_numpy(current)).astype(np.float64)
    if not (Vm.shape == Vp.shape == I.shape and Vm.shape[1] == len(t)):
        raise ValueError(f"measured V {Vm.shape}, predicted V {Vp.shape} and current {I.shape} "
                         f"must all have shape (n_traces, {len(t)})")
    names = list(names) if names is not None else [f"trace_{k}" for k in range(len(Vm))]
    if threshold is None:
        threshold = spike_threshold(resting_potential(Vm, I))
    windows = [stimulus_window(t, i) for i in I]
    f_meas = efel_features(t, Vm, windows, threshold, units)
    f_pred = efel_features(t, Vp, windows, threshold, units) if f_meas is not None else None
    rows = [_trace_row(n, t, Vm[k], Vp[k], windows[k], threshold, delta, spike_window,
                       None if f_meas is None else f_meas[k],
                       None if f_pred is None else f_pred[k])
            for k, n in enumerate(names)]
    return {"threshold": float(threshold), "delta": float(delta),
            "spike_window": [float(x) for x in spike_window], "units": units,
            "efel": f_meas is not None, "per_trace": rows, "summary": summarize_traces(rows)}


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


def summarize_traces(rows: list[dict]) -> dict:
    """The numbers of :func:`compare_traces`'s ``per_trace`` rows over the traces.

    ``n_traces``; ``n_spiking`` (traces whose measured V spikes); ``spike_count_abs_diff``
    (mean |Δn| over all traces); ``coincidence`` and ``coincidence_min`` (mean and least Γ
    over the spiking traces); ``latency_abs_diff`` (mean |Δ latency|, ms, where both
    spike); ``subthreshold_rmse`` and ``subthreshold_rmse_max`` (mV); ``features``
    (per feature: ``abs_error_median`` over the traces where both have it, and ``n``);
    ``feature_relative_error_median`` (the median of |predicted − measured| / |measured|
    over every trace and feature where both exist).
    """
    spiking = [r for r in rows if r["measured"]["spike_count"] > 0]
    feats, rel = {}, []
    for key in FEATURES:
        errs = [abs(r["feature_errors"][key]) for r in rows
                if r["feature_errors"].get(key) is not None]
        feats[key] = {"abs_error_median": _median(errs), "n": len(errs)}
        for r in rows:
            m, e = r["measured"].get(key), r["feature_errors"].get(key)
            if e is not None and m:
                rel.append(abs(e) / abs(m))
    gam = [r["coincidence"] for r in spiking if r["coincidence"] is not None]
    return {
        "n_traces": len(rows),
        "n_spiking": len(spiking),
        "spike_count_abs_diff": _mean([abs(r["spike_count_diff"]) for r in rows]),
        "coincidence": _mean(gam),
        "coincidence_min": min(gam) if gam else None,
        "latency_abs_diff": _mean([None if r["latency_diff"] is None else abs(r["latency_diff"])
                                   for r in rows]),
        "subthreshold_rmse": _mean([r["subthreshold_rmse"] for r in rows]),
        "subthreshold_rmse_max": max((r["subthreshold_rmse"] for r in rows
                                      if r["subthreshold_rmse"] is not None), default=None),
        "features": feats,
        "feature_relative_error_median": _median(rel) if rel else None,
    }

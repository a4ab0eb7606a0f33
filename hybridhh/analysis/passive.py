"""Passive properties from hyperpolarising current steps: R_in, τ_m, C_total, sag, E_L, g_L.

The passive analysis of a real cell, reported on its own (``hybridhh passive``) and used to
start a cell fit (:func:`passive_start`). Per hyperpolarising step (:func:`find_steps`: a
constant current below the holding current, entered from the holding current, lasting at
least ``min_duration`` ms, with no spike in it or in the baseline before it):

* **baseline** V_base: mean V over the last ``baseline`` ms before the onset;
* **steady state** V_ss: mean V over the last 10 % of the step (eFEL's
  ``steady_state_voltage_stimend``, as :func:`hybridhh.analysis.features.efel_features`
  uses through ``voltage_deflection``);
* **input resistance** R_in = (V_ss − V_base) / ΔI: MΩ for a current in pA (mV/pA = GΩ),
  kΩ·cm² for µA/cm²; the same definition as the ``input_resistance`` feature;
* **peak** V_min: the minimum of V smoothed over :data:`SMOOTH` ms (so 0.1 mV of noise
  does not deepen it); **sag** = V_ss − V_min (mV, ≥ 0), eFEL's ``sag_amplitude`` on the
  smoothed trace;
* **membrane time constant** τ_m: a single exponential ``V_inf + A exp(−t / τ)`` fitted
  (``scipy.optimize.curve_fit``) from ``skip`` ms after the onset (the filter and any
  unbalanced bridge) to the time of V_min, so the sag (an Ih-like current activating
  later) is left out;
* **capacitance** C = τ_m / R_in: pF for pA (ms/MΩ = nF, x1000), µF/cm² for µA/cm²;
* **series resistance error** R_s: the instantaneous jump at the onset over ΔI (MΩ for
  pA, kΩ·cm² for µA/cm²), the jump being a straight line fitted to V over
  :data:`JUMP_WINDOW` ms after the onset (past the filter's edge, before the membrane's
  curvature matters), extrapolated to the onset, minus V_base: what an unbalanced bridge
  adds (V_recorded = V_m + R_s I), 0 for a balanced one. :func:`correct_series_resistance`
  removes it.

The cell's values are medians over the steps (C from the median τ_m and R_in), and
**E_L** is the resting potential: the median V before the first step of each trace (at
the holding current, spikes cut out). **g_L** = C_m / τ_m with C_m = 1 µF/cm² (the
convention of a recording in pA; g_L in mS/cm² = 1 / τ_m[ms]), or the measured
1 / R_in for a density. Times in ms, V in mV.

Importing this module imports neither torch nor eFEL.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .spikes import spike_threshold, spike_times

__all__ = ["SMOOTH", "PassiveResult", "find_steps", "passive_analysis", "passive_start",
           "with_passive_start", "correct_series_resistance", "passive_cell", "JUMP_WINDOW",
           "C_TOTAL_FACTOR"]

#: Width (ms) of the moving average under the peak V_min.
SMOOTH = 1.0
#: ms before and after a spike that count as the spike (a step or baseline touching one is
#: not passive).
_SPIKE_MARGIN = (5.0, 20.0)
#: Steady state: the last fraction of the step.
_STEADY = 0.1
#: A cell fit keeps C_total within this factor of the passive τ_m / R_in (either way): freer,
#: fits of 171116sh_0018 ran to 1,344 and 2,000 pF (its passive value: 330 pF).
C_TOTAL_FACTOR = 1.5
#: ms after an onset over which the bridge's jump is read (a line through V, extrapolated).
JUMP_WINDOW = (0.1, 1.0)


@dataclass(frozen=True)
class PassiveResult:
    """Passive properties of a cell (medians over its hyperpolarising steps).

    Attributes
    ----------
    R_in : float
        Input resistance: MΩ (current in pA) or kΩ·cm² (µA/cm²).
    tau_m : float
        Membrane time constant, ms.
    C_total : float or None
        τ_m / R_in, pF, for a current in pA; None for a density.
    C_m : float
        µF/cm²: 1 (the convention) for pA, τ_m / R_in for a density.
    g_L : float
        Leak conductance density, mS/cm²: C_m / τ_m.
    E_L : float
        Resting potential, mV.
    sag : float
        Sag amplitude, mV (V_ss − V_min, ≥ 0).
    current_units : str
        ``"pA"`` or ``"uA/cm^2"``.
    steps : tuple of dict
        Per step: trace, start and end (ms), amplitude (ΔI, current units), V_base,
        V_ss, V_min (mV), t_min (ms after onset), R_in, tau_m, sag, C, R_s, fit_rmse (mV).
    R_s : float or None
        Series resistance error (the unbalanced bridge), in R_in's units: the median over
        the steps. None in results made without it.
    """

    R_in: float
    tau_m: float
    C_total: float | None
    C_m: float
    g_L: float
    E_L: float
    sag: float
    current_units: str
    steps: tuple = ()
    R_s: float | None = None

    def as_dict(self) -> dict:
        """Plain data (JSON-serialisable), with ``units``: name -> unit."""
        d = dataclasses.asdict(self)
        d["steps"] = [dict(s) for s in self.steps]
        d["n_steps"] = len(self.steps)
        d["units"] = _units(self.current_units)
        for key in ("R_in", "tau_m", "sag", "R_s"):
            xs = [s[key] for s in self.steps]
            d[f"{key}_range"] = [min(xs), max(xs)] if xs else None
        return d


def _units(current_units: str) -> dict:
    pa = current_units == "pA"
    return {"R_in": "MOhm" if pa else "kOhm cm^2", "tau_m": "ms",
            "C_total": "pF", "C_m": "uF/cm^2", "g_L": "mS/cm^2", "E_L": "mV", "sag": "mV",
            "amplitude": current_units, "C": "pF" if pa else "uF/cm^2",
            "R_s": "MOhm" if pa else "kOhm cm^2"}


def _segments(current: np.ndarray, tol: float):
    """``[(k0, k1, level)]``: runs of constant current (within ``tol``), k1 exclusive."""
    jumps = np.nonzero(np.abs(np.diff(current)) > tol)[0] + 1
    edges = [0, *jumps.tolist(), len(current)]
    return [(a, b, float(np.median(current[a:b]))) for a, b in zip(edges[:-1], edges[1:],
                                                                     strict=True) if b > a]


def _near_spike(t0: float, t1: float, spikes: np.ndarray) -> bool:
    return bool(np.any((spikes >= t0 - _SPIKE_MARGIN[1]) & (spikes <= t1 + _SPIKE_MARGIN[0])))


def find_steps(time, voltage, current, *, min_duration: float = 50.0,
               baseline: float = 50.0, threshold: float | None = None) -> list[dict]:
    """The hyperpolarising steps of each trace (see the module docstring).

    Parameters
    ----------
    time
        ms, ``[T]``.
    voltage, current
        ``[B, T]`` (mV; any current units). The current must be piecewise constant (a
        commanded step protocol): it is split where it jumps by more than 1 % of its
        largest departure from the holding current (its first sample).
    min_duration, baseline
        ms: the shortest step, and the stretch of holding current it needs before it.
    threshold
        Spike threshold, mV (default :func:`~hybridhh.analysis.spikes.spike_threshold` of
        the median first sample).

    Returns
    -------
    list of dict
        ``trace`` (index), ``k0``, ``k1`` (sample indices of the step, k1 exclusive),
        ``kb`` (first baseline sample), ``amplitude`` (ΔI), ``start``, ``end`` (ms).
    """
    t = np.asarray(time, dtype=np.float64)
    V = np.atleast_2d(np.asarray(voltage, dtype=np.float64))
    I = np.atleast_2d(np.asarray(current, dtype=np.float64))
    dt = float((t[-1] - t[0]) / (len(t) - 1))
    if threshold is None:
        threshold = spike_threshold(float(np.median(V[:, 0])))
    trains = spike_times(V, t, threshold)
    out = []
    for b in range(V.shape[0]):
        hold = float(I[b, 0])
        big = float(np.abs(I[b] - hold).max())
        if not big > 0:
            continue
        tol = 0.01 * big
        segs = _segments(I[b], tol)
        for (a0, a1, before), (k0, k1, level) in zip(segs[:-1], segs[1:], strict=True):
            amp = level - before
            if abs(before - hold) > tol or not amp < -tol:
                continue
            if (k1 - k0) * dt < min_duration or (a1 - a0) * dt < baseline:
                continue
            kb = k0 - int(round(baseline / dt))
            if _near_spike(float(t[kb]), float(t[k1 - 1]), trains[b]):
                continue
            out.append({"trace": b, "k0": int(k0), "k1": int(k1), "kb": int(kb),
                        "amplitude": amp, "start": float(t[k0]), "end": float(t[k1 - 1])})
    return out


def _moving_average(v: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over ``n`` samples; the ends average what exists."""
    if n <= 1:
        return v.copy()
    c = np.concatenate([[0.0], np.cumsum(v)])
    k = np.arange(len(v))
    lo = np.clip(k - n // 2, 0, len(v))
    hi = np.clip(k - n // 2 + n, 0, len(v))
    return (c[hi] - c[lo]) / (hi - lo)


def _exp(x, v_inf, a, tau):
    return v_inf + a * np.exp(-x / tau)


def _step(t, v, step, skip, pa) -> dict:
    from scipy.optimize import curve_fit

    dt = float(t[1] - t[0])
    k0, k1, kb, amp = step["k0"], step["k1"], step["kb"], step["amplitude"]
    v_base = float(v[kb:k0].mean())
    seg = v[k0:k1]
    n_ss = max(int(round(_STEADY * len(seg))), 5)
    v_ss = float(seg[-n_ss:].mean())
    smooth = _moving_average(seg, max(int(round(SMOOTH / dt)), 1))
    k_min = int(np.argmin(smooth))
    v_min = float(smooth[k_min])
    j0 = int(round(skip / dt))
    # at least 10 samples and 5 ms of fit, within the step
    j1 = min(max(k_min + 1, j0 + 10, j0 + int(round(5.0 / dt))), len(seg))
    x = np.arange(j0, j1) * dt
    y = seg[j0:j1]
    r_in = (v_ss - v_base) / amp
    tau0 = max(0.3 * (j1 - j0) * dt, 2 * dt)
    span = max(float(x[-1] - x[0]), dt)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            p, _ = curve_fit(_exp, x - x[0], y, p0=(v_min, v_base - v_min, tau0),
                             bounds=([-np.inf, -np.inf, dt / 4], [np.inf, np.inf, 100 * span]))
    except (RuntimeError, ValueError):
        p = (math.nan, math.nan, math.nan)
    tau = float(p[2])
    rmse = (float(np.sqrt(np.mean((_exp(x - x[0], *p) - y) ** 2))) if math.isfinite(tau)
            else math.nan)
    scale = 1000.0 if pa else 1.0  # mV/pA = GOhm -> MOhm; mV/(uA/cm^2) = kOhm cm^2
    R = scale * r_in
    C = (tau / R * 1000.0 if pa else tau / R) if math.isfinite(tau) and R > 0 else math.nan
    # the bridge's jump: a line through V just after the onset, at the onset, less V_base
    w0, w1 = (int(round(w / dt)) for w in JUMP_WINDOW)
    w1 = min(max(w1, w0 + 3), len(seg))
    xs = np.arange(w0, w1) * dt
    jump = float(np.polyval(np.polyfit(xs, seg[w0:w1], 1), 0.0)) - v_base
    return {"trace": step["trace"], "start": step["start"], "end": step["end"],
            "amplitude": float(amp), "V_base": v_base, "V_ss": v_ss, "V_min": v_min,
            "t_min": k_min * dt, "R_in": float(R), "tau_m": tau, "sag": max(v_ss - v_min, 0.0),
            "C": float(C),
            "R_s": scale * jump / amp, "fit_rmse": rmse}


def _rest(t, V, I, steps, threshold) -> float:
    """Median V at the holding current before each trace's first departure, spikes cut."""
    trains = spike_times(V, t, threshold)
    values = []
    for b in range(V.shape[0]):
        dev = np.abs(I[b] - I[b, 0])
        big = dev.max()
        first = int(np.argmax(dev > 0.01 * big)) if big > 0 else len(t)
        keep = np.ones(first, dtype=bool)
        for s in trains[b]:
            keep &= ~((t[:first] >= s - _SPIKE_MARGIN[0]) & (t[:first] <= s + _SPIKE_MARGIN[1]))
        values.append(V[b, :first][keep])
    values = np.concatenate(values) if values else np.array([])
    if len(values) < 10:  # no quiet stretch at the start: the steps' baselines
        values = np.array([s["V_base"] for s in steps])
    return float(np.median(values))


def passive_analysis(recording, *, traces=None, amplitudes=None, skip: float = 0.5,
                     min_duration: float = 50.0, baseline: float = 50.0) -> PassiveResult:
    """Passive properties of ``recording`` from its hyperpolarising steps.

    Parameters
    ----------
    recording
        A :class:`hybridhh.Recording` (current in pA or µA/cm²; a commanded,
        piecewise-constant current).
    traces
        The traces to use (index, name, or a sequence; default all).
    amplitudes
        Keep only steps of these ΔI (current units, within 1 %), e.g. ``[-100]``.
    skip
        ms after the onset left out of the exponential fit.
    min_duration, baseline
        As in :func:`find_steps`.

    Raises
    ------
    ConfigError
        Naming the recording, when it has no usable step or no τ_m could be fitted.
    """
    from ..recording import trace_indices

    where = recording.path or recording.source
    idx = trace_indices(recording.trace_names, traces)
    t = recording.time
    V, I = recording.voltage[idx], recording.current[idx]
    pa = recording.current_units == "pA"
    threshold = spike_threshold(float(np.median(V[:, 0])))
    steps = find_steps(t, V, I, min_duration=min_duration, baseline=baseline,
                       threshold=threshold)
    if amplitudes is not None:
        amps = [float(a) for a in np.atleast_1d(amplitudes)]
        steps = [s for s in steps if any(abs(s["amplitude"] - a) <= 0.01 * abs(a)
                                         for a in amps)]
    if not steps:
        raise ConfigError(f"{where}: no hyperpolarising current step from the holding "
                          f"current (at least {min_duration:g} ms, {baseline:g} ms of "
                          "holding before it, no spike)"
                          + ("" if amplitudes is None else f" of amplitude {amplitudes}")
                          + "; the passive analysis needs one")
    rows = [_step(t, V[s["trace"]], s, skip, pa) for s in steps]
    for r in rows:
        r["trace"] = recording.trace_names[idx[r["trace"]]]
    good = [r for r in rows if math.isfinite(r["tau_m"]) and r["tau_m"] > 0]
    if not good:
        raise ConfigError(f"{where}: no single-exponential fit of the step onset converged "
                          f"({len(rows)} step(s)); the passive analysis cannot give tau_m")
    R = float(np.median([r["R_in"] for r in rows]))
    tau = float(np.median([r["tau_m"] for r in good]))
    sag = float(np.median([r["sag"] for r in rows]))
    rest = _rest(t, V, I, rows, threshold)
    if pa:
        C_total, C_m = tau / R * 1000.0, 1.0
    else:
        C_total, C_m = None, tau / R
    R_s = float(np.median([r["R_s"] for r in rows]))
    return PassiveResult(R_in=R, tau_m=tau, C_total=C_total, C_m=C_m, g_L=C_m / tau,
                         E_L=rest, sag=sag, current_units=recording.current_units,
                         steps=tuple(rows), R_s=R_s)


def passive_start(recording, **kwargs) -> dict[str, float]:
    """Start values for a cell fit from :func:`passive_analysis`: ``{"C_total" (pF, for a
    recording in pA only), "g_L" (mS/cm²), "E_L" (mV)}``. ``kwargs`` go to
    :func:`passive_analysis`."""
    p = passive_analysis(recording, **kwargs)
    out = {"g_L": p.g_L, "E_L": p.E_L}
    if p.C_total is not None:
        out = {"C_total": p.C_total, **out}
    return out


def with_passive_start(recording, **kwargs):
    """``recording`` with its unknown C_total, g_L and E_L (``Recording.cell``) started at
    :func:`passive_start` (each start moved inside its bounds). A recording without a
    ``cell`` is returned with every parameter unknown
    (:meth:`hybridhh.cell.Cell.unknown`) when in pA, unchanged otherwise."""
    from ..cell import Cell

    cell = recording.cell
    if cell is None:
        if recording.current_units != "pA":
            return recording
        cell = Cell.unknown()
    return dataclasses.replace(recording, cell=cell.with_starts(**passive_start(recording,
                                                                                **kwargs)))


def correct_series_resistance(recording, R_s: float):
    """``recording`` with the bridge error removed: V_m = V − R_s · I (R_s in MΩ for a
    current in pA: pA · MΩ = µV; kΩ·cm² for µA/cm²: µA/cm² · kΩ·cm² = mV), said in its
    description and metadata (``series_resistance_corrected``, MΩ or kΩ·cm²)."""
    R_s = float(R_s)
    if not math.isfinite(R_s):
        raise ConfigError(f"series resistance must be a finite number, got {R_s}")
    pa = recording.current_units == "pA"
    V = recording.voltage - R_s * recording.current * (1e-3 if pa else 1.0)
    unit = _units(recording.current_units)["R_s"]
    note = (f"V corrected for {R_s:.4g} {unit} of series resistance (V_m = V - R_s I, "
            "hybridhh.analysis.passive.correct_series_resistance)")
    description = f"{recording.description}; {note}" if recording.description else note
    metadata = {**(recording.metadata or {}),
                "series_resistance_corrected": f"{R_s:.6g} {unit}"}
    return dataclasses.replace(recording, voltage=V, description=description,
                               metadata=metadata)


def passive_cell(cell, passive: PassiveResult, names=("C_total", "g_L", "E_L")):
    """``cell`` (a :class:`hybridhh.cell.Cell`) with its unknown ``names`` started at the
    ``passive`` values, and an unknown C_total still on the default bounds bounded to
    :data:`C_TOTAL_FACTOR` times the passive C_total either way (bounds the user set are
    kept)."""
    from ..cell import PARAMETERS, Cell, CellParameter

    starts = {"C_total": passive.C_total, "g_L": passive.g_L, "E_L": passive.E_L}
    cell = cell.with_starts(**{n: starts[n] for n in names if starts.get(n) is not None})
    c = cell["C_total"]
    default = PARAMETERS["C_total"][1:]
    if (passive.C_total is not None and c.status == "unknown"
            and (c.lower, c.upper) == default):
        lo = max(default[0], passive.C_total / C_TOTAL_FACTOR)
        hi = min(default[1], passive.C_total * C_TOTAL_FACTOR)
        start = min(max(c.start if c.start is not None else passive.C_total, lo), hi)
        cell = Cell({**{n: cell[n] for n in cell},
                     "C_total": CellParameter("C_total", "unknown", lower=lo, upper=hi,
                                              start=start)})
    return cell

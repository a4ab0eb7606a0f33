"""Compare a fitted model with the truth: rate-function errors, free-running V, spike times.

``compare(run_dir, truth) -> Comparison`` loads a finished fit (:func:`hybridhh.fitting.load_fit`)
and the recording it was fitted to, and measures

* **kinetics errors** of the learned rate functions against a reference set, with the
  project's one metric definition (:mod:`hybridhh.metrics`): per gate the median and 90th
  percentile relative error of tau, the maximum absolute error of x_inf and the median
  relative errors of alpha and beta, on a uniform grid over the 1st–99th percentile of the
  recorded V (where the data constrain the rates); the worst gate of each metric and
  pass/fail against :data:`hybridhh.metrics.TARGETS`;
* **free-running voltage error**: the hybrid model driven by the recorded stimuli, started
  from the first recorded V and its own steady-state gates there, exactly as
  :func:`hybridhh.fitting.free_run` does (RK4 at the recording's step by default), against the
  recorded V: RMSE (mV), separately on the training and the held-out traces;
* **spike times**: upward crossings of ``rest + 50 mV`` (a threshold placed relative to
  the cell, so the 1952 convention works as well as the modern one), matched one to one
  between recording and model within ``max_shift`` ms: mean and maximum absolute time
  difference (ms), missed and extra spikes, traces whose spike count differs.

With ``write=True`` it writes ``compare.json`` and PNG figures into ``RUN_DIR/compare/``
(or ``out``). The truth is a *name* of a built-in kinetics set (``"hh_modern"``,
``"hh1952"``...; at the recording's temperature unless ``"name@T"`` or ``temperature=``
says otherwise), a recording file with a ``/truth`` group, any kinetics object, or
``None``: then the fitted recording's own ``/truth`` when it has one, else no kinetics
errors (real data; the voltage and spike metrics remain).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, RecordingError, RunDirError, SimulationError
from .metrics import (
    TARGETS,
    kinetics_errors,
    meets_targets,
    rate_errors_in_ranges,
    summarize_errors,
)

__all__ = [
    "COMPARE_DIR",
    "COMPARE_JSON",
    "SPIKE_ABOVE_REST",
    "MAX_SPIKE_SHIFT",
    "Comparison",
    "FreeRun",
    "TruthSpec",
    "compare",
    "resolve_truth",
    "kinetics_metrics",
    "spike_times",
    "match_spikes",
    "spike_metrics",
    "load_comparison",
    "load_run",
    "wide_voltage_range",
]

#: Sub-directory of a run directory that :func:`compare` writes to by default.
COMPARE_DIR = "compare"
#: Name of the metrics file.
COMPARE_JSON = "compare.json"
#: Spike threshold above the resting potential estimated from the data, mV.
SPIKE_ABOVE_REST = 50.0
#: Largest time difference (ms) at which a model spike still matches a recorded one.
MAX_SPIKE_SHIFT = 5.0
#: A threshold crossing less than this (ms) after the previous one is the same spike.
REFRACTORY = 1.0
#: Figures written by :func:`compare`: key -> (file name, title).
FIGURES = {
    "rates": ("rates.png", "Learned vs true rate functions"),
    "kinetics_error": ("kinetics_error.png", "Error of the learned kinetics against V"),
    "free_run_train": ("free_run_train.png", "Free-running model on training traces"),
    "free_run_holdout": ("free_run_holdout.png", "Free-running model on held-out traces"),
    "training": ("training.png", "Training curves"),
}


# --- the truth ------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthSpec:
    """A resolved reference kinetics set.

    Attributes
    ----------
    kinetics
        The kinetics object (``rates(V) -> (alpha, beta)``).
    label
        Human-readable, e.g. ``"hh_modern at 6.3 °C"``.
    info
        JSON-serialisable description: ``spec`` (what was asked for), ``kind`` (``name``,
        ``file``, ``recording``, ``object``), ``kinetics``, ``temperature`` (°C), ``q10``,
        ``file`` (when read from one).
    """

    kinetics: object
    label: str
    info: dict


def _kinetics_info(kin) -> dict:
    out = {"kinetics": str(getattr(kin, "name", type(kin).__name__))}
    for key in ("temperature", "q10"):
        v = getattr(kin, key, None)
        if isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def _label(kin) -> str:
    info = _kinetics_info(kin)
    t = info.get("temperature")
    return info["kinetics"] + (f" at {t:g} °C" if t is not None else "")


def resolve_truth(truth, temperature: float | None = None, recording=None) -> TruthSpec | None:
    """The reference kinetics for ``truth``.

    Parameters
    ----------
    truth
        ``None``: the ``/truth`` of ``recording`` if it has one, else ``None``.
        A name of a built-in kinetics set (:func:`hybridhh.kinetics.get_kinetics`),
        optionally with a temperature as ``"name@T"`` (°C). A path to a recording file
        (``.h5``) with a ``/truth`` group. Or any kinetics object (used as it is).
    temperature
        °C for a named set (overrides ``@T``) or to re-evaluate a file's truth at another
        temperature. Default: ``@T``, else the temperature of ``recording`` (its
        biophysics), else 6.3 °C.
    recording
        The fitted :class:`~hybridhh.recording.Recording` (default truth and temperature).

    Raises
    ------
    ConfigError
        For a name that is neither a built-in set nor an existing file, a bad ``@T``, or a
        file without ``/truth``.
    """
    from .kinetics import get_kinetics
    from .recording import read_recording, truth_kinetics

    if truth is None:
        if recording is None or recording.truth is None:
            return None
        kin = truth_kinetics(recording)
        if temperature is not None:
            kin = get_kinetics(recording.truth.kinetics, temperature, recording.truth.q10)
        return TruthSpec(kin, _label(kin) + " (the recording's /truth)",
                         {"spec": None, "kind": "recording", **_kinetics_info(kin),
                          "file": recording.path})
    if hasattr(truth, "rates") and not isinstance(truth, (str, Path)):
        return TruthSpec(truth, _label(truth), {"spec": None, "kind": "object",
                                                **_kinetics_info(truth)})
    if not isinstance(truth, (str, Path)):
        raise ConfigError(f"truth must be a kinetics name, a recording file or a kinetics "
                          f"object, got {type(truth).__name__}")
    text = str(truth)
    path = Path(text)
    if path.is_file():
        rec = read_recording(path)
        if rec.truth is None:
            raise ConfigError(f"truth {text!r}: the file has no /truth group (real data?), so "
                              "it names no reference kinetics; give a kinetics name instead, "
                              "e.g. hh_modern")
        kin = truth_kinetics(rec)
        if temperature is not None:
            kin = get_kinetics(rec.truth.kinetics, temperature, rec.truth.q10)
        return TruthSpec(kin, _label(kin) + f" (/truth of {path.name})",
                         {"spec": text, "kind": "file", **_kinetics_info(kin),
                          "file": str(path)})
    name, at, temp_text = text.partition("@")
    if at:
        try:
            t_at = float(temp_text)
        except ValueError:
            t_at = float("nan")
        if not math.isfinite(t_at):
            raise ConfigError(f"truth {text!r}: expected NAME@TEMPERATURE with a temperature in "
                              f"degC, e.g. hh_modern@6.3")
    else:
        t_at = None
    if temperature is None:
        temperature = t_at
    if temperature is None:
        temperature = (recording.biophysics.temperature if recording is not None else 6.3)
    try:
        kin = get_kinetics(name, temperature)
    except ConfigError as e:
        looks_like_file = text.endswith((".h5", ".hdf5")) or "/" in text
        what = "no such file" if looks_like_file else str(e)
        raise ConfigError(f"truth {text!r}: {what}; give a built-in kinetics name "
                          f"(hh_modern, hh1952, neuron_hh, hh; optionally NAME@degC) or a "
                          f"recording file with /truth") from None
    return TruthSpec(kin, _label(kin), {"spec": text, "kind": "name", **_kinetics_info(kin)})


# --- kinetics metrics ------------------------------------------------------------------


def kinetics_metrics(learned, truth, vmin: float, vmax: float, targets: dict | None = None
                     ) -> dict:
    """Kinetics errors of ``learned`` against ``truth`` over ``[vmin, vmax]`` (mV).

    The definitions are those of :func:`hybridhh.metrics.kinetics_errors` (relative errors as
    fractions, x_inf error absolute).

    Returns
    -------
    dict
        ``range`` (mV), ``gates`` ({gate: {tau_median, tau_p90, xinf_max, alpha_median,
        beta_median}}), ``worst`` (worst gate per target metric,
        :func:`~hybridhh.metrics.summarize_errors`), ``targets``, ``pass`` (per target
        metric) and ``meets_targets``.
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


# --- spikes ---------------------------------------------------------------------------


def spike_times(V, time, threshold: float, refractory: float = REFRACTORY) -> list[np.ndarray]:
    """Spike times (ms): upward crossings of ``threshold`` (mV), linearly interpolated.

    A crossing within ``refractory`` ms of the previous counted one belongs to the same
    spike (noise around the threshold) and is dropped.

    Parameters
    ----------
    V
        Membrane potential, mV, ``[T]`` or ``[B, T]`` (numpy or torch).
    time
        Sample times, ms, ``[T]``.

    Returns
    -------
    list of ndarray
        One array of spike times per trace (one list entry for a 1-D ``V``).
    """
    V = np.atleast_2d(_numpy(V))
    time = np.asarray(time, dtype=np.float64)
    out = []
    for v in V:
        k = np.nonzero((v[:-1] < threshold) & (v[1:] >= threshold))[0]
        frac = (threshold - v[k]) / (v[k + 1] - v[k])
        t = time[k] + frac * (time[k + 1] - time[k])
        keep, last = [], -math.inf
        for s in t:
            if s - last >= refractory:
                keep.append(s)
                last = s
        out.append(np.asarray(keep, dtype=np.float64))
    return out


def match_spikes(reference, model, max_shift: float = MAX_SPIKE_SHIFT) -> dict:
    """Match spike times one to one and measure their differences.

    The pairing keeps the order of spikes (no crossed pairs), pairs only spikes at most
    ``max_shift`` ms apart, matches as many spikes as possible and, among such pairings,
    minimises the summed absolute time difference (dynamic programming, like a sequence
    alignment).

    Parameters
    ----------
    reference, model
        Spike times, ms (1-D).

    Returns
    -------
    dict
        ``n_reference``, ``n_model``, ``matched``, ``missed`` (reference spikes without a
        partner), ``extra`` (model spikes without one), ``mean_abs`` and ``max_abs`` (ms, of
        ``model - reference`` over matched pairs; ``None`` when none matched) and ``diffs``
        (ms, per matched pair in reference order).
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    mod = np.sort(np.asarray(model, dtype=np.float64).ravel())
    n, m = len(ref), len(mod)
    # best[i][j] = (matches, -summed |dt|) over ref[:i] and mod[:j]
    best = [[(0, 0.0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, prev = best[i], best[i - 1]
        for j in range(1, m + 1):
            cand = max(prev[j], row[j - 1])
            d = abs(mod[j - 1] - ref[i - 1])
            if d <= max_shift:
                k, c = prev[j - 1]
                cand = max(cand, (k + 1, c - d))
            row[j] = cand
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
    pairs.reverse()
    diffs = np.array([mod[j] - ref[i] for i, j in pairs], dtype=np.float64)
    absd = np.abs(diffs)
    return {
        "n_reference": int(len(ref)),
        "n_model": int(len(mod)),
        "matched": int(len(pairs)),
        "missed": int(len(ref) - len(pairs)),
        "extra": int(len(mod) - len(pairs)),
        "mean_abs": float(absd.mean()) if len(absd) else None,
        "max_abs": float(absd.max()) if len(absd) else None,
        "diffs": [float(x) for x in diffs],
    }


def spike_metrics(V_reference, V_model, time, threshold: float, names=None,
                  max_shift: float = MAX_SPIKE_SHIFT) -> dict:
    """Spike-time errors of ``V_model`` against ``V_reference`` (``[B, T]``, mV).

    Returns
    -------
    dict
        Totals over the traces (``n_reference``, ``n_model``, ``matched``, ``missed``,
        ``extra``, ``mean_abs`` and ``max_abs`` in ms over all matched pairs,
        ``count_mismatch``: traces whose spike counts differ) and ``per_trace`` (one
        :func:`match_spikes` dict per trace, with ``name``, without ``diffs``).
    """
    ref = spike_times(V_reference, time, threshold)
    mod = spike_times(V_model, time, threshold)
    names = list(names) if names is not None else [f"trace_{k}" for k in range(len(ref))]
    per, diffs = [], []
    for name, r, m in zip(names, ref, mod, strict=True):
        s = match_spikes(r, m, max_shift)
        diffs += s.pop("diffs")
        per.append({"name": name, **s})
    absd = np.abs(np.asarray(diffs, dtype=np.float64))
    return {
        "n_reference": sum(p["n_reference"] for p in per),
        "n_model": sum(p["n_model"] for p in per),
        "matched": sum(p["matched"] for p in per),
        "missed": sum(p["missed"] for p in per),
        "extra": sum(p["extra"] for p in per),
        "mean_abs": float(absd.mean()) if len(absd) else None,
        "max_abs": float(absd.max()) if len(absd) else None,
        "count_mismatch": sum(p["n_reference"] != p["n_model"] for p in per),
        "per_trace": per,
    }


# --- free-running simulations ------------------------------------------------------------


def _numpy(x):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


#: What a diverging free run raises: non-finite values, or (tabulated kinetics looked up
#: at a NaN voltage) an index error.
_DIVERGED = (SimulationError, IndexError, RuntimeError)


@dataclass
class FreeRun:
    """Recorded and simulated traces of one set (training or held-out).

    Attributes
    ----------
    names : tuple of str
    time : ndarray (T,)
        ms, from 0.
    current : ndarray (B, T)
        Injected current density, µA/cm².
    V_recorded : ndarray (B, T)
        mV.
    V_model : ndarray (B, T)
        Free-running V of the fitted model, mV.
    gates_model : ndarray (B, T, 3)
        m, h, n of the fitted model.
    gates_true : ndarray (B, T, 3) or None
        The recording's true gates (synthetic data only).
    V_truth_model : ndarray (B, T) or None
        The reference kinetics re-simulated with the same integrator (the error floor).
    """

    names: tuple[str, ...]
    time: np.ndarray
    current: np.ndarray
    V_recorded: np.ndarray
    V_model: np.ndarray
    gates_model: np.ndarray
    gates_true: np.ndarray | None = None
    V_truth_model: np.ndarray | None = None


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# --- the comparison ------------------------------------------------------------------


@dataclass
class Comparison:
    """What :func:`compare` measured.

    Attributes
    ----------
    run_dir : Path
    metrics : dict
        Everything written to ``compare.json`` (see :func:`compare`).
    fit : FitResult
        The loaded fit (:func:`hybridhh.fitting.load_fit`).
    recording : Recording
        The fitted recording.
    truth : TruthSpec or None
    train, holdout : FreeRun or None
        Recorded vs free-running traces (``holdout`` None when no trace was held out).
    out_dir : Path or None
        Where files were written (None with ``write=False``).
    figures : dict
        Figure key -> file (``rates``, ``kinetics_error``, ``free_run_train``,
        ``free_run_holdout``, ``training``; those that apply).
    """

    run_dir: Path
    metrics: dict
    fit: object
    recording: object
    truth: TruthSpec | None
    train: FreeRun | None
    holdout: FreeRun | None
    out_dir: Path | None = None
    figures: dict = field(default_factory=dict)

    @property
    def kinetics(self) -> dict | None:
        """The kinetics metrics (:func:`kinetics_metrics`), or None without a truth."""
        return self.metrics.get("kinetics")

    def summary_lines(self) -> list[str]:
        """A short plain-text summary (what ``hybridhh compare`` prints)."""
        return summary_lines(self.metrics)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_run(run_dir, warnings: list | None = None):
    """:func:`hybridhh.fitting.load_fit`, tolerant of a config.json from another fitter version.

    When the saved ``FitConfig`` no longer parses (fields renamed since the fit), the model,
    result summary and metrics are still loaded; ``config`` is then None and a note is
    appended to ``warnings``.
    """
    from .fitting import FitResult, load_fit, load_model
    from .fitting import rundir as rd

    try:
        return load_fit(run_dir)
    except ConfigError as e:
        run_dir = rd.check_run_dir(run_dir, need=(rd.CONFIG, rd.MODEL, rd.RESULT))
        res = rd.load_json(run_dir / rd.RESULT)
        if warnings is not None:
            warnings.append(f"{run_dir / rd.CONFIG}: the fit configuration does not parse with "
                            f"this version of hybridhh ({e}); it is shown as saved")
        try:
            return FitResult(model=load_model(run_dir), config=None,
                             voltage_range=tuple(res["voltage_range"]),
                             train_traces=tuple(res["train_traces"]),
                             holdout_traces=tuple(res["holdout_traces"]),
                             heldout_rmse=res.get("heldout_rmse", {}),
                             history=rd.read_metrics(run_dir),
                             elapsed=res.get("elapsed", 0.0), run_dir=run_dir,
                             constrained=FitResult.constrained_from_summary(res))
        except KeyError as k:
            raise RunDirError(f"{run_dir / rd.RESULT}: missing {k}") from None


def _load_recording(run_dir: Path, cfg: dict, recording, truth):
    """The recording the run was fitted to: ``recording`` (object or path), else the file
    named in config.json, else a truth file holding the same traces."""
    from .recording import Recording, read_recording

    if isinstance(recording, Recording):
        return recording
    if recording is not None:
        return read_recording(recording)
    source = cfg.get("data", {}).get("source") or ""
    candidates = [Path(source)] if source else []
    if source and not Path(source).is_absolute():
        candidates.append(run_dir.parent / Path(source).name)
    if isinstance(truth, (str, Path)) and Path(truth).is_file():
        candidates.append(Path(truth))
    traces = list(cfg.get("data", {}).get("traces", []))
    for path in candidates:
        if path.is_file():
            try:
                rec = read_recording(path)
            except RecordingError:
                continue
            if not traces or set(traces) <= set(rec.trace_names):
                return rec
    raise RunDirError(f"{run_dir}: the fitted recording {source or '(not named in config.json)'}"
                      " was not found; pass it explicitly (--data FILE.h5 / recording=...)")


def compare(run_dir, truth=None, out=None, *, recording=None, temperature: float | None = None,
            method: str = "rk4", max_shift: float = MAX_SPIKE_SHIFT, floor: bool = True,
            write: bool = True, figures: bool = True) -> Comparison:
    """Compare the fit in ``run_dir`` with a reference kinetics set and with the recording.

    Parameters
    ----------
    run_dir
        A finished run directory of ``hybridhh fit`` / :func:`hybridhh.fitting.fit`.
    truth
        Reference kinetics: a built-in name (``"hh_modern"``, ``"hh1952"``, optionally
        ``"name@T"`` with T in °C), a recording file with ``/truth``, a kinetics object, or
        None (the fitted recording's ``/truth`` when present, else none). See
        :func:`resolve_truth`.
    out
        Output directory (default ``RUN_DIR/compare``).
    recording
        The fitted recording (object or file) when the file named in ``config.json`` has
        moved.
    temperature
        °C of a named truth (default: the recording's temperature).
    method
        Integrator of the free-running simulations (default ``"rk4"``, fourth order at the
        recording's step; falls back to ``"exp_euler"`` if RK4 goes non-finite, and says so
        in ``metrics["free_run"]["method"]`` and ``warnings``).
    max_shift
        Largest spike-time difference that still pairs two spikes, ms.
    floor
        Also re-simulate the reference kinetics with the same integrator: the V error the
        true rates themselves give (integrator and noise floor).
    write
        Write ``compare.json`` (and figures) into the output directory.
    figures
        Make the figures (only with ``write``).

    Returns
    -------
    Comparison
        ``metrics`` holds: ``run_dir``, ``recording`` (path, source and its
        :meth:`~hybridhh.recording.Recording.summary` without per-trace rows), ``truth``
        (:class:`TruthSpec` info or None), ``voltage_range`` (mV, 1st–99th percentile of the
        recorded V), ``constrained`` (per rate, the range in mV over which the data
        constrain it, or None for older runs), ``kinetics`` (:func:`kinetics_metrics` or
        None; with ``rates_constrained``, each rate's errors over its own range,
        :func:`~hybridhh.metrics.rate_errors_in_ranges`, when the run has them), ``free_run``
        (``method``, ``dt`` ms, ``spike_threshold`` mV, ``max_shift`` ms, and for ``train``
        and ``holdout``: ``traces``, ``rmse`` (mV), ``rmse_per_trace``, ``rmse_floor`` (mV,
        the reference re-simulated, or None), ``rmse_clean`` (mV, against the noise-free V
        when the file has it), ``spikes`` (:func:`spike_metrics`)), ``fit`` (the run's
        result summary), ``figures`` (key -> file name), ``warnings``, ``request`` and
        ``elapsed`` (s).

    Raises
    ------
    RunDirError
        For a missing or unfinished run directory, or a recording that cannot be found.
    ConfigError
        For a bad ``truth``.
    """
    from .fitting import rundir as rd
    from .fitting.data import TraceData
    from .fitting.free_run import free_run_trajectory

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    warnings: list[str] = []
    res = load_run(run_dir, warnings)
    cfg = rd.load_json(run_dir / rd.CONFIG)
    rec = _load_recording(run_dir, cfg, recording, truth)
    fitted = list(cfg.get("data", {}).get("traces", [])) or list(rec.trace_names)
    missing = [n for n in fitted if n not in rec.trace_names]
    if missing:
        raise RunDirError(f"{run_dir}: recording {rec.path or '(in memory)'} lacks the fitted "
                          f"trace(s) {missing}")
    rec = rec.select(fitted)
    spec = resolve_truth(truth, temperature, rec)
    if not rec.temperature_known:
        warnings.append("the recording states no temperature; 6.3 °C was assumed")

    data = TraceData.from_recording(rec)
    lo, hi = res.voltage_range
    V_rest = data.resting_estimate()
    threshold = V_rest + SPIKE_ABOVE_REST

    kin_metrics = None
    if spec is not None:
        kin_metrics = kinetics_metrics(res.model, spec.kinetics, lo, hi)
        if res.constrained:
            kin_metrics["rates_constrained"] = rate_errors_in_ranges(
                res.model, spec.kinetics, res.constrained)

    # free-running simulations: all traces in one batch
    used = method
    try:
        traj = free_run_trajectory(res.model, data, method)
    except _DIVERGED as e:
        if method == "exp_euler":
            raise SimulationError(f"the fitted model diverges in a free run ({e})") from e
        used = "exp_euler"
        warnings.append(f"{method} diverged with the fitted model (too stiff at this step); "
                        "the free runs use exp_euler (first order, unconditionally stable "
                        "for the gates)")
        traj = free_run_trajectory(res.model, data, used)
    V_model, g_model = _numpy(traj.V), _numpy(traj.gates)
    V_floor = None
    if spec is not None and floor:
        try:
            V_floor = _numpy(free_run_trajectory(spec.kinetics, data, used).V)
        except _DIVERGED:
            warnings.append(f"the reference kinetics ({spec.label}) diverge when simulated "
                            "with this cell's biophysics: is it the right truth (voltage "
                            "convention hh_modern vs hh1952, temperature)?")
    if V_floor is not None:
        # a truth in the other voltage convention or at the wrong temperature compares
        # nonsense; then it does not reproduce the recording either: say so
        floor_rmse = _rmse(V_floor, rec.voltage)
        if floor_rmse > 3.0 + 1.5 * (rec.noise_sigma or 0.0):
            warnings.append(
                f"the reference kinetics ({spec.label}) with this cell's biophysics miss the "
                f"recorded V by {floor_rmse:.1f} mV RMSE: is it the right truth (voltage "
                "convention hh_modern vs hh1952, temperature)?")
    t_axis = np.asarray(rec.time - rec.time[0], dtype=np.float64)
    gates_true = rec.gates
    clean = rec.truth.voltage if rec.truth is not None else None

    def subset(names) -> FreeRun | None:
        idx = [rec.trace_names.index(n) for n in names]
        if not idx:
            return None
        return FreeRun(tuple(names), t_axis, rec.current[idx], rec.voltage[idx], V_model[idx],
                       g_model[idx], None if gates_true is None else gates_true[idx],
                       None if V_floor is None else V_floor[idx])

    def split_metrics(fr: FreeRun | None, idx_clean) -> dict | None:
        if fr is None:
            return None
        return {
            "traces": list(fr.names),
            "rmse": _rmse(fr.V_model, fr.V_recorded),
            "rmse_per_trace": {n: _rmse(fr.V_model[k], fr.V_recorded[k])
                               for k, n in enumerate(fr.names)},
            "rmse_floor": None if fr.V_truth_model is None
            else _rmse(fr.V_truth_model, fr.V_recorded),
            "rmse_clean": None if clean is None else _rmse(fr.V_model, clean[idx_clean]),
            "spikes": spike_metrics(fr.V_recorded, fr.V_model, fr.time, threshold, fr.names,
                                    max_shift),
        }

    train_names = [n for n in res.train_traces if n in rec.trace_names]
    hold_names = [n for n in res.holdout_traces if n in rec.trace_names]
    train, hold = subset(train_names), subset(hold_names)
    summary = rec.summary()
    summary.pop("traces", None)
    metrics = {
        "run_dir": str(run_dir),
        "recording": summary,
        "truth": None if spec is None else {**spec.info, "label": spec.label},
        "voltage_range": [float(lo), float(hi)],
        "constrained": (None if not res.constrained
                        else {k: [float(a), float(b)] for k, (a, b) in res.constrained.items()}),
        "kinetics": kin_metrics,
        "free_run": {
            "method": used,
            "dt": rec.dt,
            "resting_estimate": V_rest,
            "spike_threshold": threshold,
            "max_shift": max_shift,
            "train": split_metrics(train, [rec.trace_names.index(n) for n in train_names]),
            "holdout": split_metrics(hold, [rec.trace_names.index(n) for n in hold_names]),
        },
        "fit": {"elapsed": res.elapsed, "heldout_rmse": res.heldout_rmse,
                "train_traces": list(res.train_traces),
                "holdout_traces": list(res.holdout_traces)},
        "figures": {},
        "warnings": warnings,
        "request": {"truth": None if spec is None else spec.info.get("spec"),
                    "temperature": temperature, "method": method, "max_shift": max_shift,
                    "recording": rec.path, "model_sha256": _file_digest(run_dir / rd.MODEL)},
    }
    comp = Comparison(run_dir, metrics, res, rec, spec, train, hold)
    if write:
        out_dir = Path(out) if out is not None else run_dir / COMPARE_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        comp.out_dir = out_dir
        if figures:
            comp.figures = _write_figures(comp, out_dir)
            metrics["figures"] = {k: p.name for k, p in comp.figures.items()}
        metrics["elapsed"] = time.perf_counter() - t_start
        _write_json(out_dir / COMPARE_JSON, metrics)
    else:
        metrics["elapsed"] = time.perf_counter() - t_start
    return comp


def _write_json(path: Path, obj) -> None:
    from .fitting.rundir import save_json

    save_json(path, _jsonable(obj))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_comparison(out_dir) -> dict:
    """The metrics of an earlier :func:`compare` (its ``compare.json``)."""
    path = Path(out_dir) / COMPARE_JSON
    if not path.is_file():
        raise RunDirError(f"{path}: not found (run 'hybridhh compare' first)")
    from .fitting.rundir import load_json

    return load_json(path)


def wide_voltage_range(voltage_range, recorded=None, below: float = 40.0, above: float = 30.0
                       ) -> tuple[float, float]:
    """The voltage span (mV) of the rate figures: the constrained range widened by
    ``below``/``above`` mV (at least the recorded min/max), rounded out to 5 mV."""
    lo, hi = voltage_range
    lo, hi = lo - below, hi + above
    if recorded is not None:
        v = _numpy(recorded)
        lo, hi = min(lo, float(v.min()) - 5.0), max(hi, float(v.max()) + 5.0)
    return 5.0 * math.floor(lo / 5.0), 5.0 * math.ceil(hi / 5.0)


def _show_traces(fr: FreeRun, n: int = 4) -> list[int]:
    """Up to ``n`` traces to draw: evenly spaced ones, always with the worst V fit."""
    B = len(fr.names)
    if B <= n:
        return list(range(B))
    rmse = np.sqrt(np.mean((fr.V_model - fr.V_recorded) ** 2, axis=1))
    worst = int(np.argmax(rmse))
    even = [int(round(k)) for k in np.linspace(0, B - 1, n - 1)]
    return sorted(set(even) | {worst}) if worst not in even else sorted(
        set(int(round(k)) for k in np.linspace(0, B - 1, n)))


def _write_figures(comp: Comparison, out_dir: Path) -> dict:
    from . import plotting as P

    written = {}
    lo, hi = comp.metrics["voltage_range"]
    vmin, vmax = wide_voltage_range((lo, hi), comp.recording.voltage)
    learned_label = "learned (hybrid MLP)"
    kin = [comp.fit.model]
    labels = [learned_label]
    if comp.truth is not None:
        kin = [comp.truth.kinetics, comp.fit.model]
        info = comp.truth.info
        t = info.get("temperature")
        labels = [f"true ({info['kinetics']}" + (f", {t:g} °C)" if t is not None else ")"),
                  learned_label]
    fig = P.plot_rates(kin, labels, vmin=vmin, vmax=vmax, voltages=comp.recording.voltage)
    if comp.fit.constrained:  # fig.axes: the 3x3 grid row by row (rate panels at 0, 3, 6)
        P.mark_rate_ranges([fig.axes[0], fig.axes[3], fig.axes[6]], comp.fit.constrained)
    P.mark_voltage_range(fig.axes, lo, hi, label="1st–99th percentile of V",
                         legend_loc="figure")
    written["rates"] = P.save_figure(fig, out_dir / FIGURES["rates"][0])
    if comp.truth is not None:
        fig = P.plot_kinetics_error(comp.fit.model, comp.truth.kinetics, vmin, vmax,
                                    constrained=(lo, hi))
        written["kinetics_error"] = P.save_figure(fig, out_dir / FIGURES["kinetics_error"][0])
    thr = comp.metrics["free_run"]["spike_threshold"]
    method = comp.metrics["free_run"]["method"]
    for key, fr, what in (("free_run_train", comp.train, "training"),
                          ("free_run_holdout", comp.holdout, "held-out")):
        if fr is None:
            continue
        fig = P.plot_free_run(fr.time, fr.V_recorded, fr.V_model, fr.gates_model,
                              fr.gates_true, names=fr.names, traces=_show_traces(fr),
                              threshold=thr,
                              title=f"free-running model ({method}) on the {what} traces")
        written[key] = P.save_figure(fig, out_dir / FIGURES[key][0])
    if comp.fit.history:
        fig = P.plot_training(comp.fit.history)
        written["training"] = P.save_figure(fig, out_dir / FIGURES["training"][0])
    return written


# --- text summary -----------------------------------------------------------------------


def _pct(x) -> str:
    return "-" if x is None else f"{100.0 * x:.1f} %"


def _ms(x) -> str:
    return "-" if x is None else f"{x:.3g} ms"


def summary_lines(metrics: dict) -> list[str]:
    """Plain-text lines summarising a comparison's metrics."""
    lines = []
    k = metrics.get("kinetics")
    lo, hi = metrics["voltage_range"]
    if k is None:
        lines.append("kinetics: no truth to compare with (give --truth NAME|FILE.h5)")
    else:
        t = metrics["truth"]
        lines.append(f"kinetics vs {t['label']}, over {lo:.1f} .. {hi:.1f} mV "
                     f"(1st-99th percentile of the recorded V):")
        lines.append("  gate  tau median  tau p90  x_inf max  alpha median  beta median")
        for g, e in k["gates"].items():
            lines.append(f"  {g:<4}  {_pct(e['tau_median']):>10}  {_pct(e['tau_p90']):>7}  "
                         f"{e['xinf_max']:9.3f}  {_pct(e['alpha_median']):>12}  "
                         f"{_pct(e['beta_median']):>11}")
        w, tg = k["worst"], k["targets"]
        parts = []
        for key in tg:
            val = f"{w[key]:.3f}" if key == "xinf_max" else _pct(w[key])
            lim = f"{tg[key]:.3f}" if key == "xinf_max" else _pct(tg[key])
            parts.append(f"{key} {val} (< {lim}: {'pass' if k['pass'][key] else 'FAIL'})")
        lines.append("  worst gate: " + "; ".join(parts))
        lines.append(f"  targets {'met' if k['meets_targets'] else 'NOT met'}")
    fr = metrics["free_run"]
    lines.append(f"free-running V ({fr['method']}, dt {fr['dt']:g} ms; spikes: upward crossings "
                 f"of {fr['spike_threshold']:.1f} mV, matched within {fr['max_shift']:g} ms):")
    for split in ("train", "holdout"):
        s = fr.get(split)
        if s is None:
            lines.append(f"  {split:<8} no traces")
            continue
        sp = s["spikes"]
        floor = (f" (true rates re-simulated: {s['rmse_floor']:.3f} mV)"
                 if s.get("rmse_floor") is not None else "")
        lines.append(f"  {split:<8} {len(s['traces'])} trace(s): V RMSE {s['rmse']:.3f} mV{floor}; "
                     f"spikes {sp['n_model']} model / {sp['n_reference']} recorded, "
                     f"{sp['matched']} matched, mean |dt| {_ms(sp['mean_abs'])}, max |dt| "
                     f"{_ms(sp['max_abs'])}; {sp['count_mismatch']} trace(s) with a "
                     "different spike count")
    for w in metrics.get("warnings", []):
        lines.append(f"warning: {w}")
    return lines

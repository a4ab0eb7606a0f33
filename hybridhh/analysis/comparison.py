"""Compare a fitted model with the truth: rate-function errors, free-running V, spike times.

``compare(run_dir, truth) -> Comparison`` loads a finished fit (:func:`hybridhh.fitting.load_fit`)
and the recording it was fitted to, and measures

* **kinetics errors** of the learned rate functions against a reference set
  (:mod:`hybridhh.analysis.truth`), with the project's one metric definition
  (:mod:`hybridhh.analysis.metrics`): per gate the median and 90th percentile relative
  error of tau, the maximum absolute error of x_inf and the median relative errors of
  alpha and beta, on a uniform grid over the 1st–99th percentile of the recorded V (where
  the data constrain the rates); the worst gate of each metric and pass/fail against
  :data:`hybridhh.analysis.metrics.TARGETS`;
* **free-running voltage error**: the hybrid model driven by the recorded stimuli, started
  from the first recorded V and its own steady-state gates there, exactly as
  :func:`hybridhh.fitting.free_run` does (RK4 at the recording's step by default), against the
  recorded V: RMSE (mV), separately on the training and the held-out traces;
* **spike times** (:mod:`hybridhh.analysis.spikes`): upward crossings of
  ``rest + 50 mV`` (a threshold placed relative to the cell, so the 1952 convention works
  as well as the modern one), matched one to one between recording and model within
  ``max_shift`` ms: mean and maximum absolute time difference (ms), missed and extra
  spikes, traces whose spike count differs.

Without a truth, or for another recording of the cell (``data=``), it also measures the
fitted cell's prediction against the measured traces feature by feature
(:mod:`hybridhh.analysis.data_comparison`: spike count, first-spike latency, coincidence
factor, subthreshold V RMSE, eFEL's spike and subthreshold features).

With ``write=True`` it writes ``compare.json`` and PNG figures
(:func:`hybridhh.plotting.write_comparison_figures`) into ``RUN_DIR/compare/`` (or
``out``). The truth is a *name* of a built-in kinetics set (``"hh_modern"``,
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

from ..errors import RecordingError, RunDirError, SimulationError
from .arrays import as_numpy
from .metrics import band_coverage, kinetics_metrics, rate_errors_in_ranges
from .spikes import MAX_SPIKE_SHIFT, spike_metrics, spike_threshold
from .truth import TruthSpec, resolve_truth

__all__ = [
    "COMPARE_DIR",
    "COMPARE_JSON",
    "DATA_FIGURE",
    "Comparison",
    "FreeRun",
    "compare",
    "file_digest",
    "load_comparison",
    "load_run",
    "summary_lines",
    "data_summary_lines",
    "wide_voltage_range",
]

#: Sub-directory of a run directory that :func:`compare` writes to by default.
COMPARE_DIR = "compare"
#: Name of the metrics file.
COMPARE_JSON = "compare.json"
#: Figure key -> (file name, title) of the prediction of another recording (``data=``).
DATA_FIGURE = {"data": ("data_prediction.png", "Predicted vs measured V of another recording")}

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
        ``free_run_holdout``, ``training``, ``data``; those that apply).
    data : DataComparison or None
        The prediction of measured traces without a truth
        (:func:`~hybridhh.analysis.data_comparison.data_comparison`), or None.
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
    data: object = None

    @property
    def kinetics(self) -> dict | None:
        """The kinetics metrics (:func:`kinetics_metrics`), or None without a truth."""
        return self.metrics.get("kinetics")

    def summary_lines(self) -> list[str]:
        """A short plain-text summary (what ``hybridhh compare`` prints)."""
        return summary_lines(self.metrics)


def file_digest(path) -> str:
    """SHA-256 (hex) of the file at ``path``: which model a ``compare.json`` was made for."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_run(run_dir, warnings: list | None = None):
    """:func:`hybridhh.fitting.load_fit` as the comparison needs it: an unfinished run shows
    its best checkpoint, and a config.json from another fitter version its model; both
    with a note appended to ``warnings``."""
    from ..fitting import load_fit

    return load_fit(run_dir, allow_unfinished=True,
                    warnings=[] if warnings is None else warnings)


def _load_recording(run_dir: Path, cfg: dict, recording, truth):
    """The recording the run was fitted to: ``recording`` (object or path), else the file
    named in config.json, else a truth file holding the same traces."""
    from ..recording import Recording, read_recording

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
            write: bool = True, figures: bool = True, data=None) -> Comparison:
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
    data
        Another recording of the same cell (object or file; another protocol, other
        sweeps, no truth needed): the fitted cell predicts it (:func:`hybridhh.predict`)
        and ``metrics["data"]`` holds its features predicted vs measured. Without it, a
        comparison without a truth measures the same on the fitted traces.

    Returns
    -------
    Comparison
        ``metrics`` holds: ``run_dir``, ``recording`` (path, source and its
        :meth:`~hybridhh.recording.Recording.summary` without per-trace rows), ``truth``
        (:class:`TruthSpec` info or None), ``voltage_range`` (mV, 1st–99th percentile of the
        recorded V), ``constrained`` (per rate, the range in mV over which the data
        constrain it, or None for older runs), ``kinetics`` (:func:`kinetics_metrics` or
        None; with ``rates_constrained``, each rate's errors over its own range,
        :func:`~hybridhh.analysis.metrics.rate_errors_in_ranges`, when the run has them,
        and ``band_coverage``, how often the truth lies inside the fit's error bands over
        the voltage range, :func:`~hybridhh.analysis.metrics.band_coverage`, when the run
        has bands),
        ``free_run`` (``method``, ``dt`` ms, ``resting_estimate`` mV, ``spike_threshold``
        mV, ``max_shift`` ms, and for ``train``
        and ``holdout``: ``traces``, ``rmse`` (mV), ``rmse_per_trace``, ``rmse_floor`` (mV,
        the reference re-simulated, or None), ``rmse_clean`` (mV, against the noise-free V
        when the file has it), ``spikes`` (:func:`spike_metrics`)), ``fit`` (the run's
        result summary), ``data`` (the prediction of measured traces,
        :func:`~hybridhh.analysis.data_comparison.data_comparison`, or None with a truth
        and no ``data``), ``figures`` (key -> file name), ``warnings``, ``request`` and
        ``elapsed`` (s).

    Raises
    ------
    RunDirError
        For a missing or unfinished run directory, or a recording that cannot be found.
    ConfigError
        For a bad ``truth``.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    warnings: list[str] = []
    res, rec, spec = _inputs(run_dir, truth, recording, temperature, warnings)
    runs = _free_runs(run_dir, res, rec, spec, method, floor, warnings)
    dc = _data(run_dir, res, rec, spec, data, method, runs, warnings)
    metrics = _metrics(run_dir, res, rec, spec, runs, max_shift, warnings)
    metrics["data"] = None if dc is None else dc.metrics
    metrics["request"] = _request(run_dir, rec, spec, temperature, method, max_shift)
    metrics["request"]["data"] = None if dc is None or not dc.other else dc.measured.path
    comp = Comparison(run_dir, metrics, res, rec, spec, runs.train, runs.holdout, data=dc)
    if write:
        _write(comp, Path(out) if out is not None else run_dir / COMPARE_DIR, figures, t_start)
    else:
        metrics["elapsed"] = time.perf_counter() - t_start
    return comp


# --- the steps of compare ---------------------------------------------------------------


def _inputs(run_dir: Path, truth, recording, temperature, warnings: list):
    """The fit, the fitted recording (only its fitted traces) and the resolved truth."""
    from ..fitting import rundir as rd

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
    return res, rec, spec


@dataclass
class _FreeRuns:
    """The free runs of :func:`compare`: integrator used, resting estimate and spike
    threshold (mV), and the training and held-out traces."""

    method: str
    resting: float
    threshold: float
    train: FreeRun | None
    holdout: FreeRun | None


def _free_runs(run_dir: Path, res, rec, spec: TruthSpec | None, method: str, floor: bool,
               warnings: list) -> _FreeRuns:
    """Free runs of the fitted model (and, with ``floor``, of the truth) on all traces in
    one batch, split into training and held-out traces; the cell is the run's
    (:func:`hybridhh.prediction.fitted_cell`: a current in pA scaled by its C_total)."""
    from ..prediction import cell_trace_data, fitted_cell

    data = cell_trace_data(fitted_cell(run_dir), rec)
    V_rest = data.resting_estimate()
    used, V_model, g_model = _model_run(res.model, data, method, warnings)
    V_floor = _floor_run(spec, data, used, rec, warnings) if spec is not None and floor else None

    def split(names) -> FreeRun | None:
        idx = [rec.trace_names.index(n) for n in names if n in rec.trace_names]
        if not idx:
            return None
        gates_true = rec.gates
        return FreeRun(tuple(rec.trace_names[k] for k in idx),
                       np.asarray(rec.time - rec.time[0], dtype=np.float64),
                       rec.current[idx], rec.voltage[idx], V_model[idx], g_model[idx],
                       None if gates_true is None else gates_true[idx],
                       None if V_floor is None else V_floor[idx])

    return _FreeRuns(used, V_rest, spike_threshold(V_rest), split(res.train_traces),
                     split(res.holdout_traces))


def _data(run_dir: Path, res, rec, spec: TruthSpec | None, data, method: str,
          runs: _FreeRuns, warnings: list):
    """The prediction of measured traces (:func:`data_comparison`): of ``data`` when
    given, else of the fitted traces when there is no truth; None otherwise."""
    from .data_comparison import data_comparison

    if data is not None:
        return data_comparison(run_dir, data, model=res.model, method=method,
                               warnings=warnings)
    if spec is not None:
        return None
    splits = {**{n: "train" for n in res.train_traces},
              **{n: "holdout" for n in res.holdout_traces}}
    return data_comparison(run_dir, rec, model=res.model, method=runs.method,
                           threshold=runs.threshold, splits=splits, other=False,
                           warnings=[])  # the free runs above made the same notes


def _model_run(model, data, method: str, warnings: list):
    """``(method used, V [B, T], gates [B, T, 3])`` of the fitted model: ``method``, or
    ``exp_euler`` when ``method`` diverges."""
    from ..fitting.freerun import DIVERGED, free_run_trajectory

    used = method
    try:
        traj = free_run_trajectory(model, data, method)
    except DIVERGED as e:
        if method == "exp_euler":
            raise SimulationError(f"the fitted model diverges in a free run ({e})") from e
        used = "exp_euler"
        warnings.append(f"{method} diverged with the fitted model (too stiff at this step); "
                        "the free runs use exp_euler (first order, unconditionally stable "
                        "for the gates)")
        traj = free_run_trajectory(model, data, used)
    return used, as_numpy(traj.V), as_numpy(traj.gates)


def _floor_run(spec: TruthSpec, data, method: str, rec, warnings: list):
    """V ``[B, T]`` (mV) of the reference kinetics simulated like the model (the error
    floor), or None when they diverge; warns when they miss the recording."""
    from ..fitting.freerun import DIVERGED, free_run_trajectory

    try:
        V_floor = as_numpy(free_run_trajectory(spec.kinetics, data, method).V)
    except DIVERGED:
        warnings.append(f"the reference kinetics ({spec.label}) diverge when simulated "
                        "with this cell's biophysics: is it the right truth (voltage "
                        "convention hh_modern vs hh1952, temperature)?")
        return None
    # a truth in the other voltage convention or at the wrong temperature compares
    # nonsense; then it does not reproduce the recording either: say so
    floor_rmse = _rmse(V_floor, rec.voltage)
    if floor_rmse > 3.0 + 1.5 * (rec.noise_sigma or 0.0):
        warnings.append(
            f"the reference kinetics ({spec.label}) with this cell's biophysics miss the "
            f"recorded V by {floor_rmse:.1f} mV RMSE: is it the right truth (voltage "
            "convention hh_modern vs hh1952, temperature)?")
    return V_floor


def _split_metrics(fr: FreeRun | None, rec, threshold: float, max_shift: float
                   ) -> dict | None:
    """V and spike errors of one split (``train`` or ``holdout``), None without traces."""
    if fr is None:
        return None
    clean = rec.truth.voltage if rec.truth is not None else None
    idx = [rec.trace_names.index(n) for n in fr.names]
    return {
        "traces": list(fr.names),
        "rmse": _rmse(fr.V_model, fr.V_recorded),
        "rmse_per_trace": {n: _rmse(fr.V_model[k], fr.V_recorded[k])
                           for k, n in enumerate(fr.names)},
        "rmse_floor": None if fr.V_truth_model is None
        else _rmse(fr.V_truth_model, fr.V_recorded),
        "rmse_clean": None if clean is None else _rmse(fr.V_model, clean[idx]),
        "spikes": spike_metrics(fr.V_recorded, fr.V_model, fr.time, threshold, fr.names,
                                max_shift),
    }


def _kinetics(res, spec: TruthSpec | None) -> dict | None:
    """:func:`~hybridhh.analysis.metrics.kinetics_metrics` over the fit's voltage range, with
    each rate's errors over its own constrained range when the run has them."""
    if spec is None:
        return None
    lo, hi = res.voltage_range
    out = kinetics_metrics(res.model, spec.kinetics, lo, hi)
    if res.constrained:
        out["rates_constrained"] = rate_errors_in_ranges(res.model, spec.kinetics,
                                                         res.constrained)
    if getattr(res, "bands", None):
        out["band_coverage"] = band_coverage(res.bands, spec.kinetics, lo, hi)
    return out


def _metrics(run_dir: Path, res, rec, spec: TruthSpec | None, runs: _FreeRuns,
             max_shift: float, warnings: list) -> dict:
    """What ``compare.json`` holds, but ``request`` and ``elapsed`` (see :func:`compare`)."""
    lo, hi = res.voltage_range
    summary = rec.summary()
    summary.pop("traces", None)
    return {
        "run_dir": str(run_dir),
        "recording": summary,
        "truth": None if spec is None else {**spec.info, "label": spec.label},
        "voltage_range": [float(lo), float(hi)],
        "constrained": (None if not res.constrained
                        else {k: [float(a), float(b)] for k, (a, b) in res.constrained.items()}),
        "kinetics": _kinetics(res, spec),
        "free_run": {
            "method": runs.method,
            "dt": rec.dt,
            "resting_estimate": runs.resting,
            "spike_threshold": runs.threshold,
            "max_shift": max_shift,
            "train": _split_metrics(runs.train, rec, runs.threshold, max_shift),
            "holdout": _split_metrics(runs.holdout, rec, runs.threshold, max_shift),
        },
        "fit": {"elapsed": res.elapsed, "heldout_rmse": res.heldout_rmse,
                "train_traces": list(res.train_traces),
                "holdout_traces": list(res.holdout_traces),
                "quality": getattr(res, "quality", None)},
        "figures": {},
        "warnings": warnings,
    }


def _request(run_dir: Path, rec, spec: TruthSpec | None, temperature, method: str,
             max_shift: float) -> dict:
    """What was asked for, and the model's digest: when a ``compare.json`` is reusable."""
    from ..fitting import rundir as rd

    return {"truth": None if spec is None else spec.info.get("spec"),
            "temperature": temperature, "method": method, "max_shift": max_shift,
            "recording": rec.path, "model_sha256": file_digest(rd.model_file(run_dir))}


def _write(comp: Comparison, out_dir: Path, figures: bool, t_start: float) -> None:
    """Write the figures (with ``figures``) and ``compare.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    comp.out_dir = out_dir
    if figures:
        from ..plotting.comparison import write_comparison_figures

        comp.figures = write_comparison_figures(comp, out_dir)
        if comp.data is not None and comp.data.other:
            comp.figures["data"] = _data_figure(comp, out_dir)
        comp.metrics["figures"] = {k: p.name for k, p in comp.figures.items()}
    comp.metrics["elapsed"] = time.perf_counter() - t_start
    _write_json(out_dir / COMPARE_JSON, comp.metrics)


def _data_figure(comp: Comparison, out_dir: Path) -> Path:
    """Measured (black) and predicted (red) V of the ``data`` recording, up to four traces
    (:func:`hybridhh.plotting.plot_free_run`)."""
    from ..plotting import plot_free_run, save_figure

    d = comp.data
    names = list(d.measured.trace_names)
    B = len(names)
    idx = list(range(B)) if B <= 4 else sorted({int(round(k)) for k in np.linspace(0, B - 1, 4)})
    fig = plot_free_run(d.measured.time - d.measured.time[0], d.measured.voltage,
                        d.predicted.voltage, names=names, traces=idx,
                        threshold=d.metrics["threshold"],
                        title=f"fitted cell ({d.metrics['method']}) under the stimuli of "
                              f"{Path(d.measured.path or 'the data').name}: measured black, "
                              "predicted red")
    return save_figure(fig, out_dir / DATA_FIGURE["data"][0])


# --- files ------------------------------------------------------------------------------


def _write_json(path: Path, obj) -> None:
    from ..fitting.rundir import save_json

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
    from ..fitting.rundir import load_json

    return load_json(path)


def wide_voltage_range(voltage_range, recorded=None, below: float = 40.0, above: float = 30.0
                       ) -> tuple[float, float]:
    """The voltage span (mV) of the rate figures: the constrained range widened by
    ``below``/``above`` mV (at least the recorded min/max), rounded out to 5 mV."""
    lo, hi = voltage_range
    lo, hi = lo - below, hi + above
    if recorded is not None:
        v = as_numpy(recorded)
        lo, hi = min(lo, float(v.min()) - 5.0), max(hi, float(v.max()) + 5.0)
    return 5.0 * math.floor(lo / 5.0), 5.0 * math.ceil(hi / 5.0)


# --- text summary -----------------------------------------------------------------------


def _pct(x) -> str:
    return "-" if x is None else f"{100.0 * x:.1f} %"


def _ms(x) -> str:
    return "-" if x is None else f"{x:.3g} ms"


def summary_lines(metrics: dict) -> list[str]:
    """Plain-text lines summarising a comparison's metrics."""
    lines = []
    quality = (metrics.get("fit") or {}).get("quality")
    if quality:  # the fit's own verdict (hybridhh.fitting.quality), first
        lines.append(f"quality verdict: {quality.get('verdict')}")
        lines += [f"  - {r}" for r in quality.get("reasons", [])]
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
        cov = k.get("band_coverage")
        if cov:
            level = cov.get("level") or 0.9
            lines.append(f"  {100 * level:.0f} % error bands: the truth is inside on "
                         f"{_pct(cov['min'])} of the voltages for the worst quantity "
                         f"({cov['worst']}); per gate, rates / x_inf / tau:")
            for g in ("m", "h", "n"):
                lines.append(f"    {g}: alpha {_pct(cov[f'alpha_{g}'])}, beta "
                             f"{_pct(cov[f'beta_{g}'])}, {g}_inf {_pct(cov[f'{g}_inf'])}, "
                             f"tau {_pct(cov[f'tau_{g}'])}")
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
    lines += data_summary_lines(metrics.get("data"))
    for w in metrics.get("warnings", []):
        lines.append(f"warning: {w}")
    return lines


def _g(x, fmt: str = ".3g", unit: str = "") -> str:
    return "-" if x is None else f"{x:{fmt}}" + (f" {unit}" if unit else "")


def data_summary_lines(d: dict | None) -> list[str]:
    """Plain-text lines of a comparison's ``data`` section (predicted vs measured)."""
    if not d:
        return []
    s = d["summary"]
    what = (f"{d['recording'] or 'the data'}" if d.get("other")
            else "the fitted traces (no truth)")
    before, after = d["spike_window"]
    lines = [f"predicted vs measured on {what} ({s['n_traces']} trace(s), {d['method']}; "
             f"cell from {d['cell']['source']}"
             + (f", C_total {d['cell']['C_total']:.4g} pF" if d["cell"].get("C_total") else "")
             + "):",
             f"  spike count mean |dn| {_g(s['spike_count_abs_diff'])}; coincidence factor "
             f"(D {d['delta']:g} ms) {_g(s['coincidence'])} mean, {_g(s['coincidence_min'])} "
             f"min over {s['n_spiking']} spiking trace(s); first-spike latency mean |d| "
             f"{_g(s['latency_abs_diff'], '.3g', 'ms')}",
             f"  subthreshold V RMSE {_g(s['subthreshold_rmse'], '.3f', 'mV')} mean, "
             f"{_g(s['subthreshold_rmse_max'], '.3f', 'mV')} max (spikes cut -{before:g} .. "
             f"+{after:g} ms); feature median relative error "
             + ("-" if s["feature_relative_error_median"] is None
                else f"{100 * s['feature_relative_error_median']:.1f} %")
             + ("" if d.get("efel") else " (eFEL not installed)")]
    for r in d["per_trace"]:
        m, p = r["measured"], r["predicted"]
        lines.append(f"    {r['name']}: spikes {m['spike_count']} measured / {p['spike_count']} "
                     f"predicted, latency {_g(m['latency'], '.1f')} / {_g(p['latency'], '.1f')} "
                     f"ms, coincidence {_g(r['coincidence'], '.2f')}, subthreshold RMSE "
                     f"{_g(r['subthreshold_rmse'], '.2f', 'mV')}")
    return lines

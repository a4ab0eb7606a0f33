"""The fit's quality verdict: did the fitted model explain the data?

:func:`assess` runs at the end of every fit (:func:`hybridhh.fitting.fit`) and returns the
``quality`` entry of ``result.json``::

    {"verdict": "ok" | "suspect" | "failed", "reasons": [sentences],
     "checks": {name: {"value", "limit", "fail_limit", "passed", "outcome", ...}},
     "advice": [what to try next]}

Each check compares one number with a *suspect* limit (``limit``; ``passed`` is
``value <= limit``) and, for the hard checks, a *failed* limit (``fail_limit``); its
``outcome`` is ``"ok"``, ``"suspect"`` or ``"failed"`` and the verdict is the worst outcome.
The checks (limits: the module constants below):

``objective``
    Stage 1's teacher-forcing objective of the teacher-stage model, at the Gauss–Newton
    stage's step (along the denoised path where stage 1b made one), as a ratio to its
    floor: the noise floor (white noise of SD ``noise`` on V gives increments of variance
    2 noise², over the loss's normalisation) plus a discretisation floor: the same loss
    of squid-axon kinetics at the cell's temperature (:func:`reference_kinetics`) on their
    own noise-free free run under the recorded stimuli at a quarter of the sample step
    (what kinetics exactly right for their data leave at this sampling; a yardstick, not
    the cell's own kinetics, and the fitted model's own where the reference diverges).
    A right basin sits near its floor (ratio ~1 on the suite's clean 0.025 ms cases); a
    wrong basin 30–100× above.
    At coarse sampling (0.1 ms) the floor itself is as high as a wrong basin's loss and
    the check has little power (the free run decides).
``path``
    Noisy data with stage 1b's path only: RMS of recorded V minus the path, over the
    estimated noise. A model that explains the data leaves a path within the noise.
``free_run``
    The final model's free-running V on the held-out traces (the training traces when
    there is no hold-out) against the recorded V: RMSE, mV. A diverging (non-finite)
    free run fails outright.
``spikes``
    Spike counts (the package's one definition, :mod:`hybridhh.analysis.spikes`, with
    the threshold above the resting V estimated from the data) of that free run against
    the recording: the summed per-trace count difference over the recorded spikes.
    RMSE and spikes together are the hard check: a free run that is far off *and* misses
    or adds many spikes fails; either one alone is suspect (spike timing drifts make the
    RMSE of a right fit on long spiking traces several mV).
``stages``
    Where stage 2 (the neural ODE) was kept: the teacher-stage model's free-run RMSE over
    the final one's. A teacher model far worse than the final one means stage 2 repaired
    the free run from a wrong stage-1 basin (suspect).
``bands``
    When error bands were computed (:mod:`hybridhh.fitting.bands`): the worst gate's
    median relative tau band width and median x_inf band width over the visited voltages.
    Very wide bands: the data do not pin the rates (suspect).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis.spikes import spike_threshold, spike_times
from ..constants import GATES
from ..kinetics import HHKinetics
from ..protocols import Stimulus
from ..simulation import simulate
from .data import TraceData
from .freerun import DIVERGED, free_runs
from .teacher import TeacherForcing

__all__ = ["VERDICTS", "OBJECTIVE_SUSPECT", "OBJECTIVE_FAILED", "PATH_SUSPECT", "PATH_FAILED",
           "RMSE_SUSPECT", "RMSE_SPREAD", "SPIKES_SUSPECT", "SPIKES_FAILED", "MIN_SPIKES",
           "STAGES_SUSPECT", "TAU_BAND_SUSPECT", "XINF_BAND_SUSPECT", "BAND_CAP", "SELF_SUBSTEPS",
           "SELF_BUDGET", "assess", "objective_floor", "reference_kinetics", "spike_counts",
           "verdict_of", "headline", "warning_text", "ADVICE"]

#: the verdicts, best first
VERDICTS = ("ok", "suspect", "failed")
#: objective over its floor above which the fit is suspect / failed
OBJECTIVE_SUSPECT = 5.0
OBJECTIVE_FAILED = 30.0
#: RMS of (recorded V - stage 1b's path) over the noise estimate: suspect / failed above
PATH_SUSPECT = 1.5
PATH_FAILED = 3.0
#: free-run RMSE limit, mV: the larger of this and RMSE_SPREAD × the recorded V's SD
RMSE_SUSPECT = 5.0
RMSE_SPREAD = 0.25
#: spike-count mismatch (summed |model - recorded| per trace over the recorded spikes, at
#: least MIN_SPIKES): suspect / failed (with an RMSE above its limit; alone from twice it,
#: e.g. every recorded spike missed)
SPIKES_SUSPECT = 0.3
SPIKES_FAILED = 0.5
MIN_SPIKES = 3
#: teacher-stage free-run RMSE over the final model's above which the fit is suspect
STAGES_SUSPECT = 3.0
#: median relative width of a tau band (hi - lo) / value, and of an x_inf band (absolute),
#: over the visited voltages, above which the rates are not pinned (suspect)
TAU_BAND_SUSPECT = 1.0
XINF_BAND_SUSPECT = 0.3
#: the relative width an unbounded tau band counts as
BAND_CAP = 1e6
#: the discretisation floor's free run: integration substeps per sample, and the most
#: integration steps x traces it may take (fewer training traces above it)
SELF_SUBSTEPS = 4
SELF_BUDGET = 200_000

#: what to try next, per failed check
ADVICE = {
    "objective": "run more starts of stage 1 (--set teacher.starts=4) or another seed "
                 "(--seed 1): the objective is far above what the data allow, a wrong basin",
    "path": "check the noise estimate and the biophysics (E_Na, E_K, g's, C_m): the "
            "denoised path departs from the recording by more than the noise",
    "free_run": "record more traces (hyperpolarising steps and steps at several amplitudes "
                "pin h and n), and check the biophysics and the sign of the current",
    "spikes": "try more starts (--set teacher.starts=4) and finer sampling (<= 0.05 ms): "
              "the free run does not fire like the cell",
    "stages": "run more starts of stage 1 (--set teacher.starts=4): stage 2 repaired a "
              "teacher model that does not free-run",
    "bands": "record more varied stimuli (steps from rest and from hyperpolarised "
             "prepulses, at several amplitudes): the data do not pin the rates",
    "cell": "fix what you know of the cell (hybridhh import --known NAME=VALUE), widen the "
            "bounds only where they are wrong, and record richer stimuli: a cell parameter "
            "on its bound means the model could not explain the data within physiology",
}


def _cell(bands) -> dict | None:
    """The check of an estimated cell: ``suspect`` where a parameter ended on its bound
    (``bands["cell"]["at_bound"]``, :class:`hybridhh.fitting.bands.CellBand`); None
    where no cell was estimated or none is on a bound."""
    on_bound = list(((bands or {}).get("cell") or {}).get("at_bound") or ())
    if not on_bound:
        return None
    return {"value": float(len(on_bound)), "limit": 0.0, "fail_limit": None, "passed": False,
            "outcome": "suspect", "at_bound": on_bound, "unit": "cell parameters on a bound"}


def _check(value, limit, fail_limit=None, **info) -> dict:
    """One check's entry: ``outcome`` from ``value`` against the suspect and failed limits
    (a non-finite value fails)."""
    value = float(value)
    if not math.isfinite(value):
        outcome = "failed"
    elif fail_limit is not None and value > fail_limit:
        outcome = "failed"
    elif value > limit:
        outcome = "suspect"
    else:
        outcome = "ok"
    return {"value": value if math.isfinite(value) else None, "limit": float(limit),
            "fail_limit": None if fail_limit is None else float(fail_limit),
            "passed": outcome == "ok" and value <= limit, "outcome": outcome, **info}


def verdict_of(checks: dict) -> str:
    """The worst ``outcome`` among ``checks`` (``"ok"`` when there are none)."""
    worst = 0
    for c in checks.values():
        worst = max(worst, VERDICTS.index(c["outcome"]))
    return VERDICTS[worst]


def spike_counts(V, data: TraceData, rest: float) -> list[int]:
    """Spikes per trace of ``V [B, T]`` (mV) on ``data``'s time grid, threshold
    :func:`~hybridhh.analysis.spikes.spike_threshold` of ``rest`` (mV)."""
    time = np.arange(data.V.shape[1]) * data.dt
    return [len(s) for s in spike_times(V, time, spike_threshold(rest))]


def reference_kinetics(bio) -> HHKinetics:
    """The squid-axon kinetics at the cell's temperature, in the convention of its reversal
    potentials (the 1952 one where E_K is above -40 mV): the yardstick of
    :func:`objective_floor`'s discretisation floor."""
    return HHKinetics("hh1952" if bio.E_K > -40.0 else "modern", bio.temperature)


def _own_loss(kinetics, tf: TeacherForcing) -> float | None:
    """``tf``'s loss of ``kinetics`` on its own noise-free free run under ``tf``'s stimuli
    (exponential Euler at ``dt / SELF_SUBSTEPS``, from the recorded first samples), on as
    many of the traces as :data:`SELF_BUDGET` allows; None where the free run diverges."""
    data = tf.data
    B, T = data.V.shape
    keep = max(1, min(B, SELF_BUDGET // max(T * SELF_SUBSTEPS, 1)))
    sub = data.select(np.unique(np.linspace(0, B - 1, keep).round().astype(int)).tolist())
    lo, hi = float(data.V.min()) - 30.0, float(data.V.max()) + 30.0
    kin = kinetics.tabulate(lo, hi, 0.05) if hasattr(kinetics, "tabulate") else kinetics
    stim = Stimulus(np.arange(T) * data.dt, sub.I.numpy(), sub.names)
    try:
        V = simulate(stim, kin, data.bio, method="exp_euler", dt=data.dt / SELF_SUBSTEPS,
                     V0=sub.V[:, 0]).V
        own = TeacherForcing(TraceData(V, sub.I, sub.dt, sub.bio, sub.names), tf.window,
                             tf.stride, tf.grid_step, adaptive=tf.adaptive)
        loss = float(own.loss(kinetics))
    except DIVERGED:
        return None
    return loss if math.isfinite(loss) else None


@torch.no_grad()
def objective_floor(model, tf: TeacherForcing, noise: float, along_path: bool = False
                    ) -> dict:
    """The floor of the teacher-forcing loss ``tf``: noise plus discretisation.

    ``noise``: white noise of SD ``noise`` mV on V adds ``2 noise² mean(w²) / scale`` (w the
    adaptive steps' weights); 0 along a denoised path (``along_path``). The discretisation
    floor is the loss that kinetics exactly right for their own data leave at this
    sampling: that of :func:`reference_kinetics` on its own free run under the recorded
    stimuli (:func:`_own_loss`), independent of the model judged (a wrong model with
    very fast gates has a large floor of its own); ``model``'s own where the reference
    diverges. Returns ``{"noise", "discretisation", "floor", "yardstick"}``.
    """
    w2 = 1.0 if tf.weight is None else float(tf.weight[tf.h > 0].square().mean())
    noise_floor = 0.0 if along_path else 2.0 * float(noise) ** 2 * w2 / tf.scale
    yardstick = "reference"
    disc = _own_loss(reference_kinetics(tf.data.bio), tf)
    if disc is None and model is not None:
        yardstick = "model"
        disc = _own_loss(model, tf)
    return {"noise": noise_floor, "discretisation": disc,
            "floor": noise_floor + (disc or 0.0), "yardstick": yardstick}


def _objective(model, train: TraceData, noise: float, config, context) -> dict:
    """The ``objective`` check."""
    t = config.teacher
    steps = [s for s, _ in t.gauss_newton] + [s for s, _ in t.lbfgs]
    step = steps[0] if steps else t.adam_dt
    path = context.get("path") if context else None
    adaptive = t.adaptive if t.window == 1 else None
    tf = TeacherForcing(train.along(path), window=t.window, stride=train.stride(float(step)),
                        adaptive=adaptive)
    with torch.no_grad():
        loss = float(tf.loss(model))
    floor = objective_floor(model, tf, noise, along_path=path is not None)
    base = floor["floor"]
    if not base > 0:
        base = 1e-12
    ratio = loss / base if math.isfinite(loss) else math.inf
    return _check(ratio, OBJECTIVE_SUSPECT, OBJECTIVE_FAILED, objective=loss,
                  floor=floor["floor"], noise_floor=floor["noise"],
                  discretisation_floor=floor["discretisation"], yardstick=floor["yardstick"],
                  step=float(tf.stride * train.dt), along_path=path is not None,
                  unit="objective / floor")


def _path(train: TraceData, noise: float, context) -> dict | None:
    path = context.get("path") if context else None
    if path is None or not noise > 0:
        return None
    rms = float(torch.sqrt((train.V - path).square().mean()))
    return _check(rms / noise, PATH_SUSPECT, PATH_FAILED, rms=rms, noise=float(noise),
                  unit="RMS(V - path) / noise")


def _free_run(model, teacher_model, check: TraceData, rest: float, noise: float,
              heldout: dict) -> dict:
    """The ``free_run``, ``spikes`` and ``stages`` checks on the traces ``check``."""
    out = {}
    which = "held-out" if heldout.get("traces", "holdout") == "holdout" else "training"
    models = [model] + ([teacher_model] if teacher_model is not None else [])
    try:
        V = free_runs(models, check)
        runs = [V[k] for k in range(len(models))]
    except DIVERGED:
        runs = []
        for m in models:
            try:
                runs.append(free_runs([m], check)[0])
            except DIVERGED:
                runs.append(None)
    spread = float(check.V.std())
    limit = max(RMSE_SUSPECT, RMSE_SPREAD * spread, 3.0 * float(noise))

    def rmse(v):
        if v is None or not bool(torch.isfinite(v).all()):
            return math.inf
        return float(torch.sqrt((v - check.V).square().mean()))

    final = rmse(runs[0])
    recorded = spike_counts(check.V, check, rest)
    out["free_run"] = _check(final, limit, None, traces=which, v_spread=spread, unit="mV")
    if math.isfinite(final):
        model_counts = spike_counts(runs[0], check, rest)
        diff = sum(abs(a - b) for a, b in zip(model_counts, recorded, strict=True))
        mismatch = diff / max(sum(recorded), MIN_SPIKES)
        spikes = _check(mismatch, SPIKES_SUSPECT, None, recorded=recorded,
                        model=model_counts, threshold=spike_threshold(rest),
                        unit="summed |count difference| / recorded spikes")
        # hard: far off in V and in spikes together, or the spikes alone far off
        if mismatch > SPIKES_FAILED and (final > limit or mismatch >= 2 * SPIKES_FAILED):
            spikes["outcome"] = "failed"
        spikes["fail_limit"] = SPIKES_FAILED
        out["spikes"] = spikes
    if teacher_model is not None and heldout.get("chosen") == "ode" and math.isfinite(final):
        teacher = rmse(runs[1])
        stages = _check(teacher / max(final, 1e-9), STAGES_SUSPECT, None,
                        teacher=teacher if math.isfinite(teacher) else None, final=final,
                        unit="teacher-stage free-run RMSE / final")
        if teacher <= limit:  # a large ratio of two small errors is no sign of a wrong basin
            stages["outcome"], stages["passed"] = "ok", True
        elif stages["outcome"] == "failed":  # the teacher model diverges: soft, stage 2 fixed it
            stages["outcome"] = "suspect"
        out["stages"] = stages
    return out


def _bands(bands, vrange) -> dict | None:
    """The ``bands`` check, where ``bands`` has the layout of
    :func:`hybridhh.fitting.bands.fit_bands` (else None)."""
    if not isinstance(bands, dict):
        return None
    try:
        V = np.asarray(bands["V"], dtype=float)
        inside = (V >= vrange[0]) & (V <= vrange[1])
        if not inside.any():
            return None
        tau, xinf = {}, {}
        with np.errstate(all="ignore"):
            for g in GATES:
                lo, hi, val = (np.asarray(bands[k][f"tau_{g}"], dtype=float)[inside]
                               for k in ("lo", "hi", "value"))
                # an unbounded band (overflow, nan) counts as BAND_CAP wide
                width = np.nan_to_num((hi - lo) / val, nan=BAND_CAP, posinf=BAND_CAP)
                tau[g] = float(min(np.median(width), BAND_CAP))
                lo, hi = (np.asarray(bands[k][f"{g}_inf"], dtype=float)[inside]
                          for k in ("lo", "hi"))
                xinf[g] = float(np.median(np.nan_to_num(hi - lo, nan=1.0)))
    except (KeyError, TypeError, ValueError):
        return None
    worst_tau, worst_x = max(tau.values()), max(xinf.values())
    ratio = max(worst_tau / TAU_BAND_SUSPECT, worst_x / XINF_BAND_SUSPECT)
    return _check(ratio, 1.0, None, tau_width=tau, xinf_width=xinf,
                  unit="worst median band width / its limit")


def _reason(name: str, c: dict) -> str:
    """The sentence for a check that did not pass."""
    v = c["value"]
    if name == "objective":
        return (f"stage 1's objective is {c['objective']:.3g}, {v:.3g}x its floor "
                f"{c['floor']:.3g} (noise and discretisation at {c['step']:g} ms; limits "
                f"{c['limit']:g}x suspect, {c['fail_limit']:g}x failed): the rates do not "
                "explain the recorded V as well as the data allow, likely a wrong basin"
                if v is not None else "stage 1's objective is not finite")
    if name == "path":
        return (f"the denoised path departs from the recorded V by {c['rms']:.3g} mV RMS, "
                f"{v:.3g}x the noise estimate {c['noise']:.3g} mV")
    if name == "free_run":
        if v is None:
            return f"the free run of the fitted model on the {c['traces']} traces diverges"
        return (f"the free-running V on the {c['traces']} traces is {v:.3g} mV RMS from "
                f"the recording (limit {c['limit']:.3g} mV)")
    if name == "spikes":
        return (f"the free run fires {sum(c['model'])} spikes where the recording has "
                f"{sum(c['recorded'])} (per trace {c['model']} vs {c['recorded']})")
    if name == "stages":
        return ("the teacher-stage model free-runs "
                + (f"{v:.3g}x worse ({c['teacher']:.3g} mV)" if v is not None else
                   "into divergence")
                + f" than the kept neural-ODE model ({c['final']:.3g} mV): stage 1 likely "
                "ended in a wrong basin")
    if name == "cell":
        return (f"the estimated cell parameter(s) {', '.join(c['at_bound'])} ended on their "
                "bounds: the fit needed values outside physiology to explain the data")
    if name == "bands":
        return ("the error bands are wide over the visited range (median tau width "
                + ", ".join(f"{g} {w:.2g}" for g, w in c["tau_width"].items())
                + "; x_inf " + ", ".join(f"{g} {w:.2g}" for g, w in c["xinf_width"].items())
                + "): the data do not pin the rates")
    return f"check {name}: {v}"


def assess(*, model, train: TraceData, held: TraceData | None, heldout: dict, history,
           noise: float, bands, config, context, teacher_model=None) -> dict:
    """The quality verdict of a fit (the ``quality`` entry of ``result.json``).

    Parameters
    ----------
    model
        The final fitted model (after the held-out choice of stage 2).
    train, held
        The training and held-out traces (``held`` None without a hold-out).
    heldout
        :attr:`FitResult.heldout_rmse` as the fit computed it.
    history
        The fit's per-step records (``phase``, ``loss``); used for the phases that ran.
    noise
        Estimated V noise SD, mV.
    bands
        :func:`hybridhh.fitting.bands.fit_bands`'s dict, or None.
    config
        The :class:`~hybridhh.fitting.config.FitConfig`.
    context
        The fit's shared context (``context["path"]``: stage 1b's denoised V).
    teacher_model
        The model at the end of stage 1 where stage 2 ran (else None: ``model`` is it).

    Returns
    -------
    dict
        ``verdict`` (``"ok"``, ``"suspect"`` or ``"failed"``), ``reasons`` (one sentence per
        check that did not pass, worst first), ``checks`` (name -> the numbers), ``advice``
        (what to try next) — plain JSON types.
    """
    stage1 = teacher_model if teacher_model is not None else model
    checks: dict = {}
    phases = sorted({h.get("phase", "") for h in history or ()})
    checks["objective"] = _objective(stage1, train, noise, config, context)
    path = _path(train, noise, context)
    if path is not None:
        checks["path"] = path
    check = held if held is not None else train
    rest = train.resting_estimate()
    checks.update(_free_run(model, teacher_model, check, rest, noise,
                            heldout or {"traces": "holdout" if held is not None else "train"}))
    band = _bands(bands, train.voltage_range())
    if band is not None:
        checks["bands"] = band
    cell = _cell(bands)
    if cell is not None:
        checks["cell"] = cell
    verdict = verdict_of(checks)
    order = sorted((n for n, c in checks.items() if c["outcome"] != "ok"),
                   key=lambda n: -VERDICTS.index(checks[n]["outcome"]))
    return _plain({"verdict": verdict, "reasons": [_reason(n, checks[n]) for n in order],
                   "checks": checks, "advice": [ADVICE[n] for n in order if n in ADVICE],
                   "phases": phases})


def _plain(obj):
    """``obj`` with plain JSON types only: numbers as float/int (non-finite as None), tuples
    and arrays as lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def headline(quality: dict | None) -> str:
    """One line for the verdict: ``"quality: ok"``, ``"quality: FAILED (2 of 5 checks)"``;
    ``"quality: not assessed"`` for None (runs saved before the verdict existed)."""
    if not quality:
        return "quality: not assessed"
    verdict = quality.get("verdict", "?")
    checks = quality.get("checks") or {}
    bad = sum(c.get("outcome") != "ok" for c in checks.values())
    if verdict == "ok":
        return f"quality: ok ({len(checks)} checks passed)"
    return f"quality: {verdict.upper()} ({bad} of {len(checks)} checks)"


def warning_text(quality: dict | None) -> str | None:
    """The warning for a ``suspect`` or ``failed`` verdict: the reasons and what to try next
    (None for ``ok`` or no verdict)."""
    if not quality or quality.get("verdict") == "ok":
        return None
    verdict = quality.get("verdict", "?")
    lines = [f"the fit is {verdict.upper()}: "
             + ("it does not explain the data; do not use these rates"
                if verdict == "failed" else "treat these rates with care")]
    lines += [f"  - {r}" for r in quality.get("reasons", [])]
    if quality.get("advice"):
        lines.append("  what to try next:")
        lines += [f"  * {a}" for a in quality["advice"]]
    return "\n".join(lines)

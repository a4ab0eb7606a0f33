"""``fit(recording, config) -> FitResult``: the public entry point of the fitter.

The fitter reads only what a real experiment has: V, the injected current and the
cell's known biophysics. It never looks at ``/truth``; a ``truth`` kinetics object may be
passed for *monitoring* only (rate errors in ``metrics.jsonl``).

A fit is its stages, each in its own module: ``prior`` (stage 0, :mod:`.prior`: the
prior refined on the data, before any phase), ``teacher`` (stage 1, :mod:`.teacher`),
``denoise`` (stage 1b, :mod:`.denoise`: noisy recordings, inside stage 1's Gauss–Newton
phase) and ``ode`` (stage 2, :mod:`.ode`: the neural ODE). Stages 1 and 2 contribute
their phases (``teacher.phases``, ``ode.phases``); :func:`fit` runs them in order on one
:class:`~hybridhh.fitting.trainer.Trainer`, then keeps stage 2 only where it lowers the
held-out free-running V error.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..analysis.metrics import kinetics_errors, summarize_errors
from ..errors import ConfigError, RunDirError
from ..learned import GatePrior, RateMLP
from . import bands, cellfit, denoise, ode, quality, resample, rundir, teacher
from .config import FitConfig
from .constrained import constrained_ranges
from .data import TraceData, resolve_holdout
from .freerun import free_run, free_run_rmse
from .model import build_model
from .prior import fitted_prior
from .trainer import Trainer

__all__ = ["FitResult", "fit", "load_model", "load_fit", "build_model", "free_run",
           "resolve_holdout", "NOISE_WARNING"]

#: Estimated V noise (mV, :meth:`TraceData.noise_estimate`) above which ``fit`` warns.
NOISE_WARNING = 0.1


@dataclass
class FitResult:
    """What a fit produced.

    Attributes
    ----------
    model
        The fitted :class:`~hybridhh.learned.RateMLP` (a kinetics object); of an unfinished
        fit, the model after its last completed phase.
    config
        The :class:`FitConfig` used.
    voltage_range
        1st–99th percentile of the recorded V (mV): where the cell went. None where unknown
        (an unfinished run whose ``config.json`` does not record it).
    constrained
        Per rate (``"alpha_m"`` ... ``"beta_n"``), the voltage range (mV) over which the
        data constrain it (:mod:`hybridhh.fitting.constrained`); outside it the curve is
        extrapolation. None for runs saved before this was computed, and for unfinished
        fits.
    train_traces, holdout_traces
        Trace names used for training and for accepting the neural-ODE stage.
    heldout_rmse
        Free-running V RMSE (mV) on the held-out traces after each stage
        (``{"teacher": ..., "ode": ...}``) and which one was kept (``"chosen"``); empty for
        an unfinished fit.
    history
        One dict per optimiser step (also in ``metrics.jsonl``).
    elapsed
        Wall time of the optimisation, s (of an unfinished fit: up to its last record).
    run_dir
        Where the run was saved (None for an in-memory fit).
    finished
        False for a fit loaded from an interrupted run (``load_fit(...,
        allow_unfinished=True)``): its model is the best checkpoint's, and the held-out
        check and the constrained ranges were never computed.
    bands
        90 % error bands per voltage of each rate, x_inf and tau
        (:func:`hybridhh.fitting.bands.fit_bands`); None where not computed.
    quality
        The verdict (:func:`hybridhh.fitting.quality.assess`): ``{"verdict": "ok" |
        "suspect" | "failed", "reasons": [...], ...}``; None where not computed.
    biophysics
        The cell the kinetics were fitted with: ``C_m`` (µF/cm²), ``g_Na, g_K, g_L``
        (mS/cm²), ``E_Na, E_K, E_L`` (mV), ``temperature`` (°C) and, for a recording in pA,
        ``C_total`` (pF); estimated where ``free`` says, else the recording's. None for runs
        saved before this was recorded.
    free
        The cell parameters estimated with the kinetics (:mod:`hybridhh.fitting.cellfit`);
        their SDs are :attr:`biophysics_sd`.
    """

    model: RateMLP
    config: FitConfig
    voltage_range: tuple[float, float] | None
    train_traces: tuple[str, ...]
    holdout_traces: tuple[str, ...]
    heldout_rmse: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    elapsed: float = 0.0
    run_dir: Path | None = None
    constrained: dict | None = None
    finished: bool = True
    bands: dict | None = None
    quality: dict | None = None
    biophysics: dict | None = None
    free: tuple[str, ...] = ()

    @staticmethod
    def constrained_from_summary(summary: dict) -> dict | None:
        """``constrained`` as :meth:`summary` saved it (None for runs saved without it)."""
        saved = summary.get("constrained")
        return {k: tuple(v) for k, v in saved.items()} if saved else None

    def summary(self) -> dict:
        return {
            "voltage_range": list(self.voltage_range) if self.voltage_range else None,
            "constrained": ({k: list(v) for k, v in self.constrained.items()}
                            if self.constrained is not None else None),
            "train_traces": list(self.train_traces),
            "holdout_traces": list(self.holdout_traces),
            "heldout_rmse": self.heldout_rmse,
            "elapsed": self.elapsed,
            "final_loss": {h["phase"]: h["loss"] for h in self.history},
            "quality": self.quality,
            "bands": self.bands,
            "biophysics": self.biophysics,
            "biophysics_sd": self.biophysics_sd,
            "free": list(self.free),
        }

    @property
    def biophysics_sd(self) -> dict | None:
        """``{name: SD}`` of the estimated cell parameters (units of ``biophysics``) where
        a band is known: the 90 % band's half-width over 1.645 (``bands["cell"]``: the
        Laplace SD with the kinetics free to compensate, plus the step-shift term); a
        parameter on its bound has none."""
        cell = (self.bands or {}).get("cell")
        return dict(cell["sd"]) if cell else None


def fit(recording, config: FitConfig | None = None, *, run_dir=None, resume: bool = False,
        quiet: bool = False, truth=None, init: RateMLP | None = None) -> FitResult:
    """Learn the six rate functions from a recording.

    Parameters
    ----------
    recording
        A :class:`hybridhh.recording.Recording` (or anything with ``time``, ``voltage``,
        ``current``, ``biophysics`` and ``trace_names``).
    config
        The :class:`FitConfig` (default: ``FitConfig()``).
    run_dir
        Directory for config, checkpoints, metrics and the model; None keeps it in memory.
    resume
        Continue an interrupted run in ``run_dir`` exactly where it stopped.
    quiet
        No progress bar.
    truth
        Optional kinetics object used *only* to log rate errors in the metrics.
    init
        Optional starting model (e.g. an earlier fit) instead of the generic prior; its
        width and parametrisation must match ``config``.

    Returns
    -------
    FitResult
    """
    t0 = time.perf_counter()  # the whole fit, the prior's refinement included
    config = config or FitConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    recording, passive = cellfit.passive_started(recording)
    data = TraceData.from_recording(recording)
    hold = resolve_holdout(data.names, config.holdout)
    train_idx = [i for i in range(data.n_traces) if i not in hold]
    noise = data.select(train_idx).noise_estimate()  # on the samples as recorded
    denoising = denoise.runs(noise, config)
    recorded_dt = data.dt
    k = 1 if denoising else resample.factor(data.dt, config.interpolate_to, data.V.numel(),
                                            config.interpolate_budget)
    data = resample.interpolate(data, k)
    c_start, free, bounds = cellfit.recording_cell(recording, data, config.free)
    train = data.select(train_idx)
    if noise > NOISE_WARNING and not denoising:
        warnings.warn(
            f"estimated measurement noise on V is {noise:.2g} mV and the denoising stage is "
            "off (config.denoise, needs the Gauss-Newton stage): the teacher-forcing stages "
            "fit voltage increments, which noise above ~0.1 mV biases (benchmark: 1 mV noise "
            "gives tau errors of 30-85 %); expect unreliable rates", UserWarning,
            stacklevel=2)
    held = data.select(hold) if hold else None
    cell = cellfit.cell_estimate(train.bio, c_start, free, bounds)
    if cell is not None and not config.teacher.gauss_newton:
        raise ConfigError(f"estimating the cell parameters {list(free)} needs the Gauss-Newton "
                          "stage (config.teacher.gauss_newton is empty)")
    vrange = data.voltage_range()
    run_dir = Path(run_dir) if run_dir is not None else None
    saved, state = _start(run_dir, config, resume)

    # stage 0: the prior (refined on the data; a resumed run reuses the one it started with)
    if init is not None:
        prior = init.prior
    elif saved is not None and "prior" in saved.get("model", {}):
        prior = GatePrior(**{k: tuple(v) for k, v in saved["model"]["prior"].items()})
    else:
        prior = fitted_prior(train, config, quiet, cell=cell)
    model = build_model(train, config, prior)
    if init is not None:
        try:
            model.load_state_dict(init.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"init model does not match the configuration ({e})") from e
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            (run_dir / rundir.METRICS).unlink(missing_ok=True)
            rundir.save_json(run_dir / rundir.CONFIG, {
                "fit": config.to_dict(),
                "model": model.config(),
                "data": {"source": str(getattr(recording, "path", None) or
                                       getattr(recording, "source", "")),
                         "path": (str(recording.path) if getattr(recording, "path", None)
                                  else None),
                         "traces": list(data.names), "holdout": [data.names[i] for i in hold],
                         "voltage_range": list(vrange), "dt": recorded_dt,
                         "interpolated": {"factor": k, "dt": data.dt},
                         "biophysics": data.bio.as_dict(),
                         "current_units": getattr(recording, "current_units", "uA/cm^2"),
                         "C_total_start": c_start, "free": list(free),
                         "passive": passive},
            })

    monitor = None
    if truth is not None:
        def monitor(m):
            return {"errors": summarize_errors(kinetics_errors(m, truth, *vrange))}

    # stages 1 (with 1b inside it) and 2, as phases on one trainer
    context: dict = {}  # shared with the trainer and saved in checkpoints (stage 1b's path)
    losses = teacher.TeacherLosses(train, config.teacher.window, context, cell=cell,
                                   others=(held,) if held is not None else ())
    path_stage = denoise.path_stage(train, noise, config, context, quiet) if denoising else None
    teacher_phases = teacher.phases(model, train, config, losses, path_stage)
    ode_phases = ode.phases(model, train, config, losses, context)
    trainer = Trainer(model, teacher_phases + ode_phases, run_dir=run_dir,
                      checkpoint_every=config.checkpoint_every, quiet=quiet, monitor=monitor,
                      context=context)
    if state is not None:
        trainer.load_state(state)
        if cell is not None and "cell" in context:  # the cell was final when it stopped
            cell.load_state({**context["cell"], "frozen": False})
            losses.commit_cell()
    history = trainer.run()
    if cell is not None:
        losses.commit_cell()  # (done after the Gauss-Newton stage; kept if a phase did not)
    elapsed = trainer.elapsed if state is not None else time.perf_counter() - t0

    # keep the neural-ODE stage only where it lowers the held-out free-running V error
    heldout = {}
    teacher_model = None
    if ode_phases and teacher_phases:
        check = held if held is not None else train
        teacher_model = copy.deepcopy(model)
        teacher_model.load_state_dict(trainer.snapshots[teacher_phases[-1].name])
        heldout["ode"], heldout["teacher"] = free_run_rmse([model, teacher_model], check)
        if heldout["ode"] < heldout["teacher"]:
            heldout["chosen"] = "ode"
        else:
            model.load_state_dict(teacher_model.state_dict())
            heldout["chosen"] = "teacher"
        heldout["traces"] = "holdout" if held is not None else "train"
    elif held is not None:
        heldout["final"] = free_run_rmse([model], held)[0]
        heldout["traces"] = "holdout"

    # where the data constrain each rate, along the path teacher forcing ran on
    t = config.teacher
    # at the Gauss-Newton stage's step (else the first L-BFGS entry's)
    steps = [s for s, _ in t.gauss_newton] + [s for s, _ in t.lbfgs]
    along = train.along(context.get("path"))
    step = steps[0] if steps else t.adam_dt
    constrained = constrained_ranges(model, along, step=step, adaptive=t.adaptive,
                                     node_step=t.gn_node_step, smoothness=t.gn_smoothness)
    # error bands, then the verdict: did the fit explain the data?
    cell_band = (bands.CellBand(cell.free, cell.values, cell.bounds)
                 if cell is not None else None)
    band = bands.fit_bands(model, along, step=step, adaptive=t.adaptive,
                           node_step=t.gn_node_step, smoothness=t.gn_smoothness, noise=noise,
                           cell=cell_band, interpolated=k)
    verdict = quality.assess(model=model, train=train, held=held, heldout=heldout,
                             history=history, noise=noise, bands=band, config=config,
                             context=context, teacher_model=teacher_model)
    biophysics = train.bio.as_dict()
    if cell is not None and cell.values.get("C_total") is not None:
        biophysics["C_total"] = cell.values["C_total"]
    elif c_start is not None:
        biophysics["C_total"] = c_start
    result = FitResult(model, config, vrange, train.names,
                       tuple(data.names[i] for i in hold), heldout, history, elapsed, run_dir,
                       constrained, bands=band, quality=verdict, biophysics=biophysics,
                       free=tuple(free))
    if run_dir is not None:
        rundir.save_torch(run_dir / rundir.MODEL,
                          {"config": model.config(), "state": model.state_dict()})
        rundir.save_json(run_dir / rundir.RESULT, result.summary())
    return result


def _start(run_dir: Path | None, config: FitConfig, resume: bool):
    """(saved config.json, checkpoint to resume from) of a run starting in ``run_dir``:
    (None, None) for a new run; a RunDirError where there is nothing to resume, the run
    was started with another configuration, or a new run would overwrite a fit."""
    if run_dir is None:
        return None, None
    last = run_dir / rundir.LAST
    if not resume:
        if last.exists() or (run_dir / rundir.MODEL).exists():
            raise RunDirError(f"{run_dir}: already holds a fit; use --resume to continue it "
                              "or choose another output directory")
        return None, None
    if not last.exists():
        raise RunDirError(f"{run_dir}: nothing to resume ({rundir.LAST} not found)")
    saved = rundir.load_json(run_dir / rundir.CONFIG)
    if saved["fit"] != FitConfig.from_dict(config.to_dict()).to_dict() and \
            FitConfig.from_dict(saved["fit"]).to_dict() != config.to_dict():
        raise RunDirError(f"{run_dir}: the run was started with a different "
                          "configuration; resume without changing options")
    return saved, rundir.load_torch(last)


def _model(blob_config: dict, state: dict, path: Path) -> RateMLP:
    """A RateMLP from its construction parameters and state dict (read from ``path``)."""
    try:
        model = RateMLP.from_config(blob_config)
        model.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError) as e:
        raise RunDirError(f"{path}: not a hybridhh model ({e})") from e
    model.eval()
    return model


def load_model(run_dir) -> RateMLP:
    """The fitted model of a finished run directory."""
    run_dir = rundir.check_run_dir(run_dir)
    blob = rundir.load_torch(run_dir / rundir.MODEL)
    if not isinstance(blob, dict) or "config" not in blob or "state" not in blob:
        raise RunDirError(f"{run_dir / rundir.MODEL}: not a hybridhh model (no config/state)")
    return _model(blob["config"], blob["state"], run_dir / rundir.MODEL)


def load_fit(run_dir, *, allow_unfinished: bool = False,
             warnings: list | None = None) -> FitResult:
    """A fit from its run directory (model, config, summary, metrics).

    Parameters
    ----------
    run_dir
        A run directory written by :func:`fit` (``hybridhh fit ... --out RUN_DIR``).
    allow_unfinished
        Also load an interrupted fit (``config.json`` and ``checkpoint_best.pt`` but no
        ``model.pt``): the model after its last completed phase, with
        ``finished=False`` and what the run directory knows (no held-out check, no
        constrained ranges). False: an unfinished run raises :class:`RunDirError`.
    warnings
        A list to collect notes in instead of failing where the run can still be shown: a
        ``config.json`` whose fit configuration no longer parses with this version of
        hybridhh (``config`` is then None), and an unfinished run (with
        ``allow_unfinished``). None: such a config raises :class:`ConfigError`.
    """
    run_dir = rundir.check_run_dir(run_dir, need=(rundir.CONFIG,))
    if not (run_dir / rundir.MODEL).exists() and (run_dir / rundir.BEST).exists():
        if allow_unfinished:
            if warnings is not None:
                warnings.append(f"run {run_dir} is unfinished: showing the best checkpoint so far")
            return _load_unfinished(run_dir, warnings)
        raise RunDirError(
            f"{run_dir}: the fit is unfinished (no {rundir.MODEL}; {rundir.BEST} holds the "
            "model after its last completed phase); continue it with 'hybridhh fit ... "
            f"--out {run_dir} --resume', or look at it as it is with "
            "load_fit(run_dir, allow_unfinished=True)")
    run_dir = rundir.check_run_dir(run_dir, need=(rundir.CONFIG, rundir.MODEL, rundir.RESULT))
    cfg = rundir.load_json(run_dir / rundir.CONFIG)
    res = rundir.load_json(run_dir / rundir.RESULT)
    try:
        return FitResult(
            model=load_model(run_dir),
            config=_saved_config(cfg, run_dir, warnings),
            voltage_range=tuple(res["voltage_range"]),
            train_traces=tuple(res["train_traces"]),
            holdout_traces=tuple(res["holdout_traces"]),
            heldout_rmse=res.get("heldout_rmse", {}),
            history=rundir.read_metrics(run_dir),
            elapsed=res.get("elapsed", 0.0),
            run_dir=run_dir,
            constrained=FitResult.constrained_from_summary(res),
            bands=res.get("bands"),
            quality=res.get("quality"),
            biophysics=res.get("biophysics"),
            free=tuple(res.get("free", ())),
        )
    except KeyError as k:
        raise RunDirError(f"{run_dir / rundir.RESULT}: missing {k}") from None


def _saved_config(cfg: dict, run_dir: Path, warnings: list | None) -> FitConfig | None:
    """The run's FitConfig; None (with a note in ``warnings``) where it no longer parses."""
    try:
        return FitConfig.from_dict(cfg["fit"])
    except (ConfigError, KeyError) as e:
        if warnings is None:
            raise ConfigError(f"{run_dir / rundir.CONFIG}: the fit configuration does not "
                              f"parse with this version of hybridhh ({e})") from e
        warnings.append(f"{run_dir / rundir.CONFIG}: the fit configuration does not parse "
                        f"with this version of hybridhh ({e}); it is shown as saved")
        return None


def _load_unfinished(run_dir: Path, warnings: list | None = None) -> FitResult:
    """An interrupted fit: the best checkpoint's model and what config.json records."""
    cfg = rundir.load_json(run_dir / rundir.CONFIG)
    best = rundir.load_torch(run_dir / rundir.BEST)
    if not isinstance(best, dict) or "model" not in best or "model" not in cfg:
        raise RunDirError(f"{run_dir / rundir.BEST}: not a hybridhh checkpoint")
    data = cfg.get("data", {})
    traces, holdout = data.get("traces", []), data.get("holdout", [])
    history = rundir.read_metrics(run_dir)
    return FitResult(
        model=_model(cfg["model"], best["model"], run_dir / rundir.BEST),
        config=_saved_config(cfg, run_dir, warnings),
        voltage_range=tuple(data["voltage_range"]) if data.get("voltage_range") else None,
        train_traces=tuple(n for n in traces if n not in holdout),
        holdout_traces=tuple(holdout),
        history=history,
        elapsed=float(history[-1].get("elapsed", 0.0)) if history else 0.0,
        run_dir=run_dir,
        finished=False,
    )

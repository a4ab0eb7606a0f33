"""``fit(recording, config) -> FitResult``: the public entry point of the fitter.

The fitter reads only what a real experiment has: V, the injected current and the
cell's known biophysics. It never looks at ``/truth``; a ``truth`` kinetics object may be
passed for *monitoring* only (rate errors in ``metrics.jsonl``).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, RunDirError
from ..learned import GatePrior, RateMLP
from ..analysis.metrics import kinetics_errors, summarize_errors
from . import rundir
from .config import FitConfig
from .constrained import constrained_ranges
from .data import TraceData
from .denoise import estimate_path
from .free_run import free_run, free_runs
from .gauss_newton import NodeTable, curves, distill, levenberg_marquardt, voltage_nodes
from .prior import refine_prior
from .shooting import MultipleShooting, stable_stride
from .teacher import TeacherForcing
from .trainer import Phase, Trainer, make_optimizer, progress_lines

__all__ = ["FitResult", "fit", "load_model", "load_fit", "free_run", "resolve_holdout"]

#: Estimated V noise (mV, :meth:`TraceData.noise_estimate`) above which ``fit`` warns.
NOISE_WARNING = 0.1


@dataclass
class FitResult:
    """What a fit produced.

    Attributes
    ----------
    model
        The fitted :class:`~hybridhh.learned.RateMLP` (a kinetics object).
    config
        The :class:`FitConfig` used.
    voltage_range
        1st–99th percentile of the recorded V (mV): where the cell went.
    constrained
        Per rate (``"alpha_m"`` ... ``"beta_n"``), the voltage range (mV) over which the
        data constrain it (:mod:`hybridhh.fitting.constrained`); outside it the curve is
        extrapolation. None for runs saved before this was computed.
    train_traces, holdout_traces
        Trace names used for training and for accepting the neural-ODE stage.
    heldout_rmse
        Free-running V RMSE (mV) on the held-out traces after each stage
        (``{"teacher": ..., "ode": ...}``) and which one was kept (``"chosen"``).
    history
        One dict per optimiser step (also in ``metrics.jsonl``).
    elapsed
        Wall time of the optimisation, s.
    run_dir
        Where the run was saved (None for an in-memory fit).
    """

    model: RateMLP
    config: FitConfig
    voltage_range: tuple[float, float]
    train_traces: tuple[str, ...]
    holdout_traces: tuple[str, ...]
    heldout_rmse: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    elapsed: float = 0.0
    run_dir: Path | None = None
    constrained: dict | None = None

    @staticmethod
    def constrained_from_summary(summary: dict) -> dict | None:
        """``constrained`` as :meth:`summary` saved it (None for runs saved without it)."""
        saved = summary.get("constrained")
        return {k: tuple(v) for k, v in saved.items()} if saved else None

    def summary(self) -> dict:
        return {
            "voltage_range": list(self.voltage_range),
            "constrained": ({k: list(v) for k, v in self.constrained.items()}
                            if self.constrained is not None else None),
            "train_traces": list(self.train_traces),
            "holdout_traces": list(self.holdout_traces),
            "heldout_rmse": self.heldout_rmse,
            "elapsed": self.elapsed,
            "final_loss": {h["phase"]: h["loss"] for h in self.history},
        }


def resolve_holdout(names: tuple[str, ...], holdout) -> list[int]:
    """Indices of the held-out traces for a ``FitConfig.holdout`` value."""
    n = len(names)
    if holdout == "auto":
        return [n - 1] if n >= 4 else []
    if holdout in (None, (), []):
        return []
    if isinstance(holdout, (str, int)):
        holdout = (holdout,)
    idx = []
    for h in holdout:
        if isinstance(h, (int, np.integer)) or (isinstance(h, str) and h.lstrip("-").isdigit()
                                                 and h not in names):
            i = int(h)
            if not -n <= i < n:
                raise ConfigError(f"holdout index {i} out of range for {n} traces")
            idx.append(i % n)
        elif h in names:
            idx.append(names.index(h))
        else:
            raise ConfigError(f"holdout trace {h!r} not found; traces are {list(names)}")
    if len(set(idx)) >= n:
        raise ConfigError("holdout leaves no trace to train on")
    return sorted(set(idx))


def generic_prior(data: TraceData, config: FitConfig) -> GatePrior:
    """The generic prior of ``config.prior`` placed at the data's resting potential."""
    p = config.prior
    return GatePrior.generic(data.resting_estimate(), offset_activation=p.offset_activation,
                             offset_inactivation=p.offset_inactivation, slope=p.slope,
                             tau_max=p.tau_max)


def fitted_prior(data: TraceData, config: FitConfig, quiet: bool = True) -> GatePrior:
    """Stage 0: the generic prior refined on the data (:mod:`hybridhh.fitting.prior`), or the
    generic prior itself when ``config.prior.refine_starts`` is 0."""
    prior, p = generic_prior(data, config), config.prior
    if not p.refine_starts:
        return prior
    stride = data.stride(p.refine_dt)
    tf = TeacherForcing(data, window=config.teacher.window, stride=stride)
    t0, lines = time.perf_counter(), progress_lines(quiet)
    with tqdm(total=p.refine_starts, desc="prior", disable=quiet or lines, leave=False) as bar:
        def tick(k, value):
            bar.set_postfix(loss=f"{value:.3g}")
            bar.update()
        refined, value = refine_prior(tf, prior, p.refine_starts, p.refine_iter,
                                      seed=config.seed, robust=config.teacher.robust,
                                      tau_floor=0.5 * stride * data.dt, callback=tick)
    if lines:
        print(f"prior: {p.refine_starts} starts, loss {value:.3e}, "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return refined


def build_model(data: TraceData, config: FitConfig, prior: GatePrior | None = None) -> RateMLP:
    """The untrained model: the MLP on ``prior`` (default: the generic prior placed at the
    data's resting potential, unrefined)."""
    torch.manual_seed(config.seed)
    prior = generic_prior(data, config) if prior is None else prior
    return RateMLP(data.bio, prior, width=config.width, parametrisation=config.parametrisation,
                   input_gain=config.input_gain, separate=config.separate)


def _rmse(model, data: TraceData) -> float:
    try:
        V = free_run(model, data)
    except Exception:  # a diverging model: infinitely bad
        return float("inf")
    return float(torch.sqrt(((V - data.V) ** 2).mean()))


def _rmses(models, data: TraceData) -> list[float]:
    """Free-running V RMSE (mV) of each model; one batched run unless one diverges."""
    try:
        V = free_runs(models, data)
    except Exception:  # one of them diverges: find which, one by one
        return [_rmse(m, data) for m in models]
    return [float(torch.sqrt(((v - data.V) ** 2).mean())) for v in V]


def _gauss_newton(model, train: TraceData, t, teacher, stride_of, denoise=None):
    """Levenberg–Marquardt on the tabulated kinetics (then, with ``denoise``, the joint
    estimate of the noise-free V path and the kinetics), then the MLP fitted to the table;
    returns (loss at the last Gauss–Newton resolution, model state) for a select phase."""
    nodes = voltage_nodes(train.V, t.gn_node_step)
    with torch.no_grad():
        table = NodeTable(nodes, curves(model, nodes))
    for step_ms, iterations in t.gauss_newton:  # non-empty: the phase exists only then
        tf = teacher(stride_of(float(step_ms)), t.adaptive)
        levenberg_marquardt(tf, table, int(iterations), t.gn_smoothness,
                            geodesic=t.gn_geodesic)
    if denoise is not None:
        denoise(table)  # the later teacher-forcing losses run along the estimated path
        tf = teacher(stride_of(float(t.gauss_newton[-1][0])), t.adaptive)
    cand = copy.deepcopy(model)
    distill(cand, table, t.distill_iter)
    with torch.no_grad():
        return float(tf.loss(cand)), cand.state_dict()


def _phases(model, train: TraceData, cfg: FitConfig, context: dict | None = None,
            sigma: float | None = None, quiet: bool = True) -> list[Phase]:
    """The phases of a fit. ``sigma``: the noise SD on V (mV) with which stage 1b
    estimates the noise-free V path (None: no stage 1b); ``context`` (shared with the
    trainer, saved in checkpoints) carries the path to the phases after it."""
    t, dn = cfg.teacher, cfg.denoise
    context = {} if context is None else context
    cache: dict[tuple, TeacherForcing] = {}

    stride_of = train.stride

    def along():
        """The data teacher forcing runs on: the recording, or its denoised V path."""
        return train.along(context.get("path"))

    def teacher(stride, adaptive=None):
        key = (stride, adaptive, "path" in context)
        if key not in cache:
            cache[key] = TeacherForcing(along(), window=t.window, stride=stride,
                                        adaptive=adaptive)
        return cache[key]

    denoise = None
    if sigma is not None:
        def denoise(table):
            lines = progress_lines(quiet)
            t0 = time.perf_counter()
            with tqdm(total=dn.iterations, desc="denoise", disable=quiet or lines,
                      leave=False) as bar:
                def tick(k, value):
                    bar.set_postfix(objective=f"{value:.4g}")
                    bar.update(k - bar.n)
                    done[0] = k
                done = [0]
                path, value = estimate_path(train, table, sigma, dn.q, dn.q_gate,
                                            dn.iterations, dn.smoothness, callback=tick)
            context["path"] = path
            if lines:
                print(f"denoise: noise {sigma:.3g} mV, {done[0]} iterations, "
                      f"objective {value:.4g}, {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr, flush=True)

    params = model.parameters
    phases = []
    lbfgs = list(enumerate(t.lbfgs))
    if t.adam_steps and t.starts > 1:
        # multi-start: each candidate runs the Adam phase and the first L-BFGS resolution
        # (where a wrong basin shows as a loss 10-100x higher); the best one goes on
        first = lbfgs.pop(0) if lbfgs else None

        def candidate(k):
            cand = build_model(train, dataclasses.replace(cfg, seed=cfg.seed + 1000 * k),
                               model.prior)
            opt = make_optimizer("adam", cand.parameters(), t.adam_lr)
            tf = teacher(stride_of(t.adam_dt))
            for _ in range(t.adam_steps):
                opt.zero_grad()
                loss = tf.loss(cand, t.robust)
                if not torch.isfinite(loss):
                    return float("inf"), cand.state_dict()
                loss.backward()
                opt.step()
            if first is None:
                with torch.no_grad():
                    return float(tf.loss(cand)), cand.state_dict()
            tf = teacher(stride_of(float(first[1][0])))
            opt = make_optimizer("lbfgs", cand.parameters(), 1.0,
                                 {"max_iter": t.lbfgs_max_iter, "history_size": t.lbfgs_history})

            def closure():
                opt.zero_grad()
                loss = tf.loss(cand)
                if torch.isfinite(loss):
                    loss.backward()
                return loss

            value = float("inf")
            for _ in range(int(first[1][1])):
                value = float(opt.step(closure).detach())
                if not all(torch.isfinite(p).all() for p in cand.parameters()):
                    return float("inf"), cand.state_dict()
            with torch.no_grad():
                value = float(tf.loss(cand))
            return value, cand.state_dict()

        phases.append(Phase("teacher/starts", params, candidate, t.starts, "select"))
    elif t.adam_steps:
        phases.append(Phase("teacher/adam", params,
                            lambda k: teacher(stride_of(t.adam_dt)).loss(model, t.robust),
                            t.adam_steps, "adam", t.adam_lr))
    for i, (step_ms, steps) in lbfgs:
        stride, steps = stride_of(float(step_ms)), int(steps)
        # entries after the first run after the Gauss-Newton stage, on its adaptive steps
        ad = t.adaptive if (i > 0 and t.gauss_newton) else None
        if steps:
            phases.append(Phase(f"teacher/lbfgs{i + 1}-{stride * train.dt:g}ms", params,
                                lambda k, s=stride, a=ad: teacher(s, a).loss(model), steps,
                                "lbfgs", 1.0,
                                {"max_iter": t.lbfgs_max_iter, "history_size": t.lbfgs_history,
                                 "restart_every": t.lbfgs_restart}))
    if t.gauss_newton:
        # right after the phase that ran the first L-BFGS resolution (the multi-start, or
        # the first L-BFGS phase), else after the last teacher phase
        at = next((i for i, p in enumerate(phases) if p.optimizer in ("select", "lbfgs")),
                  len(phases) - 1)
        phases.insert(at + 1, Phase(
            "teacher/gauss-newton" + ("+denoise" if denoise else ""), params,
            lambda k: _gauss_newton(model, train, t, teacher, stride_of, denoise), 1,
            "select"))
    if cfg.ode.enabled and cfg.ode.steps:
        def ode_stride():
            """The RK4 step, capped by the model's fastest tau over the visited voltages
            as the stage starts (:func:`~hybridhh.fitting.shooting.stable_stride`; the gate
            rates beyond are capped in the stage itself); kept in the context, so a
            resumed fit uses the same step."""
            if "ode_stride" not in context:
                context["ode_stride"] = torch.tensor(stable_stride(model, train, cfg.ode.dt))
            return int(context["ode_stride"])

        for w in cfg.ode.windows:
            holder = {}

            def ode_loss(k, w=w, holder=holder):
                if "ms" not in holder:
                    holder["ms"] = MultipleShooting(train, w, teacher(1), cfg.ode.max_windows,
                                                    stride=ode_stride(), method=cfg.ode.method)
                # L-BFGS needs the same windows at every evaluation; Adam draws new ones
                step = 0 if cfg.ode.optimizer == "lbfgs" else k
                g = torch.Generator().manual_seed(cfg.seed * 100003 + step)
                return holder["ms"].loss(model, g)

            phases.append(Phase(f"ode/{w:g}ms", params, ode_loss, cfg.ode.steps,
                                cfg.ode.optimizer, cfg.ode.lr,
                                {"max_iter": cfg.ode.max_iter} if cfg.ode.optimizer == "lbfgs"
                                else {}))
    return phases


def fit(recording, config: FitConfig | None = None, run_dir=None, resume: bool = False,
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
    data = TraceData.from_recording(recording)
    hold = resolve_holdout(data.names, config.holdout)
    train = data.select([i for i in range(data.n_traces) if i not in hold])
    noise, dn = train.noise_estimate(), config.denoise
    denoising = (dn.threshold is not None and noise > dn.threshold and dn.iterations > 0
                 and bool(config.teacher.gauss_newton))
    if noise > NOISE_WARNING and not denoising:
        warnings.warn(
            f"estimated measurement noise on V is {noise:.2g} mV and the denoising stage is "
            "off (config.denoise, needs the Gauss-Newton stage): the teacher-forcing stages "
            "fit voltage increments, which noise above ~0.1 mV biases (benchmark: 1 mV noise "
            "gives tau errors of 30-85 %); expect unreliable rates", UserWarning,
            stacklevel=2)
    held = data.select(hold) if hold else None
    vrange = data.voltage_range()
    run_dir = Path(run_dir) if run_dir is not None else None
    state = saved = None
    if run_dir is not None:
        last = run_dir / rundir.LAST
        if resume:
            if not last.exists():
                raise RunDirError(f"{run_dir}: nothing to resume ({rundir.LAST} not found)")
            saved = rundir.load_json(run_dir / rundir.CONFIG)
            if saved["fit"] != FitConfig.from_dict(config.to_dict()).to_dict() and \
                    FitConfig.from_dict(saved["fit"]).to_dict() != config.to_dict():
                raise RunDirError(f"{run_dir}: the run was started with a different "
                                  "configuration; resume without changing options")
            state = rundir.load_torch(last)
        elif last.exists() or (run_dir / rundir.MODEL).exists():
            raise RunDirError(f"{run_dir}: already holds a fit; use --resume to continue it "
                              "or choose another output directory")
    # stage 0: the prior (refined on the data; a resumed run reuses the one it started with)
    if init is not None:
        prior = init.prior
    elif saved is not None and "prior" in saved.get("model", {}):
        prior = GatePrior(**{k: tuple(v) for k, v in saved["model"]["prior"].items()})
    else:
        prior = fitted_prior(train, config, quiet)
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
                         "voltage_range": list(vrange), "dt": data.dt,
                         "biophysics": data.bio.as_dict()},
            })

    monitor = None
    if truth is not None:
        def monitor(m):
            return {"errors": summarize_errors(kinetics_errors(m, truth, *vrange))}

    context: dict = {}
    phases = _phases(model, train, config, context, noise if denoising else None, quiet)
    trainer = Trainer(model, phases, run_dir=run_dir, checkpoint_every=config.checkpoint_every,
                      quiet=quiet, monitor=monitor, context=context)
    if state is not None:
        trainer.load_state(state)
    history = trainer.run()
    elapsed = trainer.elapsed if state is not None else time.perf_counter() - t0

    # keep the neural-ODE stage only where it lowers the held-out free-running V error
    heldout = {}
    tf_names = [p.name for p in phases if p.name.startswith("teacher/")]
    ode_names = [p.name for p in phases if p.name.startswith("ode/")]
    if ode_names and tf_names:
        check = held if held is not None else train
        teacher_model = copy.deepcopy(model)
        teacher_model.load_state_dict(trainer.snapshots[tf_names[-1]])
        heldout["ode"], heldout["teacher"] = _rmses([model, teacher_model], check)
        if heldout["ode"] < heldout["teacher"]:
            heldout["chosen"] = "ode"
        else:
            model.load_state_dict(teacher_model.state_dict())
            heldout["chosen"] = "teacher"
        heldout["traces"] = "holdout" if held is not None else "train"
    elif held is not None:
        heldout["final"] = _rmse(model, held)
        heldout["traces"] = "holdout"

    # where the data constrain each rate, along the path teacher forcing ran on
    along = train.along(context.get("path"))
    t = config.teacher
    # at the Gauss-Newton stage's step (else the first L-BFGS entry's)
    steps = [s for s, _ in t.gauss_newton] + [s for s, _ in t.lbfgs]
    constrained = constrained_ranges(model, along, step=steps[0] if steps else t.adam_dt,
                                     adaptive=t.adaptive, node_step=t.gn_node_step,
                                     smoothness=t.gn_smoothness)
    result = FitResult(model, config, vrange, train.names,
                       tuple(data.names[i] for i in hold), heldout, history, elapsed, run_dir,
                       constrained)
    if run_dir is not None:
        rundir.save_torch(run_dir / rundir.MODEL,
                          {"config": model.config(), "state": model.state_dict()})
        rundir.save_json(run_dir / rundir.RESULT, result.summary())
    return result


def load_model(run_dir) -> RateMLP:
    """The fitted model of a run directory."""
    run_dir = rundir.check_run_dir(run_dir)
    blob = rundir.load_torch(run_dir / rundir.MODEL)
    try:
        model = RateMLP.from_config(blob["config"])
        model.load_state_dict(blob["state"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise RunDirError(f"{run_dir / rundir.MODEL}: not a hybridhh model ({e})") from e
    model.eval()
    return model


def load_fit(run_dir) -> FitResult:
    """A finished fit from its run directory (model, config, summary, metrics)."""
    run_dir = rundir.check_run_dir(run_dir, need=(rundir.CONFIG, rundir.MODEL, rundir.RESULT))
    cfg = rundir.load_json(run_dir / rundir.CONFIG)
    res = rundir.load_json(run_dir / rundir.RESULT)
    return FitResult(
        model=load_model(run_dir),
        config=FitConfig.from_dict(cfg["fit"]),
        voltage_range=tuple(res["voltage_range"]),
        train_traces=tuple(res["train_traces"]),
        holdout_traces=tuple(res["holdout_traces"]),
        heldout_rmse=res["heldout_rmse"],
        history=rundir.read_metrics(run_dir),
        elapsed=res["elapsed"],
        run_dir=run_dir,
        constrained=FitResult.constrained_from_summary(res),
    )



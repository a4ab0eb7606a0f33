"""Typed configuration of a fit. Every number that shapes the result lives here.

Budgets are step counts, not seconds, so a fit is deterministic for a given seed and a
resumed fit ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass
class PriorConfig:
    """The generic start (see :class:`hybridhh.learned.GatePrior`); voltages relative
    to the resting potential estimated from the data, mV; tau in ms.

    ``refine_starts`` > 0: before the MLP is trained, the prior's 9 numbers are fitted to
    the teacher-forcing loss on steps of about ``refine_dt`` ms: ``refine_iter`` L-BFGS
    iterations on the squared loss from the prior and from ``refine_starts - 1`` seeded
    perturbations of it (V_half by 15 mV SD, slope and tau_max by factors e^(0.5 z) and
    e^z), then the best one once more on the Cauchy loss (``TeacherConfig.robust``), peak
    taus floored at half a step; the result is the MLP's prior (see
    :mod:`hybridhh.fitting.prior`). 0: the prior as given. Measured on the default set: the
    default prior and the two perturbed priors of ``benchmarks/fit.py`` (activation 5 mV
    above rest, slope 5 mV, tau 0.3 ms; 30 / -10 mV, slope 12 mV) all end at the same
    refined prior (Cauchy loss 0.122). Starting the search on the Cauchy loss (first
    version) found it in only 2 of 12 starts for fit seed 2, whose search then ended in
    a basin without spikes and whose fit failed (tau median 94 %); on the squared loss 5-7
    of 12 starts find it, for seeds 0, 2 and 5 alike.
    """

    offset_activation: float = 15.0
    offset_inactivation: float = 0.0
    slope: float = 8.0
    tau_max: float = 3.0
    refine_starts: int = 12
    refine_dt: float = 0.16
    refine_iter: int = 60


@dataclass
class TeacherConfig:
    """Stage 1, teacher forcing (see :mod:`hybridhh.fitting.teacher`).

    ``starts`` MLP initialisations (seeds derived from the fit's seed) each run the Adam
    phase and the first L-BFGS resolution; the one with the lowest loss goes on (a
    multi-start: an unlucky start can end in a wrong basin, and its loss shows it).
    2 since the prior is refined first (:class:`PriorConfig`; with 3 starts a fit took
    ~24 s longer, about 120 s on this machine); measured with 2 on fit seeds 0-4: every
    kinetics target met, 85-102 s.

    The multi-start only has to put the Gauss–Newton stage in the right basin, which it
    then finds to the last digit: from 300 Adam steps and 12 L-BFGS steps per start (tau
    median 34-49 % off) the stage converges to the same table as from 600 and 24 (20-27 %
    off; objective 4.6582e-6 both, fit seeds 0 and 2), in 20 iterations instead of 16,
    and the two starts take 25 s instead of 47 s; from 150 and 6 (61-84 % off) still the
    same, in 24. Levenberg–Marquardt straight from the refined prior (no multi-start)
    ends in a wrong basin (objective 3.1e-3, tau median 65 % off).

    ``adam_steps`` Adam steps on the recording sub-sampled to steps of about ``adam_dt``
    ms, with a Cauchy loss of scale ``robust`` (bounded pull of far-off samples from a
    generic start); then L-BFGS (strong Wolfe) for ``lbfgs`` = ((step ms, outer steps),
    ...), each outer step up to ``lbfgs_max_iter`` iterations, on the plain mean squared
    loss. Coarse steps are cheap and find the basin; a value below the recording's own
    sample step means "every sample". Entries after the first run after the Gauss–Newton
    stage: they polish the distilled MLP on the exact loss (on adaptive steps, see
    below). Measured (fit seed 2): distillation leaves the MLP's curves within 0.4 % of
    the converged table, but raises the loss 75× (1.7e-4 against 2.3e-6: the loss is
    sharp in directions a uniform curve fit does not weigh); 30 L-BFGS steps (~9 s) bring
    it to 8e-6, and the held-out free-running V RMSE on fit seeds 0/1/2 from 1.6/2.3/0.7
    to 1.3/0.14/0.31 mV. The default polish is 24 steps (about 10 s) since the neural-ODE
    stage after it fits V directly (:class:`ODEConfig`), to keep the fit under 2 minutes.

    ``gauss_newton`` = ((step ms, most iterations), ...): after the first L-BFGS resolution,
    Levenberg–Marquardt on the kinetics tabulated at nodes ``gn_node_step`` mV apart
    (roughness penalty ``gn_smoothness``), then the MLP is fitted to the table
    (``distill_iter`` L-BFGS iterations) and the remaining L-BFGS resolutions polish it
    (see :mod:`hybridhh.fitting.gauss_newton`). Empty: no Gauss–Newton stage. With
    ``adaptive = dv`` (mV) the steps of the Gauss–Newton stage and of the L-BFGS entries
    after it are adaptive: at most the entry's step, and shorter wherever V travels more
    than ``dv`` within it (spikes), see
    :func:`hybridhh.fitting.teacher.adaptive_samples`; None: uniform steps. Measured from the
    true curves on the default set, the loss's own optimum is 0.3/0.6/0.3 % (m/h/n tau
    median) off the truth with adaptive 0.04 ms steps (1 mV), 0.5/1.1/0.3 % with uniform
    0.02 ms steps, with 35 % fewer terms; at 18.5 °C 1.6/0.5/0.5 % against 3.2/0.6/2.9 %.
    LM uses geodesic acceleration (``gn_geodesic``; None: off) and stops once converged:
    from fit seed 2's multi-start (n tau 11 %), n's tau median error was 2.6 / 0.9 /
    0.4 % after 8 / 12 / 16 iterations (plain LM: 6.2 / 5.4 / 4.7 %, and 1.8 % after
    60); it stopped after 24.
    """

    starts: int = 2
    adam_steps: int = 300
    adam_lr: float = 3e-3
    adam_dt: float = 0.08
    robust: float | None = 1.0
    gauss_newton: tuple = ((0.04, 40),)
    gn_node_step: float = 3.0
    gn_smoothness: float = 1e-4
    adaptive: float | None = 1.0
    gn_geodesic: float | None = 0.75
    distill_iter: int = 600
    lbfgs: tuple = ((0.04, 12), (0.04, 24))
    lbfgs_max_iter: int = 10
    lbfgs_history: int = 50
    lbfgs_restart: int = 0
    window: int = 1


@dataclass
class DenoiseConfig:
    """Stage 1b for noisy recordings (see :mod:`hybridhh.fitting.denoise`): the noise-free
    path (V and gates at every sample) estimated jointly with the kinetics, after the
    Gauss–Newton stage; the stages after it (distillation, polish, neural ODE starts) work
    along that path.

    Runs when the estimated noise SD on V (:meth:`~hybridhh.fitting.data.TraceData.noise_estimate`)
    exceeds ``threshold`` mV (None: never). ``q`` (mV per sample step) and ``q_gate``
    (per step): how far V and the gates may depart from the model per step;
    ``iterations``: Levenberg–Marquardt iterations at most (with geodesic acceleration; it
    stops when one lowers the objective by less than 1e-6, relative); ``smoothness``:
    weight of the kinetics' roughness.

    Measured on the default set, fit seed 0, stage 1b alone from the fit's own
    Gauss–Newton result (tau median errors m/h/n; run to a 1e-8 gain, which the default
    1e-6 reaches within an iteration or two):

    * 1 mV noise (start 9.1/25.9/80.0 %): converged after 28 iterations, 155 s; tau
      median 1.4/1.7/2.6 %, p90 4.8/4.0/8.9 %, x_inf max error 0.024/0.008/0.021, the path
      within 0.079 mV RMS of the noise-free V. Without the acceleration and stopped at a
      1e-4 gain: 12 iterations, 47-58 s, 1.2/1.0/2.5 % (objective 0.99599 against
      0.99595 converged).
    * 0.3 mV noise (start 10.5/8.5/14.1 %): 22 iterations, 126 s; 1.7/1.2/2.8 %, p90
      3.8/2.4/10.1 %. Without the acceleration, stopped at a 1e-4 gain: 6 iterations,
      4.6/5.7/3.8 %, p90 29 % (the objective is flat along the kinetics: the gain per
      iteration falls below 1e-4 long before the kinetics settle); 40 iterations:
      0.8/1.9/4.0 %, p90 17 %.
    * The L-BFGS version this replaces (path and kinetics, gates following the path) took
      3000 iterations, 450 s, for 6.4/5.2/10.8 % at 1 mV.
    """

    threshold: float | None = 0.1
    q: float = 0.03
    q_gate: float = 1e-4
    iterations: int = 30
    smoothness: float = 0.01


@dataclass
class ODEConfig:
    """Stage 2, the neural ODE: free-running multiple shooting on V (see
    :mod:`hybridhh.fitting.shooting`). Windows of ``windows`` ms (one entry per sub-stage),
    ``steps`` optimiser steps each (L-BFGS: up to ``max_iter`` iterations a step) on at
    most ``max_windows`` windows (a fixed seeded subset for L-BFGS, a new one every step
    for Adam), integrated by ``method`` with a step of ``dt`` ms. Every evaluation runs the
    ODE step by step, all windows at once, so its cost is the number of RK4 steps in a
    window, not the number of windows (forward and backward, measured together: 3 ms
    windows 0.38 s whether 495 or 256, 1.5 ms windows 0.25 s for all 975, 1 ms 0.23 s, 6 ms
    0.60 s); the budget is counted in steps.

    Default: 12 steps on 1.5 ms windows (all of them). Fit seeds 0-4: held-out V RMSE
    0.71/0.35/0.30/0.16/0.59 mV, 24-28 s for the stage. Before: 8 steps on 3 ms windows,
    0.13/0.20/0.69/0.14/0.48 mV after the longer multi-start (600 Adam, 24 L-BFGS steps),
    0.91/1.02/0.21/0.07/0.64 mV after the shorter one (:class:`TeacherConfig`); 12 steps
    on 3 ms windows: 0.29/0.41 mV on seeds 0/1, but whole fits of 115-116 s against
    86-95 s with 1.5 ms windows, measured within the same 20 minutes.

    Earlier, on 3 ms windows, from the teacher-forcing result of the default set (fit
    seeds 0/2/4,
    held-out V RMSE on the benchmark's new stimuli): 1.69/3.83/2.23 mV before the stage;
    after 5 L-BFGS steps 0.22/1.11/1.10, after 8 0.13/0.71/0.66, after 9 0.15/0.44/0.35,
    after 12 0.07/0.34/0.30 mV (about 3.3 s a step; not monotonic step by step), with tau
    median errors unchanged at about 1 %. The stimulus
    is interpolated between its own samples inside an integration step: with the samples
    at the integration grid only (the first version), RK4 at 0.02 ms with the *true*
    kinetics was off the recording by 0.075 mV RMS on 3 ms windows, as much as a fitted
    model, and the stage fitted that integration error; now 0.0004 mV at 0.02 ms and
    0.004 mV at 0.04 ms.
    """

    enabled: bool = True
    windows: tuple = (1.5,)
    steps: int = 12
    optimizer: str = "lbfgs"
    lr: float = 1.0
    max_iter: int = 5
    max_windows: int = 1024
    method: str = "rk4"
    dt: float = 0.04


@dataclass
class FitConfig:
    """Everything a fit needs besides the data.

    Attributes
    ----------
    seed
        Seeds the MLP initialisation and every random choice.
    width
        Hidden-layer width of the MLP (of each gate's MLP when ``separate``).
    separate
        One small MLP per gate (default) instead of one trunk shared by all gates.
    parametrisation
        ``"inf_tau"`` or ``"alpha_beta"`` (see :mod:`hybridhh.learned`).
    holdout
        Trace names or indices kept out of training and used to accept or reject the
        neural-ODE stage. ``"auto"``: the last trace when there are 4 or more, else none.
    threads
        torch intra-op threads (None: torch's default).
    checkpoint_every
        Write ``checkpoint_last.pt`` every this many steps (and at every stage end).
    """

    seed: int = 0
    width: int = 32
    parametrisation: str = "inf_tau"
    input_gain: float = 3.0
    separate: bool = True
    holdout: object = "auto"
    prior: PriorConfig = field(default_factory=PriorConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    ode: ODEConfig = field(default_factory=ODEConfig)
    threads: int | None = None
    checkpoint_every: int = 20

    def __post_init__(self):
        if self.width < 1:
            raise ConfigError(f"width must be >= 1, got {self.width}")
        if self.parametrisation not in ("inf_tau", "alpha_beta"):
            raise ConfigError("parametrisation must be 'inf_tau' or 'alpha_beta', "
                              f"got {self.parametrisation!r}")
        p = self.prior
        if p.refine_starts < 0 or p.refine_iter < 0 or p.refine_dt < 0:
            raise ConfigError("prior: refine_starts, refine_iter and refine_dt must be >= 0 "
                              f"(got {p.refine_starts}, {p.refine_iter}, {p.refine_dt}); "
                              "refine_starts=0 turns the refinement off")
        t = self.teacher
        if t.adam_steps < 0 or t.adam_dt < 0 or t.window < 1 or t.starts < 1:
            raise ConfigError("teacher: adam_steps and adam_dt must be >= 0, window and "
                              "starts >= 1")
        for item in tuple(t.lbfgs) + tuple(t.gauss_newton):
            if len(item) != 2 or float(item[0]) < 0 or int(item[1]) < 0:
                raise ConfigError(f"teacher.lbfgs entries must be (step ms >= 0, steps >= 0), "
                                  f"got {item!r}")
        if t.adaptive is not None and (t.adaptive <= 0 or t.window != 1):
            raise ConfigError(f"teacher.adaptive must be > 0 mV and needs window == 1 "
                              f"(got adaptive={t.adaptive}, window={t.window}); set "
                              "adaptive=None for uniform steps")
        dn = self.denoise
        if (dn.threshold is not None and dn.threshold < 0) or dn.q <= 0 or \
                dn.q_gate <= 0 or dn.iterations < 0 or dn.smoothness < 0:
            raise ConfigError(f"denoise: threshold must be >= 0 mV or None, q > 0 mV, "
                              f"q_gate > 0, iterations >= 0, smoothness >= 0 (got {dn})")
        if self.ode.enabled and any(w <= 0 for w in self.ode.windows):
            raise ConfigError(f"ode.windows must be > 0 ms, got {self.ode.windows}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FitConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown FitConfig fields: {sorted(unknown)}")
        sub = {"prior": PriorConfig, "teacher": TeacherConfig, "denoise": DenoiseConfig,
               "ode": ODEConfig}
        for name, typ in sub.items():
            if name in d and isinstance(d[name], dict):
                fields = {f.name for f in dataclasses.fields(typ)}
                bad = set(d[name]) - fields
                if bad:
                    raise ConfigError(f"unknown {name} config fields: {sorted(bad)}")
                vals = dict(d[name])
                for k, v in vals.items():
                    if isinstance(v, list):
                        vals[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
                d[name] = typ(**vals)
        if isinstance(d.get("holdout"), list):
            d["holdout"] = tuple(d["holdout"])
        return cls(**d)

    def updated(self, changes: dict) -> FitConfig:
        """A copy with ``changes`` on top: ``{"seed": 1, "teacher": {"adam_steps": 300}}``
        (nested dicts change single fields of a sub-config; see :func:`parse_assignments`).
        Checked like any new config: a bad field or value raises :class:`ConfigError`."""
        d = self.to_dict()
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(d.get(key), dict):
                d[key] = {**d[key], **value}
            else:
                d[key] = value
        try:
            return FitConfig.from_dict(d)
        except TypeError as e:
            raise ConfigError(f"fit configuration: {e}") from e

    @classmethod
    def quick(cls, **changes) -> FitConfig:
        """A tiny configuration for tests and notebooks (seconds, not a converged fit)."""
        cfg = cls(width=16, prior=PriorConfig(refine_starts=2, refine_iter=30),
                  teacher=TeacherConfig(starts=1, adam_steps=300, gauss_newton=((0.05, 4),),
                                        lbfgs=((0.05, 8), (0.0, 4))),
                  ode=ODEConfig(windows=(1.0,), steps=1, max_windows=32))
        return dataclasses.replace(cfg, **changes)


def parse_assignments(items) -> dict:
    """``["teacher.adam_steps=300", "seed=1"]`` -> ``{"teacher": {"adam_steps": 300},
    "seed": 1}``, for :meth:`FitConfig.updated` (what ``--set FIELD=VALUE`` means on the
    command line and in the benchmarks). VALUE is JSON, or else a bare string
    (``ode.method=rk4``)."""
    out: dict = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. "
                              "teacher.adam_steps=300")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # a bare string, e.g. ode.method=rk4
        *outer, last = key.split(".")
        d = out
        for k in outer:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise ConfigError(f"--set {item!r}: {k} is a value, not a section")
        d[last] = value
    return out

"""Typed configuration of a fit. Every number that shapes the result lives here.

Budgets are step counts, not seconds, so a fit is deterministic for a given seed and a
resumed fit ends exactly where an uninterrupted one would.

Every config is frozen (change one with :func:`dataclasses.replace` or
:meth:`FitConfig.updated`) and checks its own fields when it is made: a bad value raises
:class:`~hybridhh.errors.ConfigError` naming the field, the value and what is allowed,
before a fit starts. Sequences (from JSON: lists) become tuples. One section per stage:
``prior`` (stage 0), ``teacher`` (stage 1), ``denoise`` (stage 1b), ``ode`` (stage 2).
The measurements behind the defaults are in docs/method.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field

from ..errors import ConfigError
from .ode import METHODS
from .trainer import OPTIMIZERS

__all__ = ["PriorConfig", "TeacherConfig", "DenoiseConfig", "ODEConfig", "FitConfig",
           "PARAMETRISATIONS", "parse_assignments"]

#: the MLP's parametrisations (:class:`~hybridhh.learned.RateMLP`)
PARAMETRISATIONS = ("inf_tau", "alpha_beta")


# -- field checks: each returns the value (sequences as tuples) or raises ConfigError --------
def _fail(where: str, allowed: str, value):
    raise ConfigError(f"{where} must be {allowed}, got {value!r}")


def _is_integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _integer(low: int | None = None, optional: bool = False):
    def check(where, v):
        if optional and v is None:
            return v
        if not (_is_integer(v) and (low is None or v >= low)):
            bound = "" if low is None else f" >= {low}"
            _fail(where, f"an integer{bound}" + (" or None" if optional else ""), v)
        return int(v)
    return check


def _number(low: float | None = None, strict: bool = False, unit: str = "",
            optional: bool = False):
    def check(where, v):
        if optional and v is None:
            return v
        if not (_is_number(v) and (low is None or (v > low if strict else v >= low))):
            bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
            _fail(where, f"a number{bound}" + (f" ({unit})" if unit else "")
                  + (" or None" if optional else ""), v)
        return v
    return check


def _boolean(where, v):
    if not isinstance(v, bool):
        _fail(where, "true or false", v)
    return v


def _choice(options):
    def check(where, v):
        if v not in options:
            _fail(where, "one of " + ", ".join(repr(o) for o in options), v)
        return v
    return check


def _sequence(where, v, allowed):
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        _fail(where, allowed, v)
    return tuple(v)


def _windows(where, v):
    allowed = "a sequence of window lengths > 0 (ms), e.g. [1.5]"
    v = _sequence(where, v, allowed)
    if not all(_is_number(w) and w > 0 for w in v):
        _fail(where, allowed, v)
    return v


def _resolutions(count: str):
    """((step ms >= 0, ``count`` >= 0), ...), e.g. ``teacher.lbfgs``."""
    allowed = f"a sequence of (step ms >= 0, {count} >= 0) pairs, e.g. [[0.04, 12]]"

    def check(where, v):
        v = _sequence(where, v, allowed)
        out = []
        for item in v:
            if isinstance(item, (list, tuple)) and len(item) == 2 and _is_number(item[0]) \
                    and item[0] >= 0 and _is_integer(item[1]) and item[1] >= 0:
                out.append(tuple(item))
            else:
                raise ConfigError(f"{where} must be {allowed}, got entry {item!r}")
        return tuple(out)
    return check


def _kinds(where, v):
    allowed = 'a non-empty sequence of "refined" and "generic", e.g. ["refined", "generic"]'
    v = _sequence(where, v, allowed)
    if not v or not all(k in ("refined", "generic") for k in v):
        _fail(where, allowed, v)
    return v


def _holdout(where, v):
    allowed = ('"auto", None, a trace name or index, or a sequence of trace names and '
               'indices')
    if v is None or isinstance(v, str) or _is_integer(v):
        return v
    v = _sequence(where, v, allowed)
    if not all(isinstance(h, str) or _is_integer(h) for h in v):
        _fail(where, allowed, v)
    return v


def _check_fields(config, section: str, checks: dict) -> None:
    """Run ``checks`` (field name -> check) on a frozen config, storing normalised values."""
    for name, check in checks.items():
        where = f"{section}.{name}" if section else name
        object.__setattr__(config, name, check(where, getattr(config, name)))


@dataclass(frozen=True)
class PriorConfig:
    """Stage 0, ``prior``: the generic start and its refinement on the data (see
    :class:`hybridhh.learned.GatePrior` and :mod:`hybridhh.fitting.prior`).

    The generic prior knows only which gates activate (m, n) and which inactivate (h),
    placed relative to the resting potential estimated from the data. With
    ``refine_starts`` > 0 its 9 numbers (half-activation voltage, slope, peak tau of each
    gate) are first fitted to the teacher-forcing loss: ``refine_iter`` L-BFGS iterations
    on the squared loss from the prior and from ``refine_starts - 1`` seeded perturbations
    of it (V_half by 15 mV SD, slope and tau_max by factors e^(0.5 z) and e^z), then the
    best one once more on the Cauchy loss (``TeacherConfig.robust``), peak taus floored at
    half a step. The result is the MLP's prior.

    Attributes
    ----------
    offset_activation
        Half-activation voltage of m and n above rest, mV. Change it (with ``slope`` and
        ``tau_max``) only for cells far from squid-like kinetics; the refinement usually
        makes it irrelevant.
    offset_inactivation
        Half-inactivation voltage of h above rest, mV.
    slope
        Slope factor of every gate's x_inf, mV (> 0).
    tau_max
        Peak time constant of every gate, ms (> 0).
    refine_starts
        Starts of the refinement (>= 0); 0 turns it off (the prior as given). More starts
        find the basin with spikes more reliably, at the cost of time.
    refine_dt
        Teacher-forcing step of the refinement, ms (>= 0; rounded to whole samples, at
        least one): coarse steps are enough to find the basin.
    refine_iter
        L-BFGS iterations per start (>= 0).
    """

    offset_activation: float = 15.0
    offset_inactivation: float = 0.0
    slope: float = 8.0
    tau_max: float = 3.0
    refine_starts: int = 12
    refine_dt: float = 0.16
    refine_iter: int = 60

    def __post_init__(self):
        _check_fields(self, "prior", {
            "offset_activation": _number(unit="mV"),
            "offset_inactivation": _number(unit="mV"),
            "slope": _number(0, strict=True, unit="mV"),
            "tau_max": _number(0, strict=True, unit="ms"),
            "refine_starts": _integer(0),
            "refine_dt": _number(0, unit="ms"),
            "refine_iter": _integer(0),
        })


@dataclass(frozen=True)
class TeacherConfig:
    """Stage 1, ``teacher``: teacher forcing on the current balance (see
    :mod:`hybridhh.fitting.teacher`), in phases: a multi-start (or one Adam phase), the
    L-BFGS resolutions, and the Gauss–Newton stage after the first of them.

    Attributes
    ----------
    starts
        MLP initialisations (>= 1; seeds derived from the fit's seed) that each run the
        Adam phase and the first L-BFGS resolution; the one with the lowest loss goes on.
        A multi-start guards against an unlucky start ending in a wrong basin (its loss
        shows it). 1: no multi-start, the Adam phase runs on the model itself. Raise it if
        fits of different seeds end far apart.
    start_kinds
        What the multi-start's candidates start from, cycled over them: ``"refined"``
        (the prior as stage 0 refined it) or ``"generic"`` (the generic prior before the
        refinement). Starts that differ in kind, not only in seed: on some recordings the
        refinement fits the two-state prior into a wrong basin (h half-inactivated 35 mV
        too low) that every seed then inherits.
    start_gn
        Levenberg–Marquardt iterations (>= 0) of the Gauss–Newton stage run on each
        candidate of the multi-start; the candidate with the lowest objective goes on.
        0: candidates are judged by their L-BFGS loss (which does not tell the basins of
        different kinds apart), and exactly ``starts`` run.
    max_starts
        With ``start_gn`` > 0, the multi-start runs at least ``starts`` candidates and
        then more, up to this many (``starts`` where that is more), until the best
        objective is within the level the quality verdict accepts (5x the loss's floor,
        :func:`hybridhh.fitting.quality.objective_floor`): a wrong basin's objective is
        20-50x above it.
    adam_steps
        Adam steps (>= 0) from the generic start, on a Cauchy loss; 0: no Adam phase.
    adam_lr
        Adam learning rate (> 0).
    adam_dt
        Teacher-forcing step of the Adam phase, ms (>= 0; rounded to whole samples, at
        least one).
    robust
        Cauchy scale of the Adam phase's loss on the normalised residual (> 0), which
        bounds the pull of samples a poor model misses by far (also the last run of the
        prior's refinement, :class:`PriorConfig`); None: the plain squared loss.
    gauss_newton
        ((step ms, most iterations), ...) of the Gauss–Newton stage: after the first L-BFGS
        resolution, Levenberg–Marquardt on the kinetics tabulated at voltage nodes, then
        the MLP fitted to the table (see :mod:`hybridhh.fitting.gauss_newton`). It stops
        early once converged. Empty: no Gauss–Newton stage (and no stage 1b).
    gn_node_step
        Spacing of the table's voltage nodes, mV (> 0).
    gn_smoothness
        Weight of the table's roughness penalty (second differences; >= 0): keeps the
        curves smooth and extends them where the data never go.
    adaptive
        ``dv`` (mV, > 0): the steps of the Gauss–Newton stage and of the L-BFGS entries
        after it are adaptive, at most the entry's step and shorter wherever V travels
        more than ``dv`` within it (spikes; :func:`hybridhh.fitting.teacher.adaptive_samples`).
        Needs ``window == 1``. None: uniform steps.
    gn_geodesic
        Geodesic acceleration of Levenberg–Marquardt: the largest accepted ratio of the
        curvature correction to the step (> 0; see
        :func:`hybridhh.fitting.gauss_newton.levenberg_marquardt`). None: plain LM.
    distill_iter
        L-BFGS iterations (>= 1) fitting the MLP to the Gauss–Newton table.
    lbfgs
        ((step ms, outer steps), ...): L-BFGS (strong Wolfe) on the plain squared loss at
        each resolution, in order; each outer step up to ``lbfgs_max_iter`` iterations. A
        step below the recording's own sample step means every sample. The first entry
        finds the basin on coarse steps; the entries after it run after the Gauss–Newton
        stage and polish the distilled MLP on the exact loss. An entry of 0 steps is
        skipped.
    lbfgs_max_iter
        Iterations per L-BFGS outer step (>= 1).
    lbfgs_history
        L-BFGS history size (>= 1).
    lbfgs_restart
        Restart L-BFGS (fresh curvature history) every this many outer steps (>= 0);
        0: never.
    window
        Increment window of the loss in steps (>= 1): 1 is the dV/dt loss; a longer window
        keeps noise on V from being differentiated (adaptive steps need 1).
    """

    starts: int = 2
    start_kinds: tuple = ("refined", "generic")
    start_gn: int = 8
    max_starts: int = 6
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

    def __post_init__(self):
        _check_fields(self, "teacher", {
            "starts": _integer(1),
            "start_kinds": _kinds,
            "start_gn": _integer(0),
            "max_starts": _integer(1),
            "adam_steps": _integer(0),
            "adam_lr": _number(0, strict=True),
            "adam_dt": _number(0, unit="ms"),
            "robust": _number(0, strict=True, optional=True),
            "gauss_newton": _resolutions("most iterations"),
            "gn_node_step": _number(0, strict=True, unit="mV"),
            "gn_smoothness": _number(0),
            "adaptive": _number(0, strict=True, unit="mV", optional=True),
            "gn_geodesic": _number(0, strict=True, optional=True),
            "distill_iter": _integer(1),
            "lbfgs": _resolutions("outer steps"),
            "lbfgs_max_iter": _integer(1),
            "lbfgs_history": _integer(1),
            "lbfgs_restart": _integer(0),
            "window": _integer(1),
        })
        if self.adaptive is not None and self.window != 1:
            raise ConfigError(f"teacher.adaptive needs teacher.window == 1 (got "
                              f"adaptive={self.adaptive}, window={self.window}); set "
                              "adaptive=None for uniform steps")


@dataclass(frozen=True)
class DenoiseConfig:
    """Stage 1b, ``denoise``, for noisy recordings (see :mod:`hybridhh.fitting.denoise`):
    the noise-free path (V and gates at every sample) estimated jointly with the kinetics,
    inside the Gauss–Newton stage; the stages after it (distillation, polish, neural ODE
    starts) work along that path.

    Attributes
    ----------
    threshold
        The stage runs when the estimated noise SD on V
        (:meth:`~hybridhh.fitting.data.TraceData.noise_estimate`) exceeds this, mV
        (>= 0); None: never. It needs the Gauss–Newton stage (``TeacherConfig.gauss_newton``).
    q
        How far V may depart from the model per sample step, mV (> 0).
    q_gate
        How far the gates may depart from the model per sample step (> 0; tiny: the
        gates are deterministic).
    iterations
        Levenberg–Marquardt iterations at most (>= 0; geodesic acceleration; it stops when
        one lowers the objective by less than 1e-6, relative); 0: the stage never runs.
    smoothness
        Weight of the kinetics' roughness (>= 0).
    """

    threshold: float | None = 0.1
    q: float = 0.03
    q_gate: float = 1e-4
    iterations: int = 30
    smoothness: float = 0.01

    def __post_init__(self):
        _check_fields(self, "denoise", {
            "threshold": _number(0, unit="mV", optional=True),
            "q": _number(0, strict=True, unit="mV"),
            "q_gate": _number(0, strict=True),
            "iterations": _integer(0),
            "smoothness": _number(0),
        })


@dataclass(frozen=True)
class ODEConfig:
    """Stage 2, ``ode``, the neural ODE: free-running multiple shooting on V (see
    :mod:`hybridhh.fitting.ode`). Every evaluation runs the ODE step by step, all windows
    at once, so its cost grows with the integration steps in a window, not with the
    number of windows; the budget is counted in optimiser steps.

    Attributes
    ----------
    enabled
        Run the stage (it is kept only where it lowers the held-out free-running V error).
    windows
        Window lengths, ms (> 0), one sub-stage each, in order. Short windows keep the
        problem well conditioned; longer ones follow.
    steps
        Optimiser steps per window length (>= 0); 0: no stage.
    optimizer
        ``"lbfgs"`` (a fixed seeded subset of windows) or ``"adam"`` (a new subset every
        step).
    lr
        Step size (> 0): the Adam learning rate, or the L-BFGS initial step.
    max_iter
        Iterations per L-BFGS step (>= 1).
    max_windows
        Windows per loss evaluation at most (>= 1; a seeded random subset when there are
        more).
    method
        Integrator (:data:`hybridhh.fitting.ode.METHODS`, torchdiffeq's names): a
        fixed-step one with step ``dt`` (its gate rates capped where the step cannot
        resolve them), or an adaptive one.
    dt
        Integration step of a fixed-step method, ms (> 0; rounded to whole samples, and
        at most twice the model's fastest time constant over the visited voltages).
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

    def __post_init__(self):
        _check_fields(self, "ode", {
            "enabled": _boolean,
            "windows": _windows,
            "steps": _integer(0),
            "optimizer": _choice(OPTIMIZERS),
            "lr": _number(0, strict=True),
            "max_iter": _integer(1),
            "max_windows": _integer(1),
            "method": _choice(METHODS),
            "dt": _number(0, strict=True, unit="ms"),
        })


#: FitConfig's sections and their types
_SECTIONS = {"prior": PriorConfig, "teacher": TeacherConfig, "denoise": DenoiseConfig,
             "ode": ODEConfig}


@dataclass(frozen=True)
class FitConfig:
    """Everything a fit needs besides the data.

    Attributes
    ----------
    seed
        Seeds the MLP initialisation and every random choice (an integer).
    width
        Hidden-layer width of the MLP (of each gate's MLP when ``separate``; >= 1).
    parametrisation
        ``"inf_tau"`` or ``"alpha_beta"`` (see :mod:`hybridhh.learned`).
    input_gain
        The MLP's input is ``input_gain * (V - center) / half_span`` (> 0; see
        :class:`~hybridhh.learned.RateMLP`).
    separate
        One small MLP per gate (default) instead of one trunk shared by all gates.
    holdout
        Trace names or indices kept out of training and used to accept or reject the
        neural-ODE stage. ``"auto"``: the last trace when there are 4 or more, else none.
    prior, teacher, denoise, ode
        The stages' configurations (:class:`PriorConfig`, :class:`TeacherConfig`,
        :class:`DenoiseConfig`, :class:`ODEConfig`).
    threads
        torch intra-op threads (>= 1; None: torch's default).
    checkpoint_every
        Write ``checkpoint_last.pt`` every this many steps (>= 1; and at every phase end).
    interpolate_to
        The coarsest sample interval (ms) the fit works at: a clean recording sampled more
        coarsely (noise below ``denoise.threshold``) is interpolated to it first (V by a
        cubic spline through the samples, I linearly; :mod:`hybridhh.fitting.resample`), so
        that teacher forcing can follow a spike within a sample. None: the samples as
        recorded. Default 0.01 ms.
    interpolate_budget
        At most this many samples (all traces) after interpolation (>= 1): a longer
        recording is interpolated by less, or not at all, so that the fit's cost stays that
        of ~2·10⁵ samples. Default 200000.
    free
        Cell parameters to estimate with the kinetics although the recording gives them
        (names from ``C_total, g_Na, E_Na, g_K, E_K, g_L, E_L``; what the recording's
        ``/cell`` marks unknown is estimated anyway; see :mod:`hybridhh.fitting.cellfit`).
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
    interpolate_to: float | None = 0.01
    interpolate_budget: int = 200_000
    free: tuple = ()

    def __post_init__(self):
        _check_fields(self, "", {
            "seed": _integer(),
            "width": _integer(1),
            "parametrisation": _choice(PARAMETRISATIONS),
            "input_gain": _number(0, strict=True),
            "separate": _boolean,
            "holdout": _holdout,
            "threads": _integer(1, optional=True),
            "checkpoint_every": _integer(1),
            "interpolate_to": _number(0, strict=True, unit="ms", optional=True),
            "interpolate_budget": _integer(1),
        })
        _check_free(self)
        for name, typ in _SECTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, typ):
                article = "an" if typ.__name__[0] in "AEIOU" else "a"
                raise ConfigError(f"{name} must be {article} {typ.__name__} (FitConfig.from_dict "
                                  f"takes a dict of its fields), got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FitConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown FitConfig fields: {sorted(unknown)}")
        for name, typ in _SECTIONS.items():
            if name in d and isinstance(d[name], dict):
                fields = {f.name for f in dataclasses.fields(typ)}
                bad = set(d[name]) - fields
                if bad:
                    raise ConfigError(f"unknown {name} config fields: {sorted(bad)}")
                d[name] = typ(**d[name])  # checks (and makes tuples of) its own fields
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
        """A tiny configuration for tests and notebooks (seconds, not a converged fit; the
        samples as recorded, ``interpolate_to=None``)."""
        cfg = cls(width=16, interpolate_to=None, prior=PriorConfig(refine_starts=2, refine_iter=30),
                  teacher=TeacherConfig(starts=1, adam_steps=300, gauss_newton=((0.05, 4),),
                                        lbfgs=((0.05, 8), (0.0, 4))),
                  ode=ODEConfig(windows=(1.0,), steps=1, max_windows=32))
        return dataclasses.replace(cfg, **changes)


def _check_free(config) -> None:
    from .cellfit import CELL_NAMES

    free = config.free
    if isinstance(free, str):
        free = tuple(x.strip() for x in free.split(",") if x.strip())
    try:
        free = tuple(free)
    except TypeError:
        raise ConfigError(f"free must be a list of cell parameter names, got {free!r}") from None
    bad = [n for n in free if n not in CELL_NAMES]
    if bad:
        raise ConfigError(f"free: unknown cell parameter(s) {bad}; the fit can estimate "
                          f"{', '.join(CELL_NAMES)}")
    object.__setattr__(config, "free", free)


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

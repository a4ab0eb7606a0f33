"""``hybridhh fit`` and ``hybridhh rates``: thin wrappers over :mod:`hybridhh.fitting`.

Every ``fit`` option that sets a configuration field is a row of :data:`CONFIG_FLAGS`
(option -> field path); the rows and ``--set SECTION.FIELD=VALUE`` go through the one
helper the benchmarks use (:func:`hybridhh.fitting.config.parse_assignments` and
:meth:`FitConfig.updated`), so the config's own checks judge every value, before the
recording is read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ._args import (
    add_quiet,
    existing_file,
    finite,
    non_negative_int,
    positive,
    positive_int,
    say,
    warn,
)
from ._registry import EXIT_OK, command

__all__ = ["ConfigFlag", "CONFIG_FLAGS", "config_from_args", "unfinished_message",
           "cmd_fit", "cmd_rates"]


def _fitting():
    """The fitting API (imported here only: it imports torch)."""
    from ..fitting import fit, load_fit
    from ..fitting.config import FitConfig, parse_assignments

    return fit, load_fit, FitConfig, parse_assignments


# --- fit ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfigFlag:
    """A ``hybridhh fit`` option that sets FitConfig field ``field`` (``section.name``).

    ``help(default_config)`` is its help text (defaults read from the config);
    ``arguments`` are the keywords of ``add_argument``; ``values(value, config)`` turns
    the parsed value into ``{field path: value}`` (default ``{field: value}``).
    """

    option: str
    field: str
    help: Callable
    arguments: dict = dataclasses.field(default_factory=dict)
    values: Callable | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    def assignments(self, value, config) -> dict:
        """``{field path: value}`` for the config fields this option sets."""
        return {self.field: value} if self.values is None else self.values(value, config)


def _counts(option: str, counts: list[int], entries: tuple) -> tuple:
    """``entries`` ((step ms, count), ...) with the counts given on the command line."""
    if len(counts) != len(entries):
        raise ConfigError(f"{option} needs {len(entries)} counts >= 0 (one per resolution "
                          f"{[s for s, _ in entries]} ms), got {counts}")
    return tuple((s, n) for (s, _), n in zip(entries, counts, strict=True))


def _lbfgs(counts, cfg) -> dict:
    return {"teacher.lbfgs": _counts("--lbfgs-steps", counts, cfg.teacher.lbfgs)}


def _gauss_newton(counts, cfg) -> dict:
    gn = _counts("--gn-steps", counts, cfg.teacher.gauss_newton)
    return {"teacher.gauss_newton": gn if any(n for _, n in gn) else ()}


def _ode_steps(n, cfg) -> dict:
    return {"ode.steps": n, "ode.enabled": n > 0}


def _lbfgs_help(d) -> str:
    t = d.teacher
    first = t.lbfgs[0][0] if t.lbfgs else 0.0
    return ("L-BFGS outer steps of each teacher-forcing resolution (default "
            f"{' '.join(str(n) for _, n in t.lbfgs)}: {first:g} ms before the Gauss-Newton "
            "stage, then a polish of the MLP on adaptive steps after it)")


def _gn_help(d) -> str:
    gn = d.teacher.gauss_newton
    return ("most Gauss-Newton iterations of each resolution (default "
            f"{' '.join(str(n) for _, n in gn)}: adaptive steps up to "
            f"{' / '.join(f'{s:g}' for s, _ in gn)} ms; it stops earlier once converged; "
            "all 0 skips the stage)")


#: The options of ``hybridhh fit`` that set one configuration field each.
CONFIG_FLAGS: tuple[ConfigFlag, ...] = (
    ConfigFlag("--seed", "seed", lambda d: f"random seed (default {d.seed})",
               {"type": int, "metavar": "N"}),
    ConfigFlag("--width", "width",
               lambda d: f"hidden-layer width of each gate's MLP (default {d.width})",
               {"type": positive_int, "metavar": "N"}),
    ConfigFlag("--parametrisation", "parametrisation",
               lambda d: f"MLP output parametrisation (default {d.parametrisation})",
               {"choices": ("inf_tau", "alpha_beta")}),
    ConfigFlag("--prior-starts", "prior.refine_starts",
               lambda d: "starts of the search that refines the generic prior on the data "
                         f"before the MLP (default {d.prior.refine_starts}; 0 uses the "
                         "prior as given)", {"type": non_negative_int, "metavar": "N"}),
    ConfigFlag("--adam-steps", "teacher.adam_steps",
               lambda d: f"teacher-forcing Adam steps (default {d.teacher.adam_steps})",
               {"type": non_negative_int, "metavar": "N"}),
    ConfigFlag("--lbfgs-steps", "teacher.lbfgs", _lbfgs_help,
               {"type": non_negative_int, "nargs": "+", "metavar": "N"}, _lbfgs),
    ConfigFlag("--gn-steps", "teacher.gauss_newton", _gn_help,
               {"type": non_negative_int, "nargs": "+", "metavar": "N"}, _gauss_newton),
    ConfigFlag("--denoise-iter", "denoise.iterations",
               lambda d: "most Levenberg-Marquardt iterations of the joint estimate of the "
                         "noise-free V and the kinetics, run when the estimated noise on V "
                         f"exceeds {d.denoise.threshold:g} mV (default "
                         f"{d.denoise.iterations}; it stops earlier once converged; 0 "
                         "disables it)", {"type": non_negative_int, "metavar": "N"}),
    ConfigFlag("--ode-steps", "ode.steps",
               lambda d: f"neural-ODE L-BFGS steps per window length (default {d.ode.steps}; "
                         "0 disables)", {"type": non_negative_int, "metavar": "N"}, _ode_steps),
    ConfigFlag("--holdout", "holdout",
               lambda d: "trace names or indices held out (default: the last trace when "
                         "there are >= 4); give no value to hold out nothing",
               {"nargs": "*", "metavar": "TRACE"}, lambda v, cfg: {"holdout": list(v)}),
    ConfigFlag("--threads", "threads", lambda d: "torch threads (default: torch's own)",
               {"type": positive_int, "metavar": "N"}),
    ConfigFlag("--free", "free",
               lambda d: "cell parameters to estimate with the kinetics although the "
                         "recording gives them (C_total, g_Na, E_Na, g_K, E_K, g_L, E_L; "
                         "what the recording's /cell marks unknown is estimated anyway)",
               {"nargs": "+", "metavar": "NAME"}, lambda v, cfg: {"free": list(v)}),
)


def _fit_arguments(p):
    FitConfig = _fitting()[2]
    d = FitConfig()  # the help states the defaults from the config itself
    p.add_argument("data", type=existing_file, help="recording file (HDF5, hybridhh format)")
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR",
                   help="run directory to create (or resume)")
    g = p.add_argument_group("configuration (applied in this order: --config, the options "
                             "below, --set)")
    g.add_argument("--config", type=existing_file, default=None, metavar="FILE.json",
                   help="JSON file with a full FitConfig (the options below override it)")
    for flag in CONFIG_FLAGS:
        g.add_argument(flag.option, default=None, help=f"{flag.help(d)} [{flag.field}]",
                       **flag.arguments)
    sections = [f.name for f in dataclasses.fields(d)
                if dataclasses.is_dataclass(getattr(d, f.name))]
    top = [f.name for f in dataclasses.fields(d) if f.name not in sections]
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set any FitConfig field, repeatable; VALUE is JSON, or else a "
                        "string, e.g. teacher.adam_steps=300, 'ode.windows=[1.5, 3]', "
                        f"ode.method=rk4. Fields: {', '.join(top)}, and "
                        f"{', '.join(s + '.NAME' for s in sections)} (see "
                        "hybridhh.fitting.config); overrides the options above")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_quiet(p, "no progress bar")


def _updated(cfg, items: list[str], where: str):
    """``cfg`` with the ``FIELD=VALUE`` ``items``; a bad one raises ConfigError naming
    ``where`` (the options that gave them)."""
    if not items:
        return cfg
    parse_assignments = _fitting()[3]
    changes = parse_assignments(items)
    try:
        return cfg.updated(changes)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def config_from_args(args):
    """The FitConfig of ``hybridhh fit`` ``args``: ``--config`` (or the defaults), the
    :data:`CONFIG_FLAGS` given, then ``--set``. Raises ConfigError naming the option."""
    FitConfig = _fitting()[2]
    if args.config:
        try:
            cfg = FitConfig.from_dict(json.loads(args.config.read_text()))
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise ConfigError(f"{args.config}: not a valid FitConfig JSON ({e})") from e
        except ConfigError as e:
            raise ConfigError(f"--config {args.config}: {e}") from None
    else:
        cfg = FitConfig()
    given = [f for f in CONFIG_FLAGS if getattr(args, f.dest, None) is not None]
    items = [f"{path}={json.dumps(value)}" for f in given
             for path, value in f.assignments(getattr(args, f.dest), cfg).items()]
    cfg = _updated(cfg, items, ", ".join(f.option for f in given))
    return _updated(cfg, list(args.set), "--set " + " ".join(args.set))


def _say_interpolated(run_dir) -> None:
    """One line when the fit ran on the recording interpolated to a finer grid."""
    try:
        data = json.loads((Path(run_dir) / "config.json").read_text())["data"]
    except (OSError, KeyError, ValueError):
        return
    k = (data.get("interpolated") or {}).get("factor", 1)
    if k > 1:
        say(f"sampled every {data['dt']:g} ms: fitted on V interpolated to "
            f"{data['interpolated']['dt']:.4g} ms (x{k}, cubic spline through the samples; "
            "--set interpolate_to=null fits the samples as recorded)")


@command("fit", "learn the six rate functions from a recording (neural ODE)", _fit_arguments)
def cmd_fit(args) -> int:
    from ..recording import read_recording

    fit = _fitting()[0]
    cfg = config_from_args(args)  # a bad value fails here, before the data are read
    rec = read_recording(args.data)
    say(f"fitting {rec.n_traces} traces of {args.data} -> {args.out}")
    res = fit(rec, cfg, run_dir=args.out, resume=args.resume, quiet=args.quiet)
    lo, hi = res.voltage_range
    say(f"done in {res.elapsed:.1f} s; V visited {lo:.1f} .. {hi:.1f} mV (1st-99th percentile)")
    _say_interpolated(args.out)
    _say_constrained(res)
    _say_cell(res)
    if res.heldout_rmse:
        h = res.heldout_rmse
        parts = [f"{k} {v:.3f} mV" for k, v in h.items() if isinstance(v, float)]
        say("free-running V RMSE (" + h.get("traces", "") + "): " + ", ".join(parts)
            + (f"; kept {h['chosen']}" if "chosen" in h else ""))
    _say_quality(res.quality)
    print(args.out)
    return EXIT_OK


def _say_quality(quality) -> None:
    """The verdict on stderr; for suspect/failed a warning with reasons and advice (also
    under ``--quiet``)."""
    from ..fitting.quality import headline, warning_text

    say(headline(quality))
    text = warning_text(quality)
    if text:
        warn(text)


def _say_cell(res) -> None:
    """The cell the kinetics were fitted with, where the fit estimated some of it."""
    if not res.free or not res.biophysics:
        return
    b = res.biophysics
    units = {"C_total": "pF", "g_Na": "mS/cm^2", "g_K": "mS/cm^2", "g_L": "mS/cm^2",
             "E_Na": "mV", "E_K": "mV", "E_L": "mV"}
    say("estimated cell: " + ", ".join(f"{n} {b[n]:.4g} {units[n]}" for n in units
                                       if n in res.free and n in b))


def _say_constrained(res, where: str = "") -> None:
    if not res.constrained:
        return
    say("the data constrain" + where + ": " + "; ".join(
        f"{r} {lo:.0f} .. {hi:.0f} mV" for r, (lo, hi) in res.constrained.items()))


# --- rates ----------------------------------------------------------------------------


def unfinished_message(run_dir) -> str:
    """The warning for a run without ``model.pt``, shown from its best checkpoint."""
    return f"run {run_dir} is unfinished: showing the best checkpoint so far"


def _rates_arguments(p):
    p.add_argument("run_dir", help="run directory made by 'hybridhh fit' (an unfinished "
                                   "one: its best checkpoint so far)")
    p.add_argument("--vmin", type=finite, default=None, metavar="MV",
                   help="lowest voltage, mV (default: 30 mV below the visited range)")
    p.add_argument("--vmax", type=finite, default=None, metavar="MV",
                   help="highest voltage, mV (default: 30 mV above the visited range)")
    p.add_argument("--step", type=positive, default=1.0, metavar="MV",
                   help="voltage step, mV (default 1)")
    p.add_argument("-o", "--out", default=None, metavar="FILE.csv",
                   help="CSV file (default RUN_DIR/rates.csv)")
    add_quiet(p, "print only the output path (and warnings)")


@command("rates", "write the learned rate functions as a CSV table", _rates_arguments)
def cmd_rates(args) -> int:
    from ..rates_table import voltage_grid, write_rates_csv

    load_fit = _fitting()[1]
    res = load_fit(args.run_dir, allow_unfinished=True)
    if not res.finished:
        warn(unfinished_message(args.run_dir))
    lo, hi = res.voltage_range
    vmin = args.vmin if args.vmin is not None else float(round(lo - 30.0))
    vmax = args.vmax if args.vmax is not None else float(round(hi + 30.0))
    out = Path(args.out) if args.out else Path(args.run_dir) / "rates.csv"
    write_rates_csv(out, res.model, voltage_grid(vmin, vmax, args.step), (lo, hi),
                    res.constrained, bands=res.bands)
    say(f"V visited {lo:.1f} .. {hi:.1f} mV (1st-99th percentile; column 'constrained')")
    if res.constrained:
        _say_constrained(res, " (columns 'constrained_<rate>')")
    say("outside its range a curve is extrapolation")
    if res.bands:
        say(f"{100 * res.bands['level']:.0f} % error bands in the columns '<name>_lo', "
            "'<name>_hi' (nan where the recording gives no band)")
    print(out)
    return EXIT_OK

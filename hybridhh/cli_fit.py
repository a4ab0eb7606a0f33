"""``hybridhh fit`` and ``hybridhh rates``: thin CLI wrappers over :mod:`hybridhh.fitting`."""

from __future__ import annotations

from .cli import _existing_file, _finite, _positive, command, say


def _fit_arguments(p):
    from .fitting import FitConfig

    d = FitConfig()  # the help states the defaults from the config itself
    t = d.teacher
    lbfgs_ms = t.lbfgs[0][0] if t.lbfgs else 0.0
    p.add_argument("data", type=_existing_file, help="recording file (HDF5, hybridhh format)")
    p.add_argument("-o", "--out", required=True, help="run directory to create (or resume)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--width", type=int, default=None,
                   help=f"hidden-layer width of each gate's MLP (default {d.width})")
    p.add_argument("--parametrisation", choices=("inf_tau", "alpha_beta"), default=None,
                   help=f"MLP output parametrisation (default {d.parametrisation})")
    p.add_argument("--prior-starts", type=int, default=None,
                   help="starts of the search that refines the generic prior on the data "
                        f"before the MLP (default {d.prior.refine_starts}; 0 uses the "
                        "prior as given)")
    p.add_argument("--adam-steps", type=int, default=None,
                   help=f"teacher-forcing Adam steps (default {t.adam_steps})")
    p.add_argument("--lbfgs-steps", type=int, nargs="+", metavar="N", default=None,
                   help="L-BFGS outer steps of each teacher-forcing resolution "
                        f"(default {' '.join(str(n) for _, n in t.lbfgs)}: "
                        f"{lbfgs_ms:g} ms before the Gauss-Newton stage, then a polish of "
                        "the MLP on adaptive steps after it)")
    p.add_argument("--gn-steps", type=int, nargs="+", metavar="N", default=None,
                   help="most Gauss-Newton iterations of each resolution (default "
                        f"{' '.join(str(n) for _, n in t.gauss_newton)}: adaptive steps up to "
                        f"{' / '.join(f'{s:g}' for s, _ in t.gauss_newton)} ms; it stops "
                        "earlier once converged; all 0 skips the stage)")
    p.add_argument("--denoise-iter", type=int, default=None,
                   help="most Levenberg-Marquardt iterations of the joint estimate of the "
                        "noise-free V and the kinetics, run when the estimated noise on V "
                        f"exceeds {d.denoise.threshold:g} mV (default {d.denoise.iterations}; "
                        "it stops earlier once converged; 0 disables it)")
    p.add_argument("--ode-steps", type=int, default=None,
                   help=f"neural-ODE L-BFGS steps per window length (default {d.ode.steps}; "
                        "0 disables)")
    p.add_argument("--holdout", nargs="*", default=None, metavar="TRACE",
                   help="trace names or indices held out (default: the last trace when "
                        "there are >= 4); give no value to hold out nothing")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--config", type=_existing_file, default=None,
                   help="JSON file with a full FitConfig (options above override it)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _counts(option: str, counts: list[int], entries: tuple) -> tuple:
    """``entries`` ((step ms, count), ...) with the counts given on the command line."""
    from .errors import ConfigError

    if len(counts) != len(entries) or min(counts) < 0:
        raise ConfigError(f"{option} needs {len(entries)} counts >= 0 (one per resolution "
                          f"{[s for s, _ in entries]} ms), got {counts}")
    return tuple((s, n) for (s, _), n in zip(entries, counts, strict=True))


def _config_from_args(args):
    import dataclasses
    import json

    from .errors import ConfigError
    from .fitting import FitConfig

    if args.config:
        try:
            cfg = FitConfig.from_dict(json.loads(args.config.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise ConfigError(f"{args.config}: not a valid FitConfig JSON ({e})") from e
    else:
        cfg = FitConfig()
    changes = {"seed": args.seed}
    if args.width is not None:
        changes["width"] = args.width
    if args.parametrisation:
        changes["parametrisation"] = args.parametrisation
    if args.holdout is not None:
        changes["holdout"] = tuple(args.holdout)
    if args.threads:
        changes["threads"] = args.threads
    prior = cfg.prior
    if args.prior_starts is not None:
        prior = dataclasses.replace(prior, refine_starts=args.prior_starts)
    t = cfg.teacher
    if args.adam_steps is not None:
        t = dataclasses.replace(t, adam_steps=args.adam_steps)
    if args.lbfgs_steps is not None:
        t = dataclasses.replace(t, lbfgs=_counts("--lbfgs-steps", args.lbfgs_steps, t.lbfgs))
    if args.gn_steps is not None:
        gn = _counts("--gn-steps", args.gn_steps, t.gauss_newton)
        t = dataclasses.replace(t, gauss_newton=gn if any(n for _, n in gn) else ())
    dn = cfg.denoise
    if args.denoise_iter is not None:
        dn = dataclasses.replace(dn, iterations=args.denoise_iter)
    o = cfg.ode
    if args.ode_steps is not None:
        o = dataclasses.replace(o, steps=args.ode_steps, enabled=args.ode_steps > 0)
    for name in ("prior_starts", "adam_steps", "denoise_iter", "ode_steps"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    return dataclasses.replace(cfg, prior=prior, teacher=t, denoise=dn, ode=o, **changes)


@command("fit", "learn the six rate functions from a recording (neural ODE)", _fit_arguments)
def cmd_fit(args) -> int:
    from .fitting import fit
    from .recording import read_recording

    rec = read_recording(args.data)
    cfg = _config_from_args(args)
    say(f"fitting {rec.n_traces} traces of {args.data} -> {args.out}")
    res = fit(rec, cfg, run_dir=args.out, resume=args.resume, quiet=args.quiet)
    lo, hi = res.voltage_range
    say(f"done in {res.elapsed:.1f} s; V visited {lo:.1f} .. {hi:.1f} mV (1st-99th percentile)")
    _say_constrained(res)
    if res.heldout_rmse:
        h = res.heldout_rmse
        parts = [f"{k} {v:.3f} mV" for k, v in h.items() if isinstance(v, float)]
        say("free-running V RMSE (" + h.get("traces", "") + "): " + ", ".join(parts)
            + (f"; kept {h['chosen']}" if "chosen" in h else ""))
    print(args.out)
    return 0


def _say_constrained(res, where: str = "") -> None:
    if not res.constrained:
        return
    say("the data constrain" + where + ": " + "; ".join(
        f"{r} {lo:.0f} .. {hi:.0f} mV" for r, (lo, hi) in res.constrained.items()))


def _rates_arguments(p):
    p.add_argument("run_dir", help="run directory made by 'hybridhh fit'")
    p.add_argument("--vmin", type=_finite, default=None,
                   help="lowest voltage, mV (default: 30 mV below the visited range)")
    p.add_argument("--vmax", type=_finite, default=None,
                   help="highest voltage, mV (default: 30 mV above the visited range)")
    p.add_argument("--step", type=_positive, default=1.0, help="voltage step, mV (default 1)")
    p.add_argument("-o", "--out", default=None, help="CSV file (default RUN_DIR/rates.csv)")


@command("rates", "write the learned rate functions as a CSV table", _rates_arguments)
def cmd_rates(args) -> int:
    from pathlib import Path

    from .fitting import load_fit
    from .rates_table import voltage_grid, write_rates_csv

    res = load_fit(args.run_dir)
    lo, hi = res.voltage_range
    vmin = args.vmin if args.vmin is not None else float(round(lo - 30.0))
    vmax = args.vmax if args.vmax is not None else float(round(hi + 30.0))
    out = Path(args.out) if args.out else Path(args.run_dir) / "rates.csv"
    write_rates_csv(out, res.model, voltage_grid(vmin, vmax, args.step), (lo, hi),
                    res.constrained)
    say(f"V visited {lo:.1f} .. {hi:.1f} mV (1st-99th percentile; column 'constrained')")
    if res.constrained:
        _say_constrained(res, " (columns 'constrained_<rate>')")
    say("outside its range a curve is extrapolation")
    print(out)
    return 0

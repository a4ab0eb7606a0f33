"""``hybridhh compare`` and ``hybridhh report``: thin CLI wrappers over
:mod:`hybridhh.compare` and :mod:`hybridhh.report`."""

from __future__ import annotations

from pathlib import Path

from .cli import _existing_file, _finite, _positive, command, say


def _truth_arguments(p):
    p.add_argument("run_dir", type=Path, help="run directory made by 'hybridhh fit'")
    p.add_argument("--truth", metavar="NAME[@T]|FILE.h5", default=None,
                   help="reference rate functions: a built-in set (hh_modern, hh1952; "
                        "optionally @temperature in degC, default the recording's), or a "
                        "recording file with /truth (default: the fitted recording's /truth "
                        "when it has one)")
    p.add_argument("--data", type=_existing_file, metavar="FILE.h5", default=None,
                   help="the fitted recording, when the file named in RUN_DIR/config.json "
                        "has moved")
    p.add_argument("--method", default="rk4",
                   help="integrator of the free-running simulations (default rk4)")
    p.add_argument("--max-shift", type=_positive, default=None, metavar="MS",
                   help="largest spike-time difference that still pairs two spikes, ms "
                        "(default 5)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the output path")


def _compare_arguments(p):
    _truth_arguments(p)
    p.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                   help="output directory for compare.json and figures (default "
                        "RUN_DIR/compare)")
    p.add_argument("--temperature", type=_finite, default=None,
                   help="evaluate the truth at this temperature, degC")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-figures", action="store_true", help="write compare.json only")


def _check_method(name: str) -> None:
    from .integrators import get_integrator

    get_integrator(name)


@command("compare", "compare a fit with the true rates and the recording (metrics, figures)",
         _compare_arguments)
def cmd_compare(args) -> int:
    import json

    from .compare import MAX_SPIKE_SHIFT, compare

    _check_method(args.method)
    comp = compare(args.run_dir, args.truth, args.out, recording=args.data,
                   temperature=args.temperature, method=args.method,
                   max_shift=args.max_shift or MAX_SPIKE_SHIFT, figures=not args.no_figures)
    if args.json:
        print(json.dumps(comp.metrics, indent=2))
        return 0
    for line in comp.summary_lines():
        say(line)
    say(f"wrote {len(comp.figures)} figure(s) and compare.json in {comp.metrics['elapsed']:.1f} s")
    print(comp.out_dir)
    return 0


def _report_arguments(p):
    _truth_arguments(p)
    p.add_argument("-o", "--out", type=Path, default=None, metavar="FILE.html",
                   help="report to write (default RUN_DIR/report.html)")
    p.add_argument("--fresh", action="store_true",
                   help="recompute the comparison even if RUN_DIR/compare is up to date")


@command("report", "write a self-contained HTML report of a fit", _report_arguments)
def cmd_report(args) -> int:
    from .compare import MAX_SPIKE_SHIFT
    from .report import write_report

    _check_method(args.method)
    path = write_report(args.run_dir, args.truth, args.out, recording=args.data,
                        method=args.method, max_shift=args.max_shift or MAX_SPIKE_SHIFT,
                        reuse=not args.fresh)
    print(path)
    return 0

"""``hybridhh compare``, ``hybridhh report`` and ``hybridhh predict``: thin wrappers over the
comparison of a fit with the truth and the recording, its HTML report, and the fitted cell's
prediction of another recording.

Both print every warning of the comparison on stderr (also under ``--quiet`` and
``--json``): a truth in the other voltage convention, a diverged free run, a run that is
unfinished and shown from its best checkpoint, ...
"""

from __future__ import annotations

import json
from pathlib import Path

from ._args import add_quiet, existing_file, finite, positive, say, warn
from ._registry import EXIT_OK, command

__all__ = ["cmd_compare", "cmd_report", "cmd_predict"]


def _analysis():
    """The comparison and report API (imported here only: it imports torch)."""
    from ..analysis import COMPARE_DIR, COMPARE_JSON, MAX_SPIKE_SHIFT, compare
    from ..report import write_report

    return compare, write_report, MAX_SPIKE_SHIFT, COMPARE_DIR, COMPARE_JSON


def _truth_arguments(p):
    p.add_argument("run_dir", type=Path, help="run directory made by 'hybridhh fit'")
    p.add_argument("--truth", metavar="NAME[@T]|FILE.h5", default=None,
                   help="reference rate functions: a built-in set (hh_modern, hh1952; "
                        "optionally @temperature in degC, default the recording's), or a "
                        "recording file with /truth (default: the fitted recording's /truth "
                        "when it has one)")
    p.add_argument("--data", type=existing_file, metavar="FILE.h5", default=None,
                   help="a recording: the fitted one, when the file named in "
                        "RUN_DIR/config.json has moved (same traces, step and V range), or "
                        "any other recording of the cell (another protocol, other sweeps): "
                        "the fitted cell predicts it and spike count, latency, coincidence "
                        "factor, subthreshold V RMSE and eFEL features are compared")
    p.add_argument("--method", default="rk4", metavar="NAME",
                   help="integrator of the free-running simulations (default rk4)")
    p.add_argument("--max-shift", type=positive, default=None, metavar="MS",
                   help="largest spike-time difference that still pairs two spikes, ms "
                        "(default 5)")
    add_quiet(p, "print only the output path (and warnings)")


def _check_method(name: str) -> None:
    from ..integrators import get_integrator

    get_integrator(name)  # a bad name fails before any work


def _data_role(run_dir: Path, path: Path | None) -> tuple[Path | None, Path | None]:
    """``(recording, data)`` for ``--data PATH``: the fitted recording when it holds the
    fitted traces (:func:`~hybridhh.analysis.data_comparison.is_fitted_recording`), else
    another recording to predict."""
    if path is None:
        return None, None
    from ..analysis.data_comparison import is_fitted_recording
    from ..recording import read_recording

    return (path, None) if is_fitted_recording(run_dir, read_recording(path)) else (None, path)


def _warn_all(metrics: dict) -> None:
    for w in metrics.get("warnings", []):
        warn(w)


def _compare_arguments(p):
    _truth_arguments(p)
    p.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                   help="output directory for compare.json and figures (default "
                        "RUN_DIR/compare)")
    p.add_argument("--temperature", type=finite, default=None, metavar="DEGC",
                   help="evaluate the truth at this temperature, degC")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-figures", action="store_true", help="write compare.json only")


@command("compare", "compare a fit with the true rates and the recording (metrics, figures)",
         _compare_arguments)
def cmd_compare(args) -> int:
    compare, _, max_spike_shift, _, _ = _analysis()
    _check_method(args.method)
    recording, data = _data_role(args.run_dir, args.data)
    comp = compare(args.run_dir, args.truth, args.out, recording=recording,
                   temperature=args.temperature, method=args.method,
                   max_shift=args.max_shift or max_spike_shift, figures=not args.no_figures,
                   data=data)
    if args.json:
        print(json.dumps(comp.metrics, indent=2))
        _warn_all(comp.metrics)
        return EXIT_OK
    if args.quiet:
        _warn_all(comp.metrics)
    for line in comp.summary_lines():  # its last lines are the warnings
        say(line)
    say(f"wrote {len(comp.figures)} figure(s) and compare.json in {comp.metrics['elapsed']:.1f} s")
    print(comp.out_dir)
    return EXIT_OK


def _report_arguments(p):
    _truth_arguments(p)
    p.add_argument("-o", "--out", type=Path, default=None, metavar="FILE.html",
                   help="report to write (default RUN_DIR/report.html)")
    p.add_argument("--fresh", action="store_true",
                   help="recompute the comparison even if RUN_DIR/compare is up to date")


@command("report", "write a self-contained HTML report of a fit", _report_arguments)
def cmd_report(args) -> int:
    _, write_report, max_spike_shift, compare_dir, compare_json = _analysis()
    _check_method(args.method)
    recording, data = _data_role(args.run_dir, args.data)
    path = write_report(args.run_dir, args.truth, args.out, recording=recording,
                        method=args.method, max_shift=args.max_shift or max_spike_shift,
                        reuse=not args.fresh, data=data)
    shown = Path(args.run_dir) / compare_dir / compare_json  # the comparison it shows
    if shown.is_file():
        _warn_all(json.loads(shown.read_text()))
    print(path)
    return EXIT_OK


def _predict_arguments(p):
    p.add_argument("run_dir", type=Path, help="run directory made by 'hybridhh fit'")
    p.add_argument("--stimulus-from", type=existing_file, required=True, metavar="DATA.h5",
                   help="a recording of the same cell: its injected current (in its own "
                        "units; pA needs a run that fitted C_total), time grid and first "
                        "recorded V drive the fitted cell")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="PRED.h5",
                   help="the prediction: a recording with DATA's trace names, time (ms) and "
                        "current, and the predicted V (mV)")
    p.add_argument("--method", default="rk4", metavar="NAME",
                   help="integrator at DATA's step (default rk4; exp_euler where rk4 "
                        "diverges, with a warning)")
    add_quiet(p, "print only the output path (and warnings)")


@command("predict", "predict another recording with a fitted cell (its stimuli, time grid and "
         "first sample)", _predict_arguments)
def cmd_predict(args) -> int:
    from ..prediction import predict

    _check_method(args.method)
    notes: list[str] = []
    pred = predict(args.run_dir, args.stimulus_from, out=args.out, method=args.method,
                   warnings=notes)
    for note in notes:
        warn(note)
    say(f"predicted {pred.n_traces} trace(s) x {pred.n_samples} samples (dt {pred.dt:g} ms) "
        f"of {args.stimulus_from} with the cell of {args.run_dir}")
    print(args.out)
    return EXIT_OK

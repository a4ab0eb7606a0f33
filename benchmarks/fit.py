"""Fit benchmark (issue 4): accuracy of the learned kinetics, robustness and wall time.

Makes the default synthetic set (modern convention, default protocols, 6.3 °C, 100 ms,
dt 0.01 ms, RK4; :func:`hybridhh.benchmarking.make_data`), fits it with the default
FitConfig for several seeds, and measures (:func:`hybridhh.benchmarking.evaluate`) over
the visited voltage range (1st–99th percentile): per-gate tau median / p90 relative error,
x_inf max absolute error, alpha/beta median relative error, free-running V RMSE on a
held-out stimulus (new noise seed), the spikes of that free run and of the true held-out V,
and wall time; also each rate's median relative error over the range where the fit found
the data constrain it (``rate%*``, the worst rate; :mod:`hybridhh.fitting.constrained`).

The spike columns count spikes with the package's one definition
(:mod:`hybridhh.analysis.spikes`): upward crossings of ``spike_threshold(rest)`` = the true
resting potential + 50 mV, one per 1 ms refractory period; every row records that threshold
as ``spike_threshold`` (mV). (Result files written before this definition counted upward
crossings of 0 mV, 65 mV in the 1952 convention, and have no ``spike_threshold``.)

Optional cases: measurement noise (1 mV by default, ``--noise-levels``), the alpha_beta
parametrisation, perturbed priors, and recordings made elsewhere or under other conditions
with the same default FitConfig (``elsewhere``: NEURON's ``hh`` as the simulator, 18.5 and
25 °C, the 1952 voltage convention).

Prints a table and writes ``benchmarks/results/fit.json``::

    python benchmarks/fit.py                 # every case (14 fits)
    python benchmarks/fit.py --quick         # 1 seed, short
    python benchmarks/fit.py --cases seeds   # only some cases
    python benchmarks/fit.py --cases elsewhere --out /tmp/elsewhere.json
    python benchmarks/fit.py --cases noise --noise-levels 0.3 1 2
    python benchmarks/fit.py --cases seeds --set teacher.adam_steps=300 --out /tmp/a.json

``--set FIELD=VALUE`` (repeatable) changes a FitConfig field in every case (VALUE is JSON,
e.g. ``'teacher.lbfgs=[[0.04, 12], [0.04, 24]]'``). Every row records its full ``config``,
``phases`` (seconds: stage 0 and set-up, each phase of the fit, and ``after``: held-out
selection and constrained ranges) and ``calibration`` (see :func:`calibrate`).

With ``--cases``, rows of the other cases already in the output file are kept (a rerun of
one case replaces only that case's rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from hybridhh.analysis.metrics import TARGETS
from hybridhh.benchmarking import (
    HELDOUT_RMSE_TARGET,
    WALL_TARGET,
    case_group,
    evaluate,
    make_data,
)
from hybridhh.errors import ConfigError
from hybridhh.fitting import FitConfig, fit
from hybridhh.fitting.config import PriorConfig, parse_assignments
from hybridhh.fitting.data import TraceData
from hybridhh.kinetics import HHKinetics
from hybridhh.recording import truth_kinetics

OUT = Path(__file__).parent / "results" / "fit.json"


def calibrate(train, repeats: int = 3) -> float:
    """Seconds for a fixed piece of fitting work on this machine (best of ``repeats``):
    20 teacher-forcing losses with gradients at 0.04 ms adaptive steps and one
    neural-ODE loss with gradient on 128 windows of 3 ms, from the generic prior.
    The same fit's wall time varies between machines and within a session, with identical
    results, so wall times are comparable only together with this number, measured right
    before each case."""
    from hybridhh.fitting.model import build_model
    from hybridhh.fitting.ode import MultipleShooting
    from hybridhh.fitting.teacher import TeacherForcing

    data = TraceData.from_recording(train)
    torch.manual_seed(0)
    model = build_model(data, FitConfig())
    tf = TeacherForcing(data, stride=4, adaptive=1.0)
    ms = MultipleShooting(data, 3.0, TeacherForcing(data), max_windows=128, stride=4)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            tf.loss(model).backward()
        ms.loss(model, torch.Generator().manual_seed(0)).backward()
        best = min(best, time.perf_counter() - t0)
    return best


def phase_times(res, wall: float) -> dict:
    """Seconds per phase of a fit: ``prior+setup`` (stage 0 and data preparation), each
    phase of ``res.history``, and ``after`` (held-out selection, constrained ranges)."""
    ends: dict = {}
    for rec in res.history:
        ends[rec["phase"]] = rec["elapsed"]
    out, last = {}, 0.0
    for name, end in ends.items():
        out[name] = end - last
        last = end
    return {"prior+setup": res.elapsed - last, **out, "after": wall - res.elapsed}


def run_case(name, train, test, cfg, truth):
    cal = calibrate(train)  # the machine's speed right now (it drifts within a session)
    t0 = time.perf_counter()
    res = fit(train, cfg, quiet=True)
    wall = time.perf_counter() - t0
    ev = evaluate(res, test, truth)
    ev.update({"case": name, "seed": cfg.seed, "wall": wall, "fit_elapsed": res.elapsed,
               "ode": res.heldout_rmse, "calibration": cal, "phases": phase_times(res, wall),
               "config": cfg.to_dict()})
    s = ev["summary"]
    own = ev["rate_median_constrained"]
    print(f"{name:<22} {cfg.seed:>4} {wall:7.1f} {100 * s['tau_median']:7.2f} "
          f"{100 * s['tau_p90']:7.2f} {s['xinf_max']:7.4f} {100 * s['rate_median']:7.1f} "
          f"{ev['heldout_rmse']:7.3f} {ev['spikes_model']:>3}/{ev['spikes_true']:<3} "
          f"{'yes' if ev['meets_targets'] else 'no':>4} "
          f"{res.heldout_rmse.get('chosen', '-'):>7} "
          f"{'-' if own is None else f'{100 * own:.1f}':>7} {cal:6.2f}", flush=True)
    return ev


def parse_sets(items) -> dict:
    """``--set`` items as nested changes (:func:`hybridhh.fitting.config.parse_assignments`)."""
    try:
        return parse_assignments(items)
    except ConfigError as e:
        raise SystemExit(str(e)) from e


def configure(sets: dict, **fields) -> FitConfig:
    """``FitConfig(**fields)`` with the ``--set`` changes on top."""
    try:
        return FitConfig(**fields).updated(sets)
    except ConfigError as e:
        raise SystemExit(f"--set: {e}") from e


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, clean data only")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--extra-seeds", type=int, default=1,
                    help="seeds of the noise and alpha_beta cases")
    ap.add_argument("--noise-levels", type=float, nargs="*", default=[1.0],
                    help="measurement-noise SDs (mV) of the noise case")
    ap.add_argument("--cases", nargs="*",
                    default=["seeds", "noise", "alpha_beta", "priors", "elsewhere"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="sets",
                    help="change a FitConfig field in every case (repeatable), e.g. "
                         "teacher.adam_steps=300; VALUE is JSON")
    args = ap.parse_args(argv)
    sets = parse_sets(args.sets)
    configure(sets)  # a bad --set fails before any fit
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.cases = 1, ["seeds"]
    truth = HHKinetics("modern")
    t0 = time.perf_counter()
    train, test = make_data()
    print(f"data: {train.n_traces} traces x {train.duration:g} ms at dt {train.dt:g} ms "
          f"({time.perf_counter() - t0:.1f} s to simulate)")
    print(f"{'case':<22} {'seed':>4} {'wall s':>7} {'tau50%':>7} {'tau90%':>7} {'xinf':>7} "
          f"{'rate%':>7} {'Vrmse':>7} {'spikes':>7} {'ok':>4} {'kept':>7} {'rate%*':>7} "
          f"{'cal s':>6}")
    targets = [f"<{WALL_TARGET:g}", f"<{100 * TARGETS['tau_median']:g}",
               f"<{100 * TARGETS['tau_p90']:g}", f"<{TARGETS['xinf_max']:g}",
               f"<{100 * TARGETS['rate_median']:g}", f"<{HELDOUT_RMSE_TARGET:g}"]
    print(f"{'targets':<22} {'':>4} " + " ".join(f"{t:>7}" for t in targets))
    rows = []
    if args.out.exists():  # keep the rows of cases this run does not redo
        try:
            rows = [r for r in json.loads(args.out.read_text()).get("rows", [])
                    if case_group(r.get("case", "")) not in args.cases]
        except (json.JSONDecodeError, AttributeError) as e:
            raise SystemExit(f"{args.out}: not a fit benchmark result ({e}); "
                             "remove it or choose another --out") from e
    summary = {
        "targets": TARGETS,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "set": sets,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after every case, so an interrupted run keeps what it measured
        args.out.write_text(json.dumps(summary, indent=2, default=float))

    if "seeds" in args.cases:
        for s in range(args.seeds):
            rows.append(run_case("default", train, test, configure(sets, seed=s), truth))
            save()
    if "noise" in args.cases:
        for level in args.noise_levels:
            ntrain, _ = make_data(noise=level)
            for s in range(args.extra_seeds):
                rows.append(run_case(f"noise {level:g} mV", ntrain, test, configure(sets, seed=s),
                                     truth))
                save()
    if "alpha_beta" in args.cases:
        for s in range(args.extra_seeds):
            rows.append(run_case("alpha_beta", train, test,
                                 configure(sets, seed=s, parametrisation="alpha_beta"), truth))
            save()
    if "priors" in args.cases:
        for i, pc in enumerate([PriorConfig(offset_activation=5.0, slope=5.0, tau_max=0.3),
                                PriorConfig(offset_activation=30.0, offset_inactivation=-10.0,
                                            slope=12.0, tau_max=3.0)]):
            rows.append(run_case(f"prior {i + 1}", train, test, configure(sets, seed=0, prior=pc),
                                 truth))
            save()
    if "elsewhere" in args.cases:
        # recordings from other sources and conditions, same default FitConfig, no changes
        for name, kw in [("NEURON hh", {"simulator": "neuron_hh"}),
                         ("NEURON hh dt/10", {"simulator": "neuron_hh", "substeps": 10}),
                         ("18.5 degC", {"temperature": 18.5}),
                         ("25 degC", {"temperature": 25.0, "substeps": 10}),
                         ("hh1952", {"convention": "hh1952"})]:
            etrain, etest = make_data(**kw)
            # the held-out recording is simulated, so it names the true kinetics
            rows.append(run_case(name, etrain, etest, configure(sets, seed=0),
                                 truth_kinetics(etest)))
            rows[-1]["data"] = kw
            save()
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

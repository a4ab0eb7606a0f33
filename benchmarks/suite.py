"""The generalisation suite: the default fit on recordings made elsewhere (NEURON ``hh``).

Each case of :data:`hybridhh.suite.CASES` (sampling 0.01-0.1 ms, 1-16 traces of 50-1000
ms, six stimulus families, 6.3-25 °C, both conventions, 0-2 mV noise, other cells) is
made by NEURON's ``hh`` (:func:`hybridhh.suite.make_case`), fitted with the default
FitConfig, and scored over the visited range (1st-99th percentile of the training V):
worst-gate tau median / p90, x_inf max, alpha/beta median; the free-running V RMSE and
spikes on the case's held-out recording; the fit's own quality verdict and, where the
fit has error bands, how often the truth lies inside them. ``basin`` says whether the
fit found the right basin, judged by the truth (worst tau median < 30 % and x_inf max
< 0.1): the verdict is checked against it.

Prints a table and writes ``benchmarks/results/suite.json`` after every case::

    python benchmarks/suite.py                    # every case (~1 h on 2 cores)
    python benchmarks/suite.py --quick            # hybridhh.suite.QUICK
    python benchmarks/suite.py --cases base "dt 0.1" --out /tmp/s.json
    python benchmarks/suite.py --set teacher.starts=3

With ``--cases`` or ``--quick``, rows of other cases already in the output file are kept.
Every row records the torch threads used (results depend on it at the 1e-1 level in
the Gauss-Newton stage's wrong-basin cases).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hybridhh.benchmarking import evaluate
from hybridhh.errors import ConfigError
from hybridhh.fitting import FitConfig, fit
from hybridhh.fitting.config import parse_assignments
from hybridhh.recording import truth_kinetics
from hybridhh.suite import CASES, QUICK, get_case, make_case

OUT = Path(__file__).parent / "results" / "suite.json"
#: the right basin, judged by the truth
BASIN = {"tau_median": 0.30, "xinf_max": 0.10}


def right_basin(summary: dict) -> bool:
    return summary["tau_median"] < BASIN["tau_median"] and summary["xinf_max"] < BASIN["xinf_max"]


def band_coverage(result, truth) -> dict | None:
    """Fraction of the visited voltages where the truth lies inside the fit's 90 % bands,
    per quantity, and the bands' median relative width; None without bands."""
    bands = getattr(result, "bands", None)
    if not bands:
        return None
    from hybridhh.analysis.metrics import band_coverage as cov

    return cov(bands, truth, *result.voltage_range)


def _commit() -> str | None:
    """The repository's commit (``+dirty`` with uncommitted changes), None outside git."""
    import subprocess

    here = Path(__file__).parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")


#: the commit the code of this process was read at (HEAD may move while the suite runs)
COMMIT = _commit()


def run(case, cfg: FitConfig) -> dict:
    t0 = time.perf_counter()
    train, test = make_case(case)
    made = time.perf_counter() - t0
    truth = truth_kinetics(train)
    t0 = time.perf_counter()
    res = fit(train, cfg, quiet=True)
    wall = time.perf_counter() - t0
    ev = evaluate(res, test, truth)
    row = {"case": case.name, "data": case.as_dict(), "samples": case.samples,
           "wall": wall, "simulate": made, "threads": torch.get_num_threads(),
           "seed": cfg.seed, "commit": COMMIT, "summary": ev["summary"],
           "errors": ev["errors"],
           "heldout_rmse": ev["heldout_rmse"], "spikes_model": ev["spikes_model"],
           "spikes_true": ev["spikes_true"], "spike_threshold": ev["spike_threshold"],
           "fit_heldout": res.heldout_rmse,
           "final_loss": {h["phase"]: h["loss"] for h in res.history},
           "basin": right_basin(ev["summary"]),
           "quality": getattr(res, "quality", None),
           "coverage": band_coverage(res, truth)}
    return row


def fmt_row(r: dict) -> str:
    s = r["summary"]
    q = (r.get("quality") or {}).get("verdict", "-")
    cov = r.get("coverage")
    c = f"{100 * cov['min']:.0f}" if cov else "-"
    return (f"{r['case']:<20} {r['data']['dt']:>5g} {r['samples']:>7} {r['wall']:6.1f} "
            f"{100 * s['tau_median']:7.1f} {100 * s['tau_p90']:7.1f} {s['xinf_max']:6.3f} "
            f"{100 * s['rate_median']:6.1f} {r['heldout_rmse']:7.2f} "
            f"{r['spikes_model']:>4}/{r['spikes_true']:<4} "
            f"{'yes' if r['basin'] else 'NO':>5} {q:>8} {c:>5}")


HEADER = (f"{'case':<20} {'dt':>5} {'samples':>7} {'wall':>6} {'tau50%':>7} {'tau90%':>7} "
          f"{'xinf':>6} {'rate%':>6} {'Vheld':>7} {'spikes':>9} {'basin':>5} {'verdict':>8} "
          f"{'cov%':>5}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=None, help="case names (default: all)")
    ap.add_argument("--quick", action="store_true", help="only hybridhh.suite.QUICK")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="the fit's seed")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="sets",
                    help="change a FitConfig field (repeatable), e.g. teacher.starts=3")
    args = ap.parse_args(argv)
    try:
        sets = parse_assignments(args.sets)
        cfg = FitConfig(seed=args.seed, threads=args.threads).updated(sets)
        names = QUICK if args.quick else (args.cases or [c.name for c in CASES])
        cases = [get_case(n) for n in names]
    except ConfigError as e:
        raise SystemExit(f"suite: {e}") from e
    torch.set_num_threads(args.threads)
    rows = []
    if args.out.exists() and (args.cases or args.quick):
        try:
            rows = [r for r in json.loads(args.out.read_text()).get("rows", [])
                    if r.get("case") not in names]
        except (json.JSONDecodeError, AttributeError) as e:
            raise SystemExit(f"{args.out}: not a suite result ({e}); remove it or choose "
                             "another --out") from e
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "torch_threads": args.threads, "torch": torch.__version__},
           "set": sets, "basin": BASIN, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(HEADER, flush=True)
    t0 = time.perf_counter()
    for case in cases:
        try:
            row = run(case, cfg)
        except Exception as e:  # a case that breaks the fitter is a result too
            row = {"case": case.name, "data": case.as_dict(), "error": repr(e)}
            print(f"{case.name:<20} ERROR {e!r}", flush=True)
        else:
            print(fmt_row(row), flush=True)
        out["rows"] = [r for r in out["rows"] if r["case"] != case.name] + [row]
        args.out.write_text(json.dumps(out, indent=1, default=float))
    ok = [r for r in out["rows"] if "summary" in r]
    print(f"{len(ok)} cases, right basin {sum(r['basin'] for r in ok)}/{len(ok)}, "
          f"median wall {np.median([r['wall'] for r in ok]) if ok else 0:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s; wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

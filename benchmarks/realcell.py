"""A real cell, fitted and tested on what the fit never saw: hybridhh beside the baseline.

``171116sh_0018.abf`` (../shared/realdata; 17 sweeps, 20 kHz, two 500 ms steps −100…+300 pA
around a −100 pA epoch). Training: the first step of the even sweeps (100–700 ms of each
sweep). Tests: the same window of the odd sweeps (other amplitudes) and the second step of
the even sweeps (1600–2200 ms: after the −100 pA epoch, from a hyperpolarised start).

Both models see V with the bridge error the passive analysis measures removed (R_s ≈ 12 MΩ,
``--series-resistance``). Both start from the passive analysis of the −100 pA steps after
that (C_total, g_L, E_L) and estimate every cell parameter. Each prediction is a free run
from the test window's first sample. Measured per test set
(:func:`hybridhh.analysis.features.compare_traces`): mean |Δ spike count| per step, mean Γ
(Δ = 2 ms) over the spiking traces, subthreshold V RMSE (spikes cut), the median relative
feature error (eFEL), and the fit's wall time and cell.

The baseline is :mod:`pospischil` (classic rate forms, ``scipy.optimize.least_squares``,
multi-start). Writes ``benchmarks/results/realcell.json``; ``--quick`` is a smoke run (3
short sweeps, tiny fits) whose numbers mean nothing.

Units: ms, mV, pA, pF, mS/cm².
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import hybridhh as hh
from hybridhh.analysis.features import compare_traces
from hybridhh.analysis.passive import (
    correct_series_resistance,
    passive_analysis,
    passive_cell,
)
from hybridhh.atomic import atomic_write_text
from hybridhh.fitting.config import FitConfig
from hybridhh.importing import import_recording

HERE = Path(__file__).resolve().parent


def _load_baseline():
    """The baseline model (``benchmarks/pospischil.py``), loaded from its file: the
    benchmarks are scripts, not a package."""
    spec = importlib.util.spec_from_file_location("pospischil", HERE / "pospischil.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks itself up there)
    spec.loader.exec_module(module)
    return module


pospischil = _load_baseline()

DEFAULT_FILE = HERE.parent.parent / "shared" / "realdata" / "abf" / "171116sh_0018.abf"
FREE = ("C_total", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L")
#: (name, sweeps, window ms) of the training set and the two test sets.
SETS = {"train": (range(0, 17, 2), (100.0, 700.0)),
        "odd_sweeps": (range(1, 17, 2), (100.0, 700.0)),
        "second_step": (range(0, 17, 2), (1600.0, 2200.0))}
QUICK_SETS = {"train": ((8, 12, 16), (100.0, 400.0)),
              "odd_sweeps": ((9,), (100.0, 400.0)),
              "second_step": ((12,), (1600.0, 1900.0))}
SCORES = ("spike_count_abs_diff", "coincidence", "subthreshold_rmse",
          "feature_relative_error_median")


def _score(rec, V_pred) -> dict:
    c = compare_traces(rec.time, rec.voltage, V_pred, rec.current, names=rec.trace_names,
                       units=rec.current_units)
    return {"summary": c["summary"],
            "per_trace": [{k: r[k] for k in ("name", "spike_count_diff", "coincidence",
                                             "subthreshold_rmse")}
                          | {"measured_spikes": r["measured"]["spike_count"],
                             "predicted_spikes": r["predicted"]["spike_count"]}
                          for r in c["per_trace"]]}


def run_hybrid(data, run_dir, settings, quick) -> dict:
    config = FitConfig.quick(free=FREE) if quick else FitConfig(free=FREE)
    if settings:
        config = config.updated(settings)
    t0 = time.perf_counter()
    hh.fit(data["train"], config, run_dir=run_dir, quiet=True)
    wall = time.perf_counter() - t0
    result = json.loads((Path(run_dir) / "result.json").read_text())
    out = {"wall": wall, "cell": result.get("biophysics"),
           "verdict": result["quality"]["verdict"], "reasons": result["quality"]["reasons"],
           "tests": {}}
    for name in SETS:
        if name != "train":
            pred = hh.predict(run_dir, data[name], method="exp_euler", warnings=[])
            out["tests"][name] = _score(data[name], pred.voltage)
    return out


def run_baseline(data, start, quick) -> dict:
    train = data["train"]
    kw = {"n_starts": 2, "max_nfev": 3} if quick else {}
    fitted = pospischil.fit_pospischil(train.voltage, train.current, train.dt, start=start,
                                       **kw)
    out = {"wall": fitted["wall"], "cell": fitted["cell"].as_dict(), "rmse": fitted["rmse"],
           "starts": fitted["starts"], "tests": {}}
    for name in SETS:
        if name != "train":
            rec = data[name]
            V = pospischil.simulate_pospischil(fitted["cell"], rec.current, rec.dt,
                                               rec.voltage[:, 0])
            out["tests"][name] = _score(rec, V)
    return out


def _fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def table(results) -> str:
    lines = ["| test set | model | mean abs dn | Γ | subthr. RMSE mV | median feature err |",
             "|---|---|---|---|---|---|"]
    for name in SETS:
        if name == "train":
            continue
        for model in ("hybridhh", "pospischil"):
            if model not in results:
                continue
            s = results[model]["tests"][name]["summary"]
            lines.append(f"| {name} | {model} | {_fmt(s['spike_count_abs_diff'])} | "
                         f"{_fmt(s['coincidence'])} | {_fmt(s['subthreshold_rmse'])} | "
                         f"{_fmt(s['feature_relative_error_median'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(DEFAULT_FILE), help="the ABF file")
    ap.add_argument("--out", default=str(HERE / "results" / "realcell.json"))
    ap.add_argument("--run-dir", default=None, help="keep the hybridhh run here")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny data and fits")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--series-resistance", default="auto", metavar="MOHM|auto|none",
                    help="bridge error removed from every set before fitting (default auto: "
                         "the passive analysis' R_s of the whole file)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="FitConfig fields for the hybridhh fit")
    args = ap.parse_args(argv)

    sets = QUICK_SETS if args.quick else SETS
    full = import_recording(args.file)
    choice = args.series_resistance.lower()
    R_s = (passive_analysis(full, amplitudes=[-100.0]).R_s if choice == "auto" else
           None if choice == "none" else float(choice))
    data = {name: import_recording(args.file, sweeps=list(sw), window=win)
            for name, (sw, win) in sets.items()}
    if R_s is not None:
        full = correct_series_resistance(full, R_s)
        data = {k: correct_series_resistance(rec, R_s) for k, rec in data.items()}
    passive = passive_analysis(full, amplitudes=[-100.0])
    # the passive start comes from every -100 pA step of the file, not the training window
    start = {"C_total": passive.C_total, "g_L": passive.g_L, "E_L": passive.E_L}
    data["train"] = dataclasses.replace(data["train"],
                                        cell=passive_cell(data["train"].cell, passive))
    settings = list(args.set)
    results = {"file": Path(args.file).name, "quick": args.quick,
               "sets": {k: {"sweeps": list(sw), "window": list(win)}
                        for k, (sw, win) in sets.items()},
               "passive": {k: v for k, v in dataclasses.asdict(passive).items()
                           if k != "steps"},
               "free": list(FREE), "settings": settings, "series_resistance": R_s}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or str(Path(tmp) / "run")
        results["hybridhh"] = run_hybrid(data, run_dir, settings, args.quick)
    if not args.skip_baseline:
        results["pospischil"] = run_baseline(data, start, args.quick)
    print(f"passive: R_in {passive.R_in:.1f} MOhm, tau_m {passive.tau_m:.1f} ms, "
          f"C_total {passive.C_total:.0f} pF, sag {passive.sag:.2f} mV, E_L {passive.E_L:.1f} mV")
    for model in ("hybridhh", "pospischil"):
        if model in results:
            r = results[model]
            cell = ", ".join(f"{k} {v:.4g}" for k, v in (r["cell"] or {}).items()
                             if isinstance(v, float))
            print(f"{model}: fit {r['wall']:.0f} s; {cell}")
    print(table(results))
    atomic_write_text(args.out, json.dumps(results, indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of the reference simulator: integrator accuracy vs speed, and throughput.

Run ``make bench`` (or ``python benchmarks/simulate.py [--quick]``). Prints two tables and
writes them with the machine's details to ``benchmarks/results/simulate.json``.

1. **Accuracy vs speed.** Each fixed-step integrator (exp_euler, ind_exp_euler, rk4,
   neuron) at dt = 0.1, 0.05, 0.025, 0.01 ms on a few default-protocol traces (100 ms),
   against dopri5 at rtol = atol = 1e-9: max |ΔV| (mV), spike-time error (spikes matched
   within 1 ms; max |Δt| of the matched pairs and the number left unmatched) and wall time.
2. **Throughput.** Cell-ms simulated per second for 1, 100, 1000, 10000 cells, 100 ms at
   dt = 0.025 ms: ours (exp_euler, eager and ``compile=True``), NEURON's ``hh`` (n sections,
   fixed step, ``usetable_hh = 1`` as NEURON's default) and scipy ``solve_ivp`` LSODA on one
   cell. Every run includes its set-up (stimulus interpolation, ``Vector.play``, recording)
   and returns V on the sample grid; NEURON's section building and torch's compilation are
   reported separately. "NEURON hh core only" times NEURON's steps alone (constant
   amplitudes, nothing played or recorded): a lower bound on its cost, not a like-for-like
   run.

Both run in one process, torch on ``--threads`` threads (default 1: NEURON is
single-threaded too; on a shared 2-core machine more threads mostly add contention).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hybridhh.analysis.spikes import spike_times as _spike_times
from hybridhh.biophysics import Biophysics
from hybridhh.errors import SimulationError
from hybridhh.hh import resting_potential
from hybridhh.kinetics import HHKinetics
from hybridhh.neuron_reference import NeuronCells, neuron_available
from hybridhh.protocols import Stimulus, default_protocols, steps, time_grid
from hybridhh.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
FIXED_METHODS = ("exp_euler", "ind_exp_euler", "rk4", "neuron")


def spike_times(V, time) -> list[np.ndarray]:
    """Every upward 0 mV crossing per trace, linearly interpolated (ms).

    :func:`hybridhh.analysis.spikes.spike_times` at 0 mV without a refractory period, so
    that an integrator's spurious crossings count as unmatched spikes.
    """
    return _spike_times(V, time, 0.0, refractory=0.0)


def match_spikes(ref: np.ndarray, test: np.ndarray, window: float = 1.0):
    """Greedy nearest matching within ``window`` ms: ``(|Δt| of pairs, n unmatched)``."""
    used = np.zeros(len(test), dtype=bool)
    diffs = []
    for s in ref:
        if len(test) == 0:
            break
        d = np.abs(test - s)
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= window:
            used[j] = True
            diffs.append(d[j])
    unmatched = (len(ref) - len(diffs)) + (len(test) - int(used.sum()))
    return np.array(diffs), unmatched


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _pick_traces(stim: Stimulus, prefixes) -> Stimulus:
    idx = []
    for p in prefixes:
        hits = [i for i, n in enumerate(stim.names) if n.startswith(p) and i not in idx]
        if hits:
            idx.append(hits[0])
    return stim.select(idx)


def accuracy(duration: float, dts, log) -> list[dict]:
    """Fixed-step integrators vs a tight dopri5 reference on default-protocol traces."""
    t = time_grid(duration, 0.1)  # every dt below divides the 0.1 ms sample step
    stim = _pick_traces(default_protocols(t), ["step_10", "step_40", "ramp", "ou_"])
    log(f"accuracy: {stim.n_traces} traces ({', '.join(stim.names)}), {duration:g} ms")
    # one trace at a time: in a batch every trace would take the hardest trace's steps
    ref, ref_s = _timed(lambda: np.concatenate([
        simulate(stim.select(k), method="dopri5", rtol=1e-9, atol=1e-9).V.numpy()
        for k in range(stim.n_traces)]))
    ref_spikes = spike_times(ref, t)
    log(f"  reference dopri5 rtol=atol=1e-9: {ref_s:.1f} s, "
        f"{sum(len(s) for s in ref_spikes)} spikes")
    rows = []
    for method in FIXED_METHODS:
        for dt in dts:
            try:
                traj, wall = _timed(lambda m=method, d=dt: simulate(stim, method=m, dt=d))
            except SimulationError:  # rk4 is unstable at the larger steps
                rows.append({"method": method, "dt": dt, "diverged": True,
                             "max_abs_dV": None, "spike_max_abs_dt": None,
                             "spikes_unmatched": None,
                             "spikes_reference": int(sum(len(s) for s in ref_spikes)),
                             "wall_s": None})
                log(f"  {method:14s} dt={dt:<6g} diverged (non-finite values)")
                continue
            V = traj.V.numpy()
            diffs, unmatched = [], 0
            for a, b in zip(ref_spikes, spike_times(V, t), strict=True):
                d, u = match_spikes(a, b)
                diffs.extend(d)
                unmatched += u
            rows.append({
                "method": method, "dt": dt, "diverged": False,
                "max_abs_dV": float(np.abs(V - ref).max()),
                "spike_max_abs_dt": float(max(diffs)) if diffs else 0.0,
                "spikes_unmatched": int(unmatched),
                "spikes_reference": int(sum(len(s) for s in ref_spikes)),
                "wall_s": wall,
            })
            r = rows[-1]
            log(f"  {method:14s} dt={dt:<6g} max|dV|={r['max_abs_dV']:9.3g} mV  "
                f"spike |dt|max={r['spike_max_abs_dt']:8.3g} ms  unmatched={unmatched:3d}  "
                f"{wall:6.2f} s")
    return rows


def throughput(sizes, duration: float, dt: float, compile_too: bool, log) -> list[dict]:
    """Cell-ms per second: ours (eager, compiled), NEURON hh, scipy LSODA (one cell)."""
    t = time_grid(duration, dt)
    rows = []
    # computed once: the default V0 (a root search) would add ~0.1 s to every run
    v_rest = resting_potential(HHKinetics(), Biophysics.standard())

    def add(impl, n, wall, **extra):
        rows.append({"impl": impl, "cells": n, "duration_ms": duration, "dt": dt,
                     "wall_s": wall, "cell_ms_per_s": n * duration / wall, **extra})
        log(f"  {impl:28s} n={n:<6d} {wall:8.2f} s  {n * duration / wall:12.4g} cell-ms/s"
            + "".join(f"  {k}={v:.3g}" for k, v in extra.items()))

    for n in sizes:
        # amplitudes 0..20 µA/cm²: silent, threshold and tonic-firing cells alike
        stim = steps(t, np.linspace(0.0, 20.0, n), start=5.0)
        _, wall = _timed(lambda s=stim: simulate(s, method="exp_euler", V0=v_rest))
        add("ours exp_euler eager", n, wall)
        if compile_too:
            warm = steps(time_grid(1.0, dt), np.linspace(0.0, 20.0, n), start=0.5)
            _, compile_s = _timed(lambda w=warm: simulate(w, method="exp_euler", V0=v_rest,
                                                              compile=True))
            _, wall = _timed(lambda s=stim: simulate(s, method="exp_euler", V0=v_rest,
                                                             compile=True))
            add("ours exp_euler compiled", n, wall, compile_s=compile_s)
        if neuron_available():
            cells, build_s = _timed(lambda k=n: NeuronCells(k))
            _, wall = _timed(lambda c=cells, s=stim: c.run(s, V0=v_rest, usetable=True))
            add("NEURON hh (usetable=1)", n, wall, build_s=build_s)
            if n <= 1000:
                _, wall = _timed(lambda c=cells, s=stim: c.run(s, V0=v_rest, usetable=False))
                add("NEURON hh (usetable=0)", n, wall)
            wall = _neuron_core_only(cells, len(t) - 1, dt, v_rest)
            add("NEURON hh core only (bound)", n, wall)
            del cells
        if n == 1:
            _, wall = _timed(lambda s=stim: simulate(s, method="lsoda", V0=v_rest,
                                                         rtol=1e-6, atol=1e-6))
            add("scipy LSODA rtol=atol=1e-6", 1, wall)
    return rows


def _neuron_core_only(cells, n_steps: int, dt: float, v_rest: float) -> float:
    """Seconds for NEURON's time steps alone: constant IClamp amplitudes, nothing played
    or recorded (a lower bound on NEURON's cost, usetable_hh = 1)."""
    h = cells.h
    saved = (h.dt, h.usetable_hh)
    for k, clamp in enumerate(cells.clamps):
        clamp.amp = 20.0 * k / max(cells.n - 1, 1)
    h.dt, h.usetable_hh = dt, 1
    h.finitialize(v_rest)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        h.fadvance()
    wall = time.perf_counter() - t0
    h.dt, h.usetable_hh = saved
    return wall


def _table(rows, columns) -> str:
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r) for _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny version (seconds)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "simulate.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, flush=True)

    if args.quick:
        acc_duration, dts, sizes, tp_duration = 20.0, [0.1, 0.05], [1, 100], 20.0
    else:
        acc_duration, dts, sizes, tp_duration = 100.0, [0.1, 0.05, 0.025, 0.01], \
            [1, 100, 1000, 10000], 100.0
    compile_too = not args.no_compile and not args.quick

    t0 = time.time()
    acc_rows = accuracy(acc_duration, dts, log)
    log("throughput:")
    tp_rows = throughput(sizes, tp_duration, 0.025, compile_too, log)

    div = lambda fmt: (lambda r: "diverged" if r["diverged"] else fmt(r))
    acc_table = _table(acc_rows, [
        ("method", lambda r: r["method"]), ("dt (ms)", lambda r: f"{r['dt']:g}"),
        ("max abs dV (mV)", div(lambda r: f"{r['max_abs_dV']:.3g}")),
        ("spike max abs dt (ms)", div(lambda r: f"{r['spike_max_abs_dt']:.3g}")),
        ("unmatched spikes",
         div(lambda r: f"{r['spikes_unmatched']}/{r['spikes_reference']}")),
        ("wall (s)", div(lambda r: f"{r['wall_s']:.2f}")),
    ])
    tp_table = _table(tp_rows, [
        ("implementation", lambda r: r["impl"]), ("cells", lambda r: str(r["cells"])),
        ("wall (s)", lambda r: f"{r['wall_s']:.2f}"),
        ("cell-ms/s", lambda r: f"{r['cell_ms_per_s']:.4g}"),
        ("set-up (s)", lambda r: (f"compile {r['compile_s']:.1f}" if "compile_s" in r else
                                  f"build {r['build_s']:.2f}" if "build_s" in r else "")),
    ])
    print("\n## Integrator accuracy vs speed "
          f"({acc_duration:g} ms, reference dopri5 rtol=atol=1e-9)\n")
    print(acc_table)
    print(f"\n## Throughput ({tp_duration:g} ms at dt 0.025 ms, float64, "
          f"{args.threads} torch thread(s))\n")
    print(tp_table)

    try:
        import neuron

        neuron_version = neuron.__version__
    except ImportError:
        neuron_version = None
    result = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "quick": args.quick,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "neuron": neuron_version,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "total_s": time.time() - t0,
            "note": ("Measured on a shared machine (2 cores used by other engineers at the "
                     "same time): wall times are noisy, compare within one run. NEURON runs "
                     "single-threaded with usetable_hh=1 (its default) unless noted; every "
                     "timing includes the run's set-up and returns V on the sample grid."),
        },
        "accuracy": {"duration_ms": acc_duration, "reference": "dopri5 rtol=atol=1e-9",
                     "rows": acc_rows},
        "throughput": {"duration_ms": tp_duration, "dt": 0.025, "rows": tp_rows},
        "tables_markdown": {"accuracy": acc_table, "throughput": tp_table},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

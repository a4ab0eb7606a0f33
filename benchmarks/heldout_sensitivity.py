"""How much held-out V error does a small kinetics error cause? (issue 4's RMSE target)

The fit's held-out target is a free-running V RMSE below 1 mV on new stimuli (4 OU traces
of 100 ms, ``benchmarks/fit.py``). This script runs the *true* HH kinetics on that
held-out stimulus with one gate's tau scaled by a small factor (all voltages alike) and
reports the RMSE against the true trajectories, with the spike count (the package's one
spike definition, :func:`hybridhh.benchmarking.count_spikes`: upward crossings of the true
resting potential + 50 mV; result files written before it counted 0 mV crossings). It is
the scale against which the fit's own kinetics errors (about 1 % tau median) should be read.

Prints a table and writes ``benchmarks/results/heldout_sensitivity.json``::

    python benchmarks/heldout_sensitivity.py            # about 3 min
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hybridhh.benchmarking import count_spikes, heldout_rmse, make_data, spike_threshold_of
from hybridhh.fitting import free_run
from hybridhh.fitting.data import TraceData
from hybridhh.kinetics import HHKinetics, rates_from_inf_tau

OUT = Path(__file__).parent / "results" / "heldout_sensitivity.json"


class ScaledTau:
    """The true kinetics with gate ``gate``'s tau multiplied by ``factor`` (x_inf kept)."""

    def __init__(self, truth, gate: int, factor: float):
        self.truth, self.gate, self.factor = truth, gate, factor

    def inf_tau(self, V):
        x_inf, tau = self.truth.inf_tau(V)
        tau = tau.clone()
        tau[..., self.gate] *= self.factor
        return x_inf, tau

    def rates(self, V):
        return rates_from_inf_tau(*self.inf_tau(V))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", type=float, nargs="*",
                    default=[0.99, 0.997, 1.003, 1.01], help="tau scale factors")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    _, test = make_data()
    data = TraceData.from_recording(test)
    truth = HHKinetics("modern")

    threshold = spike_threshold_of(test, truth)

    def spikes(V):
        return count_spikes(V, test.time, threshold)

    n_true = spikes(test.voltage)
    rows = []
    print(f"{'gate':>4} {'tau x':>7} {'RMSE mV':>8} {'spikes':>7}")
    for g, name in enumerate("mhn"):
        for f in args.factors:
            V = free_run(ScaledTau(truth, g, f), data, method="rk4").numpy()
            rmse = heldout_rmse(V, test)
            rows.append({"gate": name, "tau_factor": f, "heldout_rmse": rmse,
                         "spikes": spikes(V), "spikes_true": n_true})
            print(f"{name:>4} {f:7.3f} {rmse:8.3f} {spikes(V):>3}/{n_true:<3}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

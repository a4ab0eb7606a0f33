"""The synthetic twin of ``171116sh_0018``: a NEURON cell whose every parameter is known.

The twin is NEURON's ``hh`` (modern convention, exact rates ``usetable_hh = 0``, 6.3 °C)
with a cortical-like passive response: C_total 300 pF (C_m = 1 µF/cm², so the nominal area
is 3e-4 cm² and a current of I pA is a density of I / 300 µA/cm²), g_Na 40, g_K 4, g_L
0.025 mS/cm², E_Na 50, E_K −77, E_L −62 mV (:data:`TRUTH`). Squid densities (120/36/0.3)
would give a 1–2 ms membrane and no spike under ±300 pA; at a third of g_Na, a ninth of
g_K and a twelfth of g_L the twin rests at −65 mV with R_in ≈ 100 MΩ and τ_m ≈ 26 ms (the
real cell: 107–111 MΩ, 32–34 ms) and fires on the steps from +50 pA up (as the real cell),
10–20 spikes per 500 ms step (HH's abrupt type-II onset; the real cell fires 1–9).

The protocol is the file's (:func:`dual_step`): 17 sweeps, step S = −100 + 25 k pA from
146.85 to 646.85 ms, −100 pA from 1146.85 to 1646.85 ms, S again to 2146.85 ms; the sweeps
are simulated to 2200 ms (the end of the last test window). :func:`make_twin` records it
as an amplifier would:

1. NEURON fixed step 0.005 ms (``substeps`` = 10 per sample), the current the
   piecewise-linear interpolation of its 20 kHz samples (what the fitter assumes);
2. an unbalanced series resistance: V_recorded = V_m + R_s · I (R_s 2 MΩ; 1 MΩ · 1 pA =
   1e-3 mV), the bridge balance stated as 0 MΩ in the metadata;
3. a causal 4-pole Bessel low-pass, −3 dB at 10 kHz (an amplifier's filter,
   :func:`lowpass`), on the 200 kHz signal;
4. sampling at 20 kHz (every 10th fine sample);
5. white Gaussian noise of SD 0.1 mV added after the filter (the digitiser's and the
   rig's noise as it appears in the samples: the real file's third-difference noise).

The recording keeps the current in pA, marks every cell parameter unknown
(:meth:`hybridhh.cell.Cell.unknown`), the temperature unknown (the placeholder is the
truth's 6.3 °C; the learned rates carry no temperature anyway), the low-pass and bridge
balance in its metadata, and the truth (kinetics ``hh_modern``; ``/truth/voltage`` = the
noise-free, unfiltered V_m) for scoring.

The fit is :mod:`realcell`'s: the bridge error the passive analysis measures removed
first (``--series-resistance``, default auto: the jump at the onsets over ΔI), train on
the first step of the even sweeps (100–700 ms), every cell parameter free, C_total, g_L,
E_L started from the passive analysis of the −100 pA steps
(:func:`hybridhh.analysis.passive.passive_cell`, which also bounds C_total); tests on
the odd sweeps (100–700 ms) and the even sweeps' second step (1600–2200 ms). Scored
against the issue's twin targets (:data:`TARGETS`): each cell parameter, the kinetics
over the visited range (:func:`hybridhh.analysis.metrics.kinetics_metrics`), the held-out
free-run V RMSE (against the recorded V and against the true V_m), spike
counts and Γ (:func:`hybridhh.analysis.features.compare_traces`), and the fit's verdict.

::

    python benchmarks/twin.py                      # the benchmark (writes results/twin.json)
    python benchmarks/twin.py --quick              # smoke: 3 short sweeps, FitConfig.quick()
    python benchmarks/twin.py --no-noise --out /tmp/t.json   # ablations: --no-noise,
                                                   # --no-filter, --no-rs (one impairment off)

Units: ms, mV, pA, pF, mS/cm², MΩ, kHz.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hybridhh.biophysics import Biophysics
from hybridhh.cell import Cell, CellParameter
from hybridhh.recording import Recording, Truth

HERE = Path(__file__).resolve().parent

#: The twin's cell: conductances mS/cm², reversal potentials mV, °C (C_m 1 µF/cm²).
TRUTH_BIOPHYSICS = Biophysics(C_m=1.0, g_Na=40.0, g_K=4.0, g_L=0.025, E_Na=50.0, E_K=-77.0,
                              E_L=-62.0, temperature=6.3)
#: Total capacitance, pF.
C_TOTAL = 300.0
#: Every cell parameter of the twin (pF; mS/cm²; mV): what the fit should recover.
TRUTH = {"C_total": C_TOTAL, **{k: getattr(TRUTH_BIOPHYSICS, k)
                                for k in ("g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L")}}
#: The recording impairments: noise SD (mV), low-pass cut-off (kHz), series resistance (MΩ).
NOISE = 0.1
LOWPASS = 10.0
SERIES_RESISTANCE = 2.0
#: Sampling step (ms) and NEURON steps per sample.
DT = 0.05
SUBSTEPS = 10
#: The file's epochs (ms): first step, the -100 pA epoch, the second step.
STEP1 = (146.85, 646.85)
EPOCH = (1146.85, 1646.85, -100.0)
STEP2 = (1646.85, 2146.85)
#: Step amplitudes of the 17 sweeps, pA.
AMPLITUDES = tuple(-100.0 + 25.0 * k for k in range(17))
DURATION = 2200.0


def dual_step(time: np.ndarray, amplitudes) -> np.ndarray:
    """The ``0113 steps dual`` command, pA, ``[len(amplitudes), len(time)]``: each step
    amplitude S (pA) from 146.85 to 646.85 ms and from 1646.85 to 2146.85 ms, −100 pA from
    1146.85 to 1646.85 ms, 0 elsewhere (a sample at an epoch's start belongs to it)."""
    t = np.asarray(time, dtype=np.float64)[None, :]
    eps = 1e-9
    S = np.asarray(amplitudes, dtype=np.float64)[:, None]
    inside = lambda a, b: (t >= a - eps) & (t < b - eps)  # noqa: E731
    I = np.where(inside(*STEP1) | inside(*STEP2), S, 0.0)
    return np.where(inside(EPOCH[0], EPOCH[1]), EPOCH[2], I)


def lowpass(x: np.ndarray, cutoff: float, dt: float) -> np.ndarray:
    """A causal 4-pole Bessel low-pass (−3 dB at ``cutoff`` kHz) along the last axis of
    ``x`` sampled every ``dt`` ms, started in its steady state at the first sample (an
    amplifier's filter; ``scipy.signal.bessel(4, norm="mag")``, ``sosfilt``)."""
    from scipy.signal import bessel, sosfilt, sosfilt_zi

    fs = 1.0 / dt  # kHz
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"lowpass cutoff {cutoff} kHz must lie in (0, {fs / 2:g}) kHz, the "
                         f"Nyquist frequency of the {dt} ms step")
    sos = bessel(4, cutoff, btype="low", norm="mag", fs=fs, output="sos")
    x = np.asarray(x, dtype=np.float64)
    zi = sosfilt_zi(sos)  # (sections, 2): the steady state of a unit input
    zi = zi * x[0] if x.ndim == 1 else zi[:, None, :] * x[None, :, :1]
    y, _ = sosfilt(sos, x, axis=-1, zi=zi)
    return y


@dataclasses.dataclass(frozen=True)
class Impairments:
    """How the twin is recorded: ``noise`` SD (mV, 0: none), ``lowpass`` cut-off (kHz,
    None: no filter), ``series_resistance`` (MΩ, 0: none), ``seed`` of the noise."""

    noise: float = NOISE
    lowpass: float | None = LOWPASS
    series_resistance: float = SERIES_RESISTANCE
    seed: int = 0

    def __post_init__(self):
        if not self.noise >= 0:
            raise ValueError(f"Impairments.noise: {self.noise} mV must be >= 0")
        if self.lowpass is not None and not self.lowpass > 0:
            raise ValueError(f"Impairments.lowpass: {self.lowpass} kHz must be > 0 or None")
        if not self.series_resistance >= 0:
            raise ValueError(f"Impairments.series_resistance: {self.series_resistance} MOhm "
                             "must be >= 0")


def make_twin(amplitudes=AMPLITUDES, duration: float = DURATION, impairments=Impairments(),
              dt: float = DT, substeps: int = SUBSTEPS) -> Recording:
    """The twin recorded under the dual-step protocol (see the module docstring).

    ``amplitudes`` (pA) are the sweeps' step amplitudes (sweep k of the file has
    −100 + 25 k); ``duration`` ms from the sweep's start; NEURON steps at ``dt /
    substeps``. Returns a :class:`Recording` in pA, every cell parameter unknown, one
    trace ``sweep_k`` per amplitude, with ``/truth`` (hh_modern, 6.3 °C, the noise-free
    unfiltered V_m) and metadata ``lowpass`` (kHz, when filtered), ``bridge_balance`` 0
    MΩ, ``sweeps``, ``source_file``, ``series_resistance`` (free text). Needs NEURON.
    """
    from hybridhh.neuron_reference import NeuronCells
    from hybridhh.protocols import Stimulus

    amplitudes = [float(a) for a in amplitudes]
    sweeps = [int(round((a + 100.0) / 25.0)) for a in amplitudes]
    time = np.arange(int(round(duration / dt)) + 1) * dt
    current = dual_step(time, amplitudes)  # pA on the 20 kHz grid
    fine_dt = dt / substeps
    fine = np.arange((len(time) - 1) * substeps + 1) * fine_dt
    fine_current = np.array([np.interp(fine, time, c) for c in current])
    cells = NeuronCells(len(amplitudes), TRUTH_BIOPHYSICS)
    stim = Stimulus(fine, fine_current / C_TOTAL, [f"sweep_{k}" for k in sweeps])
    Vm = cells.run(stim, dt=fine_dt)  # mV on the fine grid
    del cells
    imp = impairments
    V = Vm + imp.series_resistance * fine_current * 1e-3  # MOhm * pA = 1e-3 mV
    if imp.lowpass is not None:
        V = lowpass(V, imp.lowpass, fine_dt)
    V = V[:, ::substeps]
    if imp.noise > 0:
        V = V + imp.noise * np.random.default_rng([imp.seed, 20]).standard_normal(V.shape)
    meta = {"source_file": "benchmarks/twin.py (synthetic twin of 171116sh_0018.abf)",
            "sweeps": sweeps, "bridge_balance": 0.0,
            "series_resistance": f"{imp.series_resistance:g} MOhm unbalanced "
                                 "(V_recorded = V_m + R_s I)"}
    if imp.lowpass is not None:
        meta["lowpass"] = float(imp.lowpass)
    filt = ("causal 4-pole Bessel low-pass -3 dB at "
            f"{imp.lowpass:g} kHz" if imp.lowpass is not None else "no low-pass")
    description = (f"synthetic twin: NEURON hh (usetable 0, 6.3 degC) C_total {C_TOTAL:g} pF, "
                   f"{TRUTH}; dual-step protocol of 171116sh_0018; NEURON step {fine_dt:g} ms, "
                   f"R_s {imp.series_resistance:g} MOhm, {filt}, sampled every {dt:g} ms, "
                   f"noise SD {imp.noise:g} mV (seed {imp.seed}) after the filter; current in "
                   "pA; cell parameters unknown (/cell), temperature unknown")
    truth = Truth(kinetics="hh_modern", temperature=TRUTH_BIOPHYSICS.temperature, q10=3.0,
                  voltage=Vm[:, ::substeps], integrator=f"NEURON hh, fixed step {fine_dt:g} ms")
    placeholder = Biophysics.standard("modern", TRUTH_BIOPHYSICS.temperature)
    return Recording(time=time, voltage=V, current=current,
                     trace_names=tuple(f"sweep_{k}" for k in sweeps), biophysics=placeholder,
                     source="benchmarks/twin.py via NEURON hh", description=description,
                     truth=truth, noise_sigma=float(imp.noise),
                     noise_seed=imp.seed if imp.noise > 0 else None, temperature_known=False,
                     current_units="pA", cell=Cell.unknown(), metadata=meta)


# --- the benchmark ----------------------------------------------------------------------

FREE = ("C_total", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L")
#: (sweeps, window ms) of the training set and the two test sets (realcell.py's).
SETS = {"train": (tuple(range(0, 17, 2)), (100.0, 700.0)),
        "odd_sweeps": (tuple(range(1, 17, 2)), (100.0, 700.0)),
        "second_step": (tuple(range(0, 17, 2)), (1600.0, 2200.0))}
QUICK_SETS = {"train": ((8, 12, 16), (100.0, 400.0)),
              "odd_sweeps": ((9,), (100.0, 400.0)),
              "second_step": ((12,), (1600.0, 1900.0))}
#: The issue's twin targets: relative error of C_total and the g's (fractions), absolute
#: error of the E's (mV), held-out free-run V RMSE (mV); kinetics: metrics.TARGETS.
TARGETS = {"C_total": 0.05, "g_Na": 0.10, "g_K": 0.10, "g_L": 0.10,
           "E_Na": 2.0, "E_K": 2.0, "E_L": 2.0, "heldout_rmse": 0.5}


def window(rec: Recording, sweeps, span) -> Recording:
    """The traces of ``sweeps`` (file sweep numbers) of ``rec``, ``span[0] <= t <= span[1]``
    ms (:func:`hybridhh.importing.apply_window`'s rule), truth included."""
    from hybridhh.importing import apply_window

    names = [f"sweep_{k}" for k in sweeps]
    sub = rec.select(names)
    tv = sub.truth.voltage
    time, V, I, Vt = apply_window("twin", sub.time, span, sub.voltage, sub.current, tv)
    return dataclasses.replace(sub, time=time, voltage=V, current=I,
                               truth=dataclasses.replace(sub.truth, voltage=Vt))


def cell_scores(fitted: dict | None) -> dict:
    """Each cell parameter: truth, fitted, error (relative for C_total and g's, mV for the
    E's), target and pass."""
    out = {}
    for name, true in TRUTH.items():
        value = None if fitted is None else fitted.get(name)
        if value is None:
            out[name] = {"truth": true, "fitted": None, "error": None,
                         "target": TARGETS[name], "pass": False}
            continue
        err = abs(value - true) if name.startswith("E_") else abs(value - true) / true
        out[name] = {"truth": true, "fitted": float(value), "error": float(err),
                     "target": TARGETS[name], "pass": bool(err <= TARGETS[name])}
    return out


def _rmse(a, b) -> float:
    r = float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))
    return r if np.isfinite(r) else float("inf")


def score_test_set(rec: Recording, V_pred) -> dict:
    """A test set's prediction: free-run V RMSE against the recorded V and against the
    true V_m (mV), :func:`compare_traces` summary and per trace (spike counts, Γ,
    subthreshold RMSE)."""
    from hybridhh.analysis.features import compare_traces

    c = compare_traces(rec.time, rec.voltage, V_pred, rec.current, names=rec.trace_names,
                       units=rec.current_units)
    rmse = _rmse(V_pred, rec.voltage)
    return {"rmse_recorded": rmse, "rmse_true": _rmse(V_pred, rec.truth.voltage),
            "pass": bool(rmse < TARGETS["heldout_rmse"]),
            "summary": c["summary"],
            "per_trace": [{k: r[k] for k in ("name", "spike_count_diff", "coincidence",
                                             "subthreshold_rmse")}
                          | {"measured_spikes": r["measured"]["spike_count"],
                             "predicted_spikes": r["predicted"]["spike_count"],
                             "rmse_recorded": _rmse(V_pred[i], rec.voltage[i])}
                          for i, r in enumerate(c["per_trace"])]}


def run_fit(data: dict, run_dir, quick: bool, settings: dict, free=FREE) -> dict:
    """Fit the training set (the cell parameters ``free`` estimated, the others known),
    score the cell, the kinetics and both test sets."""
    import hybridhh as hh
    from hybridhh.analysis.metrics import kinetics_metrics
    from hybridhh.fitting.config import FitConfig
    from hybridhh.recording import truth_kinetics

    free = tuple(free)
    config = FitConfig.quick(free=free) if quick else FitConfig(free=free)
    if settings:
        config = config.updated(settings)
    t0 = time.perf_counter()
    res = hh.fit(data["train"], config, run_dir=run_dir, quiet=True)
    wall = time.perf_counter() - t0
    result = json.loads((Path(run_dir) / "result.json").read_text())
    truth = truth_kinetics(data["train"])
    out = {"wall": wall, "biophysics": result.get("biophysics"),
           "biophysics_sd": result.get("biophysics_sd"),
           "cell": cell_scores(result.get("biophysics")),
           "kinetics": kinetics_metrics(res.model, truth, *res.voltage_range),
           "verdict": result["quality"]["verdict"], "reasons": result["quality"]["reasons"],
           "fit_heldout_rmse": result.get("heldout_rmse"), "tests": {}}
    for name in data:
        if name != "train":
            pred = hh.predict(run_dir, data[name], method="exp_euler", warnings=[])
            out["tests"][name] = score_test_set(data[name], pred.voltage)
    return out


def _fmt(x, spec=".3g"):
    return "—" if x is None else format(x, spec)


def table(fit: dict) -> str:
    """The scores as a Markdown table."""
    lines = ["| figure | truth | fitted | error | target | pass |", "|---|---|---|---|---|---|"]
    for name, s in fit["cell"].items():
        unit = "mV" if name.startswith("E_") else ""
        err = (_fmt(s["error"], ".2f") + " mV") if unit else \
            ("—" if s["error"] is None else f"{100 * s['error']:.1f} %")
        tgt = f"{s['target']:g} mV" if unit else f"{100 * s['target']:g} %"
        lines.append(f"| {name} | {s['truth']:g} | {_fmt(s['fitted'], '.4g')} | {err} | "
                     f"{tgt} | {'yes' if s['pass'] else 'no'} |")
    k = fit["kinetics"]
    for key, target in k["targets"].items():
        show = (lambda x: f"{x:.3f}") if key == "xinf_max" else (lambda x: f"{100 * x:.1f} %")
        lines.append(f"| kinetics {key} | | | {show(k['worst'][key])} | {show(target)} | "
                     f"{'yes' if k['pass'][key] else 'no'} |")
    for name, t in fit["tests"].items():
        s = t["summary"]
        lines.append(f"| {name}: V RMSE (recorded / true V_m) | | | "
                     f"{t['rmse_recorded']:.2f} / {t['rmse_true']:.2f} mV | "
                     f"{TARGETS['heldout_rmse']:g} mV | {'yes' if t['pass'] else 'no'} |")
        lines.append(f"| {name}: mean abs dn, Γ, subthr. RMSE | | | "
                     f"{_fmt(s['spike_count_abs_diff'], '.2f')}, {_fmt(s['coincidence'], '.2f')}"
                     f", {_fmt(s['subthreshold_rmse'], '.2f')} mV | | |")
    ok = "yes" if fit["verdict"] == "ok" else "no"
    lines.append(f"| verdict | | {fit['verdict']} | | ok | {ok} |")
    return "\n".join(lines)


def label_of(results: dict) -> str:
    """A run's name in the JSON: ``default``, ``quick``, or its ablations (``no_noise``,
    ``no_filter+no_rs``, ...; ``quick`` first when quick) and ``--set`` changes
    (``set_seed=1``)."""
    parts = ((["quick"] if results.get("quick") else []) + list(results.get("ablation", []))
             + [f"set_{x}" for x in results.get("settings", [])])
    return "+".join(parts) or "default"


def merge(path, results: dict) -> dict:
    """``{"runs": {label: results}}``: the runs already in ``path`` (if it exists), this
    one added or replaced under :func:`label_of`."""
    path = Path(path)
    runs = {}
    if path.exists():
        old = json.loads(path.read_text())
        runs = dict(old["runs"]) if "runs" in old else {label_of(old): old}
    runs[label_of(results)] = results
    order = ["default"] + sorted(k for k in runs if k != "default")
    return {"runs": {k: runs[k] for k in order if k in runs}}


def main(argv=None) -> int:
    import torch

    from hybridhh.analysis.passive import (
        correct_series_resistance,
        passive_analysis,
        passive_cell,
    )
    from hybridhh.atomic import atomic_write_text
    from hybridhh.fitting.config import parse_assignments

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "twin.json"))
    ap.add_argument("--run-dir", default=None, help="keep the hybridhh run here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 3 short sweeps, FitConfig.quick() (numbers mean nothing)")
    ap.add_argument("--no-noise", action="store_true", help="ablation: no measurement noise")
    ap.add_argument("--no-filter", action="store_true", help="ablation: no low-pass filter")
    ap.add_argument("--no-rs", action="store_true", help="ablation: no series resistance")
    ap.add_argument("--known", nargs="+", default=[], metavar="NAME",
                    help="diagnostic: these cell parameters (or 'all') known at their true "
                         "values, the rest fitted")
    ap.add_argument("--series-resistance", default="auto", metavar="MOHM|auto|none",
                    help="bridge error removed from every set before fitting, as realcell.py "
                         "(default auto: the passive analysis' R_s of the whole twin)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the measurement noise")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="FitConfig fields for the fit")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = parse_assignments(args.set) if args.set else {}

    imp = Impairments(noise=0.0 if args.no_noise else NOISE,
                      lowpass=None if args.no_filter else LOWPASS,
                      series_resistance=0.0 if args.no_rs else SERIES_RESISTANCE,
                      seed=args.seed)
    known = list(FREE) if args.known == ["all"] else list(args.known)
    bad = sorted(set(known) - set(FREE))
    if bad:
        ap.error(f"--known {' '.join(bad)}: not a cell parameter; use 'all' or some of "
                 f"{', '.join(FREE)}")
    free = tuple(n for n in FREE if n not in known)
    sets = QUICK_SETS if args.quick else SETS
    sweeps = sorted({k for sw, _ in sets.values() for k in sw} | {0})
    duration = max(win[1] for _, win in sets.values())
    t0 = time.perf_counter()
    full = make_twin([AMPLITUDES[k] for k in sweeps], duration, imp)
    made = time.perf_counter() - t0
    choice = args.series_resistance.lower()
    R_s = (passive_analysis(full, amplitudes=[-100.0]).R_s if choice == "auto" else
           None if choice == "none" else float(choice))
    if R_s is not None:  # as realcell.py: the bridge error measured and removed first
        full = correct_series_resistance(full, R_s)
    passive = passive_analysis(full, amplitudes=[-100.0])
    data = {name: window(full, sw, win) for name, (sw, win) in sets.items()}
    cell = Cell({n: CellParameter(n, "known", value=TRUTH[n]) if n in known
                 else CellParameter(n, "unknown") for n in FREE})
    cell = passive_cell(cell, passive, names=[n for n in ("C_total", "g_L", "E_L")
                                              if n in free])
    data = {name: dataclasses.replace(rec, cell=cell) for name, rec in data.items()}
    results = {"quick": args.quick, "truth": TRUTH, "temperature": TRUTH_BIOPHYSICS.temperature,
               "impairments": dataclasses.asdict(imp),
               "ablation": [k for k, on in (("no_noise", args.no_noise),
                                            ("no_filter", args.no_filter),
                                            ("no_rs", args.no_rs)) if on]
               + ([f"known_{'all' if len(known) == len(FREE) else '_'.join(known)}"]
                  if known else [])
               + ([f"rs_{choice}"] if choice != "auto" else []),
               "known": known,
               "recording": {"dt": DT, "neuron_dt": DT / SUBSTEPS, "current_units": "pA",
                             "filter": "causal 4-pole Bessel (scipy bessel norm='mag', "
                                       "sosfilt) on the 200 kHz signal, before sampling",
                             "noise": "white Gaussian, added after the filter",
                             "series_resistance": "V_recorded = V_m + R_s I",
                             "protocol": "171116sh_0018 dual steps: S 146.85-646.85 ms, "
                                         "-100 pA 1146.85-1646.85 ms, S 1646.85-2146.85 ms"},
               "sets": {k: {"sweeps": list(sw), "window": list(win)}
                        for k, (sw, win) in sets.items()},
               "simulate_wall": made, "threads": torch.get_num_threads(),
               "passive": {k: v for k, v in dataclasses.asdict(passive).items()
                           if k != "steps"},
               "series_resistance": {"true": imp.series_resistance, "removed": R_s,
                                     "choice": args.series_resistance},
               "cell_start": cell.as_dict(),
               "targets": TARGETS, "free": list(free), "settings": list(args.set)}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or str(Path(tmp) / "run")
        fit = run_fit(data, run_dir, args.quick, settings, free)
    results["hybridhh"] = fit
    print(f"twin: {imp}; passive: R_in {passive.R_in:.1f} MOhm, tau_m {passive.tau_m:.1f} ms, "
          f"C_total {passive.C_total:.0f} pF, E_L {passive.E_L:.1f} mV")
    print(f"series resistance: true {imp.series_resistance:g} MOhm, removed "
          f"{'none' if R_s is None else format(R_s, '.3g') + ' MOhm'}")
    print(f"fit {fit['wall']:.0f} s, verdict {fit['verdict']}")
    print(table(fit))
    merged = merge(args.out, results)
    atomic_write_text(args.out, json.dumps(merged, indent=2, default=float))
    print(f"wrote run {label_of(results)!r} to {args.out} (runs: {', '.join(merged['runs'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

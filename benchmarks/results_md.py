"""Write ``docs/results.md`` from the benchmark results in ``benchmarks/results/*.json``.

Every number in ``docs/results.md`` comes from these files; nothing there is typed by hand.
Rerun a benchmark (``benchmarks/README.md``), then regenerate::

    python benchmarks/results_md.py            # or: make results
    python benchmarks/results_md.py --check    # exit 1 if docs/results.md is out of date

Files read: ``fit.json`` (``benchmarks/fit.py``), ``suite.json`` (``benchmarks/suite.py``),
``heldout_sensitivity.json``, ``noise_bias.json``, ``simulate.json``, ``twin.json``
(``benchmarks/twin.py``), ``realcell.json`` (``benchmarks/realcell.py``). A missing file leaves
its section out.
(``fit_variants.json`` is an early run of a since-replaced fitter, kept for the record and
not shown.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import operator
import sys
from pathlib import Path

from hybridhh.analysis.metrics import TARGETS
from hybridhh.atomic import atomic_write_text
from hybridhh.benchmarking import HELDOUT_RMSE_TARGET, WALL_TARGET, case_group
from hybridhh.suite import Case

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "results.md"
COMMAND = "python benchmarks/results_md.py"
GATES = "mhn"
RATES = ("alpha_m", "beta_m", "alpha_h", "beta_h", "alpha_n", "beta_n")
TARGET_NAMES = {"tau_median": "τ median", "tau_p90": "τ p90", "xinf_max": "x∞ max",
                "rate_median": "α/β median"}


# --- formatting ------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x, digits: int = 2) -> str:
    """A relative error as a percentage (``-`` for a missing value)."""
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def num(x, fmt: str = ".3g", unit: str = "") -> str:
    """A number with ``fmt`` and an optional unit (``-`` for a missing value)."""
    if x is None:
        return "-"
    if unit == "mV" and not abs(x) < 1e3:  # a free run that left the physiological range
        return "diverged"
    return f"{x:{fmt}}" + (f" {unit}" if unit else "")


def trio(values, fmt=lambda x: f"{100 * x:.2f}", unit: str = " %") -> str:
    """Three per-gate values as ``m / h / n``."""
    return " / ".join(fmt(v) for v in values) + unit


# --- fit.json --------------------------------------------------------------------------


def missed_targets(row: dict, targets: dict) -> str:
    """``all met`` or the kinetics targets the worst gate misses."""
    missed = [TARGET_NAMES.get(k, k) for k, t in targets.items()
              if row["summary"].get(k, float("inf")) >= t]
    return "all met" if not missed else "missed: " + ", ".join(missed)


def worst_rate(row: dict) -> str:
    """The worst rate's median relative error over the visited range, with its name."""
    best = max(((row["errors"][g][f"{ab}_median"], f"{ab}_{g}") for g in GATES
                for ab in ("alpha", "beta")), key=lambda p: p[0])
    return f"{pct(best[0], 1)} ({best[1]})"


def ode_kept(row: dict) -> str:
    """Whether the fit kept the neural-ODE stage's model (chosen on held-out traces)."""
    chosen = row.get("ode", {}).get("chosen")
    return {"ode": "yes", "teacher": "no"}.get(chosen, "-")


def spikes(row: dict) -> str:
    return f"{row['spikes_model']}/{row['spikes_true']}"


def fit_columns(row: dict, targets: dict) -> list[str]:
    """The columns every fit table shares."""
    s = row["summary"]
    return [num(row["wall"], ".0f"), pct(s["tau_median"]), pct(s["tau_p90"], 1),
            num(s["xinf_max"], ".3f"), worst_rate(row),
            num(row["heldout_rmse"], ".2f", "mV"), spikes(row), missed_targets(row, targets),
            pct(row.get("rate_median_constrained"), 1), ode_kept(row)]


FIT_HEADER = ["wall s", "worst-gate τ median", "τ p90", "x∞ max", "α/β median (worst rate)",
              "held-out V RMSE", "spikes model/true", "kinetics targets",
              "worst rate median in its own range", "ODE stage kept"]


def targets_row(targets: dict) -> list[str]:
    return [f"< {WALL_TARGET:g}", f"< {100 * targets['tau_median']:g} %",
            f"< {100 * targets['tau_p90']:g} %", f"< {targets['xinf_max']:g}",
            f"< {100 * targets['rate_median']:g} %", f"< {HELDOUT_RMSE_TARGET:g} mV",
            "", "", "", ""]


def describe_prior(row: dict) -> str:
    """A perturbed prior's fields (those that differ between the prior rows)."""
    p = row["config"]["prior"]
    return (f"activation {p['offset_activation']:g} mV above rest, "
            f"inactivation {p['offset_inactivation']:g} mV, slope {p['slope']:g} mV, "
            f"peak τ {p['tau_max']:g} ms")


def describe_data(row: dict) -> str:
    """The conditions of an ``elsewhere`` case, from its ``data`` arguments of make_data."""
    d = row.get("data", {})
    parts = []
    if d.get("simulator") == "neuron_hh":
        parts.append("NEURON `hh`")
    elif "simulator" in d:
        parts.append(f"`{d['simulator']}`")
    else:
        parts.append("RK4")
    steps = d.get("substeps", 1)
    parts.append("at the sample step" if steps == 1 else f"at 1/{steps} of the sample step")
    if "temperature" in d:
        parts.append(f"{d['temperature']:g} °C")
    if "convention" in d:
        parts.append(f"{d['convention']} convention")
    return ", ".join(parts)


def vrange(row: dict) -> str:
    lo, hi = row["errors"]["range"]
    return f"{lo:.1f} … {hi:.1f}"


def section_fit(fit: dict) -> str:
    targets = fit["targets"]
    rows = fit["rows"]
    by = {"seeds": [], "priors": [], "elsewhere": [], "noise": []}
    for r in rows:  # alpha_beta shares the priors' table
        group = case_group(r["case"])
        by["priors" if group == "alpha_beta" else group].append(r)
    m = fit.get("machine", {})
    out = ["## Fits (`benchmarks/fit.py` → `benchmarks/results/fit.json`)", "",
           f"Machine: {m.get('cpus', '?')} CPU cores, {m.get('torch_threads', '?')} torch "
           f"threads, torch {m.get('torch', '?')} (`{m.get('platform', '?')}`). "
           f"Config changes of the run (`--set`): {json.dumps(fit.get('set') or {})}.", "",
           "Errors over the visited voltage range (1st–99th percentile of the training V); "
           "τ and α/β are relative errors, x∞ absolute; *worst-gate* is the worst of m, h, n. "
           "Held-out V RMSE: free run of the fitted model under 4 new noise stimuli of 100 ms "
           "against the true V. *Own range*: each rate's median error over the range where "
           "the fit found the data constrain that rate (the worst rate). "
           "*ODE stage kept*: whether the neural-ODE model beat the teacher-forcing model on "
           "the recording's held-out trace. Wall times depend on the machine; `calibration` "
           "(seconds of a fixed piece of fitting work right before each case) is the scale.",
           ""]
    if by["seeds"]:
        out += ["### Default set, fit seeds", "",
                "Modern convention, default protocols (16 traces × 100 ms at 0.01 ms, RK4), "
                "6.3 °C, default `FitConfig`.", "",
                table(["fit seed", *FIT_HEADER, "calibration s"],
                      [[str(r["seed"]), *fit_columns(r, targets), num(r.get("calibration"), ".2f")]
                       for r in by["seeds"]] + [["targets", *targets_row(targets), ""]]), ""]
        names = []
        for r in by["seeds"]:
            names += [k for k in r.get("phases", {}) if k not in names]
        out += ["Seconds per phase (`phases`; `prior+setup`: stage `prior` and data "
                "preparation, `after`: held-out selection and constrained ranges):", "",
                table(["fit seed", *[f"`{n}`" for n in names]],
                      [[str(r["seed"]), *[num(r["phases"].get(n), ".1f") for n in names]]
                       for r in by["seeds"]]), ""]
    if by["priors"]:
        def label(r):
            if r["case"] == "alpha_beta":
                return '`parametrisation="alpha_beta"` (default prior)'
            return f"{r['case']}: {describe_prior(r)}"
        out += ["### Perturbed priors and the alpha/beta parametrisation", "",
                "Same data, fit seed 0.", "",
                table(["case", *FIT_HEADER], [[label(r), *fit_columns(r, targets)]
                                              for r in by["priors"]]), ""]
    if by["elsewhere"]:
        out += ["### Recordings made elsewhere or under other conditions", "",
                "Default `FitConfig`, fit seed 0; the held-out recording is RK4 at the same "
                "conditions.", "",
                table(["case", "data", "visited range mV", *FIT_HEADER],
                      [[r["case"], describe_data(r), vrange(r), *fit_columns(r, targets)]
                       for r in by["elsewhere"]]), ""]
    if by["noise"]:
        out += ["### Measurement noise", "",
                "Gaussian noise on the training V, fit seed 0, default `FitConfig` (stage "
                "`denoise` runs); held-out RMSE against the noise-free held-out V.", "",
                table(["case", "wall s", "τ median m/h/n", "τ p90 m/h/n", "x∞ max",
                       "α/β median (worst rate)", "held-out V RMSE", "spikes model/true",
                       "kinetics targets", "worst rate median in its own range",
                       "ODE stage kept"],
                      [[r["case"], num(r["wall"], ".0f"),
                        trio(r["errors"][g]["tau_median"] for g in GATES),
                        trio((r["errors"][g]["tau_p90"] for g in GATES),
                             fmt=lambda x: f"{100 * x:.1f}"),
                        num(r["summary"]["xinf_max"], ".3f"), worst_rate(r),
                        num(r["heldout_rmse"], ".2f", "mV"), spikes(r),
                        missed_targets(r, targets), pct(r.get("rate_median_constrained"), 1),
                        ode_kept(r)] for r in by["noise"]]), ""]
    if rows and not any("spike_threshold" in r for r in rows):
        out += ["The spike columns of this file were counted as upward crossings of 0 mV "
                "(65 mV in the 1952 convention), by the benchmark before the package's one "
                "spike definition; `benchmarks/fit.py` now counts crossings of the true "
                "resting potential + 50 mV (`hybridhh.analysis.spikes`) and records "
                "`spike_threshold` in every row.", ""]
    return "\n".join(out)


# --- suite.json ---------------------------------------------------------------------------

#: the cell of a case when nothing is changed (the squid values of :class:`Case`)
_CELL = {f.name: f.default for f in dataclasses.fields(Case) if f.name in ("g_Na", "g_K",
                                                                            "g_L", "E_L")}
_OPS = {"<": operator.lt, "≤": operator.le}


def _same_data(c: Case) -> bool:
    """The issue's clean-data conditions: sampled every <= 0.05 ms, >= 5 traces of >= 100 ms."""
    return c.dt <= 0.05 and c.traces >= 5 and c.duration >= 100.0


#: issue 19's target groups: (label, which cases, [(quantity, comparison, limit)]); a
#: quantity is a key of the row's ``summary``, ``heldout_rmse`` (mV) or ``basin``
SUITE_GROUPS = [
    ("Clean data, sample interval ≤ 0.05 ms, ≥ 5 traces of ≥ 100 ms",
     lambda c: c.noise == 0 and _same_data(c),
     [("tau_p90", "<", TARGETS["tau_p90"]), ("xinf_max", "<", TARGETS["xinf_max"]),
      ("rate_median", "<", TARGETS["rate_median"]),
      ("heldout_rmse", "<", HELDOUT_RMSE_TARGET), ("basin", "", True)]),
    ("1 mV noise, same data", lambda c: c.noise == 1.0 and _same_data(c),
     [("tau_p90", "<", 0.20), ("xinf_max", "<", 0.05)]),
    ("0.1 ms sampling and the single short trace",
     lambda c: c.dt >= 0.1 or c.family == "single",
     [("tau_p90", "≤", 0.37), ("xinf_max", "≤", 0.11)]),
]
#: the issue's band target: the truth inside the 90 % band on this fraction of the voltages
COVERAGE_TARGET = 0.85


def case_of(row: dict) -> Case:
    """The :class:`~hybridhh.suite.Case` a suite row was made from (its ``data``)."""
    return Case(**row["data"])


def describe_case(c: Case) -> str:
    """A case's conditions in short: family, sampling, traces × ms, °C, convention, noise,
    and the cell's changes from the squid values."""
    parts = [c.family, f"{c.dt:g} ms", f"{c.traces} × {c.duration:g} ms",
             f"{c.temperature:g} °C", c.convention,
             f"noise {c.noise:g} mV" if c.noise else "clean"]
    parts += [f"{k} {getattr(c, k):g}" for k, v in _CELL.items() if getattr(c, k) != v]
    return ", ".join(parts)


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def suite_columns(row: dict) -> list[str]:
    """The columns of one suite row after the case and its conditions."""
    if "error" in row:
        return [f"error: `{_cell_text(row['error'])}`"] + [""] * (len(SUITE_HEADER) - 3)
    s = row["summary"]
    verdict = (row.get("quality") or {}).get("verdict")
    cov = row.get("coverage")
    return [num(row["wall"], ".0f"), pct(s["tau_median"], 1), pct(s["tau_p90"], 1),
            num(s["xinf_max"], ".3f"), worst_rate(row), num(row["heldout_rmse"], ".2f", "mV"),
            spikes(row), "yes" if row["basin"] else "NO", f"`{verdict}`" if verdict else "-",
            f"{pct(cov['min'], 0)} ({cov['worst']})" if cov else "-"]


SUITE_HEADER = ["case", "conditions", "wall s", "worst-gate τ median", "τ p90", "x∞ max",
                "α/β median (worst rate)", "held-out V RMSE", "spikes model/true",
                "right basin", "verdict", "band coverage min"]


def _target_text(key: str, op: str, limit) -> str:
    if key == "basin":
        return "right basin"
    if key == "heldout_rmse":
        return f"held-out V {op} {limit:g} mV"
    if key == "xinf_max":
        return f"{TARGET_NAMES[key]} {op} {limit:g}"
    return f"{TARGET_NAMES[key]} {op} {100 * limit:g} %"


def _meets(row: dict, key: str, op: str, limit) -> bool:
    if "error" in row:
        return False
    if key == "basin":
        return bool(row["basin"]) is limit
    value = row["heldout_rmse"] if key == "heldout_rmse" else row["summary"][key]
    return _OPS[op](value, limit)


def suite_group_line(rows: list[dict], label: str, member, targets: list) -> str:
    """How many cases of one target group meet each target and all of them."""
    sel = [r for r in rows if member(case_of(r))]
    if not sel:
        goal = ", ".join(_target_text(*t) for t in targets)
        return f"- **{label}** ({goal}): no case of this group in the file."
    n = len(sel)
    each = ", ".join(f"{_target_text(*t)}: {sum(_meets(r, *t) for r in sel)}/{n}"
                     for t in targets)
    every = sum(all(_meets(r, *t) for t in targets) for r in sel)
    errors = sum("error" in r for r in sel)
    tail = f"; {errors} of them ended with an error" if errors else ""
    return f"- **{label}**: every target met in {every} of {n}; {each}{tail}."


def suite_checks(rows: list[dict]) -> list[str]:
    """The verdict against the truth's basin, and the bands' coverage target."""
    ok = [r for r in rows if "error" not in r]
    wrong = [r for r in ok if not r["basin"]]
    verdicts = [(r.get("quality") or {}).get("verdict") for r in wrong]
    flagged = sum(v in ("failed", "suspect") for v in verdicts)
    right_failed = sum((r.get("quality") or {}).get("verdict") == "failed"
                       for r in ok if r["basin"])
    banded = [r for r in ok if r.get("coverage")]
    covered = sum(r["coverage"]["min"] >= COVERAGE_TARGET for r in banded)
    return [f"- **Wrong basin, as judged by the truth**: {len(wrong)} of {len(ok)} fitted "
            f"cases; the verdict says `failed` or `suspect` for {flagged}, `ok` for "
            f"{verdicts.count('ok')}, nothing for {verdicts.count(None)}. Cases in the right "
            f"basin with the verdict `failed`: {right_failed}.",
            f"- **Error bands**: {len(banded)} of {len(ok)} fitted cases have bands; in "
            f"{covered} of them the truth lies inside every quantity's band on ≥ "
            f"{100 * COVERAGE_TARGET:g} % of the visited voltages."]


def _commits(rows: list[dict]) -> str:
    """The sentence naming the commits the rows were measured at (older rows have none)."""
    seen: dict = {}
    for r in rows:
        seen[r.get("commit") or "unrecorded"] = seen.get(r.get("commit") or "unrecorded", 0) + 1
    if list(seen) == ["unrecorded"]:
        return ""
    return " Rows measured at commit " + ", ".join(f"`{c}` ({n})" for c, n in seen.items()) + "."


def section_suite(data: dict) -> str:
    rows = data["rows"]
    m = data.get("machine", {})
    basin = data["basin"]
    made = [r for r in rows if "error" not in r]
    substeps = "/".join(f"1/{n}" for n in sorted({case_of(r).substeps for r in rows}))
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in made})) or "-"
    out = ["## Generalisation suite (`benchmarks/suite.py` → `benchmarks/results/suite.json`)",
           "",
           f"Machine: {m.get('cpus', '?')} CPU cores, {m.get('torch_threads', '?')} torch "
           f"threads, torch {m.get('torch', '?')} (`{m.get('platform', '?')}`). "
           f"Config changes of the run (`--set`): {json.dumps(data.get('set') or {})}."
           + _commits(made), "",
           "Recordings made by NEURON's `hh` (`hybridhh.suite`: NEURON's fixed step at "
           f"{substeps} of the sample interval, exact rates, V recorded at every sample, "
           "Gaussian noise added after), each fitted with the default `FitConfig` (with the "
           f"changes above), fit seed {seeds}. Errors over the visited voltage range (1st–99th "
           "percentile of the training V), as in the fit benchmark (`benchmarks/fit.py`). "
           "*Conditions*: stimulus family, sample interval, traces × length, temperature, "
           "convention, measurement noise, the cell's changes from the squid values. "
           "*Held-out*: free run of the fitted model on the case's noise-free held-out "
           "recording (`hybridhh.suite.heldout_stimulus`). *Right basin*: judged by the truth "
           f"(worst-gate τ median < {100 * basin['tau_median']:g} % and x∞ max < "
           f"{basin['xinf_max']:g}). *Verdict*: the fit's own `quality` verdict. *Band "
           "coverage min*: the smallest, over the quantities, fraction of the visited "
           "voltages where the truth lies inside the fit's 90 % band (the worst quantity).",
           "",
           table(SUITE_HEADER, [[r["case"], describe_case(case_of(r)), *suite_columns(r)]
                                for r in rows]), "",
           "Issue 19's targets, per group of cases:", ""]
    out += [suite_group_line(rows, *g) for g in SUITE_GROUPS]
    out += suite_checks(rows) + [""]
    return "\n".join(out)


# --- heldout_sensitivity.json -----------------------------------------------------------


def section_heldout(data: dict) -> str:
    rows = data["rows"]
    factors = sorted({r["tau_factor"] for r in rows})
    cells = {(r["gate"], r["tau_factor"]): r for r in rows}

    def cell(g, f):
        r = cells.get((g, f))
        if r is None:
            return "-"
        text = f"{r['heldout_rmse']:.2f} mV"
        if r["spikes"] != r["spikes_true"]:
            text += f" ({r['spikes']}/{r['spikes_true']} spikes)"
        return text

    return "\n".join([
        "## Held-out sensitivity (`benchmarks/heldout_sensitivity.py` → "
        "`benchmarks/results/heldout_sensitivity.json`)", "",
        "The *true* kinetics with one gate's τ scaled by a constant factor, run free on the "
        "fit benchmark's held-out stimulus: the held-out V RMSE a small kinetics error causes "
        f"(torch {data.get('torch', '?')}).", "",
        table(["gate \\ τ scaled by", *[f"{f:g}" for f in factors]],
              [[g, *[cell(g, f) for f in factors]] for g in GATES
               if any((g, f) in cells for f in factors)]), ""])


# --- noise_bias.json --------------------------------------------------------------------


def section_noise_bias(data: dict) -> str:
    rows = data["rows"]
    out = ["## Loss bias under noise (`benchmarks/noise_bias.py` → "
           "`benchmarks/results/noise_bias.json`)", "",
           "Each loss started *at the true curves* (tabulated on 3 mV nodes) and moved by "
           "Levenberg–Marquardt: how far the curves drift is the loss's bias at that noise "
           "level. *increments w=1*: the fitter's teacher-forcing loss; *w=25*: summed over "
           "25 steps; *shooting*: free-running V on 3 ms windows from smoothed starts; "
           "*joint path*: stage `denoise` (noisy data only; its *at truth* is its objective "
           "at the end).", ""]
    for noise in sorted({r["noise"] for r in rows}):
        sel = [r for r in rows if r["noise"] == noise]
        out += [f"### {noise:g} mV noise", "",
                table(["loss", "at truth", "LM iterations (most)", "τ median m/h/n",
                       "τ p90 m/h/n", "x∞ max m/h/n", "wall s"],
                      [[r["loss"], num(r["loss_at_truth"]), str(r["iterations"]),
                        trio(r[f"tau_median_{g}"] for g in GATES),
                        trio(r[f"tau_p90_{g}"] for g in GATES),
                        trio((r[f"xinf_max_{g}"] for g in GATES), fmt=lambda x: f"{x:.3f}",
                             unit=""),
                        num(r["wall"], ".0f")] for r in sel]), ""]
    return "\n".join(out)


# --- simulate.json ----------------------------------------------------------------------


def section_simulate(data: dict) -> str:
    meta, acc, thr = data["meta"], data["accuracy"], data["throughput"]
    acc_rows = []
    for r in acc["rows"]:
        if r["diverged"]:
            acc_rows.append([r["method"], f"{r['dt']:g}", "diverged", "", "", ""])
        else:
            acc_rows.append([r["method"], f"{r['dt']:g}", num(r["max_abs_dV"]),
                             num(r["spike_max_abs_dt"]),
                             f"{r['spikes_unmatched']}/{r['spikes_reference']}",
                             num(r["wall_s"], ".2f")])
    thr_rows = []
    for r in thr["rows"]:
        setup = ("compile " + num(r["compile_s"], ".1f") if "compile_s" in r
                 else "build " + num(r["build_s"], ".2f") if "build_s" in r else "")
        thr_rows.append([r["impl"], str(r["cells"]), num(r["wall_s"], ".2f"),
                         num(r["cell_ms_per_s"], ".3g"), setup])
    return "\n".join([
        "## Reference simulator (`benchmarks/simulate.py` → `benchmarks/results/simulate.json`)",
        "",
        f"Run {meta.get('date', '?')}, {meta.get('cpu_count', '?')} CPU cores, "
        f"{meta.get('torch_threads', '?')} torch thread(s), torch {meta.get('torch', '?')}, "
        f"NEURON {meta.get('neuron', '?')}, total {num(meta.get('total_s'), '.0f', 's')}. "
        f"{meta.get('note', '')}", "",
        f"### Accuracy against {acc['reference']}", "",
        f"Four default-protocol traces of {acc['duration_ms']:g} ms. Spikes: upward 0 mV "
        "crossings, matched within 1 ms.", "",
        table(["method", "dt ms", "max abs ΔV mV", "spike max abs Δt ms",
               "unmatched/reference spikes", "wall s"], acc_rows), "",
        f"### Throughput ({thr['duration_ms']:g} ms at dt {thr['dt']:g} ms)", "",
        table(["implementation", "cells", "wall s", "cell-ms/s", "set-up s"], thr_rows), ""])


# --- twin.json ----------------------------------------------------------------------------


def _mark(text: str, ok: bool) -> str:
    """``text``, bold where it misses its target."""
    return text if ok else f"**{text}**"


def _twin_rows(runs: dict) -> list[list[str]]:
    first = next(iter(runs.values()))
    fits = [r["hybridhh"] for r in runs.values()]
    rows = []
    for name, s0 in first["hybridhh"]["cell"].items():
        e = name.startswith("E_")
        target = f"{s0['target']:g} mV" if e else f"{100 * s0['target']:g} %"
        cells = []
        for f in fits:
            s = f["cell"][name]
            err = "-" if s["error"] is None else \
                num(s["error"], ".2f", "mV") if e else pct(s["error"], 1)
            cells.append(_mark(f"{num(s['fitted'], '.4g')} ({err})", s["pass"]))
        rows.append([name, f"{s0['truth']:g}", target, *cells])
    for key, target in first["hybridhh"]["kinetics"]["targets"].items():
        show = (lambda x: num(x, ".3f")) if key == "xinf_max" else (lambda x: pct(x, 1))
        rows.append([f"kinetics {TARGET_NAMES[key]} (worst gate)", "", f"< {show(target)}",
                     *(_mark(show(f["kinetics"]["worst"][key]), f["kinetics"]["pass"][key])
                       for f in fits)])
    limit = first["targets"]["heldout_rmse"]
    for test in first["hybridhh"]["tests"]:
        rows.append([f"{test}: V RMSE vs recorded V (vs true V_m)", "", f"< {limit:g} mV",
                     *(_mark(f"{num(f['tests'][test]['rmse_recorded'], '.2f', 'mV')} "
                             f"({num(f['tests'][test]['rmse_true'], '.2f', 'mV')})",
                             f["tests"][test]["pass"]) for f in fits)])
        rows.append([f"{test}: mean abs Δn / Γ / subthreshold RMSE", "", "",
                     *(f"{num(s['spike_count_abs_diff'], '.2f')} / {num(s['coincidence'], '.2f')}"
                       f" / {num(s['subthreshold_rmse'], '.2f', 'mV')}"
                       for s in (f["tests"][test]["summary"] for f in fits))])
    rows.append(["quality verdict", "", "ok", *(_mark(f["verdict"], f["verdict"] == "ok")
                                                for f in fits)])
    rows.append(["fit wall time", "", "", *(num(f["wall"], ".0f", "s") for f in fits)])
    return rows


def section_twin(data: dict) -> str:
    runs = data["runs"]
    first = next(iter(runs.values()))
    p = first["passive"]

    def impaired(label, r):
        i = r["impairments"]
        low = "no filter" if i["lowpass"] is None else f"{i['lowpass']:g} kHz low-pass"
        rs = r.get("series_resistance") or {}
        removed = ("" if not rs else "; no bridge correction" if rs.get("removed") is None
                   else f"; {rs['removed']:.3g} MΩ measured and removed before the fit")
        known = (f"; known at the truth: {', '.join(r['known'])}" if r.get("known") else
                 "; every cell parameter fitted")
        return (f"`{label}`: noise {i['noise']:g} mV, {low}, R_s {i['series_resistance']:g} MΩ"
                + removed + known
                + (" (quick mode: its numbers mean nothing)" if r["quick"] else "")
                + (f"; note: {r['note']}" if r.get("note") else ""))

    lines = []
    for label, r in runs.items():
        lines.append(f"- {impaired(label, r)}; {r['threads']} torch thread(s).")
    return "\n".join([
        "## The synthetic twin (`benchmarks/twin.py` → `benchmarks/results/twin.json`)", "",
        "NEURON's `hh` with a cortical-like passive response ("
        + ", ".join(f"{k} {v:g}" for k, v in first["truth"].items())
        + "; pF, mS/cm², mV), recorded like 171116sh_0018 (its dual-step protocol, 20 kHz, "
        "current in pA, every cell parameter unknown) and fitted as `benchmarks/realcell.py` "
        "fits the real cell: train on the first step of the even sweeps, test on the odd "
        "sweeps and on the second step (after the −100 pA epoch). Passive start (first "
        f"run): R_in {num(p['R_in'], '.1f', 'MΩ')}, τ_m {num(p['tau_m'], '.1f', 'ms')}, "
        f"C_total {num(p['C_total'], '.0f', 'pF')}, E_L {num(p['E_L'], '.1f', 'mV')}. "
        "Runs (each column one impairment set):", "", *lines, "",
        "Cells give the fitted value (error); bold: the issue's target missed.", "",
        table(["figure", "truth", "target", *(f"`{k}`" for k in runs)], _twin_rows(runs)), ""])


# --- realcell.json ------------------------------------------------------------------------


def section_realcell(data: dict) -> str:
    """A real cell (171116sh_0018): hybridhh beside the Pospischil baseline on held-out sets."""
    p = data["passive"]
    sets = data["sets"]
    rows = []
    for name in ("odd_sweeps", "second_step"):
        for model in ("hybridhh", "pospischil"):
            if model not in data:
                continue
            s = data[model]["tests"][name]["summary"]
            rows.append([f"`{name}`", model, num(s["spike_count_abs_diff"], ".2f"),
                         num(s["coincidence"], ".2f"), num(s["subthreshold_rmse"], ".2f", "mV"),
                         num(s["feature_relative_error_median"], ".2f")])
    cells = []
    for model in ("hybridhh", "pospischil"):
        if model in data:
            r = data[model]
            cell = ", ".join(f"{k} {v:.4g}" for k, v in (r["cell"] or {}).items()
                             if isinstance(v, float) and k not in ("C_m", "temperature"))
            verdict = f", verdict `{r['verdict']}`" if "verdict" in r else ""
            cells.append(f"- {model}: fit {r['wall']:.0f} s{verdict}; {cell}")
    rs = data.get("series_resistance")
    return "\n".join([
        "## A real cell (`benchmarks/realcell.py` → `benchmarks/results/realcell.json`)", "",
        f"`{data['file']}`. Training: sweeps {sets['train']['sweeps']}, "
        f"{sets['train']['window'][0]:g}–{sets['train']['window'][1]:g} ms. Tests: "
        f"`odd_sweeps` (sweeps {sets['odd_sweeps']['sweeps']}, the same window) and "
        f"`second_step` (sweeps {sets['second_step']['sweeps']}, "
        f"{sets['second_step']['window'][0]:g}–{sets['second_step']['window'][1]:g} ms). "
        + ("" if rs is None else f"Series resistance removed first: {rs:.3g} MΩ. ")
        + f"Passive start: R_in {p['R_in']:.1f} MΩ, τ_m {p['tau_m']:.1f} ms, C_total "
        f"{p['C_total']:.0f} pF, E_L {p['E_L']:.1f} mV. Targets (issue 20): mean |Δn| ≤ 1, "
        "Γ ≥ 0.5, subthreshold RMSE ≤ 2 mV (the cell's own repeatability: 1.0–1.5 mV), "
        "fitted C_total within 20 % of τ_m/R_in.", "",
        *cells, "",
        table(["test set", "model", "mean abs Δn", "Γ", "subthreshold RMSE",
               "median feature error"], rows), ""])


# --- run times ----------------------------------------------------------------------------


def section_times(results: Path) -> str:
    """How long the committed runs took, from the times the JSON files record."""
    rows = []
    path = results / "fit.json"
    if path.exists():
        fit = json.loads(path.read_text())
        groups: dict = {}
        for r in fit["rows"]:
            g = groups.setdefault(case_group(r["case"]), [0, 0.0])
            g[0] += 1
            g[1] += r["wall"]
        for name, (n, wall) in groups.items():
            rows.append([f"`fit.py --cases {name}`", f"{n} fit{'s' * (n != 1)}",
                         f"{wall / 60:.1f} min"])
        total = sum(w for _, w in groups.values())
        rows.append(["`fit.py` (all cases above)", f"{len(fit['rows'])} fits",
                     f"{total / 60:.1f} min"])
    path = results / "suite.json"
    if path.exists():
        ok = [r for r in json.loads(path.read_text())["rows"] if "wall" in r]
        rows.append(["`suite.py`", f"{len(ok)} fit{'s' * (len(ok) != 1)}",
                     f"{sum(r['wall'] for r in ok) / 60:.1f} min"])
    path = results / "noise_bias.json"
    if path.exists():
        nb = json.loads(path.read_text())["rows"]
        rows.append(["`noise_bias.py`", f"{len(nb)} loss runs",
                     f"{sum(r['wall'] for r in nb) / 60:.1f} min"])
    if (results / "heldout_sensitivity.json").exists():
        hs = json.loads((results / "heldout_sensitivity.json").read_text())["rows"]
        rows.append(["`heldout_sensitivity.py`", f"{len(hs)} free runs", "not recorded"])
    path = results / "simulate.json"
    if path.exists():
        meta = json.loads(path.read_text())["meta"]
        rows.append(["`simulate.py`" + (" --quick" if meta.get("quick") else ""),
                     "accuracy + throughput", num(meta.get("total_s", 0) / 60, ".1f", "min")])
    return "\n".join([
        "## Run times of these results", "",
        "Seconds recorded in the JSON files (fits: the wall time of every fit; noise bias: "
        "each loss's solve; making the data and the calibrations are not recorded), on the "
        "machines named above.", "",
        table(["benchmark", "work", "recorded time"], rows), ""])


# --- the page ---------------------------------------------------------------------------


SECTIONS = [("fit.json", section_fit), ("suite.json", section_suite),
            ("heldout_sensitivity.json", section_heldout),
            ("noise_bias.json", section_noise_bias), ("simulate.json", section_simulate),
            ("twin.json", section_twin), ("realcell.json", section_realcell)]


def render(results: Path = RESULTS) -> str:
    """The text of ``docs/results.md`` from the JSON files in ``results``."""
    parts = ["# Benchmark results", "",
             "<!-- generated by benchmarks/results_md.py; do not edit by hand -->", "",
             f"Generated from `benchmarks/results/*.json` by `{COMMAND}` (`make results`); "
             "every number below is read from those files. What each benchmark measures and "
             "how to rerun it: [benchmarks/README.md](../benchmarks/README.md); how the fit "
             "works: [method.md](method.md).", ""]
    for name, section in SECTIONS:
        path = results / name
        if path.exists():
            parts.append(section(json.loads(path.read_text())))
    parts.append(section_times(results))
    return "\n".join(parts).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if --out differs from the generated text")
    args = ap.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

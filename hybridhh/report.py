"""A self-contained HTML report of a fit: ``write_report(run_dir, truth=None, out=None)``.

One page that a person can read without the tool: what was fitted (recording, traces,
biophysics, the voltage range the data constrain), how (the fit configuration and its
timing), and how well (kinetics errors against a reference, free-running voltage and
spike-time errors on training and held-out traces), with every figure embedded as a base64
PNG and a short explanation of what it shows and where its curves are extrapolation.

The numbers and figures come from :func:`hybridhh.compare`; an up-to-date
``RUN_DIR/compare/compare.json`` (same model, truth and integrator) is reused.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import platform
from pathlib import Path

from .analysis import (
    COMPARE_DIR,
    COMPARE_JSON,
    MAX_SPIKE_SHIFT,
    compare,
    file_digest,
    load_comparison,
    load_run,
)
from .atomic import atomic_write_text
from .errors import RunDirError
from .plotting.comparison import COMPARISON_FIGURES

__all__ = ["write_report", "render_report", "REPORT_NAME"]

#: Default file name of the report inside the run directory.
REPORT_NAME = "report.html"


def write_report(run_dir, truth=None, out=None, *, recording=None, method: str = "rk4",
                 max_shift: float = MAX_SPIKE_SHIFT, reuse: bool = True, data=None) -> Path:
    """Write the HTML report of the fit in ``run_dir``.

    Parameters
    ----------
    run_dir
        A finished run directory.
    truth
        Reference kinetics (see :func:`hybridhh.analysis.resolve_truth`); default the fitted
        recording's ``/truth`` when it has one, else the report shows no kinetics errors.
    out
        The HTML file (default ``RUN_DIR/report.html``).
    recording
        The fitted recording, when the file named in ``config.json`` has moved.
    method, max_shift
        Integrator of the free runs and the spike-matching window (ms), as in
        :func:`~hybridhh.compare`.
    reuse
        Reuse ``RUN_DIR/compare`` when it was made for this model with the same truth,
        integrator, spike window and ``data``, and all its figures exist; else compare
        afresh.
    data
        Another recording of the cell (file or object): its prediction, feature by feature
        (:func:`~hybridhh.compare`'s ``data``), gets a section of its own.

    Returns
    -------
    Path
        The report.
    """
    from .fitting import rundir as rd

    run_dir = Path(run_dir)
    fit = load_run(run_dir)  # RunDirError for a bad run directory, before any work
    cmp_dir = run_dir / COMPARE_DIR
    metrics = _reusable(cmp_dir, run_dir, truth, method, max_shift, data) if reuse else None
    if metrics is None:
        metrics = compare(run_dir, truth, cmp_dir, recording=recording, method=method,
                          max_shift=max_shift, data=data).metrics
    figures = {k: cmp_dir / name for k, name in metrics.get("figures", {}).items()}
    config = rd.load_json(run_dir / rd.CONFIG)
    page = render_report(metrics, figures, fit, config)
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    return atomic_write_text(out, page)


def _reusable(cmp_dir: Path, run_dir: Path, truth, method, max_shift, data=None
              ) -> dict | None:
    from .fitting import rundir as rd

    if not (cmp_dir / COMPARE_JSON).is_file():
        return None
    try:
        m = load_comparison(cmp_dir)
    except RunDirError:
        return None
    req = m.get("request", {})
    spec = None if truth is None else str(truth)
    if not isinstance(truth, (str, Path, type(None))) or not isinstance(data, (str, Path,
                                                                              type(None))):
        return None  # a kinetics or Recording object: always compare afresh
    same = (req.get("truth") == spec and req.get("method") == method
            and req.get("temperature") is None and req.get("max_shift") == max_shift
            and req.get("model_sha256") == file_digest(rd.model_file(run_dir))
            and req.get("data") == (None if data is None else str(data)))
    figs = m.get("figures", {})
    if not same or not figs or not all((cmp_dir / f).is_file() for f in figs.values()):
        return None
    return m


# --- rendering --------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #222; margin: 0; background: #f4f5f7; line-height: 1.45; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 2px solid #e3e5e8;
     padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.sub { color: #666; margin: 0 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #dde0e4; padding: 4px 9px; text-align: right; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td { white-space: nowrap; }
td.l, th.l { text-align: left; }
td.w, table.kv td { white-space: normal; }
table.kv td:first-child { text-align: left; font-weight: 600; background: #f8f9fa;
                          white-space: nowrap; }
table.kv td { text-align: left; }
.pass { background: #e3f4e3; }
.fail { background: #fbe3e1; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600;
         font-size: 0.9em; }
.badge.pass { color: #1d6b1d; border: 1px solid #9fd09f; }
.badge.fail { color: #9b1c13; border: 1px solid #e9a59f; }
.badge.none { color: #555; background: #eee; border: 1px solid #ccc; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 1em 0; }
.card { flex: 1 1 200px; border: 1px solid #e3e5e8; border-radius: 6px; padding: 10px 14px;
        background: #fafbfc; }
.card .v { font-size: 1.35em; font-weight: 600; }
.card .k { color: #555; font-size: 0.88em; }
figure { margin: 0.8em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #e3e5e8; }
figcaption { color: #333; font-size: 0.93em; margin-top: 0.4em; max-width: 980px; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: 8px 12px; margin: 1em 0; }
.warn { background: #fdecea; border-left: 4px solid #d9534f; padding: 8px 12px; margin: 1em 0; }
.verdict { padding: 10px 14px; margin: 1em 0; border-radius: 4px; border: 2px solid; }
.verdict.ok { background: #eaf6ea; border-color: #5cb85c; }
.verdict.suspect { background: #fff6e0; border-color: #f0ad4e; }
.verdict.failed { background: #fdecea; border-color: #d9534f; }
.verdict ul { margin: 0.3em 0 0.3em 1.2em; padding: 0; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 0.85em; }
details summary { cursor: pointer; color: #245; margin: 0.4em 0; }
code { background: #f3f3f3; padding: 0 3px; }
footer { color: #777; font-size: 0.85em; margin-top: 3em; }
"""

_GATE_NAMES = {"m": "m (Na activation)", "h": "h (Na inactivation)", "n": "n (K activation)"}

_CAPTIONS = {
    "rates": (
        "<b>What it shows.</b> One row per gate: m (Na activation), h (Na inactivation), "
        "n (K activation). Left: the opening rate α (solid) and closing rate β (dashed), in "
        "1/ms on a log scale; middle: the steady state x<sub>∞</sub> = α/(α+β); right: the "
        "time constant τ = 1/(α+β) in ms. {truth_sentence} The histogram at the top counts "
        "the recorded samples per mV. "
        "<b>Where it is extrapolation.</b> Grey bands mark voltages the recording never "
        "visited, and the dotted lines mark the 1st and 99th percentile of the recorded V "
        "({lo:.1f} … {hi:.1f} mV), the range over which all kinetics errors are measured. "
        "Outside the dotted lines the data constrain the rates weakly, and inside the grey "
        "bands not at all: there the learned curves are extrapolation of the network and "
        "its prior, and any agreement with the truth is luck, not evidence. The green bars "
        "at the bottom of each rate panel (when the run has them) mark where the data "
        "constrain α (solid) and β (dashed) themselves, which is narrower: see the table "
        "below."
    ),
    "kinetics_error": (
        "<b>What it shows.</b> The learned kinetics divided by the true ones, per gate, "
        "against V: τ, α and β as ratios learned/true on a log scale (1 is exact, the green "
        "band is ±10 %), x<sub>∞</sub> as the difference learned − true. Grey: outside the "
        "1st–99th percentile of the recorded V, i.e. extrapolation. Even inside the range, "
        "a rate is only weakly determined where it is much smaller than its partner: "
        "β<sub>m</sub> where m<sub>∞</sub> ≈ 1 and α<sub>h</sub> where h<sub>∞</sub> ≈ 0 "
        "(depolarised V) hardly change τ or x<sub>∞</sub>, so large α/β ratios there with "
        "accurate τ and x<sub>∞</sub> are expected, not a failure of the fit."
    ),
    "free_run": (
        "<b>What it shows.</b> The fitted hybrid model simulated on its own (free-running, "
        "{method}, dt {dt:g} ms) under the recorded injected current, started from the "
        "first recorded V and the model's steady-state gates there: V (black recorded, red "
        "model) and the gates m, h, n (black: the true gates, when the recording is "
        "synthetic; red: the model's). Nothing from the recording is fed back during the "
        "run, so errors accumulate; a slightly early or late spike shows as a large "
        "momentary V error. Dotted: the spike threshold. {which}"
    ),
    "free_run_train": "These are training traces (at most four are drawn).",
    "free_run_holdout": (
        "These are the held-out traces: they were never used to fit the rates (only to "
        "decide whether to keep the neural-ODE stage), so they test whether the model "
        "generalises to stimuli it was not trained on."
    ),
    "training": (
        "<b>What it shows.</b> The loss against the wall time of the fit, over all phases "
        "in order (phase boundaries grey). Stage 1, <i>teacher forcing</i>: the gates are "
        "advanced along the recorded V and the model must reproduce the ionic current "
        "(I<sub>inj</sub> − C dV/dt); its loss is the squared current residual relative to "
        "the variance of that current (dimensionless). Stage 2, the <i>neural ODE</i>: "
        "short windows of free-running simulation must reproduce the recorded V; its loss "
        "is the V mean squared error (mV²). When rate errors against a truth were logged "
        "during the fit, the worst-gate errors follow, with the targets dashed."
    ),
}


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _pct(x, digits: int = 1) -> str:
    return "–" if x is None else f"{100.0 * x:.{digits}f} %"


def _num(x, fmt: str = ".3g", unit: str = "") -> str:
    if x is None:
        return "–"
    return f"{x:{fmt}}" + (f" {unit}" if unit else "")


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(Path(path).stem)}" src="data:image/png;base64,{data}">'


def _kv(rows) -> str:
    body = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _badge(ok, yes="pass", no="FAIL", none="n/a") -> str:
    if ok is None:
        return f'<span class="badge none">{none}</span>'
    return f'<span class="badge {"pass" if ok else "fail"}">{yes if ok else no}</span>'


def _verdict_box(quality) -> str:
    """The fit's quality verdict (:mod:`hybridhh.fitting.quality`) as a box: green for ok,
    amber for suspect, red for failed, with the reasons and what to try next."""
    if not quality:
        return ("<div class='verdict suspect'><b>Quality verdict: not assessed</b> (a run "
                "saved before the verdict existed, or unfinished)</div>")
    verdict = quality.get("verdict", "?")
    title = {"ok": "the fit explains the data",
             "suspect": "treat these rates with care",
             "failed": "the fit does not explain the data: do not use these rates"}
    out = [f"<div class='verdict {_e(verdict)}'><b>Quality verdict: {_e(verdict.upper())}"
           f"</b> — {_e(title.get(verdict, ''))}"]
    if quality.get("reasons"):
        out.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in quality["reasons"])
                   + "</ul>")
    if quality.get("advice"):
        out.append("<b>What to try next:</b><ul>"
                   + "".join(f"<li>{_e(a)}</li>" for a in quality["advice"]) + "</ul>")
    checks = quality.get("checks") or {}
    if checks:
        out.append("<span class='sub'>checks: " + ", ".join(
            f"{_e(n)} {_e(c.get('outcome', '?'))}" for n, c in checks.items()) + "</span>")
    return "".join(out) + "</div>"


def _kinetics_table(k: dict) -> str:
    tg = k["targets"]
    cols = [("tau_median", "τ median rel. error", "tau_median"),
            ("tau_p90", "τ 90th pct. rel. error", "tau_p90"),
            ("xinf_max", "x<sub>∞</sub> max abs. error", "xinf_max"),
            ("alpha_median", "α median rel. error", "rate_median"),
            ("beta_median", "β median rel. error", "rate_median")]

    def cell(key, target_key, val):
        t = tg.get(target_key)
        cls = "" if t is None else (' class="pass"' if val < t else ' class="fail"')
        text = f"{val:.3f}" if key == "xinf_max" else _pct(val)
        return f"<td{cls}>{text}</td>"

    head = "<tr><th class='l'>gate</th>" + "".join(f"<th>{c[1]}</th>" for c in cols) + "</tr>"
    rows = []
    for g, e in k["gates"].items():
        rows.append(f"<tr><td class='l'>{_e(_GATE_NAMES.get(g, g))}</td>"
                    + "".join(cell(key, tk, e[key]) for key, _, tk in cols) + "</tr>")
    tgt = "<tr><td class='l'><i>target (worst gate)</i></td>" + "".join(
        f"<td><i>&lt; {tg[tk]:.3f}</i></td>" if key == "xinf_max"
        else f"<td><i>&lt; {_pct(tg[tk], 0)}</i></td>" for key, _, tk in cols) + "</tr>"
    return f"<table>{head}{''.join(rows)}{tgt}</table>"


def _rate_ranges_table(ranges: dict, errors: dict | None) -> str:
    """Per rate: where the data constrain it, and (with a truth) its errors there."""
    head = ("<tr><th class='l'>rate</th><th>constrained over (mV)</th>"
            + ("<th>median rel. error there</th><th>90th pct.</th><th>max</th>"
               if errors else "") + "</tr>")
    rows = []
    for rate, (lo, hi) in ranges.items():
        kind, gate = rate.split("_")
        label = ("α" if kind == "alpha" else "β") + f"<sub>{_e(gate)}</sub>"
        cells = f"<td>{lo:.1f} … {hi:.1f}</td>"
        if errors and rate in errors:
            e = errors[rate]
            cells += "".join(f"<td>{_pct(e[key])}</td>" for key in ("median", "p90", "max"))
        rows.append(f"<tr><td class='l'>{label}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _spikes_text(sp) -> str:
    return (f"{sp['n_reference']} recorded / {sp['n_model']} model; {sp['matched']} matched, "
            f"{sp['missed']} missed, {sp['extra']} extra")


def _free_run_table(fr: dict) -> str:
    head = ("<tr><th class='l'>traces</th><th>n</th><th>V RMSE</th>"
            "<th>V RMSE, true rates re-simulated</th><th>spikes</th>"
            "<th>mean |Δt|</th><th>max |Δt|</th><th>traces with a different spike count"
            "</th></tr>")
    rows = []
    for split, label in (("train", "training"), ("holdout", "held-out")):
        s = fr.get(split)
        if s is None:
            rows.append(f"<tr><td class='l'>{label}</td><td>0</td><td colspan='6' class='l'>"
                        "none</td></tr>")
            continue
        sp = s["spikes"]
        rows.append(
            f"<tr><td class='l'>{label}</td><td>{len(s['traces'])}</td>"
            f"<td><b>{_num(s['rmse'], '.3f', 'mV')}</b></td>"
            f"<td>{_num(s.get('rmse_floor'), '.3f', 'mV')}</td>"
            f"<td class='w'>{_e(_spikes_text(sp))}</td><td>{_num(sp['mean_abs'], '.3f', 'ms')}</td>"
            f"<td>{_num(sp['max_abs'], '.3f', 'ms')}</td><td>{sp['count_mismatch']}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _per_trace_table(fr: dict) -> str:
    head = ("<tr><th class='l'>trace</th><th class='l'>set</th><th>V RMSE (mV)</th>"
            "<th>spikes recorded</th><th>spikes model</th><th>matched</th>"
            "<th>mean |Δt| (ms)</th><th>max |Δt| (ms)</th></tr>")
    rows = []
    for split, label in (("train", "training"), ("holdout", "held-out")):
        s = fr.get(split)
        if s is None:
            continue
        for p in s["spikes"]["per_trace"]:
            cls = "" if p["n_reference"] == p["n_model"] else ' class="fail"'
            rows.append(
                f"<tr><td class='l'>{_e(p['name'])}</td><td class='l'>{label}</td>"
                f"<td>{s['rmse_per_trace'][p['name']]:.3f}</td><td>{p['n_reference']}</td>"
                f"<td{cls}>{p['n_model']}</td><td>{p['matched']}</td>"
                f"<td>{_num(p['mean_abs'], '.3f')}</td><td>{_num(p['max_abs'], '.3f')}</td>"
                "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _phase_table(history) -> str:
    phases = []
    for r in history:
        if "phase" not in r:
            continue
        if not phases or phases[-1]["phase"] != r["phase"]:
            phases.append({"phase": r["phase"], "steps": 0, "first": r.get("loss"),
                           "last": r.get("loss"), "end": r.get("elapsed")})
        p = phases[-1]
        p["steps"] += 1
        p["last"] = r.get("loss")
        p["end"] = r.get("elapsed", p["end"])
    rows, prev = [], 0.0
    for p in phases:
        dur = None if p["end"] is None else p["end"] - prev
        prev = p["end"] if p["end"] is not None else prev
        rows.append(f"<tr><td class='l'>{_e(p['phase'])}</td><td>{p['steps']}</td>"
                    f"<td>{_num(p['first'], '.3e')}</td><td>{_num(p['last'], '.3e')}</td>"
                    f"<td>{_num(dur, '.1f', 's')}</td></tr>")
    head = ("<tr><th class='l'>phase</th><th>logged steps</th><th>first loss</th>"
            "<th>last loss</th><th>wall time</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _config_text(d) -> str:
    if not isinstance(d, dict):
        return str(d)
    return ", ".join(f"{k} {json.dumps(v) if isinstance(v, (list, dict)) else v}"
                     for k, v in d.items())


def _config_rows(cfg: dict) -> list:
    """Key settings of a FitConfig dict, one row per part (whatever fields it has)."""
    o = cfg.get("ode", {})
    top = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    rows = [("general", _e(_config_text(top)))]
    labels = {"prior": "generic prior (mV, ms)", "teacher": "stage 1: teacher forcing",
              "ode": "stage 2: neural ODE"}
    for key, label in labels.items():
        if key in cfg:
            text = ("disabled" if key == "ode" and not o.get("enabled", True)
                    else _config_text(cfg[key]))
            rows.append((label, _e(text)))
    for key, value in cfg.items():
        if isinstance(value, dict) and key not in labels:
            rows.append((key, _e(_config_text(value))))
    return rows


def render_report(metrics: dict, figures: dict, fit, config: dict) -> str:
    """The report page (HTML text) from :func:`~hybridhh.compare` metrics, the
    figure files by key, the :class:`~hybridhh.fitting.FitResult` and the run's config.json."""
    run_dir = metrics["run_dir"]
    rec = metrics["recording"]
    k = metrics.get("kinetics")
    fr = metrics["free_run"]
    truth = metrics.get("truth")
    lo, hi = metrics["voltage_range"]
    data_cfg = config.get("data", {})
    fit_cfg = config.get("fit", {})
    hold = fr.get("holdout")
    train = fr.get("train")
    parts = []
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

    # --- header and verdict
    parts.append(f"<h1>Fit report: {_e(Path(run_dir).name or run_dir)}</h1>")
    parts.append(f"<p class='sub'>Run directory <code>{_e(run_dir)}</code> · recording "
                 f"<code>{_e(data_cfg.get('source') or rec.get('path'))}</code> · report "
                 f"made {now}</p>")
    parts.append(
        "<p>A small neural network (MLP) stands in for the six voltage-dependent rate "
        "functions α and β of the Hodgkin–Huxley gates m, h and n; everything else about the "
        "cell (capacitance, maximal conductances, reversal potentials) is known and fixed. "
        "It was trained on the recorded membrane voltage and injected current only. This "
        "page says what was fitted, how, and how close the result is to the true rate "
        "functions and to the recorded voltage.</p>")
    parts.append(_verdict_box(getattr(fit, "quality", None)))
    cards = []
    if k is not None:
        w = k["worst"]
        cards.append(("kinetics targets", _badge(k["meets_targets"], "met", "not met")))
        cards.append(("worst-gate τ median / 90th pct. error",
                      f"{_pct(w['tau_median'])} / {_pct(w['tau_p90'])}"))
        cards.append(("worst-gate x<sub>∞</sub> max error / rate median error",
                      f"{w['xinf_max']:.3f} / {_pct(w['rate_median'])}"))
    else:
        cards.append(("kinetics targets", _badge(None, none="no truth given")))
    if hold is not None:
        cards.append(("held-out V RMSE (free-running)", f"{hold['rmse']:.2f} mV"))
        sp = hold["spikes"]
        cards.append(("held-out spikes (model / recorded)",
                      f"{sp['n_model']} / {sp['n_reference']}"
                      + (f", mean |Δt| {sp['mean_abs']:.2f} ms" if sp["mean_abs"] is not None
                         else "")))
    if train is not None:
        cards.append(("training V RMSE (free-running)", f"{train['rmse']:.2f} mV"))
    ds = (metrics.get("data") or {}).get("summary")
    if ds:  # predicted vs measured features (section 3b)
        on = "another recording" if metrics["data"].get("other") else "the fitted traces"
        cards.append((f"Γ, mean over spiking traces ({on})", _num(ds["coincidence"], ".2f")))
        cards.append((f"subthreshold V RMSE ({on})", _num(ds["subthreshold_rmse"], ".2f", "mV")))
        cards.append((f"spike count mean |Δn| ({on})", _num(ds["spike_count_abs_diff"], ".2f")))
    parts.append("<div class='cards'>" + "".join(
        f"<div class='card'><div class='k'>{kk}</div><div class='v'>{vv}</div></div>"
        for kk, vv in cards) + "</div>")
    for w_ in metrics.get("warnings", []):
        parts.append(f"<div class='warn'><b>Warning:</b> {_e(w_)}</div>")

    # --- data
    bio = rec.get("biophysics", {})
    units = {"C_m": "µF/cm²", "g_Na": "mS/cm²", "g_K": "mS/cm²", "g_L": "mS/cm²",
             "E_Na": "mV", "E_K": "mV", "E_L": "mV"}
    bio_text = ", ".join(f"{_e(n)} {bio[n]:g} {u}" for n, u in units.items() if n in bio)
    temp = bio.get("temperature")
    temp_text = (f"{temp:g} °C" if temp is not None else "–") + (
        "" if rec.get("temperature_known", True) else " (not stated in the file: assumed)")
    t_rec = rec.get("truth")
    truth_rec = ("none (real or unlabelled data)" if not t_rec else
                 f"kinetics {t_rec['kinetics']} at {t_rec['temperature']:g} °C, q10 "
                 f"{t_rec['q10']:g}; true gates {'stored' if t_rec.get('gates') else 'not stored'}"
                 + (f"; made with {t_rec['integrator']}" if t_rec.get("integrator") else ""))
    v = rec.get("voltage", {})
    c = rec.get("current", {})
    parts.append("<h2>1. Data</h2>")
    parts.append(_kv([
        ("recording file", f"<code>{_e(data_cfg.get('source') or rec.get('path'))}</code>"),
        ("made by (source)", _e(rec.get("source"))),
        ("description", _e(rec.get("description") or "–")),
        ("traces", _e(f"{rec.get('n_traces')} × {rec.get('n_samples')} samples, "
                      f"{rec.get('duration'):g} ms at dt {rec.get('dt'):g} ms")),
        ("training traces", _e(", ".join(metrics["fit"]["train_traces"]))),
        ("held-out traces", _e(", ".join(metrics["fit"]["holdout_traces"]) or
                               "none (every trace was used for training)")),
        ("recorded V", _e(f"{v.get('min', 0):.1f} … {v.get('max', 0):.1f} mV")),
        ("visited voltage range", "<b>" + _e(f"{lo:.1f} … {hi:.1f} mV") + "</b> "
         "(1st–99th percentile of the recorded V: the kinetics errors per gate are "
         "measured over this range; each rate is constrained over part of it, see section "
         "2, and outside it the learned curves are extrapolation)"),
        ("injected current", _e(f"{c.get('min', 0):.1f} … {c.get('max', 0):.1f} µA/cm²")),
        ("measurement noise", _e("none added" if not rec.get("noise_sigma")
                                 else f"Gaussian, SD {rec['noise_sigma']:g} mV")),
        ("biophysics (known, fixed)", bio_text),
        ("temperature", _e(temp_text)),
        ("ground truth in the file", _e(truth_rec)),
    ]))

    # --- kinetics
    parts.append("<h2>2. Learned vs true rate functions</h2>")
    if k is not None:
        parts.append(
            f"<p>{_badge(k['meets_targets'], 'targets met', 'targets not met')} "
            f"Reference: <b>{_e(truth['label'])}</b>. Errors per gate over "
            f"{lo:.1f} … {hi:.1f} mV (uniform 0.5 mV grid): relative errors of τ (median and "
            "90th percentile), of α and β (median), and the largest absolute error of "
            "x<sub>∞</sub>. A cell is green when it meets the target of the fit "
            "(the worst gate of each metric must be below it).</p>")
        parts.append(_kinetics_table(k))
    else:
        parts.append("<div class='note'>No reference kinetics: the recording has no ground "
                     "truth and none was given (<code>--truth NAME|FILE.h5</code>), so the "
                     "learned rates are shown alone. Only the voltage fit below can judge "
                     "them, and a good voltage fit alone does not prove the rates right.</div>")
    truth_sentence = ("Black: the true rates; red: the learned ones." if k is not None
                      else "The learned rates (no truth to compare with).")
    if "rates" in figures:
        parts.append(_figure(figures["rates"], COMPARISON_FIGURES["rates"][1],
                             _CAPTIONS["rates"].format(truth_sentence=truth_sentence,
                                                       lo=lo, hi=hi)))
    if "kinetics_error" in figures:
        parts.append(_figure(figures["kinetics_error"], COMPARISON_FIGURES["kinetics_error"][1],
                             _CAPTIONS["kinetics_error"]))
    ranges = metrics.get("constrained")
    if ranges:
        parts.append(
            "<p><b>Where the data constrain each rate.</b> A rate is constrained where its "
            "uncertainty, from the curvature of the teacher-forcing loss with every other "
            "curve free to compensate, is within 10× of its smallest (see "
            "<code>hybridhh.fitting.constrained</code>); outside its range the curve is "
            "extrapolation, whatever the recording's voltage range. The rates CSV marks "
            "these ranges in its <code>constrained_&lt;rate&gt;</code> columns.</p>")
        parts.append(_rate_ranges_table(ranges, (k or {}).get("rates_constrained")))
    parts.append(
        "<div class='note'><b>What the data can and cannot identify.</b> The rates are "
        "learned from how the recorded voltage responds to the injected current, so only "
        "voltages the cell actually spent time at carry information. Within the visited "
        "range, τ and x<sub>∞</sub> are what the currents depend on and are the best "
        "determined; a rate much smaller than its partner (β<sub>m</sub> and α<sub>h</sub> "
        "at depolarised V) barely changes them and stays uncertain, and h is seen only "
        "through g<sub>Na</sub>m³h, i.e. not at all while m ≈ 0 (hyperpolarised V) but only "
        "later, when the cell depolarises. Outside the range nothing in the data fixes the "
        "curves.</div>")

    # --- free run
    parts.append("<h2>3. Free-running voltage and spike times</h2>")
    parts.append(
        f"<p>The fitted model, simulated on its own under the recorded stimuli "
        f"(<b>{_e(fr['method'])}</b> at the recording's step, {fr['dt']:g} ms), against the "
        f"recorded V. Spikes are upward crossings of <b>{fr['spike_threshold']:.1f} mV</b> "
        f"(50 mV above the resting potential estimated from the data, "
        f"{fr['resting_estimate']:.1f} mV), paired one to one between recording and model "
        f"when at most {fr['max_shift']:g} ms apart; Δt = model − recorded. The column "
        "'true rates re-simulated' is the error the true kinetics give with the same "
        "integrator: the floor set by integrator differences and measurement noise.</p>")
    parts.append(_free_run_table(fr))
    h = metrics["fit"].get("heldout_rmse") or {}
    if "chosen" in h:
        parts.append(
            f"<p>During the fit the free-running V error on the {_e(h.get('traces', ''))} "
            f"traces was {_num(h.get('teacher'), '.3f', 'mV')} after teacher forcing and "
            f"{_num(h.get('ode'), '.3f', 'mV')} after the neural-ODE stage; the "
            f"<b>{_e(h['chosen'])}</b> model was kept (the fitter's own check uses "
            "exponential Euler, so its numbers can differ slightly from the table).</p>")
    parts.append("<details><summary>Per-trace numbers</summary>" + _per_trace_table(fr)
                 + "</details>")
    for key in ("free_run_holdout", "free_run_train"):
        if key in figures:
            cap = _CAPTIONS["free_run"].format(method=fr["method"], dt=fr["dt"],
                                               which=_CAPTIONS[key])
            parts.append(_figure(figures[key], COMPARISON_FIGURES[key][1], cap))

    # --- measured traces without a truth: predicted vs measured features
    if metrics.get("data"):
        parts.append(_data_section(metrics["data"], figures))

    # --- training
    parts.append("<h2>4. Training</h2>")
    parts.append(f"<p>Total optimisation time {_num(fit.elapsed, '.1f', 's')} "
                 f"(wall clock on the machine that ran the fit).</p>")
    parts.append(_phase_table(fit.history))
    if "training" in figures:
        parts.append(_figure(figures["training"], COMPARISON_FIGURES["training"][1],
                             _CAPTIONS["training"]))

    # --- configuration and provenance
    parts.append("<h2>5. Fit configuration</h2>")
    parts.append(_kv(_config_rows(fit_cfg)))
    parts.append("<details><summary>Full configuration (config.json)</summary><pre>"
                 + _e(json.dumps(config, indent=2)) + "</pre></details>")
    parts.append("<h2>6. How this page was made</h2>")
    spec = metrics.get("request", {}).get("truth")
    cmd = f"hybridhh report {run_dir}" + (f" --truth {spec}" if spec else "")
    parts.append(_kv([
        ("command", f"<code>{_e(cmd)}</code>"),
        ("comparison", _e(f"compare.json and figures in {Path(run_dir) / COMPARE_DIR} "
                          f"(computed in {metrics.get('elapsed', 0):.1f} s)")),
        ("metric definitions",
         "hybridhh.analysis.metrics (kinetics_errors, summarize_errors, TARGETS)"),
        ("software", _e(f"hybridhh {_version()}, Python {platform.python_version()}, "
                        f"torch {_torch_version()}")),
    ]))
    parts.append(f"<footer>hybridhh fit report · {now}</footer>")
    title = f"hybridhh fit report: {Path(run_dir).name}"
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            + "\n".join(parts) + "</main></body></html>\n")


_CELL_UNITS = {"C_total": "pF", "C_m": "µF/cm²", "g_Na": "mS/cm²", "g_K": "mS/cm²",
               "g_L": "mS/cm²", "E_Na": "mV", "E_K": "mV", "E_L": "mV", "temperature": "°C"}

#: Report label of each feature of :data:`hybridhh.analysis.features.FEATURES`.
_FEATURE_LABELS = {"AP_amplitude": "AP amplitude (mV)", "AP_half_width": "half width (ms)",
                   "AHP_depth": "AHP depth (mV)", "ISI_CV": "ISI CV",
                   "sag": "sag (mV)", "input_resistance": "R<sub>in</sub>"}


def _pair(m, p, fmt: str = ".3g") -> str:
    return f"{_num(m, fmt)} / {_num(p, fmt)}"


def _data_section(d: dict, figures: dict) -> str:
    """The section of a comparison's ``data`` (:mod:`hybridhh.analysis.data_comparison`):
    the cell parameters, the summary, per-trace spikes and subthreshold error, the eFEL
    features measured / predicted, and the figure of another recording."""
    from .analysis.comparison import DATA_FIGURE

    s = d["summary"]
    before, after = d["spike_window"]
    what = (f"the recording <code>{_e(d.get('recording'))}</code>" if d.get("other")
            else "the fitted traces (there is no truth to compare the rates with)")
    out = ["<h2>3b. Predicted vs measured: spikes, subthreshold V and features</h2>",
           f"<p>The fitted cell driven by the injected current of {what}, on its time grid from "
           f"its first sample (<b>{_e(d['method'])}</b>; V starts at the recorded V, the gates "
           "at their steady state there). Spikes are upward crossings of "
           f"<b>{d['threshold']:.1f} mV</b> in both traces; the first-spike latency counts "
           "from the onset of the stimulus, read from the current. The coincidence factor Γ "
           f"(Kistler et al. 1997; Δ = {d['delta']:g} ms) is 1 for identical spike trains and "
           "about 0 for a Poisson train of the predicted rate; the subthreshold RMSE leaves "
           f"out {before:g} ms before to {after:g} ms after every spike of either trace. "
           "AP amplitude (from the spike onset), half width, AHP depth (the AHP minimum "
           "minus the pre-stimulus base), ISI CV (without the first ISI), sag "
           "(hyperpolarising steps) and R<sub>in</sub> (steps without spikes; MΩ for pA, "
           "kΩ·cm² for µA/cm²) are eFEL's"
           + ("" if d.get("efel") else " — <b>eFEL is not installed</b>, so they are missing "
              "(<code>pip install 'hybridhh[features]'</code>)") + ".</p>"]
    cell = d.get("cell") or {}
    out.append("<h3>Cell parameters of the prediction</h3>")
    out.append(_kv([(n, _e(f"{cell[n]:.4g} {u}")) for n, u in _CELL_UNITS.items()
                    if cell.get(n) is not None]
                   + [("from", _e({"result.json": "the fit (result.json)",
                                   "config.json": "the recording the run was fitted to "
                                                  "(config.json)"}.get(cell.get("source"),
                                                                       cell.get("source"))))]))
    groups = [("all", s)] + list((d.get("summary_by_split") or {}).items())
    head = ("<tr><th class='l'>traces</th><th>n</th><th>spiking</th><th>mean |Δn|</th>"
            "<th>Γ mean</th><th>Γ min</th><th>mean |Δ latency|</th>"
            "<th>subthreshold RMSE mean</th><th>max</th><th>feature median rel. error</th></tr>")
    rows = [f"<tr><td class='l'>{_e(name)}</td><td>{g['n_traces']}</td><td>{g['n_spiking']}</td>"
            f"<td>{_num(g['spike_count_abs_diff'], '.2f')}</td>"
            f"<td><b>{_num(g['coincidence'], '.2f')}</b></td>"
            f"<td>{_num(g['coincidence_min'], '.2f')}</td>"
            f"<td>{_num(g['latency_abs_diff'], '.2f', 'ms')}</td>"
            f"<td><b>{_num(g['subthreshold_rmse'], '.2f', 'mV')}</b></td>"
            f"<td>{_num(g['subthreshold_rmse_max'], '.2f', 'mV')}</td>"
            f"<td>{_pct(g['feature_relative_error_median'])}</td></tr>" for name, g in groups]
    out.append(f"<table>{head}{''.join(rows)}</table>")
    head = ("<tr><th class='l'>trace</th><th>spikes measured / predicted</th>"
            "<th>latency (ms)</th><th>Γ</th><th>subthreshold RMSE (mV)</th>"
            + "".join(f"<th>{lab}</th>" for lab in _FEATURE_LABELS.values()) + "</tr>")
    rows = []
    for r in d["per_trace"]:
        m, p = r["measured"], r["predicted"]
        cls = "" if m["spike_count"] == p["spike_count"] else ' class="fail"'
        name = r["name"] + (f" ({r['split']})" if r.get("split") else "")
        rows.append(f"<tr><td class='l'>{_e(name)}</td>"
                    f"<td{cls}>{m['spike_count']} / {p['spike_count']}</td>"
                    f"<td>{_pair(m['latency'], p['latency'], '.1f')}</td>"
                    f"<td>{_num(r['coincidence'], '.2f')}</td>"
                    f"<td>{_num(r['subthreshold_rmse'], '.2f')}</td>"
                    + "".join(f"<td>{_pair(m.get(k), p.get(k))}</td>" for k in _FEATURE_LABELS)
                    + "</tr>")
    out.append("<p>Per trace, measured / predicted:</p>"
               f"<div style='overflow-x:auto'><table>{head}{''.join(rows)}</table></div>")
    if "data" in figures:
        out.append(_figure(figures["data"], DATA_FIGURE["data"][1],
                           "<b>What it shows.</b> Measured V (black) and the fitted cell's "
                           "prediction (red) under the same injected current, side by side per "
                           "trace (at most four drawn); dotted: the spike threshold. The cell "
                           "never saw these traces during the fit."))
    elif not d.get("other"):
        out.append("<p>The traces are those of the free-run figures of section 3.</p>")
    return "".join(out)


def _figure(path: Path, title: str, caption: str) -> str:
    return (f"<figure><h3>{_e(title)}</h3>{_img(path)}<figcaption>{caption}</figcaption>"
            "</figure>")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hybridhh")
    except Exception:  # not installed (source tree)
        return "(source)"


def _torch_version() -> str:
    import torch

    return torch.__version__

"""``hybridhh import``, ``import-abf``: recordings from real files; ``passive``: their
passive properties."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ._args import (
    add_quiet,
    existing_file,
    finite,
    non_negative,
    non_negative_int,
    positive,
    say,
    trace,
)
from ._registry import EXIT_OK, command

__all__ = ["cmd_import", "cmd_import_abf", "cmd_passive"]


def _sweeps(text: str) -> list[int]:
    """``0,2,4`` or ``0-5`` -> sweep numbers (argparse type)."""
    from ..importing import parse_sweeps

    try:
        return parse_sweeps(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _import_arguments(p):
    p.add_argument("file", type=existing_file, help="current-clamp file: .abf (pyabf) or .nwb "
                   "(pynwb, icephys CurrentClampSeries with their stimulus series)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.h5",
                   help="recording to write (HDF5, current in pA, written atomically)")
    p.add_argument("--sweeps", type=_sweeps, metavar="LIST",
                   help="sweep numbers, e.g. 0,2,4 or 0-5 or 0-3,8 (default all)")
    p.add_argument("--window", type=finite, nargs=2, metavar=("START", "STOP"),
                   help="keep START <= t <= STOP, ms from the sweep start (within the sweep)")
    p.add_argument("--voltage-channel", type=non_negative_int, metavar="N",
                   help="ABF: the voltage channel (mV; default 0); NWB: the electrode, by "
                        "index in name order (default: the only one)")
    p.add_argument("--current-channel", type=non_negative_int, metavar="N",
                   help="ABF: use this recorded current channel (pA or nA, baseline "
                        "subtracted) instead of the command rebuilt from the protocol")
    p.add_argument("--temperature", type=finite, metavar="DEGC",
                   help="recording temperature, degC (default: unknown, left out)")
    p.add_argument("--liquid-junction-potential", type=finite, metavar="MV",
                   help="liquid junction potential, mV (stored as metadata; V is not "
                        "corrected)")
    p.add_argument("--lowpass", type=positive, metavar="KHZ",
                   help="amplifier low-pass filter, kHz (default: the ABF's telegraphed "
                        "value, if any)")
    p.add_argument("--bridge-balance", type=non_negative, metavar="MOHM",
                   help="series resistance balanced by the bridge, MOhm (metadata)")
    p.add_argument("--series-resistance", type=_series_resistance, metavar="MOHM|auto",
                   help="remove this unbalanced series resistance from V (V_m = V - R_s I; "
                        "'auto': the jump at the hyperpolarising steps' onsets, as "
                        "hybridhh passive reports it); said in the description")
    p.add_argument("--known", type=_assignment, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="a cell parameter you know, kept fixed by a fit: C_total (pF), g_Na, "
                        "g_K, g_L (mS/cm^2), E_Na, E_K, E_L (mV); the others stay unknown")
    add_quiet(p)


@command("import", "convert an ABF or NWB current-clamp file to a recording in pA, the "
         "cell's parameters unknown (needs pyabf / pynwb)", _import_arguments)
def cmd_import(args) -> int:
    from ..importing import import_recording
    from ..recording import write_recording

    meta = {k: v for k, v in (("liquid_junction_potential", args.liquid_junction_potential),
                              ("lowpass", args.lowpass),
                              ("bridge_balance", args.bridge_balance)) if v is not None}
    rec = import_recording(args.file, sweeps=args.sweeps,
                           window=tuple(args.window) if args.window else None,
                           voltage_channel=args.voltage_channel,
                           current_channel=args.current_channel,
                           temperature=args.temperature, metadata=meta,
                           known=dict(args.known))
    if args.series_resistance is not None:
        from ..analysis.passive import correct_series_resistance, passive_analysis

        R_s = args.series_resistance
        if R_s == "auto":
            R_s = passive_analysis(rec).R_s  # a ConfigError names the file without steps
        rec = correct_series_resistance(rec, R_s)
        say(f"removed {R_s:.4g} MOhm of series resistance from V")
    write_recording(args.out, rec)
    say(f"wrote {args.out}: {rec.n_traces} sweep(s) x {rec.n_samples} samples at "
        f"{rec.dt:g} ms, current in pA, unknown: {', '.join(rec.cell.free_names())}"
        + ("" if rec.temperature is None else f", {rec.temperature:g} degC"))
    return EXIT_OK


def _series_resistance(text: str):
    """``auto`` or a finite number of MOhm (argparse type)."""
    return "auto" if text.strip().lower() == "auto" else finite(text)


def _assignment(text: str):
    """``NAME=VALUE`` with a finite number as VALUE -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), finite(value)


def _import_abf_arguments(p):
    p.add_argument("file", type=existing_file, help="ABF current-clamp file")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--capacitance", type=positive, metavar="PF",
                      help="total membrane capacitance, pF (area = C * 1e-6 cm^2 at "
                           "1 uF/cm^2): I[uA/cm^2] = I[pA] / C[pF]")
    size.add_argument("--area", type=positive, metavar="CM2", help="membrane area, cm^2")
    p.add_argument("--temperature", type=finite, required=True, metavar="DEGC",
                   help="recording temperature, degC (not stored in ABF files)")
    p.add_argument("--set", type=_assignment, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="biophysics value (C_m, g_Na, g_K, g_L, E_Na, E_K, E_L); the others "
                        "are the modern HH values")
    p.add_argument("--sweeps", type=int, nargs="+", metavar="N", help="sweep numbers (default all)")
    p.add_argument("--current-channel", type=int, metavar="N",
                   help="use this recorded current channel (baseline subtracted) instead "
                        "of the commanded current")
    p.add_argument("--window", type=finite, nargs=2, metavar=("START", "STOP"),
                   help="keep START <= t <= STOP, ms")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="FILE.h5",
                   help="recording to write (HDF5, written atomically)")
    add_quiet(p)


@command("import-abf", "convert an ABF current-clamp file to a recording (needs pyabf)",
         _import_abf_arguments)
def cmd_import_abf(args) -> int:
    from ..abf import read_abf
    from ..biophysics import Biophysics
    from ..recording import write_recording

    bio = Biophysics.standard("modern", args.temperature)
    fields = set(bio.as_dict()) - {"temperature"}
    for name, _ in args.set:
        if name not in fields:
            raise ConfigError(f"--set {name}: not a biophysics value; use one of "
                              f"{', '.join(sorted(fields))}")
    bio = bio.replace(**dict(args.set))
    rec = read_abf(args.file, bio, area=args.area, capacitance=args.capacitance,
                   sweeps=args.sweeps, current_channel=args.current_channel,
                   window=tuple(args.window) if args.window else None)
    write_recording(args.out, rec)
    say(f"wrote {args.out}: {rec.n_traces} sweep(s) x {rec.n_samples} samples")
    return EXIT_OK


def _passive_arguments(p):
    p.add_argument("file", type=existing_file, help="recording (HDF5), e.g. from hybridhh import")
    p.add_argument("--traces", type=trace, nargs="+", metavar="T",
                   help="traces to use, by index or name (default all)")
    p.add_argument("--amplitude", type=finite, nargs="+", metavar="DI",
                   help="use only steps of these amplitudes (current units, e.g. -100)")
    p.add_argument("--skip", type=non_negative, default=0.5, metavar="MS",
                   help="ms after each onset left out of the exponential fit (default 0.5)")
    p.add_argument("--steps", action="store_true", help="also print one row per step")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("passive", "passive properties from hyperpolarising steps: R_in, tau_m, C_total, "
         "sag, E_L, g_L", _passive_arguments)
def cmd_passive(args) -> int:
    from ..analysis.passive import passive_analysis
    from ..recording import read_recording

    rec = read_recording(args.file)
    p = passive_analysis(rec, traces=args.traces, amplitudes=args.amplitude, skip=args.skip)
    d = p.as_dict()
    if args.json:
        print(json.dumps(d, indent=2))
        return EXIT_OK
    u = d["units"]
    rows = [("R_in", p.R_in, u["R_in"], d["R_in_range"]),
            ("tau_m", p.tau_m, "ms", d["tau_m_range"]),
            ("C_total" if p.C_total is not None else "C_m",
             p.C_total if p.C_total is not None else p.C_m,
             "pF" if p.C_total is not None else "uF/cm^2", None),
            ("sag", p.sag, "mV", d["sag_range"]),
            ("E_L", p.E_L, "mV", None),
            ("g_L", p.g_L, "mS/cm^2", None),
            ("R_s", p.R_s, u["R_s"], d["R_s_range"])]
    print(f"{args.file}: {len(p.steps)} hyperpolarising step(s), medians"
          + (" (C_m = 1 uF/cm^2 by convention)" if p.C_total is not None else ""))
    for name, value, unit, rng in rows:
        extra = "" if rng is None else f"   (steps {rng[0]:.4g} .. {rng[1]:.4g})"
        print(f"  {name:<8} {value:>10.4g} {unit:<10}{extra}")
    if args.steps:
        print(f"  {'trace':<12} {'start':>9} {'dI':>8} {'R_in':>8} {'tau_m':>7} {'sag':>6} "
              f"{'C':>8} {'rmse':>6}")
        for s in p.steps:
            print(f"  {s['trace']:<12} {s['start']:>9.2f} {s['amplitude']:>8.4g} "
                  f"{s['R_in']:>8.4g} {s['tau_m']:>7.3g} {s['sag']:>6.2f} {s['C']:>8.4g} "
                  f"{s['fit_rmse']:>6.3f}")
    return EXIT_OK

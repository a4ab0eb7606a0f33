"""``hybridhh simulate``, ``info`` and ``plot``: make, summarise and draw recordings."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, RecordingError
from ._args import add_quiet, existing_file, finite, non_negative, positive, say, trace, warn
from ._registry import EXIT_OK, command

__all__ = ["ProtocolSpec", "protocol_specs", "parse_protocol", "cmd_simulate", "cmd_info",
           "cmd_plot"]


# --- simulate -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolSpec:
    """How ``--protocol NAME[:A,B,...]`` maps onto a builder of :mod:`hybridhh.protocols`."""

    amplitudes: str  # what the amplitudes mean (help text)
    default: tuple[float, ...]
    n_min: int
    n_max: int | None
    build: Callable  # (time, amplitudes, seed) -> Stimulus


def protocol_specs() -> dict[str, ProtocolSpec]:
    """The command-line adapter of every protocol, by name."""
    from .. import protocols as P

    return {
        "classic": ProtocolSpec("none (150 and 50 uA/cm^2 pulses at 0 and 10 ms)", (), 0, 0,
                                lambda t, a, s: P.classic_pulses(t)),
        "steps": ProtocolSpec("step amplitudes, one trace each (from 5 ms on)",
                              (5.0, 10.0, 20.0), 1, None,
                              lambda t, a, s: P.steps(t, a, start=5.0)),
        "ramp": ProtocolSpec("start and end amplitude (5 ms to the end)", (0.0, 30.0), 2, 2,
                             lambda t, a, s: P.ramp(t, a[0], a[1], start=5.0)),
        "prepulse": ProtocolSpec(
            "prepulse amplitude, then step amplitudes (prepulse from 5 ms for a fifth of the "
            "duration)", (-10.0, 5.0, 15.0), 2, None,
            lambda t, a, s: P.prepulse_step(t, a[0], a[1:], prepulse_start=5.0,
                                            prepulse_duration=0.2 * t[-1])),
        "chirp": ProtocolSpec("amplitude [offset] (0.005-0.15 kHz sweep from 5 ms)",
                              (8.0, 3.0), 1, 2,
                              lambda t, a, s: P.chirp(t, a[0], 0.005, 0.15,
                                                      offset=a[1] if len(a) > 1 else 0.0,
                                                      start=5.0)),
        "noise": ProtocolSpec("mean and SD of an Ornstein-Uhlenbeck current (tau 3 ms)",
                              (4.0, 8.0), 2, 2,
                              lambda t, a, s: P.ou_noise(t, a[0], a[1], seed=s, n=1)),
        "default": ProtocolSpec("none (the default fitting set)", (), 0, 0,
                                lambda t, a, s: P.default_protocols(t, seed=s)),
    }


def parse_protocol(text: str, amplitudes):
    """``NAME`` or ``NAME:A,B,...`` -> (name, spec, amplitudes); ``amplitudes`` (the
    ``--amplitudes`` values or None) apply to a protocol given without ``:``."""
    import argparse

    from ..protocols import PROTOCOLS

    specs = protocol_specs()
    name, _, amps = text.partition(":")
    if name not in PROTOCOLS or name not in specs:
        raise ConfigError(f"unknown protocol {name!r}; choose from "
                          f"{', '.join(n for n in PROTOCOLS if n in specs)}")
    spec = specs[name]
    if amps:
        try:
            values = tuple(finite(a) for a in amps.split(","))
        except argparse.ArgumentTypeError as e:
            raise ConfigError(f"protocol {text!r}: {e}") from None
    elif amplitudes is not None and spec.n_max != 0:
        values = tuple(amplitudes)
    else:
        values = spec.default
    n_max = math.inf if spec.n_max is None else spec.n_max
    if not spec.n_min <= len(values) <= n_max:
        raise ConfigError(f"protocol {name!r} takes {spec.amplitudes}; got {len(values)} "
                          f"amplitude(s) {list(values)}")
    return name, spec, values


def _simulate_arguments(p):
    names = ", ".join(protocol_specs())
    g = p.add_argument_group("stimulus (new)")
    g.add_argument("-p", "--protocol", action="append", metavar="NAME[:A,B,...]",
                   help=f"protocol, repeatable: {names}; optional comma-separated "
                        "amplitudes in uA/cm^2 after a colon, e.g. steps:5,10,-4 "
                        "(default: default)")
    g.add_argument("--amplitudes", type=finite, nargs="+", metavar="A",
                   help="amplitudes (uA/cm^2) for protocols given without ':'")
    g.add_argument("--duration", type=positive, metavar="MS", help="ms (default 100)")
    g.add_argument("--dt", type=positive, metavar="MS",
                   help="sampling and integration step, ms (default 0.01)")
    g = p.add_argument_group("stimulus (from a file)")
    g.add_argument("--stimulus-from", type=existing_file, metavar="FILE.h5",
                   help="re-simulate the stimuli of this recording on its time grid, with "
                        "its /biophysics, temperature and (if hybridhh knows it) truth "
                        "kinetics; each trace starts at its first recorded V (the "
                        "noise-free /truth/voltage where the file has it), as NEURON's "
                        "finitialize(v_init) does")
    g = p.add_argument_group("model")
    g.add_argument("--convention", choices=("modern", "hh1952"),
                   help="voltage convention of biophysics and kinetics: modern (rest -65 mV, "
                        "NEURON hh) or hh1952 (rest 0 mV) (default modern)")
    g.add_argument("--temperature", type=finite, metavar="DEGC", help="degC (default 6.3)")
    g.add_argument("--integrator", default="exp_euler", metavar="NAME", help="exp_euler (default), "
                   "ind_exp_euler, rk4, neuron, dopri5, lsoda")
    g.add_argument("--v-init", type=finite, metavar="MV",
                   help="initial V of every trace, mV; the gates start at their steady "
                        "state there (default: the model's rest, or with --stimulus-from "
                        "each trace's first recorded V)")
    g = p.add_argument_group("output")
    g.add_argument("--noise", type=non_negative, default=0.0, metavar="SIGMA",
                   help="SD of Gaussian measurement noise added to V, mV (default 0)")
    g.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the noise protocols and the measurement noise (default 0)")
    g.add_argument("-o", "--out", required=True, type=Path, metavar="FILE.h5",
                   help="recording to write (HDF5, written atomically)")
    g.add_argument("--description", default="", metavar="TEXT", help="free text stored in the file")
    add_quiet(p)


def _from_file(args):
    """Stimulus, biophysics, kinetics and initial V of ``--stimulus-from``."""
    from ..kinetics import HHKinetics
    from ..recording import read_recording, truth_kinetics

    path = args.stimulus_from
    clash = [f"--{o.replace('_', '-')}" for o in ("protocol", "amplitudes", "duration", "dt")
             if getattr(args, o) is not None]
    if clash:
        raise ConfigError(f"--stimulus-from takes time grid and stimuli from the file; "
                          f"drop {', '.join(clash)}")
    src = read_recording(path)
    bio = src.biophysics
    if args.temperature is not None:
        if src.temperature_known:
            raise ConfigError(f"--temperature: {path} sets the temperature "
                              f"({bio.temperature:g} degC); drop --temperature")
        bio = bio.replace(temperature=args.temperature)
    elif not src.temperature_known:
        raise ConfigError(f"{path} has no temperature; pass --temperature")
    try:
        kin = truth_kinetics(src)
    except RecordingError:  # a kinetics name hybridhh does not know: the biophysics suffice
        kin, unknown = None, src.truth.kinetics
    else:
        unknown = None
    if kin is not None:
        if args.convention is not None and args.convention != kin.convention:
            raise ConfigError(f"--convention {args.convention}: {path} was "
                              f"made with {src.truth.kinetics} ({kin.convention})")
    else:
        convention = args.convention or "modern"
        kin = HHKinetics(convention, temperature=bio.temperature)
        if unknown is not None:
            warn(f"{path}: truth kinetics {unknown!r} is not a kinetics set hybridhh knows; "
                 f"re-simulating with the file's biophysics and {kin.name} "
                 f"(--convention {convention})")
    known = src.truth is not None and src.truth.voltage is not None
    first = (src.truth.voltage if known else src.voltage)[:, 0].copy()
    source = f"hybridhh simulate --stimulus-from {path.name}"
    return src.stimulus, bio, kin, first, source


def _new_stimulus(args):
    """Stimulus, biophysics, kinetics and initial V (None: rest) of new protocols."""
    from ..biophysics import Biophysics
    from ..kinetics import HHKinetics
    from ..protocols import Stimulus, time_grid

    convention = args.convention or "modern"
    temperature = 6.3 if args.temperature is None else args.temperature
    time_ = time_grid(args.duration or 100.0, args.dt or 0.01)
    protocol_args = args.protocol or ["default"]
    parsed = [parse_protocol(text, args.amplitudes) for text in protocol_args]
    stimulus = Stimulus.concat([spec.build(time_, list(amps), args.seed)
                                for _, spec, amps in parsed])
    bio = Biophysics.standard(convention, temperature)
    kin = HHKinetics(convention, temperature=temperature)
    return stimulus, bio, kin, None, f"hybridhh simulate ({', '.join(protocol_args)})"


@command("simulate", "simulate the reference HH model and write a recording",
         _simulate_arguments)
def cmd_simulate(args) -> int:
    from ..integrators import get_integrator
    from ..recording import recording_from_trajectory, write_recording
    from ..simulation import simulate

    get_integrator(args.integrator)  # fail on a bad name before any work
    made = _from_file(args) if args.stimulus_from is not None else _new_stimulus(args)
    stimulus, bio, kin, V0, source = made
    if args.v_init is not None:
        V0 = args.v_init
    start = ("rest" if V0 is None else f"V0 {V0:g} mV" if isinstance(V0, float)
             else "V0 from the file")
    say(f"simulating {stimulus.n_traces} trace(s) x {len(stimulus.time)} samples "
        f"({stimulus.time[-1] - stimulus.time[0]:g} ms at dt {stimulus.dt:g} ms, "
        f"{kin.name}, {bio.temperature:g} degC, {args.integrator}, {start}) ...")
    t0 = time.perf_counter()
    traj = simulate(stimulus, kin, bio, method=args.integrator, V0=V0)
    rec = recording_from_trajectory(traj, bio, kin, noise_sigma=args.noise, seed=args.seed,
                                    source=source, description=args.description)
    write_recording(args.out, rec)
    say(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


# --- info -----------------------------------------------------------------------------


def _info_arguments(p):
    p.add_argument("file", type=Path, help="recording (HDF5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-traces", action="store_true", help="leave out the per-trace table")


def _g(x) -> str:
    return f"{x:.4g}"


def _info_rows(s: dict) -> list[tuple[str, str]]:
    """(label, value) rows of ``Recording.summary()`` ``s``."""
    from ..biophysics import BIOPHYSICS_UNITS
    from ..metadata import METADATA

    b = s["biophysics"]
    units = s.get("current_units") or "uA/cm^2"
    cell = s.get("cell") or {}
    temp = f"{_g(b['temperature'])} degC" + ("" if s["temperature_known"]
                                              else " (not in file: assumed)")
    rows = [
        ("source", s["source"]),
        ("description", s["description"] or "-"),
        ("traces", f"{s['n_traces']} x {s['n_samples']} samples"),
        ("time", f"{_g(s['t_start'])} .. {_g(s['t_start'] + s['duration'])} ms "
                 f"(duration {_g(s['duration'])} ms, dt {_g(s['dt'])} ms)"),
        ("V", f"{_g(s['voltage']['min'])} .. {_g(s['voltage']['max'])} mV "
              f"(1st-99th percentile {_g(s['voltage']['p1'])} .. {_g(s['voltage']['p99'])} mV)"),
        ("current", f"{_g(s['current']['min'])} .. {_g(s['current']['max'])} {units}"),
        ("noise SD", "-" if s["noise_sigma"] is None else f"{_g(s['noise_sigma'])} mV"),
        ("biophysics", ", ".join(f"{k} {_g(b[k])} {BIOPHYSICS_UNITS[k]}"
                                 for k in ("C_m", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L"))
         + (" (placeholders: see cell)" if any(p["status"] == "unknown" for p in cell.values())
            else "")),
        ("temperature", temp),
    ]
    if cell:
        rows.append(("cell", "; ".join(_cell_text(n, p) for n, p in cell.items())))
    for key, value in (s.get("metadata") or {}).items():
        unit = METADATA.get(key, (None, None))[1]
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        rows.append((key, text + (f" {unit}" if unit else "")))
    t = s["truth"]
    if t is None:
        rows.append(("truth", "none (real or unlabelled data)"))
    else:
        rows.append(("truth", f"kinetics {t['kinetics']} at {_g(t['temperature'])} degC, "
                              f"q10 {_g(t['q10'])}; gates {'yes' if t['gates'] else 'no'}"
                              + (f"; integrator {t['integrator']}" if t["integrator"] else "")))
    return rows


def _cell_text(name: str, p: dict) -> str:
    if p["status"] == "known":
        return f"{name} {_g(p['value'])} {p['unit']} (known)"
    start = "" if p.get("start") is None else f", start {_g(p['start'])}"
    return f"{name} unknown in {_g(p['lower'])} .. {_g(p['upper'])} {p['unit']}{start}"


@command("info", "summarise a recording", _info_arguments)
def cmd_info(args) -> int:
    from ..recording import read_recording

    s = read_recording(args.file).summary()
    if args.json:
        if args.no_traces:
            s.pop("traces")
        print(json.dumps(s, indent=2))
        return EXIT_OK
    print(args.file)
    for key, value in _info_rows(s):
        print(f"  {key:<12} {value}")
    if not args.no_traces:
        width = max(len(tr["name"]) for tr in s["traces"])
        units = s.get("current_units") or "uA/cm^2"
        print(f"  per trace:    V min .. max (mV)     I min .. max ({units})")
        for k, tr in enumerate(s["traces"]):
            print(f"  {k:>3} {tr['name']:<{width}}  {tr['V_min']:8.2f} .. {tr['V_max']:7.2f}"
                  f"   {tr['I_min']:8.2f} .. {tr['I_max']:7.2f}")
    return EXIT_OK


# --- plot -----------------------------------------------------------------------------


def _plot_arguments(p):
    p.add_argument("file", type=Path, help="recording (HDF5)")
    p.add_argument("-o", "--out", type=Path, metavar="FILE.png",
                   help="figure to write; the suffix picks the format (png, pdf, svg); "
                        "default: the recording's name with .png")
    p.add_argument("--traces", nargs="+", type=trace, metavar="T",
                   help="trace indices or names (default: all, or 8 evenly spaced ones)")
    p.add_argument("--dpi", type=int, default=150, metavar="N",
                   help="resolution of raster formats (default 150)")
    add_quiet(p)


@command("plot", "plot a recording: stimulus, V, gates, phase plane", _plot_arguments)
def cmd_plot(args) -> int:
    from ..plotting import plot_recording, save_figure
    from ..recording import read_recording

    rec = read_recording(args.file)
    out = args.out or args.file.with_suffix(".png")
    fig = plot_recording(rec, traces=args.traces)
    save_figure(fig, out, dpi=args.dpi)
    say(f"wrote {out}")
    return EXIT_OK

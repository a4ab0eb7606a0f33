"""The ``hybridhh`` command line: a thin layer that parses, calls the Python API, prints.

Subcommands live in one registration table, :data:`COMMANDS`. To add one, write a
function that adds its options to an :class:`argparse.ArgumentParser` and a function that
runs it, and register them with the :func:`command` decorator::

    def _rates_arguments(p):
        p.add_argument("run_dir", help="...")

    @command("rates", "write the learned rate table (CSV)", _rates_arguments)
    def cmd_rates(args) -> int:
        from .fitting import ...          # import heavy modules here, not at module level
        ...
        return 0

A subcommand raises :class:`hybridhh.errors.HybridHHError` (or returns a non-zero exit
code) on failure; :func:`main` prints ``error: <message>`` on stderr and exits with 2, for
bad arguments too, without a traceback (``--traceback`` shows one). Output that is only
progress goes through :func:`say`, which ``--quiet`` silences.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, HybridHHError

__all__ = ["main", "build_parser", "command", "Command", "COMMANDS", "EXIT_ERROR", "say"]

EXIT_OK = 0
#: Exit status for every user error (bad argument, bad file, failed simulation).
EXIT_ERROR = 2


class UsageError(Exception):
    """A command-line argument could not be parsed (raised by the parser, not exit)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, option builder and runner."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable[[argparse.Namespace], int | None]


#: Subcommands by name, in the order they appear in ``hybridhh --help``.
COMMANDS: dict[str, Command] = {}


def command(name: str, help: str,
            arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorator registering ``run(args) -> int | None`` as subcommand ``name``.

    ``arguments(parser)`` adds the subcommand's options. ``run`` returns the exit status
    (``None`` means 0).
    """

    def register(run):
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register


_QUIET = False


def say(*parts, **kwargs) -> None:
    """Print a progress/status line on stderr unless ``--quiet``."""
    if not _QUIET:
        print(*parts, file=sys.stderr, **kwargs)


# --- argument types: parse errors become one-line messages -----------------------------


def _finite(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _positive(text: str) -> float:
    v = _finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _non_negative(text: str) -> float:
    v = _finite(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def _existing_file(text: str) -> Path:
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return p


def _trace(text: str):
    """A trace index (int) or name (str)."""
    try:
        return int(text)
    except ValueError:
        return text


# --- simulate -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolSpec:
    """How ``--protocol NAME[:A,B,...]`` maps onto a builder of :mod:`hybridhh.protocols`."""

    amplitudes: str  # what the amplitudes mean (help text)
    default: tuple[float, ...]
    n_min: int
    n_max: int | None
    build: Callable  # (time, amplitudes, seed) -> Stimulus


def _protocol_specs():
    from . import protocols as P

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


def _parse_protocol(text: str, amplitudes):
    """``NAME`` or ``NAME:A,B,...`` -> (name, spec, amplitudes)."""
    from .protocols import PROTOCOLS

    specs = _protocol_specs()
    name, _, amps = text.partition(":")
    if name not in PROTOCOLS or name not in specs:
        raise ConfigError(f"unknown protocol {name!r}; choose from "
                          f"{', '.join(n for n in PROTOCOLS if n in specs)}")
    spec = specs[name]
    if amps:
        try:
            values = tuple(_finite(a) for a in amps.split(","))
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
    names = ", ".join(_protocol_specs())
    g = p.add_argument_group("stimulus (new)")
    g.add_argument("-p", "--protocol", action="append", metavar="NAME[:A,B,...]",
                   help=f"protocol, repeatable: {names}; optional comma-separated "
                        "amplitudes in uA/cm^2 after a colon, e.g. steps:5,10,-4 "
                        "(default: default)")
    g.add_argument("--amplitudes", type=_finite, nargs="+", metavar="A",
                   help="amplitudes (uA/cm^2) for protocols given without ':'")
    g.add_argument("--duration", type=_positive, help="ms (default 100)")
    g.add_argument("--dt", type=_positive, help="sampling and integration step, ms "
                                                 "(default 0.01)")
    g = p.add_argument_group("stimulus (from a file)")
    g.add_argument("--stimulus-from", type=_existing_file, metavar="FILE.h5",
                   help="re-simulate the stimuli of this recording on its time grid, with "
                        "its /biophysics, temperature and (if present) truth kinetics")
    g = p.add_argument_group("model")
    g.add_argument("--convention", choices=("modern", "hh1952"),
                   help="voltage convention of biophysics and kinetics: modern (rest -65 mV, "
                        "NEURON hh) or hh1952 (rest 0 mV) (default modern)")
    g.add_argument("--temperature", type=_finite, help="degC (default 6.3)")
    g.add_argument("--integrator", default="exp_euler", help="exp_euler (default), "
                   "ind_exp_euler, rk4, neuron, dopri5, lsoda")
    g = p.add_argument_group("output")
    g.add_argument("--noise", type=_non_negative, default=0.0, metavar="SIGMA",
                   help="SD of Gaussian measurement noise added to V, mV (default 0)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the noise protocols and the measurement noise (default 0)")
    g.add_argument("-o", "--out", required=True, type=Path, metavar="FILE.h5",
                   help="recording to write (HDF5, written atomically)")
    g.add_argument("--description", default="", help="free text stored in the file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


@command("simulate", "simulate the reference HH model and write a recording",
         _simulate_arguments)
def cmd_simulate(args) -> int:
    from .biophysics import Biophysics
    from .integrators import get_integrator
    from .kinetics import HHKinetics
    from .protocols import Stimulus, time_grid
    from .recording import read_recording, simulate_recording, truth_kinetics

    get_integrator(args.integrator)  # fail on a bad name before any work
    if args.stimulus_from is not None:
        clash = [f"--{o.replace('_', '-')}" for o in ("protocol", "amplitudes", "duration", "dt")
                 if getattr(args, o) is not None]
        if clash:
            raise ConfigError(f"--stimulus-from takes time grid and stimuli from the file; "
                              f"drop {', '.join(clash)}")
        src = read_recording(args.stimulus_from)
        stimulus = src.stimulus
        bio = src.biophysics
        if args.temperature is not None:
            if src.temperature_known:
                raise ConfigError(f"--temperature: {args.stimulus_from} sets the temperature "
                                  f"({bio.temperature:g} degC); drop --temperature")
            bio = bio.replace(temperature=args.temperature)
        elif not src.temperature_known:
            raise ConfigError(f"{args.stimulus_from} has no temperature; pass --temperature")
        kin = truth_kinetics(src)
        if kin is not None:
            if args.convention is not None and args.convention != kin.convention:
                raise ConfigError(f"--convention {args.convention}: {args.stimulus_from} was "
                                  f"made with {src.truth.kinetics} ({kin.convention})")
        else:
            kin = HHKinetics(args.convention or "modern", temperature=bio.temperature)
        source = f"hybridhh simulate --stimulus-from {args.stimulus_from.name}"
    else:
        convention = args.convention or "modern"
        temperature = 6.3 if args.temperature is None else args.temperature
        time_ = time_grid(args.duration or 100.0, args.dt or 0.01)
        protocol_args = args.protocol or ["default"]
        parsed = [_parse_protocol(text, args.amplitudes) for text in protocol_args]
        stimulus = Stimulus.concat([spec.build(time_, list(amps), args.seed)
                                    for _, spec, amps in parsed])
        bio = Biophysics.standard(convention, temperature)
        kin = HHKinetics(convention, temperature=temperature)
        source = f"hybridhh simulate ({', '.join(protocol_args)})"

    say(f"simulating {stimulus.n_traces} trace(s) x {len(stimulus.time)} samples "
        f"({stimulus.time[-1] - stimulus.time[0]:g} ms at dt {stimulus.dt:g} ms, "
        f"{kin.name}, {bio.temperature:g} degC, {args.integrator}) ...")
    t0 = time.perf_counter()
    rec = simulate_recording(stimulus, bio, kin, method=args.integrator,
                             noise_sigma=args.noise, seed=args.seed, source=source,
                             description=args.description)
    from .recording import write_recording

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


@command("info", "summarise a recording", _info_arguments)
def cmd_info(args) -> int:
    from .biophysics import BIOPHYSICS_UNITS
    from .recording import read_recording

    rec = read_recording(args.file)
    s = rec.summary()
    if args.json:
        if args.no_traces:
            s.pop("traces")
        print(json.dumps(s, indent=2))
        return EXIT_OK
    b = s["biophysics"]
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
        ("current", f"{_g(s['current']['min'])} .. {_g(s['current']['max'])} uA/cm^2"),
        ("noise SD", "-" if s["noise_sigma"] is None else f"{_g(s['noise_sigma'])} mV"),
        ("biophysics", ", ".join(f"{k} {_g(b[k])} {BIOPHYSICS_UNITS[k]}"
                                 for k in ("C_m", "g_Na", "g_K", "g_L", "E_Na", "E_K", "E_L"))),
        ("temperature", temp),
    ]
    t = s["truth"]
    if t is None:
        rows.append(("truth", "none (real or unlabelled data)"))
    else:
        rows.append(("truth", f"kinetics {t['kinetics']} at {_g(t['temperature'])} degC, "
                              f"q10 {_g(t['q10'])}; gates {'yes' if t['gates'] else 'no'}"
                              + (f"; integrator {t['integrator']}" if t["integrator"] else "")))
    print(args.file)
    for key, value in rows:
        print(f"  {key:<12} {value}")
    if not args.no_traces:
        width = max(len(tr["name"]) for tr in s["traces"])
        print("  per trace:    V min .. max (mV)     I min .. max (uA/cm^2)")
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
    p.add_argument("--traces", nargs="+", type=_trace, metavar="T",
                   help="trace indices or names (default: all, or 8 evenly spaced ones)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of raster formats "
                                                        "(default 150)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


@command("plot", "plot a recording: stimulus, V, gates, phase plane", _plot_arguments)
def cmd_plot(args) -> int:
    from .plotting import plot_recording, save_figure
    from .recording import read_recording

    rec = read_recording(args.file)
    out = args.out or args.file.with_suffix(".png")
    fig = plot_recording(rec, traces=args.traces)
    save_figure(fig, out, dpi=args.dpi)
    say(f"wrote {out}")
    return EXIT_OK


# --- import-abf -----------------------------------------------------------------------


def _assignment(text: str):
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), _finite(value)


def _import_abf_arguments(p):
    p.add_argument("file", type=_existing_file, help="ABF current-clamp file")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--capacitance", type=_positive, metavar="PF",
                      help="total membrane capacitance, pF (area = C * 1e-6 cm^2 at "
                           "1 uF/cm^2): I[uA/cm^2] = I[pA] / C[pF]")
    size.add_argument("--area", type=_positive, metavar="CM2", help="membrane area, cm^2")
    p.add_argument("--temperature", type=_finite, required=True,
                   help="recording temperature, degC (not stored in ABF files)")
    p.add_argument("--set", type=_assignment, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="biophysics value (C_m, g_Na, g_K, g_L, E_Na, E_K, E_L); the others "
                        "are the modern HH values")
    p.add_argument("--sweeps", type=int, nargs="+", help="sweep numbers (default all)")
    p.add_argument("--current-channel", type=int,
                   help="use this recorded current channel (baseline subtracted) instead "
                        "of the commanded current")
    p.add_argument("--window", type=_finite, nargs=2, metavar=("START", "STOP"),
                   help="keep START <= t <= STOP, ms")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="FILE.h5")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


@command("import-abf", "convert an ABF current-clamp file to a recording (needs pyabf)",
         _import_abf_arguments)
def cmd_import_abf(args) -> int:
    from .abf import read_abf
    from .biophysics import Biophysics
    from .recording import write_recording

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


# --- entry point ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = _Parser(prog="hybridhh", description="Learn Hodgkin-Huxley rate functions "
                     "with a hybrid neural ODE; simulate and inspect recordings. Units: ms, "
                     "mV, uA/cm^2, mS/cm^2, uF/cm^2, 1/ms, degC.")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of an error (for debugging)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.add_arguments is not None:
            cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``hybridhh`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0 on success; 2 with one ``error: ...`` line on stderr for a bad argument or any
    :class:`~hybridhh.errors.HybridHHError` or OS error; 130 on Ctrl-C.
    """
    global _QUIET
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else EXIT_OK
    if getattr(args, "_command", None) is None:
        print(f"error: choose a command: {', '.join(COMMANDS)} (see 'hybridhh --help')",
              file=sys.stderr)
        return EXIT_ERROR
    _QUIET = bool(getattr(args, "quiet", False))
    try:
        status = args._command.run(args)
    except (HybridHHError, OSError) as e:
        if args.traceback:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _QUIET = False
    return EXIT_OK if status is None else int(status)


# subcommands that live in their own modules register themselves on import
from . import cli_fit, cli_report  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover - `python -m hybridhh.cli`
    # run the imported module's main, whose registry the sub-modules above filled
    from hybridhh.cli import main as _main

    sys.exit(_main())

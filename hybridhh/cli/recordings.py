"""``hybridhh import-abf``: a recording from an ABF current-clamp file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ._args import add_quiet, existing_file, finite, positive, say
from ._registry import EXIT_OK, command

__all__ = ["cmd_import_abf"]


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

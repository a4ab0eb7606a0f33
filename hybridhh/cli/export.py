"""``hybridhh export``: a thin wrapper over :func:`hybridhh.export.export` (a fitted run as
a NEURON mechanism)."""

from __future__ import annotations

from pathlib import Path

from ._args import add_quiet, finite, positive, say
from ._registry import EXIT_OK, command

__all__ = ["cmd_export"]


def _export_arguments(p):
    p.add_argument("run_dir", type=Path, help="a finished run directory made by 'hybridhh fit'")
    p.add_argument("--format", default="nmodl", metavar="NAME",
                   help="export format: nmodl (a NEURON mechanism, one .mod file; default)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                   help="folder for the exported file (created if needed; for nmodl: "
                        "DIR/SUFFIX.mod, compile it with 'nrnivmodl DIR')")
    p.add_argument("--suffix", default=None, metavar="NAME",
                   help="the mechanism's name, sec.insert(NAME) in NEURON (a letter, then "
                        "letters, digits or '_'; default: the run directory's name)")
    p.add_argument("--vmin", type=finite, default=None, metavar="MV",
                   help="lowest tabulated voltage, mV (default -120, lower where the "
                        "recording went below -90)")
    p.add_argument("--vmax", type=finite, default=None, metavar="MV",
                   help="highest tabulated voltage, mV (default 80, higher where the "
                        "recording went above 50)")
    p.add_argument("--step", type=positive, default=0.1, metavar="MV",
                   help="table spacing, mV (default 0.1; cubic Hermite between the nodes)")
    add_quiet(p, "print only the output path")


@command("export", "export a fitted cell for another simulator (NEURON .mod file)",
         _export_arguments)
def cmd_export(args) -> int:
    from ..export import export

    path = export(args.run_dir, args.format, args.out, args.suffix, vmin=args.vmin,
                  vmax=args.vmax, step=args.step)
    say(f"wrote the mechanism {path.stem}: compile with 'nrnivmodl {path.parent}', then "
        f"sec.insert('{path.stem}') in NEURON")
    print(path)
    return EXIT_OK

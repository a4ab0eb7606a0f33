"""The ``hybridhh`` command line: a thin layer that parses, calls the Python API, prints.

Layout: :mod:`._registry` (the :class:`Command` table, the :func:`command` decorator, the
parser builder), :mod:`._args` (shared argument types, ``say``/``warn``), and one module
per command group, each registering its subcommands on import:

* :mod:`.simulate`: ``simulate``, ``info``, ``plot``
* :mod:`.recordings`: ``import-abf``
* :mod:`.fit`: ``fit``, ``rates``
* :mod:`.analysis`: ``compare``, ``report``
* :mod:`.export`: ``export``

No module imports from this one (no import circle). To add a subcommand, write a function
that adds its options to an :class:`argparse.ArgumentParser` and one that runs it, in the
module of its group::

    def _rates_arguments(p):
        p.add_argument("run_dir", help="...")

    @command("rates", "write the learned rate table (CSV)", _rates_arguments)
    def cmd_rates(args) -> int:
        from ..fitting import ...         # import heavy modules here, not at module level
        ...
        return 0

A subcommand raises :class:`hybridhh.errors.HybridHHError` (or returns a non-zero exit
code) on failure; :func:`main` prints ``error: <message>`` on stderr and exits with 2, for
bad arguments too, without a traceback (``--traceback`` shows one). Output that is only
progress goes through ``say``, which ``--quiet`` silences. docs/cli.md is generated from
the parser (``python -m hybridhh.cli.docs``).
"""

from __future__ import annotations

import importlib
import sys

from ..errors import HybridHHError
from ._args import say, set_quiet
from ._registry import COMMANDS, EXIT_ERROR, EXIT_OK, Command, UsageError, build_parser, command

__all__ = ["main", "build_parser", "command", "Command", "COMMANDS", "COMMAND_MODULES",
           "EXIT_OK", "EXIT_ERROR", "say"]

#: The command modules, in the order their subcommands appear in ``hybridhh --help``;
#: importing one registers its subcommands.
COMMAND_MODULES = ("simulate", "recordings", "fit", "analysis", "export")
for _module in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def main(argv: list[str] | None = None) -> int:
    """Run ``hybridhh`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0 on success; 2 with one ``error: ...`` line on stderr for a bad argument or any
    :class:`~hybridhh.errors.HybridHHError` or OS error; 130 on Ctrl-C.
    """
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
    set_quiet(getattr(args, "quiet", False))
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
        set_quiet(False)
    return EXIT_OK if status is None else int(status)

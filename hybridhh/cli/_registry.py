"""The subcommand registry and the parser built from it.

A command module registers each subcommand with :func:`command`; :func:`build_parser`
turns the registry into one :class:`argparse.ArgumentParser`. A subcommand's options are
added only when the subcommand is chosen (or when ``complete=True``), so ``hybridhh
--help`` imports no command's dependencies (torch above all).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command", "COMMANDS", "command", "build_parser", "subparsers", "UsageError", "EXIT_OK",
           "EXIT_ERROR", "DESCRIPTION"]

EXIT_OK = 0
#: Exit status for every user error (bad argument, bad file, failed simulation).
EXIT_ERROR = 2

DESCRIPTION = ("Learn Hodgkin-Huxley rate functions with a hybrid neural ODE; simulate and "
               "inspect recordings. Units: ms, mV, uA/cm^2, mS/cm^2, uF/cm^2, 1/ms, degC.")


class UsageError(Exception):
    """A command-line argument could not be parsed (raised by the parser, not exit)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, option builder and runner.

    ``add_arguments(parser)`` adds the options; ``run(args)`` returns the exit status
    (``None`` means 0) or raises :class:`hybridhh.errors.HybridHHError`.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable[[argparse.Namespace], int | None]


#: Subcommands by name, in the order they appear in ``hybridhh --help``.
COMMANDS: dict[str, Command] = {}


def command(name: str, help: str,
            arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorator registering ``run(args) -> int | None`` as subcommand ``name``.

    ``arguments(parser)`` adds the subcommand's options; import heavy modules inside it
    and inside ``run``, not at module level.
    """

    def register(run):
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register


def _add_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of the command behind ``parser``, once."""
    cmd = parser.get_default("_command")
    if cmd is not None and cmd.add_arguments is not None \
            and not parser.get_default("_complete"):
        cmd.add_arguments(parser)
        parser.set_defaults(_complete=True)


class _Subcommands(argparse._SubParsersAction):
    """Subparsers whose options are added when one is chosen."""

    def __call__(self, parser, namespace, values, option_string=None):
        chosen = self._name_parser_map.get(values[0])
        if chosen is not None:
            _add_options(chosen)
        super().__call__(parser, namespace, values, option_string)


def build_parser(complete: bool = False) -> argparse.ArgumentParser:
    """The ``hybridhh`` parser with every registered subcommand.

    ``complete=False`` adds a subcommand's options only once it is parsed (what
    :func:`hybridhh.cli.main` uses); ``complete=True`` adds all of them now (for the
    reference in docs/cli.md).
    """
    parser = _Parser(prog="hybridhh", description=DESCRIPTION)
    parser.register("action", "parsers", _Subcommands)
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of an error (for debugging)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.set_defaults(_command=cmd, _complete=False)
        if complete:
            _add_options(p)
    return parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by name (registration order)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}

"""docs/cli.md, the command-line reference, generated from the argument parser.

``python -m hybridhh.cli.docs docs/cli.md`` rewrites the file; without an argument the
text goes to stdout. A test checks that the committed file equals :func:`markdown_reference`.
"""

from __future__ import annotations

import argparse
import sys

from ._registry import COMMANDS, DESCRIPTION, EXIT_ERROR, build_parser, subparsers

__all__ = ["markdown_reference", "REGENERATE"]

#: The command that regenerates docs/cli.md (stated at its top).
REGENERATE = "python -m hybridhh.cli.docs docs/cli.md"


def _metavar(action: argparse.Action) -> str:
    """``M``, ``M [M ...]``, ``[M ...]``... for an action's values ('' for a flag)."""
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        mv = action.metavar
    elif action.choices is not None:
        mv = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        mv = action.dest.upper() if action.option_strings else action.dest
    if isinstance(mv, tuple):
        return " ".join(mv)
    return {None: mv, "?": f"[{mv}]", "*": f"[{mv} ...]", "+": f"{mv} [{mv} ...]"}.get(
        action.nargs, " ".join([mv] * action.nargs) if isinstance(action.nargs, int) else mv)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _name(action: argparse.Action) -> str:
    mv = _metavar(action)
    if not action.option_strings:
        return f"`{mv}`"
    return f"`{', '.join(action.option_strings)}{' ' + mv if mv else ''}`"


def _required(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    """' (required)', ' (required: one of A, B)' or ''."""
    if not action.option_strings:
        return ""
    if action.required:
        return " (required)"
    for g in parser._mutually_exclusive_groups:
        if g.required and action in g._group_actions:
            return " (required: one of " + ", ".join(a.option_strings[-1]
                                                     for a in g._group_actions) + ")"
    return ""


def _usage(name: str, parser: argparse.ArgumentParser) -> str:
    parts = [f"hybridhh {name}"]
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
            continue
        if not a.option_strings:
            parts.append(_metavar(a))
        elif a.required:
            parts.append(f"{a.option_strings[-1]} {_metavar(a)}".strip())
    for g in parser._mutually_exclusive_groups:
        if g.required:
            parts.append("(" + " | ".join(f"{a.option_strings[-1]} {_metavar(a)}".strip()
                                          for a in g._group_actions) + ")")
    parts.append("[options]")
    return " ".join(parts)


def _table(actions, parser) -> list[str]:
    rows = ["| argument | meaning |", "|---|---|"]
    for a in actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
            continue
        rows.append(f"| {_cell(_name(a))} | {_cell(a.help or '')}{_required(a, parser)} |")
    return rows


def _command_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    cmd = COMMANDS[name]
    lines = [f"## `hybridhh {name}`", "", cmd.help[0].upper() + cmd.help[1:] + ".", "",
             "```text", _usage(name, parser), "```", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        title = group.title if group.title not in ("options", "optional arguments") \
            else "options"
        lines += [f"{title[0].upper()}{title[1:]}:", "", *_table(actions, parser), ""]
    return lines


def markdown_reference() -> str:
    """The text of docs/cli.md: every subcommand and option, from the parser itself."""
    parser = build_parser(complete=True)
    subs = subparsers(parser)
    lines = [
        "# Command-line reference",
        "",
        f"<!-- Generated from the argument parser by `{REGENERATE}`; do not edit by hand "
        "(a test checks that this file is up to date). -->",
        "",
        DESCRIPTION,
        "",
        "```text",
        "hybridhh [--traceback] COMMAND [options]",
        "python -m hybridhh COMMAND [options]   # the same",
        "```",
        "",
        "`hybridhh COMMAND --help` prints a command's options. Exit status: 0 on success; "
        f"{EXIT_ERROR} with one line `error: ...` on stderr (no traceback; `--traceback` "
        "shows one) for a bad argument, a bad file or a failed simulation or fit; 130 when "
        "interrupted. Progress goes to stderr (`-q` silences it, not the warnings); results "
        "(paths, JSON, tables) go to stdout.",
        "",
        "| command | what it does |",
        "|---|---|",
        *(f"| [`{n}`](#hybridhh-{n}) | {_cell(c.help)} |" for n, c in COMMANDS.items()),
        "",
    ]
    for name, sub in subs.items():
        lines += _command_section(name, sub)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to the file named in ``argv`` (default: stdout)."""
    argv = sys.argv[1:] if argv is None else argv
    text = markdown_reference()
    if not argv:
        sys.stdout.write(text)
        return 0
    from ..atomic import atomic_write_text

    atomic_write_text(argv[0], text)
    print(argv[0])
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m hybridhh.cli.docs
    sys.exit(main())

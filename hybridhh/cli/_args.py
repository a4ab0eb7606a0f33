"""Argument types and printing shared by the command modules.

The types turn a bad value into an :class:`argparse.ArgumentTypeError`, which the parser
reports as one line naming the option. :func:`say` prints progress (silenced by
``--quiet``); :func:`warn` prints a warning whatever ``--quiet`` says.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

__all__ = ["finite", "positive", "non_negative", "non_negative_int", "positive_int",
           "existing_file", "trace", "say", "warn", "set_quiet", "add_quiet"]

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or not) :func:`say` for the command being run."""
    global _QUIET
    _QUIET = bool(quiet)


def say(*parts, **kwargs) -> None:
    """Print a progress/status line on stderr unless ``--quiet``."""
    if not _QUIET:
        print(*parts, file=sys.stderr, **kwargs)


def warn(message: str) -> None:
    """Print ``warning: MESSAGE`` on stderr (also under ``--quiet``)."""
    print(f"warning: {message}", file=sys.stderr)


def add_quiet(parser: argparse.ArgumentParser, help: str = "print nothing on success") -> None:
    """The ``-q/--quiet`` flag (read by :func:`hybridhh.cli.main`)."""
    parser.add_argument("-q", "--quiet", action="store_true", help=help)


# --- argument types: parse errors become one-line messages -----------------------------


def finite(text: str) -> float:
    """A finite number."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def positive(text: str) -> float:
    """A finite number > 0."""
    v = finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    v = finite(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def _integer(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a step or iteration count; 0 usually turns a stage off)."""
    return _integer(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _integer(text, 1)


def existing_file(text: str) -> Path:
    """The path of an existing file."""
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return p


def trace(text: str):
    """A trace selector: an index (int) or a name (str)."""
    try:
        return int(text)
    except ValueError:
        return text

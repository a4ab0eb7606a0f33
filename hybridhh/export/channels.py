"""What an exported mechanism holds: channels (a maximal conductance, a reversal potential
and gates raised to powers) whose gates are tabulated kinetics (:mod:`.table`).

One :class:`Channel` list describes any single-compartment cell the fitter can make: the
squid-axon set (:func:`hh_channels`: Na m³h, K n⁴, leak) and, when fits have them, extra
generic gated currents (one or two gates, each with its own x_inf and tau, its own g and
E), which append to the list without changing the writer. Units: g in mS/cm², E in mV.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError
from .table import GateTable, Grid, tabulate

__all__ = ["Gate", "Channel", "hh_channels", "check_name", "HH_GATES"]

#: The squid-axon channels: (channel, gates with their powers), gate order m, h, n.
HH_GATES = (("na", (("m", 3), ("h", 1))), ("k", (("n", 4),)))

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def check_name(name, what: str) -> str:
    """``name`` if it is an NMODL identifier (a letter, then letters, digits, ``_``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{what} {name!r} is not a valid NMODL name: expected a letter "
                          "followed by letters, digits or '_'")
    return name


@dataclass(frozen=True)
class Gate:
    """A gate: its state name in the mechanism, its power in the conductance, its table."""

    name: str
    power: int
    table: GateTable

    def __post_init__(self):
        check_name(self.name, "gate name")
        if isinstance(self.power, bool) or not isinstance(self.power, int) or \
                not 1 <= self.power <= 8:
            raise ConfigError(f"gate {self.name}: power must be an integer 1..8, got "
                              f"{self.power!r}")


@dataclass(frozen=True)
class Channel:
    """An ohmic current ``g * prod(gate ** power) * (V - E)``.

    Attributes
    ----------
    name
        Used in the mechanism's names: ``g_NAME`` (S/cm² there), ``e_NAME`` (mV),
        ``i_NAME`` (mA/cm²).
    g
        Maximal conductance, mS/cm².
    E
        Reversal potential, mV.
    gates
        None for a leak.
    description
        One line for the mechanism's comments.
    """

    name: str
    g: float
    E: float
    gates: tuple[Gate, ...] = ()
    description: str = ""

    def __post_init__(self):
        check_name(self.name, "channel name")
        for field, v in (("g", self.g), ("E", self.E)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"channel {self.name}: {field} must be a finite number, "
                                  f"got {v!r}")
        if self.g < 0:
            raise ConfigError(f"channel {self.name}: g must be >= 0 mS/cm^2, got {self.g}")
        object.__setattr__(self, "gates", tuple(self.gates))


def hh_channels(kinetics, biophysics, grid: Grid) -> list[Channel]:
    """Na (m³h), K (n⁴) and leak of a cell with three-gate kinetics (m, h, n).

    ``kinetics``: any kinetics object (the true :class:`~hybridhh.kinetics.HHKinetics`, a
    fitted :class:`~hybridhh.learned.RateMLP`), tabulated on ``grid``; ``biophysics``: a
    :class:`~hybridhh.biophysics.Biophysics` (g in mS/cm², E in mV).
    """
    from ..kinetics import inf_tau

    tables = tabulate(lambda V: inf_tau(kinetics, V), grid)
    if len(tables) != 3:
        raise ConfigError(f"kinetics {kinetics!r} has {len(tables)} gates, expected 3 "
                          "(m, h, n)")
    by_name = dict(zip("mhn", tables, strict=True))
    b = biophysics
    g = {"na": (b.g_Na, b.E_Na, "sodium (m^3 h)"), "k": (b.g_K, b.E_K, "potassium (n^4)")}
    out = [Channel(c, g[c][0], g[c][1],
                   tuple(Gate(n, p, by_name[n]) for n, p in gates), g[c][2])
           for c, gates in HH_GATES]
    out.append(Channel("l", b.g_L, b.E_L, (), "leak"))
    return out

"""What a recording says about its cell: each parameter known, unknown (to be fitted) or absent.

A real recording in pA comes with no membrane area, conductances or reversal potentials.
:class:`Cell` marks each of the cell's parameters (:data:`PARAMETERS`: the total
capacitance C_total and the HH conductances and reversal potentials) as

* ``"known"``: a fixed ``value`` (a fit keeps it unless told to free it);
* ``"unknown"``: to be estimated, within ``lower``..``upper`` (default: the physiological
  bounds of :data:`PARAMETERS`), from an optional ``start``;
* ``"absent"``: the file says nothing about it; readers fall back on ``/biophysics``.

Units: C_total in pF; g_Na, g_K, g_L in mS/cm²; E_Na, E_K, E_L in mV. With C_m = 1 µF/cm²
(the stated convention for a recording in pA), C_total fixes the nominal area
(A = C_total · 1e-6 cm²) and the conductances are densities of that area. In a file the
cell is the optional group ``/cell`` (``docs/recording-format.md``).

A fit reads :meth:`Cell.free_names`, :meth:`Cell.bounds`, :meth:`Cell.start_values` and
:meth:`Cell.known_values`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from .errors import ConfigError

__all__ = ["PARAMETERS", "STATUSES", "CellParameter", "Cell"]

#: The cell's parameters: name -> (unit, default lower bound, default upper bound). The
#: bounds are physiological ranges (modern convention: rest near -65 mV).
PARAMETERS: dict[str, tuple[str, float, float]] = {
    "C_total": ("pF", 5.0, 2000.0),
    "g_Na": ("mS/cm^2", 1.0, 500.0),
    "g_K": ("mS/cm^2", 0.5, 200.0),
    "g_L": ("mS/cm^2", 0.005, 5.0),
    "E_Na": ("mV", 30.0, 90.0),
    "E_K": ("mV", -110.0, -60.0),
    "E_L": ("mV", -100.0, -30.0),
}

#: What a parameter can be.
STATUSES = ("known", "unknown", "absent")


def _number(x, what: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
        raise ConfigError(f"{what} must be a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ConfigError(f"{what} must be finite, got {x}")
    return x


def _check_names(names) -> None:
    bad = sorted(set(names) - set(PARAMETERS))
    if bad:
        raise ConfigError(f"cell parameter(s) {', '.join(bad)}: unknown name; expected one "
                          f"of {', '.join(PARAMETERS)}")


@dataclass(frozen=True)
class CellParameter:
    """One parameter of the cell and what is known about it.

    Attributes
    ----------
    name : str
        One of :data:`PARAMETERS`.
    status : str
        ``"known"``, ``"unknown"`` or ``"absent"``.
    value : float or None
        The known value (required when known; None otherwise).
    lower, upper : float or None
        Bounds of an unknown (default: :data:`PARAMETERS`); None otherwise.
    start : float or None
        Optional start of an unknown, inside its bounds; None otherwise.

    Units are those of :data:`PARAMETERS` (pF, mS/cm², mV). Raises :class:`ConfigError`
    naming the parameter and the field.
    """

    name: str
    status: str
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    start: float | None = None

    def __post_init__(self):
        if self.name not in PARAMETERS:
            raise ConfigError(f"cell parameter {self.name!r}: unknown name; expected one of "
                              f"{', '.join(PARAMETERS)}")
        where = f"cell parameter {self.name}"
        if self.status not in STATUSES:
            raise ConfigError(f"{where}: status {self.status!r}; expected one of "
                              f"{', '.join(STATUSES)}")
        unit, lo_default, hi_default = PARAMETERS[self.name]
        for field in ("value", "lower", "upper", "start"):
            object.__setattr__(self, field, _number(getattr(self, field),
                                                    f"{where}: {field} ({unit})"))
        if self.status == "known":
            if self.value is None:
                raise ConfigError(f"{where}: known but has no value; give value ({unit}) or "
                                  "mark it unknown")
            if self.start is not None or self.lower is not None or self.upper is not None:
                raise ConfigError(f"{where}: a known value has no bounds or start; mark it "
                                  "unknown to fit it within bounds")
            self._check_sign(self.value, "value")
        elif self.status == "unknown":
            if self.value is not None:
                raise ConfigError(f"{where}: unknown but has a value ({self.value} {unit}); "
                                  "give it as start, or mark it known")
            lo = lo_default if self.lower is None else self.lower
            hi = hi_default if self.upper is None else self.upper
            if not lo < hi:
                raise ConfigError(f"{where}: bounds must be ordered, lower < upper; got "
                                  f"{lo} .. {hi} {unit}")
            self._check_sign(lo, "lower")
            object.__setattr__(self, "lower", lo)
            object.__setattr__(self, "upper", hi)
            if self.start is not None and not lo <= self.start <= hi:
                raise ConfigError(f"{where}: start {self.start} {unit} lies outside its "
                                  f"bounds {lo} .. {hi} {unit}")
        else:
            given = [f for f in ("value", "lower", "upper", "start")
                     if getattr(self, f) is not None]
            if given:
                raise ConfigError(f"{where}: absent but has {', '.join(given)}; mark it known "
                                  "or unknown")

    def _check_sign(self, x: float, field: str) -> None:
        if self.name == "C_total" and not x > 0:
            raise ConfigError(f"cell parameter C_total: {field} must be > 0 pF, got {x}")
        if self.name.startswith("g_") and x < 0:
            raise ConfigError(f"cell parameter {self.name}: {field} must be >= 0 mS/cm^2, "
                              f"got {x}")

    @property
    def unit(self) -> str:
        return PARAMETERS[self.name][0]

    def as_dict(self) -> dict:
        """``{status, value, lower, upper, start, unit}`` (None where not set)."""
        return {"status": self.status, "value": self.value, "lower": self.lower,
                "upper": self.upper, "start": self.start, "unit": self.unit}


class Cell(Mapping):
    """The cell's parameters by name (a read-only mapping name -> :class:`CellParameter`).

    Parameters not given are ``"absent"``; iteration follows :data:`PARAMETERS`.

    Parameters
    ----------
    parameters
        ``{name: CellParameter}`` (the key must equal the parameter's name), or
        ``{name: dict}`` with the :class:`CellParameter` fields (``status`` required).
    """

    def __init__(self, parameters: Mapping | None = None):
        params = {}
        for name, p in dict(parameters or {}).items():
            if isinstance(p, Mapping):
                p = CellParameter(name=name, **{k: v for k, v in p.items() if k != "unit"})
            if not isinstance(p, CellParameter):
                raise ConfigError(f"cell parameter {name!r}: expected a CellParameter or a "
                                  f"dict, got {type(p).__name__}")
            if p.name != name:
                raise ConfigError(f"cell parameter {name!r} holds the parameter {p.name!r}")
            params[name] = p
        self._params = {n: params.get(n, CellParameter(n, "absent")) for n in PARAMETERS}

    @classmethod
    def unknown(cls, **starts: float) -> Cell:
        """Every parameter unknown with the default bounds; ``starts`` (name=value, inside
        the bounds) set starts."""
        _check_names(starts)
        return cls({n: CellParameter(n, "unknown", start=starts.get(n)) for n in PARAMETERS})

    def __getitem__(self, name: str) -> CellParameter:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other) -> bool:
        return isinstance(other, Cell) and self._params == other._params

    def __hash__(self):
        return hash(tuple(self._params.values()))

    def __repr__(self) -> str:
        parts = []
        for n, p in self._params.items():
            if p.status == "known":
                parts.append(f"{n}={p.value:g} {p.unit}")
            elif p.status == "unknown":
                parts.append(f"{n} in [{p.lower:g}, {p.upper:g}]")
        return f"Cell({', '.join(parts) or 'all absent'})"

    # -- what a fit needs -------------------------------------------------------------
    def free_names(self) -> tuple[str, ...]:
        """Names of the unknown parameters (to be fitted), in :data:`PARAMETERS` order."""
        return tuple(n for n, p in self._params.items() if p.status == "unknown")

    def known_values(self) -> dict[str, float]:
        """``{name: value}`` of the known parameters (pF, mS/cm², mV)."""
        return {n: p.value for n, p in self._params.items() if p.status == "known"}

    def start_values(self) -> dict[str, float]:
        """``{name: start}`` of the unknown parameters that have a start."""
        return {n: p.start for n, p in self._params.items()
                if p.status == "unknown" and p.start is not None}

    def bounds(self) -> dict[str, tuple[float, float]]:
        """``{name: (lower, upper)}`` of the unknown parameters."""
        return {n: (p.lower, p.upper) for n, p in self._params.items() if p.status == "unknown"}

    def with_starts(self, **starts: float) -> Cell:
        """A copy with these starts for unknown parameters (a start outside the bounds is
        moved onto the nearer bound; starts for known or absent parameters are ignored)."""
        _check_names(starts)
        params = dict(self._params)
        for n, x in starts.items():
            p = params[n]
            if p.status == "unknown" and x is not None:
                x = _number(x, f"cell parameter {n}: start ({p.unit})")
                params[n] = replace(p, start=min(max(x, p.lower), p.upper))
        return Cell(params)

    def as_dict(self) -> dict[str, dict]:
        """``{name: CellParameter.as_dict()}`` of the parameters that are not absent."""
        return {n: p.as_dict() for n, p in self._params.items() if p.status != "absent"}

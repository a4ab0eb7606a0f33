"""The cell's unknown biophysics, estimated with the kinetics by variable projection.

A real recording gives V in mV and I in pA, with no membrane area, conductances or reversal
potentials. Only the total capacitance C_total and the conductances relative to it are
identifiable from V and I; hybridhh keeps C_m = 1 µF/cm² as a convention, so a current in
pA becomes a density ``I / C_total`` (pA/pF = µA/µF) and the conductances are mS/cm² of
that nominal area.

For fixed gates, the teacher-forcing residual is *linear* in the seven numbers
``(s, g_Na, g_Na E_Na, g_K, g_K E_K, g_L, g_L E_L)`` (``s = C_total_start / C_total``
scales the injected charge). :meth:`CellEstimate.solve` finds the best cell for the
current gates exactly (a bounded least-squares problem of seven unknowns, reduced by one
QR factorisation), so every loss the teacher stage evaluates is the loss *minimised over
the cell* (variable projection, Golub & Pereyra 1973): its gradient with respect to the
kinetics is the gradient at the solved cell (envelope theorem), and the Gauss–Newton
Jacobian is projected onto the complement of the cell's directions (Kaufman 1975). After
the Gauss–Newton stage the cell is frozen and written into the training data
(:func:`commit`): the later stages, the free runs, the bands and the verdict see a cell
with known biophysics, as for a synthetic recording.

A constant bias current is not identifiable apart from g_L E_L (both are constant
forcing), so it is not a separate unknown: a bias shows up in E_L.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..biophysics import Biophysics
from ..cell import PARAMETERS
from ..errors import ConfigError

__all__ = ["CELL_NAMES", "BOUNDS", "CellEstimate", "cell_estimate", "commit", "recording_cell",
           "passive_started"]

#: The cell's parameters a fit can estimate, in the order of the linear problem's columns.
CELL_NAMES = ("C_total", "g_Na", "E_Na", "g_K", "E_K", "g_L", "E_L")

#: Physiological bounds of each unknown (pF; mS/cm²; mV).
#: (The recording format's table, :data:`hybridhh.cell.PARAMETERS`.)
BOUNDS = {name: (lower, upper) for name, (_, lower, upper) in PARAMETERS.items()}

#: The 1952 convention's voltages are the modern ones + 65 mV (rest at 0): bounds of E's
#: shift with them.
_SHIFT_1952 = 65.0

#: C_total start (pF) for a pA recording that gives none (only the start of a linear
#: unknown: the solve does not depend on it).
C_TOTAL_START = 100.0

PA_UNITS = ("pA",)


@dataclass
class CellEstimate:
    """The cell's biophysics during a fit: the current values, which are free, the bounds.

    ``values`` holds ``C_total`` (pF; ``None`` for a recording in µA/cm², whose C_m is
    known) and the six biophysics numbers of :data:`CELL_NAMES`. ``start`` is the
    Biophysics the training data were converted with (its C_m is the convention 1 µF/cm²
    for pA data); ``c_start`` the C_total (pF) that converted the current to a density.
    ``frozen`` once :func:`commit` wrote the cell into the data.
    """

    start: Biophysics
    c_start: float | None
    free: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    values: dict[str, float] = field(default_factory=dict)
    frozen: bool = False
    solving: bool = False
    solves: int = 0

    def __post_init__(self):
        unknown = [n for n in self.free if n not in CELL_NAMES]
        if unknown:
            raise ConfigError(f"unknown cell parameter(s) {unknown}: the fit can estimate "
                              f"{list(CELL_NAMES)}")
        if "C_total" in self.free and self.c_start is None:
            raise ConfigError("C_total can be estimated only for a recording whose current is "
                              "in pA (a current density fixes the area)")
        if not self.values:
            self.values = {"C_total": self.c_start, **{n: getattr(self.start, n)
                                                        for n in CELL_NAMES[1:]}}
        for n in self.free:
            lo, hi = self.bounds[n]
            if not lo < hi:
                raise ConfigError(f"bounds of {n} must satisfy lower < upper, got {lo}, {hi}")
            self.values[n] = float(min(max(self.values[n], lo), hi))

    # -- what the teacher-forcing loss uses ---------------------------------------------
    @property
    def active(self) -> bool:
        """Whether the loss re-solves the cell: free parameters, switched on
        (``solving``: from the Gauss–Newton stage on) and not yet committed."""
        return bool(self.free) and self.solving and not self.frozen

    @property
    def scale(self) -> float:
        """Factor on the injected charge: C_total at the start over C_total now (1 for a
        density recording)."""
        c = self.values["C_total"]
        return 1.0 if c is None or self.c_start is None else self.c_start / c

    def biophysics(self) -> Biophysics:
        """The cell's current biophysics (C_m and temperature of the start)."""
        return self.start.replace(**{n: self.values[n] for n in CELL_NAMES[1:]})

    def _linear(self, theta: dict) -> np.ndarray:
        """The seven linear coefficients of the residual for natural parameters ``theta``."""
        s = 1.0 if theta["C_total"] is None or self.c_start is None else \
            self.c_start / theta["C_total"]
        return np.array([s, theta["g_Na"], theta["g_Na"] * theta["E_Na"], theta["g_K"],
                         theta["g_K"] * theta["E_K"], theta["g_L"], theta["g_L"] * theta["E_L"]])

    def _jac_linear(self, theta: dict) -> np.ndarray:
        """``d linear / d theta`` for the free parameters, ``[7, n_free]``."""
        J = np.zeros((7, len(self.free)))
        for k, n in enumerate(self.free):
            if n == "C_total":
                J[0, k] = -self.c_start / theta["C_total"] ** 2
            else:
                g = {"g_Na": 1, "E_Na": 1, "g_K": 3, "E_K": 3, "g_L": 5, "E_L": 5}[n]
                gname, ename = CELL_NAMES[1:][g - 1], CELL_NAMES[1:][g]
                if n.startswith("g_"):
                    J[g, k], J[g + 1, k] = 1.0, theta[ename]
                else:
                    J[g + 1, k] = theta[gname]
        return J

    # -- the projection -----------------------------------------------------------------
    @torch.no_grad()
    def solve(self, A: torch.Tensor, b: torch.Tensor) -> None:
        """Set the free parameters to the bounded least-squares solution of
        ``min |A linear(theta) - b|²`` (``A [M, 7]``, ``b [M]``: the residual's columns and
        the observed increments, normalised as the loss)."""
        from scipy.optimize import least_squares

        Q, R = torch.linalg.qr(torch.cat([A, b[:, None]], dim=1))
        R = R.numpy()
        RA, Rb = R[:, :7], R[:, 7]
        theta = dict(self.values)
        x0 = np.array([theta[n] for n in self.free])
        lo = np.array([self.bounds[n][0] for n in self.free])
        hi = np.array([self.bounds[n][1] for n in self.free])

        def unpack(x):
            return {**theta, **dict(zip(self.free, map(float, x), strict=True))}

        def fun(x):
            return RA @ self._linear(unpack(x)) - Rb

        def jac(x):
            return RA @ self._jac_linear(unpack(x))

        sol = least_squares(fun, np.clip(x0, lo, hi), jac=jac, bounds=(lo, hi),
                            x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=200)
        if np.all(np.isfinite(sol.x)):
            self.values = unpack(sol.x)
        self.solves += 1

    def directions(self, A: torch.Tensor) -> torch.Tensor | None:
        """``[M, k]``: the residual's derivatives with respect to the free parameters that
        are not at a bound (the directions the Gauss–Newton Jacobian is projected off)."""
        J = self._jac_linear(self.values)
        keep = [k for k, n in enumerate(self.free)
                if self.bounds[n][0] < self.values[n] < self.bounds[n][1]]
        if not keep:
            return None
        return A @ torch.as_tensor(J[:, keep], dtype=A.dtype)

    def summary(self) -> dict:
        """``{name: value}`` of the cell (C_total in pF only for pA data)."""
        out = {n: self.values[n] for n in CELL_NAMES if self.values[n] is not None}
        out["C_m"] = self.start.C_m
        return out

    def state(self) -> dict:
        return {"values": dict(self.values), "frozen": self.frozen}

    def load_state(self, st: dict) -> None:
        self.values = dict(st["values"])
        self.frozen = bool(st["frozen"])


def cell_estimate(bio: Biophysics, c_start: float | None, free, bounds: dict | None = None
                  ) -> CellEstimate | None:
    """The :class:`CellEstimate` of a fit, or None when nothing is free."""
    free = tuple(dict.fromkeys(free))
    if not free:
        return None
    b = dict(BOUNDS)
    if bio.E_K > -40.0:  # the 1952 convention: voltages shifted by +65 mV
        for n in ("E_Na", "E_K", "E_L"):
            b[n] = (BOUNDS[n][0] + _SHIFT_1952, BOUNDS[n][1] + _SHIFT_1952)
    b.update(bounds or {})
    for n in free:
        if n not in b:
            raise ConfigError(f"no bounds for cell parameter {n!r}")
        lo, hi = b[n]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ConfigError(f"bounds of {n} must be finite, got {lo}, {hi}")
    return CellEstimate(bio, c_start, free, {n: tuple(map(float, b[n])) for n in free})


def commit(cell: CellEstimate, *datas) -> None:
    """Write the estimated cell into ``datas`` (TraceData, in place): the current rescaled
    to the estimated C_total, the biophysics replaced; the cell is frozen."""
    if cell.frozen:
        return
    scale, bio = cell.scale, cell.biophysics()
    for d in datas:
        if d is None:
            continue
        d.I = d.I * scale
        d.bio = bio
    cell.frozen = True


def _parameters(recording) -> dict:
    """``{name: (status, value, lower, upper)}`` of the recording's ``/cell`` entries."""
    cp = getattr(recording, "cell", None)
    if cp is None:
        return {}
    out = {}
    for name in CELL_NAMES:
        try:
            p = cp[name] if hasattr(cp, "__getitem__") else getattr(cp, name)
        except (KeyError, AttributeError):
            continue
        if p is None:
            continue
        status = getattr(p, "status", "known")
        # a known parameter's number is its value; an unknown one's is its start
        value = getattr(p, "value", None)
        if status == "unknown" and getattr(p, "start", None) is not None:
            value = p.start
        out[name] = (status, value, getattr(p, "lower", None), getattr(p, "upper", None))
    return out


def recording_cell(recording, data, extra_free=()):
    """What a fit estimates about the cell of ``recording``: ``(C_total start (pF) or None,
    free names, bounds)``. A recording in pA has its current converted here, in ``data``
    (TraceData, in place), to a density with the C_total start, and C_m set to the
    convention 1 µF/cm²; its C_total is free unless the recording's ``/cell`` gives it as
    known. Known values of ``/cell`` replace the ``/biophysics`` ones; unknown ones are
    free with their bounds (default :data:`BOUNDS`) and start."""
    params = _parameters(recording)
    units = getattr(recording, "current_units", "uA/cm^2")
    free, bounds, starts = list(extra_free), {}, {}
    for name, (status, value, lower, upper) in params.items():
        if status == "unknown":
            free.append(name)
            if lower is not None and upper is not None:
                bounds[name] = (float(lower), float(upper))
        if value is not None and status in ("known", "unknown"):
            starts[name] = float(value)
    c_start = None
    if units in PA_UNITS:
        c_start = starts.get("C_total", C_TOTAL_START)
        if params.get("C_total", ("unknown",))[0] != "known":
            free.append("C_total")
        data.I = data.I / c_start
        bio = {n: v for n, v in starts.items() if n != "C_total"}
        data.bio = data.bio.replace(C_m=1.0, **bio)
    elif "C_total" in free:
        raise ConfigError("C_total can be estimated only for a recording whose current is in "
                          f"pA; this one is in {units} (its C_m is known)")
    else:
        data.bio = data.bio.replace(**{n: v for n, v in starts.items() if n != "C_total"})
    free = tuple(n for n in CELL_NAMES if n in set(free))
    return c_start, free, bounds


def passive_started(recording):
    """``(recording, passive)``: a recording in pA whose ``/cell`` leaves C_total, g_L or E_L
    unknown without a start, started from its own passive analysis
    (:func:`hybridhh.analysis.passive.passive_cell`: τ_m and R_in of its hyperpolarising
    steps; C_total kept within a factor 1.5 of τ_m / R_in), and that analysis as a dict;
    ``passive`` is None (and the recording unchanged) when the recording has no such step or
    needs no start."""
    from ..analysis.passive import passive_analysis, passive_cell
    from ..recording import Recording

    cell = getattr(recording, "cell", None)
    if (not isinstance(recording, Recording) or cell is None
            or getattr(recording, "current_units", None) not in PA_UNITS):
        return recording, None
    names = [n for n in ("C_total", "g_L", "E_L")
             if n in cell and cell[n].status == "unknown" and cell[n].start is None]
    if not names:
        return recording, None
    try:
        p = passive_analysis(recording)
    except ConfigError:
        return recording, None
    started = dataclasses.replace(recording, cell=passive_cell(cell, p, names))
    summary = {k: v for k, v in p.as_dict().items() if k != "steps"}
    bounds = started.cell["C_total"]
    return started, {**summary, "started": names,
                     "C_total_bounds": ([bounds.lower, bounds.upper]
                                        if bounds.status == "unknown" else None)}

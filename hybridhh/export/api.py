"""``export_nmodl(run_dir, out)``: a fitted run as a NEURON mechanism; :func:`export` picks
the format by name; :func:`kinetics_nmodl` is the one path both use (also for any kinetics
object, e.g. the true squid-axon rates).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..errors import ConfigError, RunDirError
from .channels import Channel, hh_channels
from .nmodl import check_suffix, nmodl_text
from .table import DEFAULT_STEP, DEFAULT_VMAX, DEFAULT_VMIN, Grid, interpolation_error

__all__ = ["export", "export_nmodl", "kinetics_nmodl", "default_grid", "FORMATS",
           "BAND_SPACING", "RANGE_MARGIN"]

#: Voltage spacing (mV) of the error-band table in the mechanism's comments.
BAND_SPACING = 5.0
#: How far (mV) the default table reaches beyond the recorded voltages when these leave
#: -120 .. +80 mV.
RANGE_MARGIN = 30.0


def kinetics_nmodl(kinetics, biophysics, suffix: str, grid: Grid | None = None, *,
                   extra_channels: tuple[Channel, ...] = (), notes: tuple[str, ...] = (),
                   title: str | None = None) -> str:
    """The ``.mod`` text of a cell with three-gate kinetics (Na m³h, K n⁴, leak).

    Parameters
    ----------
    kinetics
        Any kinetics object (``rates(V)`` or ``inf_tau(V)``, gates m, h, n; V in mV).
    biophysics
        :class:`~hybridhh.biophysics.Biophysics`: g (mS/cm²), E (mV), and the temperature
        (°C) at which the rates hold.
    suffix
        The mechanism's name.
    grid
        Tabulated range and spacing (default: -120 .. +80 mV every 0.1 mV).
    extra_channels
        More currents (:class:`~hybridhh.export.channels.Channel`) on the same grid.
    notes
        Lines for the header comment.
    """
    from ..kinetics import inf_tau

    check_suffix(suffix)
    own = getattr(kinetics, "temperature", None)  # kinetics with a temperature of their own
    if own is not None and abs(float(own) - biophysics.temperature) > 1e-9:
        raise ConfigError(f"the kinetics hold at {own} degC and the biophysics say "
                          f"{biophysics.temperature} degC: the mechanism states one "
                          "temperature for its rates; make them agree")
    grid = Grid() if grid is None else grid
    channels = hh_channels(kinetics, biophysics, grid) + list(extra_channels)
    tables = [g.table for g in channels[0].gates + channels[1].gates]
    err = interpolation_error(lambda V: inf_tau(kinetics, V), tables)
    measured = ("Interpolation error against the model itself (4 points per interval): at "
                f"most {err['x_inf']:.1e} in x_inf,\n{err['tau']:.1e} relative in tau.")
    name = getattr(kinetics, "name", type(kinetics).__name__)
    return nmodl_text(channels, suffix, biophysics.temperature, notes=(measured, "", *notes),
                      title=title or f"hybridhh export of the kinetics {name}")


def default_grid(voltage_range, step: float = DEFAULT_STEP, vmin: float | None = None,
                 vmax: float | None = None) -> Grid:
    """-120 .. +80 mV, widened (to whole 10 mV) to 30 mV beyond ``voltage_range`` (the
    recording's 1st–99th percentile, mV) where the data went further; ``vmin``/``vmax``
    given: those."""
    lo, hi = voltage_range if voltage_range else (DEFAULT_VMIN, DEFAULT_VMAX)
    if vmin is None:
        vmin = min(DEFAULT_VMIN, 10.0 * math.floor((lo - RANGE_MARGIN) / 10.0))
    if vmax is None:
        vmax = max(DEFAULT_VMAX, 10.0 * math.ceil((hi + RANGE_MARGIN) / 10.0))
    return Grid(vmin, vmax, step)


def _run_notes(run_dir: Path, res, cell) -> list[str]:
    from .. import __version__

    b = cell.biophysics
    out = [f"Source: the fit in {run_dir} (hybridhh {__version__}).",
           f"Fitted cell: C_m = {b.C_m:.6g} uF/cm2 (set sec.cm = {b.C_m:.6g}), "
           f"temperature {b.temperature:g} degC."]
    if cell.C_total is not None:
        out.append(f"The recording was in pA: C_total = {cell.C_total:.6g} pF, so the cell's "
                   f"area is {cell.C_total * 1e-6 / b.C_m:.6g} cm2 "
                   f"({cell.C_total * 1e2 / b.C_m:.6g} um2) at C_m = {b.C_m:.6g} uF/cm2.")
    if res.voltage_range:
        lo, hi = res.voltage_range
        out += ["", f"The recording visited V = {lo:.1f} .. {hi:.1f} mV (1st-99th percentile)."]
    if res.constrained:
        out.append("The data constrain each rate over these voltages (outside them the curve "
                   "is extrapolation):")
        out += [f"  {r:8s} {lo:7.1f} .. {hi:6.1f} mV" for r, (lo, hi) in res.constrained.items()]
    q = res.quality or {}
    if q.get("verdict"):
        out += ["", f"Fit quality verdict: {q['verdict']}"]
        out += [f"  - {r}" for r in q.get("reasons", [])]
    if res.bands:
        out += [""] + _band_lines(res)
    return out


def _band_lines(res) -> list[str]:
    """The fit's error bands of x_inf and tau every :data:`BAND_SPACING` mV, as text."""
    from ..constants import GATES
    from ..rates_table import rate_table

    bands = res.bands
    V_b = np.asarray(bands["V"], dtype=np.float64)
    V = BAND_SPACING * np.arange(math.ceil(V_b[0] / BAND_SPACING),
                                 math.floor(V_b[-1] / BAND_SPACING) + 1)
    if not len(V):
        return []
    cols = rate_table(res.model, V, bands=bands)
    names = [q for g in GATES for q in (f"{g}_inf", f"tau_{g}")]
    level = 100 * float(bands.get("level", 0.9))
    out = [f"{level:.0f} % error bands (result.json 'bands'; where the data give them), "
           "value [lo, hi], tau in ms:",
           "  V (mV)" + "".join(f"  {n:>27s}" for n in names)]
    for i, v in enumerate(V):
        cells = [f"{cols[n][i]:.3g} [{cols[n + '_lo'][i]:.3g}, {cols[n + '_hi'][i]:.3g}]"
                 for n in names]
        out.append(f"  {v:6.1f}" + "".join(f"  {c:>27s}" for c in cells))
    return out


def _extra_channels(run_dir: Path, grid: Grid) -> tuple[Channel, ...]:
    """The extra learned channels of a run (result.json ``"channels"``): none yet. The
    fitter does not make them; a run that has them cannot be exported by this version
    rather than exported without them."""
    from ..fitting import rundir

    saved = rundir.load_json(run_dir / rundir.RESULT).get("channels")
    if saved:
        raise RunDirError(f"{run_dir / rundir.RESULT}: 'channels' lists extra learned "
                          "channels, which this version of hybridhh cannot export yet")
    return ()


def _default_suffix(run_dir: Path) -> str:
    name = re.sub(r"\W", "_", run_dir.resolve().name, flags=re.ASCII)
    return name if re.match(r"[A-Za-z]", name) else f"fit_{name}"


def export_nmodl(run_dir, out, suffix: str | None = None, *, vmin: float | None = None,
                 vmax: float | None = None, step: float = DEFAULT_STEP) -> Path:
    """Write the fitted cell of ``run_dir`` as the NEURON mechanism ``OUT/SUFFIX.mod``.

    Na (m³h), K (n⁴) and leak with the fitted rates tabulated (x_inf, tau and their
    slopes every ``step`` mV, cubic Hermite between the nodes, the end values outside)
    and the fitted conductances and reversal potentials as PARAMETER defaults; the
    header comment says where the rates hold (temperature, constrained ranges, error
    bands). After ``nrnivmodl OUT``, ``sec.insert(SUFFIX)`` is all NEURON needs.

    Parameters
    ----------
    run_dir
        A finished run directory (``hybridhh fit ... --out RUN_DIR``).
    out
        Folder for the ``.mod`` file (created if needed).
    suffix
        The mechanism's name (an NMODL name; default: the run directory's name).
    vmin, vmax, step
        Tabulated range and spacing, mV (default: :func:`default_grid`, 0.1 mV).

    Raises
    ------
    RunDirError
        ``run_dir`` holds no finished fit.
    ConfigError
        A suffix that is not a valid NMODL name, a bad range or step.
    """
    from ..fitting import load_fit
    from ..prediction import fitted_cell

    run_dir = Path(run_dir)
    suffix = check_suffix(_default_suffix(run_dir) if suffix is None else suffix)
    # bad options fail before the run is read
    Grid(DEFAULT_VMIN if vmin is None else vmin, DEFAULT_VMAX if vmax is None else vmax, step)
    res = load_fit(run_dir, warnings=[])
    cell = fitted_cell(run_dir)
    grid = default_grid(res.voltage_range, step, vmin, vmax)
    extra = _extra_channels(run_dir, grid)
    text = kinetics_nmodl(res.model, cell.biophysics, suffix, grid, extra_channels=extra,
                          notes=tuple(_run_notes(run_dir, res, cell)),
                          title="hybridhh fitted kinetics")
    return atomic_write_text(Path(out) / f"{suffix}.mod", text)


#: Export formats by name: ``run(run_dir, out, suffix, **options) -> Path``.
FORMATS = {"nmodl": export_nmodl}


def export(run_dir, format: str, out, suffix: str | None = None, **options) -> Path:
    """Export the fit in ``run_dir`` in ``format`` (:data:`FORMATS`) to the folder ``out``."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of "
                          f"{', '.join(FORMATS)}")
    return FORMATS[format](run_dir, out, suffix, **options)

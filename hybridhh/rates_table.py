"""The rate table (CSV) written by ``hybridhh rates``.

Contract (``docs/recording-format.md``): a header line, then one row per voltage::

    V,alpha_m,beta_m,alpha_h,beta_h,alpha_n,beta_n[,extra columns]

``V`` in mV, rates in 1/ms at the temperature of the fitted data. hybridhh appends the
optional columns ``m_inf,tau_m,h_inf,tau_h,n_inf,tau_n`` (tau in ms), ``constrained``:
1 where V lies in the range the data visited (1st–99th percentile), else 0, and, for fits
that measured them, ``constrained_alpha_m`` ... ``constrained_beta_n``: 1 where the data
constrain that rate (:mod:`hybridhh.fitting.constrained`), 0 where the curve is extrapolation,
and, for fits with error bands (:mod:`hybridhh.fitting.bands`), ``NAME_lo`` and ``NAME_hi``
for NAME in alpha_m ... beta_n, m_inf, tau_m ... tau_n: the 90 % band around NAME (same
units). The bands are stored on their own voltage grid; their offsets from the curve are
interpolated to the table's V linearly in log space (rates, tau) or logit space (x_inf).
Outside the voltages the bands cover (the recorded V ± 2 mV) there is no band: ``nan``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from .analysis.metrics import BAND_QUANTITIES, interpolate_bands
from .atomic import atomic_write_text
from .constants import GATES, RATE_NAMES
from .errors import ConfigError, RecordingError

REQUIRED = ("V",) + RATE_NAMES
#: the error-band columns (``nan`` outside the voltages the bands cover)
BAND_COLUMNS = tuple(f"{q}_{side}" for q in BAND_QUANTITIES for side in ("lo", "hi"))
EXTRA = (tuple(c for g in GATES for c in (f"{g}_inf", f"tau_{g}")) + ("constrained",)
         + tuple(f"constrained_{r}" for r in RATE_NAMES) + BAND_COLUMNS)


def voltage_grid(vmin: float, vmax: float, step: float) -> np.ndarray:
    """``vmin, vmin + step, ..., vmax`` (mV), with clear errors for bad bounds."""
    if not step > 0:
        raise ConfigError(f"--step must be > 0 mV, got {step}")
    if not vmax > vmin:
        raise ConfigError(f"--vmax ({vmax} mV) must be greater than --vmin ({vmin} mV)")
    n = int(np.floor((vmax - vmin) / step + 1e-9)) + 1
    return vmin + step * np.arange(n)


def rate_table(kinetics, V, constrained: tuple[float, float] | None = None,
               rate_ranges: dict | None = None, bands: dict | None = None) -> dict:
    """Columns of the rate table for ``kinetics`` at voltages ``V`` (mV).

    ``constrained``: the visited range (mV) -> column ``constrained``; ``rate_ranges``:
    ``{rate: (lo, hi)}`` (mV) -> columns ``constrained_<rate>``; ``bands``: the fit's error
    bands (:attr:`hybridhh.fitting.FitResult.bands`) -> columns ``<name>_lo``,
    ``<name>_hi`` (:data:`BAND_COLUMNS`; NaN where the bands do not reach)."""
    V = np.asarray(V, dtype=np.float64)
    with torch.no_grad():
        alpha, beta = kinetics.rates(torch.as_tensor(V, dtype=torch.float64))
        alpha = torch.as_tensor(alpha).double().numpy()
        beta = torch.as_tensor(beta).double().numpy()
    cols = {"V": V}
    for g, name in enumerate(GATES):
        cols[f"alpha_{name}"] = alpha[:, g]
        cols[f"beta_{name}"] = beta[:, g]
    for g, name in enumerate(GATES):
        total = alpha[:, g] + beta[:, g]
        cols[f"{name}_inf"] = alpha[:, g] / total
        cols[f"tau_{name}"] = 1.0 / total
    if constrained is not None:
        lo, hi = constrained
        cols["constrained"] = ((V >= lo) & (V <= hi)).astype(int)
    for r in RATE_NAMES if rate_ranges else ():
        lo, hi = rate_ranges[r]
        cols[f"constrained_{r}"] = ((V >= lo) & (V <= hi)).astype(int)
    if bands:
        for name, (lo, hi) in interpolate_bands(bands, V, cols).items():
            cols[f"{name}_lo"], cols[f"{name}_hi"] = lo, hi
    return cols


def write_rates_csv(path, kinetics, V, constrained: tuple[float, float] | None = None,
                    rate_ranges: dict | None = None, bands: dict | None = None) -> Path:
    """Write the rate table (:func:`rate_table`) atomically; returns the path. Where a
    band column has no band it holds ``nan``."""
    cols = rate_table(kinetics, V, constrained, rate_ranges, bands)
    names = list(REQUIRED) + [c for c in EXTRA if c in cols]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for i in range(len(cols["V"])):
        w.writerow([int(cols[c][i]) if c.startswith("constrained") else repr(float(cols[c][i]))
                    for c in names])
    return atomic_write_text(path, buf.getvalue())


def read_rates_csv(path) -> dict:
    """Read and validate a rate table: the seven contract columns first, finite numbers
    (but ``nan`` in the band columns, :data:`BAND_COLUMNS`, where there is no band),
    strictly increasing V. Returns ``{column: ndarray}``."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(path, None, "file not found")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise RecordingError(path, None, "empty file; expected the header " + ",".join(REQUIRED))
    header = rows[0]
    if tuple(header[: len(REQUIRED)]) != REQUIRED:
        raise RecordingError(path, "header", f"expected the columns {','.join(REQUIRED)} "
                             f"first, got {','.join(header)}")
    try:
        data = np.array([[float(x) for x in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as e:
        raise RecordingError(path, None, f"non-numeric value ({e})") from e
    if data.size == 0:
        raise RecordingError(path, None, "no rows after the header")
    if data.shape[1] != len(header):
        raise RecordingError(path, None, "rows and header have different lengths")
    checked = [i for i, name in enumerate(header) if name not in BAND_COLUMNS]
    if not np.all(np.isfinite(data[:, checked])):
        raise RecordingError(path, None, "non-finite values")
    bad = [name for i, name in enumerate(header) if name in BAND_COLUMNS
           and np.any(np.isinf(data[:, i]) | (data[:, i] < 0))]
    if bad:
        raise RecordingError(path, bad[0], "band values must be >= 0 or nan (no band)")
    if np.any(np.diff(data[:, 0]) <= 0):
        raise RecordingError(path, "V", "voltages must be strictly increasing")
    return {name: data[:, i] for i, name in enumerate(header)}

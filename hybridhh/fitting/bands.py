"""Error bands: a 90 % band per voltage for each rate, x_inf and tau of a fitted model.

Two terms, both from the Gauss–Newton machinery of the constrained ranges
(:func:`hybridhh.fitting.constrained._curvature`: the exact Jacobian ``J`` of the
teacher-forcing residual with respect to logit x_inf and log tau of m, h, n on hat
functions at 3 mV voltage nodes, and the roughness penalty ``s RᵀR``):

* **noise** (Laplace, sandwich form): ``Cov = H⁻¹ (J Σ Jᵀ + s² s RᵀR) H⁻¹`` with
  ``H = J Jᵀ + s RᵀR``, ``s² = RSS / (M - p_eff)`` per residual term and ``Σ`` the residuals'
  autocovariance within each trace, up to :data:`MAX_LAG` steps with Bartlett
  (Newey–West) weights, so neighbouring residuals that are correlated (discretisation
  error, noise increments) count as fewer independent ones. With white residuals this is
  ``s² H⁻¹`` (tests/test_bands.py checks both against the exact covariance of a linear
  least-squares problem). log alpha, log beta by the delta method (``d log alpha = (1 - x)
  d logit x_inf - d log tau``, ``d log beta = -x d logit x_inf - d log tau``).
* **bias of the loss** (:func:`_step_shift`): on a noise-free recording the error of the fit
  is not noise but the bias of the discretised loss, which the first term misses entirely
  (measured: with it alone the truth lies inside on 0–12 % of the visited voltages, bands
  0.1–3 % wide). The shift of the loss's optimum when the recording is sampled twice as
  coarsely (one linearised Gauss–Newton step on each loss, differenced) estimates it: on
  the "base" case its correlation with the actual error of the Gauss–Newton optimum is
  |r| = 0.98 / 0.95 / 0.99 for logit m, h, n_inf and 0.2–0.7 for log tau, its size 0.3–0.9
  times the error. The band adds :data:`BIAS` (= 2) times that shift (its running maximum
  over ±1 node) to ``z`` (1.645) standard deviations, in log space (rates, tau) or logit
  space (x_inf).

On a recording interpolated before the fit (:mod:`.resample`) "twice as coarsely" means
every other *recorded* sample, interpolated back to the fit's grid (:func:`_coarser`): the
shift on the fine grid alone misses what the coarse recording costs ("dt 0.05", seed 0:
coverage 0.36 with it, 0.91 with the recorded one, tau widths 0.4–0.9; "base": 0.72 and
0.66).

Bands are centred on the final model's curves and stored on a 0.5 mV grid spanning the
nodes (recorded V ± 2 mV).

Measured (suite cases, seed 0; "coverage": fraction of the visited voltages, 1st–99th
percentile, where the truth lies inside, worst of the 12 quantities; widths: median
(hi - lo) / value, x_inf absolute):

* "base" (0.025 ms), the Gauss–Newton optimum from the true curves (a fit in the right
  basin, without the MLP): coverage 0.86 (tau_n; beta_m 0.90, tau_m 0.91, the rest
  0.95–1.0); widths tau 0.15–0.31, alpha/beta 0.20–0.96 (alpha_h 2.4: barely
  constrained), x_inf 0.06–0.16. Without the bias term: 0.00.
* the same on 5 × 60 ms of "base" (tests/test_bands.py): 0.69 (alpha_h), the rest 1.0.
* "dt 0.1", the Gauss–Newton optimum from the truth: coverage 0.50 (m_inf; the loss's
  optimum at 0.1 ms is itself 31 % off in tau, beyond the linearised shift); bands wide
  (tau widths 1.4–5.5).
* the default fit on main (9e1d062) landed in a wrong basin on both "base" (tau median
  65 %) and "dt 0.1" (loss 1.3): "dt 0.1" bands span orders of magnitude (coverage 0.75),
  "base" ones do not cover (0.0, beta_m and tau_m). A Laplace band is local: it cannot
  describe a fit in the wrong basin; the quality verdict (:mod:`.quality`) must.

Not measured: noisy recordings (the "noise 1 mV" fit did not finish in the time
available).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis.metrics import BAND_QUANTITIES
from ..constants import GATES
from .constrained import _curvature, _log_rate_variance
from .data import TraceData

__all__ = ["LEVEL", "INFLATION", "RESOLUTION", "BIAS", "MAX_LAG", "CellBand", "fit_bands",
           "band_sd", "cell_directions"]

#: the bands' default level: the truth should lie inside on this fraction of the voltages
LEVEL = 0.9
#: every band's half-width is multiplied by this (measured, see the module docstring)
INFLATION = 1.0
#: voltage spacing (mV) of the grid the bands are stored on
RESOLUTION = 0.5
#: the step-shift term's factor (see the module docstring: measured)
BIAS = 2.0
#: autocorrelation lags (teacher-forcing steps) of the sandwich estimate
MAX_LAG = 80
#: largest half-width in log / logit space (a factor e^30 ~ 1e13: no information)
MAX_HALF = 30.0


def _z(level: float) -> float:
    """The two-sided normal quantile of ``level`` (1.645 for 0.9)."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + 0.5 * level))


def _autocovariance(r: torch.Tensor, real: torch.Tensor, max_lag: int) -> torch.Tensor:
    """``gamma[l]``, l = 0 .. max_lag: the residuals' autocovariance at lag l steps, pooled
    over the traces ``r [B, T']`` (``real``: the terms that exist, not padding)."""
    B, T = r.shape
    n = int(real.sum())
    L = min(max_lag, T - 1)
    size = 1 << int(math.ceil(math.log2(2 * T)))
    f = torch.fft.rfft(r * real, size, dim=-1)
    acf = torch.fft.irfft(f * f.conj(), size, dim=-1)[:, : L + 1].sum(0)
    return acf / n


def _correlated_middle(J: torch.Tensor, kernel: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """``J K Jᵀ`` ``[P, P]`` for ``J [P, B, T']`` and ``K`` the block-diagonal (per trace)
    Toeplitz matrix of the symmetric ``kernel [L + 1]`` (lags 0 .. L), by FFT."""
    P, B, T = J.shape
    L = kernel.shape[0] - 1
    size = 1 << int(math.ceil(math.log2(T + 2 * L + 1)))
    k = torch.zeros(size, dtype=J.dtype)
    k[: L + 1] = kernel
    if L:
        k[-L:] = kernel[1:].flip(0)
    fk = torch.fft.rfft(k)
    Jf = J.reshape(P, B * T)
    out = torch.empty(P, P, dtype=J.dtype)
    for a in range(0, P, chunk):
        conv = torch.fft.irfft(torch.fft.rfft(J[a:a + chunk], size, dim=-1) * fk, size,
                               dim=-1)[..., :T]
        out[a:a + chunk] = conv.reshape(-1, B * T) @ Jf.T
    return 0.5 * (out + out.T)


@torch.no_grad()
def _covariance(r, JJ, RtR, J, smoothness: float, max_lag: int, method: str = "sandwich"):
    """Covariance ``[6N, 6N]`` of (logit x_inf; log tau) at the nodes, and what it used."""
    H = JJ + smoothness * RtR
    Hinv = torch.linalg.pinv(H, hermitian=True)
    real = r != 0
    n = int(real.sum())
    p_eff = float((JJ * Hinv).sum())  # tr(J Jᵀ H⁻¹)
    rss = float(r.square().sum())
    s2 = rss / max(n - p_eff, 1.0)
    info = {"terms": n, "p_eff": p_eff, "s2": s2}
    if method == "laplace":
        return s2 * Hinv, info
    gamma = _autocovariance(r, real, max_lag)
    L = gamma.shape[0] - 1
    weights = 1.0 - torch.arange(L + 1, dtype=r.dtype) / (L + 1)  # Bartlett (Newey–West)
    kernel = gamma * weights
    info["max_lag"] = L
    info["long_run_ratio"] = float((2.0 * kernel.sum() - kernel[0]) / kernel[0])
    middle = _correlated_middle(J, kernel) + s2 * smoothness * RtR
    return Hinv @ middle @ Hinv, info


def _joint(H, g, J, r, D):
    """The Gauss–Newton system of the kinetics (``H``, ``g``) extended by the cell's
    directions ``D [M, k]`` (None: unchanged)."""
    if D is None:
        return H, g
    JD = J @ D
    top = torch.cat([H, JD], 1)
    bottom = torch.cat([JD.T, D.T @ D], 1)
    return torch.cat([top, bottom], 0), torch.cat([g, D.T @ r])


def _coarser(data: TraceData, interpolated: int = 1) -> TraceData:
    """The recording sampled twice as coarsely: every other sample; for a fit on a
    recording interpolated ``interpolated`` times (:mod:`.resample`), every other
    *recorded* sample, interpolated back to the fit's grid, so that the shift measures what
    the recording's own sampling costs, not the interpolation grid's."""
    if interpolated <= 1:
        return TraceData(data.V[:, ::2], data.I[:, ::2], 2.0 * data.dt, data.bio, data.names)
    from .resample import interpolate

    k = int(interpolated)
    recorded = TraceData(data.V[:, ::2 * k], data.I[:, ::2 * k], 2 * k * data.dt, data.bio,
                         data.names)
    return interpolate(recorded, 2 * k)


@torch.no_grad()
def _step_shift(model, data: TraceData, nodes, r, J, JJ, RtR, *, step, adaptive, node_step,
                smoothness, cell=None, interpolated: int = 1):
    """``([6, N], [k] or None)``: how far the optimum of the loss moves when the recording
    is sampled twice as coarsely (:func:`_coarser`), linearised about ``model``: one
    Gauss–Newton step on each loss from the same curves, differenced. With ``cell`` (see
    :func:`cell_directions`) the step is joint in the kinetics and the free cell parameters,
    and the second item is the cell's shift (natural units)."""
    P = JJ.shape[0]
    p = torch.as_tensor(np.concatenate([a.T for a in _logit_logtau(model, nodes.numpy())]),
                        dtype=JJ.dtype).reshape(-1)
    coarse = _coarser(data, interpolated)
    _, r2, JJ2, _, J2 = _curvature(model, coarse, step, adaptive, node_step,
                                   keep_jacobian=True, nodes=nodes)
    D1 = D2 = None
    if cell is not None:
        D1 = cell_directions(cell, model, data, step, adaptive)
        D2 = cell_directions(cell, model, coarse, step, adaptive)
    Jf, J2f, r1f, r2f = J.reshape(P, -1), J2.reshape(P, -1), r.reshape(-1), r2.reshape(-1)
    H1, g1 = _joint(JJ + smoothness * RtR, Jf @ r1f + smoothness * (RtR @ p), Jf, r1f, D1)
    H2, g2 = _joint(JJ2 + smoothness * RtR, J2f @ r2f + smoothness * (RtR @ p), J2f, r2f, D2)
    del J2, J2f
    d = torch.linalg.lstsq(H2, g2[:, None]).solution[:, 0] - torch.linalg.lstsq(
        H1, g1[:, None]).solution[:, 0]
    return d[:P].reshape(6, -1), (d[P:] if cell is not None else None)


class CellBand:
    """What the bands need of a fitted cell: the free parameters, their final ``values``
    (pF, mS/cm², mV), bounds, and the C_total (pF) the committed data were converted with
    (the data hold the fitted cell, so the charge scale is 1 there)."""

    def __init__(self, free, values: dict, bounds: dict):
        #: the free parameters not at a bound (within 1e-6 of the bounds' span: a bounded
        #: solver stops a hair inside): a parameter at its bound has no band
        def inside(n):
            lo, hi = bounds[n]
            return min(values[n] - lo, hi - values[n]) > 1e-6 * (hi - lo)

        self.names = tuple(n for n in free if inside(n))
        self.at_bound = tuple(n for n in free if n not in self.names)
        self.values = dict(values)
        self.bounds = dict(bounds)


@torch.no_grad()
def cell_directions(cell: CellBand, model, data: TraceData, step, adaptive) -> torch.Tensor:
    """``[M, k]``: the normalised teacher-forcing residual's derivatives (as the rows of
    :func:`~hybridhh.fitting.constrained._curvature`'s ``J``) with respect to the cell's
    free parameters that are not at a bound, at the fitted cell (committed into ``data``)."""
    from .cellfit import CellEstimate
    from .teacher import TeacherForcing

    stride = data.stride(step)
    tf = TeacherForcing(data, stride=stride, adaptive=adaptive if stride > 1 else None)
    A, _ = tf.cell_columns(tf.gates(model))
    est = CellEstimate(data.bio, cell.values.get("C_total"), cell.names,
                       {n: cell.bounds[n] for n in cell.names}, values=dict(cell.values))
    return A @ torch.as_tensor(est._jac_linear(cell.values), dtype=A.dtype)


def _cell_sd(cell: CellBand, model, data, r, J, JJ, RtR, smoothness, info, step, adaptive):
    """``[k]``: the Laplace standard deviation of the free cell parameters (natural units)
    with every kinetic curve free to compensate (the Schur complement of the joint
    Gauss–Newton curvature), scaled by the residuals' long-run variance ratio."""
    D = cell_directions(cell, model, data, step, adaptive)
    Jf = J.reshape(JJ.shape[0], -1)
    JD = Jf @ D
    S = D.T @ D - JD.T @ torch.linalg.lstsq(JJ + smoothness * RtR, JD).solution
    var = info["s2"] * max(info.get("long_run_ratio", 1.0), 1.0) * torch.linalg.pinv(
        S, hermitian=True).diagonal()
    return var.clamp(min=0.0).sqrt()


def band_sd(model, data: TraceData, *, step: float, adaptive: float | None, node_step: float,
            smoothness: float, max_lag: int = MAX_LAG, method: str = "sandwich",
            cell: CellBand | None = None, interpolated: int = 1):
    """Standard deviation ``[12, N]`` at voltage nodes of (logit x_inf of m, h, n; log tau
    of m, h, n; log alpha_m, alpha_h, alpha_n; log beta_m, beta_h, beta_n).

    Returns (nodes [N] mV, sd [12, N], shift [12, N], info dict); with ``cell`` the info
    holds ``cell_sd`` and ``cell_shift`` (``[k]``, natural units, for ``cell.names``).
    """
    if cell is not None and not cell.names:
        cell = None
    nodes, r, JJ, RtR, J = _curvature(model, data, step, adaptive, node_step,
                                      keep_jacobian=True)
    N = len(nodes)
    cov, info = _covariance(r, JJ, RtR, J, smoothness, max_lag, method)
    shift, cell_shift = _step_shift(model, data, nodes, r, J, JJ, RtR, step=step,
                                    adaptive=adaptive, node_step=node_step,
                                    smoothness=smoothness, cell=cell,
                                    interpolated=interpolated)
    if cell is not None:
        info = {**info, "cell_sd": _cell_sd(cell, model, data, r.reshape(-1), J, JJ, RtR,
                                            smoothness, info, step, adaptive),
                "cell_shift": cell_shift.abs()}
    del J
    C = cov.reshape(6, N, 6, N)
    with torch.no_grad():
        x = model.inf_tau(nodes)[0].T.to(C.dtype)
    j = torch.arange(N)
    var = torch.cat([torch.stack([C[k, j, k, j] for k in range(6)]), _log_rate_variance(C, x)])
    # the shift in log alpha, log beta (delta method, as the variance)
    a = torch.stack([1.0 - x, -x])  # [2, 3, N]
    rates = (a * shift[None, :3] - shift[None, 3:]).reshape(6, N)
    shift = torch.cat([shift, rates]).abs()
    # a running maximum over +-1 node: the shift of a smooth error crosses zero where the
    # error need not
    pad = torch.nn.functional.pad(shift[:, None], (1, 1), mode="replicate")[:, 0]
    shift = torch.stack([pad[:, :-2], pad[:, 1:-1], pad[:, 2:]]).amax(0)
    return nodes, var.clamp(min=0.0).sqrt(), shift, info


@torch.no_grad()
def _logit_logtau(model, V: np.ndarray):
    """(logit x_inf, log tau) ``[len(V), 3]`` of any kinetics object at ``V`` (mV)."""
    Vt = torch.as_tensor(V, dtype=torch.float64)
    if hasattr(model, "logit_logtau"):
        logit, logtau = model.logit_logtau(Vt)
    else:
        x, tau = (torch.as_tensor(t, dtype=torch.float64) for t in model.inf_tau(Vt))
        logit, logtau = torch.log(x) - torch.log1p(-x), torch.log(tau)
    return logit.double().numpy(), logtau.double().numpy()


def fit_bands(model, data, *, step, adaptive, node_step, smoothness, noise=0.0,
              level=LEVEL, inflation: float = INFLATION, resolution: float = RESOLUTION,
              max_lag: int = MAX_LAG, method: str = "sandwich", bias: float = BIAS,
              cell: CellBand | None = None, interpolated: int = 1):
    """Error bands of ``model`` fitted on ``data`` (a TraceData, along the denoised path
    when there is one).

    Parameters
    ----------
    model
        The fitted kinetics (``inf_tau(V)``, ``logit_logtau(V)``).
    data
        The training traces the teacher-forcing stage ran on.
    step, adaptive, node_step, smoothness
        As :func:`hybridhh.fitting.constrained.rate_uncertainty` (the Gauss–Newton stage's).
    noise
        The estimated measurement noise on V (mV); recorded in the result only.
    level
        Nominal level of the bands (0.9: 90 %).
    inflation
        Factor on every band's half-width (see the module docstring).
    resolution
        Spacing (mV) of the voltage grid the bands are stored on.
    interpolated
        The factor the recording was interpolated by before the fit (:mod:`.resample`;
        1: not interpolated): the bias term then compares with the recording sampled twice
        as coarsely, re-interpolated (:func:`_coarser`).

    Returns
    -------
    dict or None
        JSON-able: ``level``, ``method``, ``V`` (the grid, mV: the nodes' span, the recorded
        V ± 2 mV), ``value``, ``lo`` and ``hi`` (``{name: list}`` for each name of
        :data:`hybridhh.analysis.metrics.BAND_QUANTITIES`, in its units), ``inflation``,
        ``z`` and the numbers behind the scale (``s2``, ``terms``, ``p_eff``, ``max_lag``,
        ``long_run_ratio``, ``noise``). None where the curvature is not finite.
    """
    nodes, sd, shift, info = band_sd(model, data, step=step, adaptive=adaptive,
                                     node_step=node_step, smoothness=smoothness,
                                     max_lag=max_lag, method=method, cell=cell,
                                     interpolated=interpolated)
    cell_sd, cell_shift = info.pop("cell_sd", None), info.pop("cell_shift", None)
    if not (torch.isfinite(sd).all() and torch.isfinite(shift).all()):
        return None
    z = _z(level)
    lo_v, hi_v = float(nodes[0]), float(nodes[-1])
    n = int(math.floor((hi_v - lo_v) / resolution + 1e-9)) + 1
    V = lo_v + resolution * np.arange(n)
    width = z * inflation * sd + bias * shift
    half = np.stack([np.interp(V, nodes.numpy(), w) for w in width.numpy()])
    # at most a factor e^MAX_HALF either way: the numbers stay finite (JSON), the band
    # still says "unknown"
    half = np.minimum(half, MAX_HALF)
    logit, logtau = _logit_logtau(model, V)
    rows = {}
    for g, gate in enumerate(GATES):
        # rows of sd: logit x_inf (0-2), log tau (3-5), log alpha (6-8), log beta (9-11)
        rows[f"{gate}_inf"] = (logit[:, g], half[g], True)
        rows[f"tau_{gate}"] = (logtau[:, g], half[3 + g], False)
        log_x = -np.logaddexp(0.0, -logit[:, g])        # log x_inf
        log_1mx = -np.logaddexp(0.0, logit[:, g])       # log (1 - x_inf)
        rows[f"alpha_{gate}"] = (log_x - logtau[:, g], half[6 + g], False)
        rows[f"beta_{gate}"] = (log_1mx - logtau[:, g], half[9 + g], False)
    out = {"level": float(level), "method": f"laplace-{method}", "V": V.tolist(),
           "value": {}, "lo": {}, "hi": {}}
    for name in BAND_QUANTITIES:
        centre, h, is_inf = rows[name]

        def back(y, is_inf=is_inf):
            return 1.0 / (1.0 + np.exp(-y)) if is_inf else np.exp(y)

        out["value"][name] = back(centre).tolist()
        out["lo"][name] = back(centre - h).tolist()
        out["hi"][name] = back(centre + h).tolist()
    out.update({"inflation": float(inflation), "z": z, "noise": float(noise),
                **{k: float(v) for k, v in info.items()}})
    if cell is not None:
        out["cell"] = _cell_band(cell, cell_sd, cell_shift, z * inflation, bias)
    return out


def _cell_band(cell: CellBand, sd, shift, z: float, bias: float) -> dict:
    """The cell's 90 % band as :func:`fit_bands` stores it: ``sd`` (the half-width over z:
    the Laplace SD and the step-shift term together), ``lo``, ``hi`` (within the bounds),
    ``laplace_sd``, ``shift`` and ``at_bound`` (free parameters on a bound: no band)."""
    out = {"sd": {}, "lo": {}, "hi": {}, "laplace_sd": {}, "shift": {},
           "at_bound": list(cell.at_bound)}
    for k, name in enumerate(cell.names if sd is not None else ()):
        half = z * float(sd[k]) + bias * float(shift[k])
        value, (lo, hi) = cell.values[name], cell.bounds[name]
        if not math.isfinite(half):
            continue
        out["sd"][name] = half / z
        out["laplace_sd"][name] = float(sd[k])
        out["shift"][name] = float(shift[k])
        out["lo"][name] = max(lo, value - half)
        out["hi"][name] = min(hi, value + half)
    return out

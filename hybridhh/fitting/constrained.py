"""Where the data constrain each rate: the uncertainty of each rate at each voltage.

The 1st–99th percentile of the recorded V says where the cell went, not where each rate
left a trace in the recording. Each rate matters only where it dominates its gate:
beta_m where m closes (below about −20 mV), alpha_h where h recovers, and m carries no
current at all below about −75 mV (m³ < 1e-6), so tau_m there is invisible whatever the
fit does.

This module measures it with the Gauss–Newton stage's own machinery. The teacher-forcing
residual's exact Jacobian with respect to each gate's logit x_inf and log tau on hat
functions at voltage nodes (:meth:`~hybridhh.fitting.teacher.TeacherForcing.jacobian`), with
the stage's roughness penalty, gives the curvature ``H = J Jᵀ + s RᵀR`` of the loss in
function space. Its inverse, by the delta method (``d log alpha = (1 - x) d logit x_inf -
d log tau``, ``d log beta = -x d logit x_inf - d log tau``), gives the marginal
uncertainty of log alpha and log beta of every gate at every node, with every other
curve free to compensate (m against h, for one). A rate is *constrained* where that
uncertainty is within :data:`SPREAD` times its smallest value; its constrained range is
the run of such nodes around the best one, widened by half a node step and clipped to the
recorded V. The scale of ``H⁻¹`` drops out: the residual of a noise-free recording is
discretisation error, not white noise, so only the relative profile is meaningful.

Measured (``benchmarks/fit.py``, default FitConfig, fit seed 0; relative errors of the
fitted rate within its own range, median / max):

=========  ==================  =============  ==================  =============
rate       6.3 °C range (mV)   error          18.5 °C range (mV)  error
=========  ==================  =============  ==================  =============
alpha_m    −71.0 … 48.4        0.6 / 1.3 %    −67.3 … 40.7        1.7 / 5.3 %
beta_m     −77.0 … −14.0       0.4 / 1.9 %    −70.3 … −16.3       4.0 / 25.6 %
alpha_h    −107.0 … −29.0      1.3 / 6.0 %    −85.3 … −28.3       1.0 / 12.7 %
beta_h     −77.0 … 48.4        1.0 / 2.1 %    −82.3 … 42.5        3.1 / 4.6 %
alpha_n    −92.0 … 48.4        0.9 / 5.0 %    −85.3 … 42.5        2.0 / 5.5 %
beta_n     −92.0 … −44.0       0.3 / 1.5 %    −85.3 … −34.3       0.6 / 1.4 %
=========  ==================  =============  ==================  =============

Over the visited range the worst rate's median error is 4.3 % at 6.3 °C and 11.3 %
(beta_m) at 18.5 °C. There the fitted tau_m is 10–26 % off below −75 mV, outside m's
ranges; swapping those values into the true kinetics changes the free-running V by
0.0008 mV RMS (0.06 mV at most) over the whole recording.
"""

from __future__ import annotations

import torch

from ..constants import GATES, RATE_NAMES
from .data import TraceData
from .gauss_newton import second_difference, voltage_nodes
from .teacher import TeacherForcing

__all__ = ["SPREAD", "RATES", "rate_uncertainty", "constrained_ranges"]

#: a rate is constrained where its uncertainty is within this factor of its smallest
SPREAD = 10.0
#: the rates, in the order of the rows of :func:`rate_uncertainty`
RATES = tuple(f"alpha_{g}" for g in GATES) + tuple(f"beta_{g}" for g in GATES)


def rate_uncertainty(model, data: TraceData, step: float = 0.04, adaptive: float | None = 1.0,
                     node_step: float = 3.0, smoothness: float = 1e-4):
    """Relative marginal uncertainty of log alpha and log beta of each gate at voltage nodes.

    Parameters
    ----------
    model
        Kinetics with ``inf_tau(V)`` (a fitted :class:`~hybridhh.learned.RateMLP`, or the
        true kinetics).
    data
        The traces (their recorded V, or a noise-free path estimate).
    step
        Teacher-forcing step, ms (rounded to whole samples); ``adaptive`` (mV): shorter
        where V moves fast (as the Gauss–Newton stage, ``TeacherConfig.adaptive``).
    node_step, smoothness
        Node spacing (mV) and roughness weight, as ``TeacherConfig.gn_node_step`` and
        ``gn_smoothness``.

    Returns
    -------
    nodes : Tensor ``[N]``
        Voltages, mV.
    sd : Tensor ``[6, N]``
        Uncertainty of log alpha_m, alpha_h, alpha_n, beta_m, beta_h, beta_n (rows, as
        :data:`RATES`), each row divided by its smallest value.
    """
    nodes, _, JJ, RtR, _ = _curvature(model, data, step, adaptive, node_step)
    N = len(nodes)
    with torch.no_grad():
        C = torch.linalg.pinv(JJ + smoothness * RtR, hermitian=True).reshape(6, N, 6, N)
        x = model.inf_tau(nodes)[0].T.to(C.dtype)  # [3, N]
    sd = _log_rate_variance(C, x).clamp(min=0.0).sqrt()
    best = sd.min(1, keepdim=True).values
    return nodes, sd / torch.where(best > 0, best, 1.0)


@torch.no_grad()
def _curvature(model, data: TraceData, step: float = 0.04, adaptive: float | None = 1.0,
              node_step: float = 3.0, keep_jacobian: bool = False, nodes=None):
    """The Gauss–Newton curvature of the teacher-forcing loss in function space.

    The loss's exact Jacobian with respect to (logit x_inf; log tau) of m, h, n on hat
    functions at voltage nodes (:meth:`~hybridhh.fitting.teacher.TeacherForcing.jacobian`),
    at the teacher-forcing step ``step`` (ms; ``adaptive`` mV, as :func:`rate_uncertainty`)
    and node spacing ``node_step`` (mV), or at the given ``nodes`` (mV, uniform). Shared by
    the constrained ranges and the error bands (:mod:`hybridhh.fitting.bands`).

    Returns
    -------
    nodes : Tensor ``[N]``
        Voltages, mV.
    r : Tensor ``[B, T']``
        The normalised residual (``loss == (r**2).sum()``), per trace and step.
    JJ : Tensor ``[6N, 6N]``
        ``J Jᵀ`` (rows: logit x_inf of m, h, n, then log tau, each over the nodes).
    RtR : Tensor ``[6N, 6N]``
        The roughness penalty's matrix (second differences of each curve).
    J : Tensor ``[6N, B, T']`` or None
        The Jacobian itself with ``keep_jacobian`` (large: 6N × the residual terms).
    """
    stride = data.stride(step)
    tf = TeacherForcing(data, stride=stride, adaptive=adaptive if stride > 1 else None)
    nodes = voltage_nodes(tf.V, node_step) if nodes is None else nodes
    N = len(nodes)
    r, J = tf.jacobian(model, nodes)
    shape = tf.observed.shape
    J = J.reshape(6 * N, -1)
    JJ = J @ J.T
    D2 = second_difference(N, J.dtype)
    RtR = torch.block_diag(*[D2.T @ D2] * 6)
    J = J.reshape(6 * N, *shape) if keep_jacobian else None
    return nodes, r.reshape(shape), JJ, RtR, J


def _log_rate_variance(C: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Marginal variance ``[6, N]`` of log alpha_m, alpha_h, alpha_n, beta_m, beta_h, beta_n
    (rows, as :data:`RATES`) at the nodes, by the delta method (``d log alpha = (1 - x)
    d logit x_inf - d log tau``, ``d log beta = -x d logit x_inf - d log tau``), from the
    covariance ``C [6, N, 6, N]`` of (logit x_inf; log tau) and the gates' ``x = x_inf``
    ``[3, N]``. Not clipped: rounding can make an entry slightly negative."""
    N = C.shape[1]
    j = torch.arange(N)
    rows = []
    for sign in (1.0, -1.0):  # alpha: (1 - x, -1); beta: (-x, -1)
        for g in range(3):
            a = (1.0 - x[g]) if sign > 0 else -x[g]
            rows.append(a * a * C[g, j, g, j] + C[3 + g, j, 3 + g, j]
                        - 2.0 * a * C[g, j, 3 + g, j])
    return torch.stack(rows)


def constrained_ranges(model, data: TraceData, spread: float = SPREAD,
                       **kwargs) -> dict[str, tuple[float, float]]:
    """Per rate (in the order alpha_m, beta_m, alpha_h, ...), the voltage range (mV) over
    which the data constrain it.

    The run of nodes where the rate's uncertainty (:func:`rate_uncertainty`) is within
    ``spread`` times its smallest, around the node where it is smallest, widened by half a
    node step and clipped to the recorded V. ``kwargs`` go to :func:`rate_uncertainty`.
    """
    nodes, sd = rate_uncertainty(model, data, **kwargs)
    half = 0.5 * float(nodes[1] - nodes[0])
    vmin, vmax = float(data.V.min()), float(data.V.max())
    out = {}
    for r, name in enumerate(RATES):
        ok = (sd[r] <= spread).tolist()
        lo = hi = int(sd[r].argmin())
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(ok) - 1 and ok[hi + 1]:
            hi += 1
        out[name] = (max(vmin, float(nodes[lo]) - half), min(vmax, float(nodes[hi]) + half))
    return {r: out[r] for r in RATE_NAMES}  # the rates CSV's order

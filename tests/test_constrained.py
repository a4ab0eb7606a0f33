"""Where the data constrain each rate (hybridhh.fitting.constrained)."""

from __future__ import annotations

import pytest
import torch

from hybridhh.constants import RATE_NAMES
from hybridhh.fitting.constrained import RATES, constrained_ranges, rate_uncertainty
from hybridhh.fitting.data import TraceData
from hybridhh.fitting.freerun import free_run
from hybridhh.fitting.gauss_newton import NodeTable, second_difference, voltage_nodes
from hybridhh.fitting.teacher import TeacherForcing
from hybridhh.kinetics import HHKinetics, rates_from_inf_tau


@pytest.fixture(scope="module")
def data(tiny_recording):
    return TraceData.from_recording(tiny_recording)


@pytest.fixture(scope="module")
def ranges(data):
    return constrained_ranges(HHKinetics(), data)


def test_ranges_follow_where_each_rate_dominates(data, ranges):
    """Known physics, with the true kinetics on the tiny recording (V -81 … 43 mV): a
    beta matters where its gate closes, an alpha where it opens (or, for h, recovers),
    and m carries no current near the bottom of the visited range."""
    assert set(ranges) == set(RATE_NAMES)
    vmin, vmax = float(data.V.min()), float(data.V.max())
    for lo, hi in ranges.values():
        assert vmin <= lo < hi <= vmax
    # measured: beta_m -78 … -21, beta_n -81 … -45, alpha_h -81 … -21 mV; the other
    # three rates reach the top of the recording (43 mV); m starts at -72 mV
    assert ranges["beta_m"][1] < -10 and ranges["alpha_m"][1] > 30
    assert ranges["beta_n"][1] < -30 and ranges["alpha_n"][1] > 30
    assert ranges["alpha_h"][1] < -10 and ranges["beta_h"][1] > 30
    assert ranges["alpha_m"][0] > vmin + 5


def test_outside_the_range_the_recording_cannot_tell(data, ranges):
    """tau_m 30 % longer below alpha_m's range changes the free-running V by 0.015 mV RMS;
    the same change over the first 15 mV of the range changes it by 6.8 mV (measured)."""
    hh = HHKinetics()

    class SlowerM:
        def __init__(self, lo, hi):
            self.lo, self.hi = lo, hi

        def inf_tau(self, V):
            x, tau = hh.inf_tau(V)
            inside = (V >= self.lo) & (V <= self.hi)
            tau = tau.clone()
            tau[..., 0] = torch.where(inside, 1.3 * tau[..., 0], tau[..., 0])
            return x, tau

        def rates(self, V):
            return rates_from_inf_tau(*self.inf_tau(V))

    V0 = free_run(hh, data, method="rk4")
    lo = ranges["alpha_m"][0]
    below = float((free_run(SlowerM(-200.0, lo), data, method="rk4") - V0).square().mean())
    inside = float((free_run(SlowerM(lo, lo + 15.0), data, method="rk4") - V0).square().mean())
    assert below ** 0.5 < 0.05
    assert inside ** 0.5 > 1.0


def test_rate_uncertainty_is_the_delta_method(data):
    """The marginal uncertainty of each log rate against autograd through the node table:
    ``sqrt(g_i^T H^-1 g_i)`` with ``g_i`` the gradient of log alpha / log beta at node i
    with respect to all 6N node values (catches a wrong sign of the covariance term or a
    mixed-up row order)."""
    hh = HHKinetics()
    nodes, sd = rate_uncertainty(hh, data, step=0.1, node_step=6.0)
    tf = TeacherForcing(data, stride=4, adaptive=1.0)
    assert torch.equal(nodes, voltage_nodes(tf.V, 6.0))
    N = len(nodes)
    _, J = tf.jacobian(hh, nodes)
    J = J.reshape(6 * N, -1)
    D2 = second_difference(N)
    C = torch.linalg.inv(J @ J.T + 1e-4 * torch.block_diag(*[D2.T @ D2] * 6))
    x, tau = hh.inf_tau(nodes)
    P = torch.cat([torch.logit(x).T, tau.log().T]).requires_grad_(True)

    def log_rates(P):
        alpha, beta = NodeTable(nodes, P).rates(nodes)  # [N, 3] each
        return torch.cat([alpha.T, beta.T]).log()  # [6, N]: alpha m h n, beta m h n

    G = torch.autograd.functional.jacobian(log_rates, P).reshape(6, N, 6 * N)
    ref = torch.einsum("rnp,pq,rnq->rn", G, C, G).sqrt()
    ref = ref / ref.min(1, keepdim=True).values
    assert RATES == tuple(f"alpha_{g}" for g in "mhn") + tuple(f"beta_{g}" for g in "mhn")
    assert torch.allclose(sd, ref, rtol=1e-6)

"""The HH rate functions: singular points, conventions, temperature, array types."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridhh import kinetics as K
from hybridhh.errors import ConfigError
from hybridhh.kinetics import HHKinetics

mpmath.mp.dps = 50

REF_FUNCS = {
    "alpha_m": lambda v: 0.1 * (v + 40) / (1 - mpmath.exp(-(v + 40) / 10)),
    "beta_m": lambda v: 4 * mpmath.exp(-(v + 65) / 18),
    "alpha_h": lambda v: 0.07 * mpmath.exp(-(v + 65) / 20),
    "beta_h": lambda v: 1 / (1 + mpmath.exp(-(v + 35) / 10)),
    "alpha_n": lambda v: 0.01 * (v + 55) / (1 - mpmath.exp(-(v + 55) / 10)),
    "beta_n": lambda v: 0.125 * mpmath.exp(-(v + 65) / 80),
}
LIMITS = {"alpha_m": (-40.0, 1.0), "alpha_n": (-55.0, 0.1)}  # singular point (mV), limit (1/ms)


def _mp_exprel(x):
    x = mpmath.mpf(x)
    return mpmath.mpf(1) if x == 0 else mpmath.expm1(x) / x


def _mp_rate(name, v):
    v = mpmath.mpf(v)
    if name in LIMITS and v == LIMITS[name][0]:
        return mpmath.mpf(LIMITS[name][1])
    return REF_FUNCS[name](v)


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-300)


# --- exprel ----------------------------------------------------------------------------


EXPREL_POINTS = [0.0, 1e-300, 1e-15, -1e-15, 1e-10, -1e-10, 1e-8, -1e-8, 1e-6, -1e-6,
                 9.99e-5, -9.99e-5, 1.0001e-4, -1.0001e-4, 1e-3, -1e-3, 0.1, -0.1, 1.0,
                 -1.0, 10.0, -10.0, -40.0, 30.0]


def test_exprel_at_and_near_zero_matches_mpmath_to_1e_12():
    x = np.array(EXPREL_POINTS)
    got = K.exprel(x)
    assert got[0] == 1.0
    for xi, gi in zip(x, got, strict=True):
        assert _rel(gi, _mp_exprel(xi)) < 1e-12, xi


def test_exprel_gradient_finite_and_correct_near_zero():
    # d/dx exprel(x) = (x e^x - e^x + 1) / x^2, = 1/2 at x = 0
    x = torch.tensor([0.0, 1e-12, -1e-9, 5e-5, -5e-5, 2e-4, 0.5], dtype=torch.float64,
                     requires_grad=True)
    K.exprel(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    for xi, gi in zip(x.detach().tolist(), x.grad.tolist(), strict=True):
        xm = mpmath.mpf(xi)
        ref = mpmath.mpf(0.5) if xi == 0 else (xm * mpmath.exp(xm) - mpmath.expm1(xm)) / xm**2
        assert _rel(gi, ref) < 1e-8, xi  # the series' derivative is exact to ~x^3/30


# --- the six rates ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alpha_m", "alpha_n"])
def test_removable_singularities_exact_to_1e_12(name):
    v0, limit = LIMITS[name]
    f = getattr(K, name)
    assert abs(float(f(v0)) - limit) < 1e-12
    for dv in (1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3, 0.5):
        assert _rel(f(v0 + dv), _mp_rate(name, v0 + dv)) < 1e-12, dv
    # the fused evaluation of HHKinetics too
    col = {"alpha_m": 0, "alpha_n": 2}[name]
    a, _ = HHKinetics().rates(np.array([v0, v0 + 1e-9, v0 - 1e-7]))
    assert abs(a[0, col] - limit) < 1e-12
    assert _rel(a[1, col], _mp_rate(name, v0 + 1e-9)) < 1e-12
    assert _rel(a[2, col], _mp_rate(name, v0 - 1e-7)) < 1e-12


@pytest.mark.parametrize("name", ["alpha_m", "alpha_n"])
def test_gradients_finite_at_singular_points(name):
    v0, limit = LIMITS[name]
    # d/dV [s (V - v0) / (1 - exp(-(V - v0)/10))] at V = v0 is s/2 with s = limit / 10
    V = torch.tensor([v0], dtype=torch.float64, requires_grad=True)
    getattr(K, name)(V).sum().backward()
    assert torch.isfinite(V.grad).all()
    assert abs(float(V.grad[0]) - limit / 20) < 1e-10
    V2 = torch.tensor([v0], dtype=torch.float64, requires_grad=True)
    a, b = HHKinetics().rates(V2)
    col = {"alpha_m": 0, "alpha_n": 2}[name]
    a[0, col].backward()
    assert abs(float(V2.grad[0]) - limit / 20) < 1e-10


def test_rates_match_mpmath_over_voltage_range():
    V = np.linspace(-120.0, 80.0, 41)
    for name in REF_FUNCS:
        got = getattr(K, name)(V)
        for v, g in zip(V, got, strict=True):
            assert _rel(g, _mp_rate(name, v)) < 1e-12, (name, v)


def test_fused_rates_equal_reference_functions():
    V = torch.cat([torch.linspace(-150.0, 100.0, 20001, dtype=torch.float64),
                   torch.tensor([-40.0, -55.0, -40.0 + 1e-9, -55.0 - 1e-7])])
    a, b = HHKinetics().rates(V)
    assert a.shape == b.shape == (len(V), 3)
    ra = torch.stack([K.alpha_m(V), K.alpha_h(V), K.alpha_n(V)], dim=-1)
    rb = torch.stack([K.beta_m(V), K.beta_h(V), K.beta_n(V)], dim=-1)
    assert ((a - ra) / ra).abs().max() < 1e-13
    assert ((b - rb) / rb).abs().max() < 1e-13


def test_numpy_float_and_torch_inputs_give_the_same():
    V = np.linspace(-100.0, 60.0, 33)
    Vt = torch.as_tensor(V)
    for name in REF_FUNCS:
        f = getattr(K, name)
        got_np = f(V)
        assert isinstance(got_np, np.ndarray)
        np.testing.assert_array_equal(got_np, f(Vt).numpy())
        assert float(f(float(V[3]))) == got_np[3]
    kin = HHKinetics()
    a_np, b_np = kin.rates(V)
    a_t, b_t = kin.rates(Vt)
    assert isinstance(a_np, np.ndarray) and a_np.shape == (33, 3)
    np.testing.assert_array_equal(a_np, a_t.numpy())
    np.testing.assert_array_equal(b_np, b_t.numpy())
    a_f, _ = kin.rates(-65.0)
    assert a_f.shape == (3,)
    assert kin.rates([[-65.0, -40.0]])[0].shape == (1, 2, 3)


def test_rates_keep_dtype_and_batch_shape():
    V = torch.linspace(-80, 40, 12, dtype=torch.float32).reshape(3, 4)
    a, b = HHKinetics().rates(V)
    assert a.dtype == b.dtype == torch.float32
    assert a.shape == b.shape == (3, 4, 3)
    a64, _ = HHKinetics().rates(V.double())
    assert torch.allclose(a.double(), a64, rtol=1e-6)


# --- temperature and conventions ------------------------------------------------------------


@pytest.mark.parametrize("temperature", [6.3, 16.3, 26.3, 0.0, 37.0])
def test_q10_factor(temperature):
    assert K.q10_factor(temperature) == pytest.approx(3.0 ** ((temperature - 6.3) / 10),
                                                      rel=1e-15)
    assert K.q10_factor(16.3) == pytest.approx(3.0, rel=1e-15)
    V = np.linspace(-90, 30, 25)
    a0, b0 = HHKinetics(temperature=6.3).rates(V)
    a, b = HHKinetics(temperature=temperature).rates(V)
    phi = 3.0 ** ((temperature - 6.3) / 10)
    np.testing.assert_allclose(a, phi * a0, rtol=1e-13)
    np.testing.assert_allclose(b, phi * b0, rtol=1e-13)
    assert K.q10_factor(20.0, q10=2.0, reference=10.0) == pytest.approx(2.0)


def test_hh1952_is_modern_shifted_by_65mV():
    V = np.linspace(-60.0, 130.0, 381)  # 1952 convention: rest 0 mV, depolarisation > 0
    a52, b52 = HHKinetics("hh1952", temperature=18.5).rates(V)
    am, bm = HHKinetics("modern", temperature=18.5).rates(V - 65.0)
    np.testing.assert_allclose(a52, am, rtol=1e-12)
    np.testing.assert_allclose(b52, bm, rtol=1e-12)
    assert K.get_kinetics("hh1952").convention == "hh1952"
    assert K.get_kinetics("neuron_hh") == K.get_kinetics("hh_modern") == HHKinetics()


def test_inf_tau_roundtrip():
    V = torch.linspace(-100, 50, 31, dtype=torch.float64)
    kin = HHKinetics()
    x_inf, tau = kin.inf_tau(V)
    a, b = kin.rates(V)
    a2, b2 = K.rates_from_inf_tau(x_inf, tau)
    assert torch.allclose(a, a2, rtol=1e-12) and torch.allclose(b, b2, rtol=1e-12)
    x2, tau2 = K.inf_tau(type("Rates", (), {"rates": staticmethod(kin.rates)})(), V)
    assert torch.allclose(x2, x_inf) and torch.allclose(tau2, tau)


def test_bad_kinetics_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="convention"):
        HHKinetics("classic")
    with pytest.raises(ConfigError, match="temperature"):
        HHKinetics(temperature=math.nan)
    with pytest.raises(ConfigError, match="unknown kinetics"):
        K.get_kinetics("hh2000")


# --- properties over a voltage range ---------------------------------------------------------

voltages = st.floats(min_value=-150.0, max_value=100.0, allow_nan=False)


@settings(deadline=None, max_examples=200)
@given(V=st.lists(voltages, min_size=1, max_size=16),
       temperature=st.floats(min_value=0.0, max_value=40.0),
       convention=st.sampled_from(["modern", "hh1952"]))
def test_rates_positive_and_steady_states_in_unit_interval(V, temperature, convention):
    V = torch.tensor(V, dtype=torch.float64)
    if convention == "hh1952":
        V = V + 65.0  # the same physical range
    kin = HHKinetics(convention, temperature=temperature)
    a, b = kin.rates(V)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    assert (a > 0).all() and (b > 0).all()
    x_inf, tau = kin.inf_tau(V)
    assert ((x_inf > 0) & (x_inf < 1)).all()
    assert (tau > 0).all() and torch.isfinite(tau).all()

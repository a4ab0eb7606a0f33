"""Stimulus builders: shapes, values, seeding, broadcasting and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from hybridhh import protocols as P
from hybridhh.errors import ConfigError


@pytest.fixture
def t():
    return P.time_grid(50.0, 0.025)


def test_time_grid():
    t = P.time_grid(10.0, 0.1)
    assert len(t) == 101 and t[0] == 0.0 and t[-1] == pytest.approx(10.0, abs=1e-12)
    np.testing.assert_allclose(np.diff(t), 0.1, rtol=1e-12)
    for bad in [(10.0, 0.0), (10.0, -0.1), (0.0, 0.1), (10.0, 0.3)]:
        with pytest.raises(ConfigError):
            P.time_grid(*bad)


def test_steps(t):
    s = P.steps(t, [2.0, -4.0], start=5.0, stop=20.0, holding=1.0)
    assert s.current.shape == (2, len(t)) and s.names == ("step_2", "step_-4")
    on = (t >= 5.0 - 1e-9) & (t < 20.0 - 1e-9)
    np.testing.assert_array_equal(s.current[0], np.where(on, 3.0, 1.0))
    np.testing.assert_array_equal(s.current[1], np.where(on, -3.0, 1.0))
    assert s.dt == pytest.approx(0.025)


def test_ramp(t):
    s = P.ramp(t, 0.0, 30.0, start=5.0, stop=45.0)
    i = s.current[0]
    assert np.all(i[t < 5.0] == 0.0)
    k = np.searchsorted(t, 25.0)
    assert i[k] == pytest.approx(15.0, abs=1e-9)
    assert i[-1] == pytest.approx(30.0) and np.all(np.diff(i[(t >= 5) & (t <= 45)]) >= 0)
    with pytest.raises(ConfigError, match="stop"):
        P.ramp(t, 0.0, 1.0, start=10.0, stop=5.0)


def test_prepulse_step(t):
    s = P.prepulse_step(t, -10.0, [5.0, 15.0], prepulse_start=5.0, prepulse_duration=10.0,
                        step_duration=20.0)
    assert s.n_traces == 2
    i = s.current
    at = lambda time: np.searchsorted(t, time)
    assert i[0, at(4.0)] == 0.0 and i[0, at(10.0)] == -10.0
    assert i[0, at(20.0)] == 5.0 and i[1, at(20.0)] == 15.0
    assert i[1, at(40.0)] == 0.0  # after the step


def test_chirp(t):
    s = P.chirp(t, 8.0, 0.005, 0.15, offset=3.0, start=5.0, stop=45.0)
    i = s.current[0]
    assert np.all(i[t < 5.0] == 0.0) and np.all(i[t > 45.0] == 0.0)
    inside = (t >= 5.0) & (t <= 45.0)
    assert i[inside].max() <= 11.0 + 1e-12 and i[inside].min() >= -5.0 - 1e-12
    # the frequency sweeps up: zero crossings of i - offset get denser
    crossings = t[inside][1:][np.diff(np.sign(i[inside] - 3.0)) != 0]
    first, last = np.diff(crossings)[:2].mean(), np.diff(crossings)[-2:].mean()
    assert last < first / 2
    with pytest.raises(ConfigError, match="stop"):
        P.chirp(t, 1.0, 0.01, 0.1, start=30.0, stop=10.0)


def test_ou_noise_seeded_and_stationary():
    t = P.time_grid(200.0, 0.1)
    a = P.ou_noise(t, mean=5.0, sigma=10.0, tau=3.0, seed=7, n=400)
    b = P.ou_noise(t, mean=5.0, sigma=10.0, tau=3.0, seed=7, n=400)
    c = P.ou_noise(t, mean=5.0, sigma=10.0, tau=3.0, seed=8, n=400)
    np.testing.assert_array_equal(a.current, b.current)
    assert not np.allclose(a.current, c.current)
    x = a.current
    # stationary from the first sample: the SD across traces is sigma at every time
    # (400 traces: the SD estimate has a relative SE of ~3.5 %; bounds are ~4 SE)
    for k in (0, len(t) // 2, len(t) - 1):
        assert np.std(x[:, k]) == pytest.approx(10.0, rel=0.15)
    assert np.std(x) == pytest.approx(10.0, rel=0.03)
    assert np.mean(x) == pytest.approx(5.0, abs=0.5)
    # AR(1) correlation exp(-dt/tau) between neighbours, exp(-1) at one tau (30 samples)
    z = (x - 5.0) / 10.0
    assert np.mean(z[:, 1:] * z[:, :-1]) == pytest.approx(np.exp(-0.1 / 3.0), abs=0.02)
    assert np.mean(z[:, 30:] * z[:, :-30]) == pytest.approx(np.exp(-1.0), abs=0.03)
    for bad in [dict(tau=0.0), dict(sigma=-1.0)]:
        with pytest.raises(ConfigError):
            P.ou_noise(t, **{"mean": 0.0, "sigma": 1.0, "tau": 1.0, **bad})


def test_classic_pulses():
    t = P.time_grid(20.0, 0.01)
    i = P.classic_pulses(t).current[0]
    at = lambda time: np.searchsorted(t, time - 1e-9)
    assert i[at(0.0)] == 150.0 and i[at(0.99)] == 150.0 and i[at(1.0)] == 0.0
    assert i[at(10.0)] == 50.0 and i[at(10.99)] == 50.0 and i[at(11.0)] == 0.0
    assert i.sum() * 0.01 == pytest.approx(150.0 + 50.0, rel=1e-9)  # charge, µA·ms/cm²


def test_sums_broadcast_and_concat(t):
    s = P.steps(t, [1.0, 2.0, 3.0])
    noise = P.ou_noise(t, 0.0, 1.0, seed=1)
    total = s + noise
    assert total.n_traces == 3
    np.testing.assert_array_equal(total.current, s.current + noise.current[0])
    assert total.names[0] == "step_1+" + noise.names[0]
    assert (noise + s).n_traces == 3
    both = P.Stimulus.concat([s, noise])
    assert both.n_traces == 4 and len(both) == 4
    assert both.select([0, 3]).names == (s.names[0], noise.names[0])
    with pytest.raises(ConfigError, match="traces"):
        P.steps(t, [1.0, 2.0]) + s
    with pytest.raises(ConfigError, match="grid"):
        s + P.steps(P.time_grid(50.0, 0.05), [1.0])
    with pytest.raises(ConfigError, match="grid"):
        P.Stimulus.concat([s, P.steps(P.time_grid(10.0, 0.025), [1.0])])
    with pytest.raises(ConfigError):
        P.Stimulus.concat([])


def test_default_protocols_are_finite_and_named(t):
    s = P.default_protocols(t, seed=3)
    assert s.n_traces == len(s.names) >= 10
    assert len(set(s.names)) == s.n_traces
    assert np.all(np.isfinite(s.current))
    np.testing.assert_array_equal(s.current, P.default_protocols(t, seed=3).current)


def test_bad_stimulus_input_raises_config_error(t):
    with pytest.raises(ConfigError, match="non-finite"):
        P.from_array(t, np.full(len(t), np.nan))
    with pytest.raises(ConfigError, match="shape"):
        P.from_array(t, np.zeros(len(t) + 1))
    with pytest.raises(ConfigError, match="names"):
        P.Stimulus(t, np.zeros((2, len(t))), ("only_one",))
    with pytest.raises(ConfigError, match="1-D"):
        P.Stimulus(np.array([0.0]), np.zeros((1, 1)), ("x",))
    with pytest.raises(ConfigError, match="duration"):
        P.pulse_train(t, [(1.0, 0.0, 5.0)])
    s = P.from_array(t, np.ones(len(t)))
    assert s.names == ("user_0",)

"""hybridhh.analysis.metrics: the kinetics error metrics on known cases."""

from __future__ import annotations

import pytest

from hybridhh.analysis import (
    TARGETS,
    kinetics_errors,
    kinetics_metrics,
    meets_targets,
    rate_errors_in_ranges,
    summarize_errors,
)
from hybridhh.kinetics import HHKinetics


def test_truth_against_itself_is_exact():
    hh = HHKinetics("modern")
    k = kinetics_metrics(hh, hh, -85.0, 35.0)
    assert k["range"] == [-85.0, 35.0]
    for e in k["gates"].values():
        assert all(v == pytest.approx(0.0, abs=1e-12) for v in e.values())
    assert k["meets_targets"] and all(k["pass"].values())


def test_rates_scaled_by_1_2_give_the_known_errors(scaled):
    hh = HHKinetics("modern")
    k = kinetics_metrics(scaled(hh, 1.2), hh, -85.0, 35.0)
    for e in k["gates"].values():
        assert e["tau_median"] == pytest.approx(1 - 1 / 1.2, rel=1e-9)  # 0.1667
        assert e["tau_p90"] == pytest.approx(1 - 1 / 1.2, rel=1e-9)
        assert e["xinf_max"] == pytest.approx(0.0, abs=1e-12)
        assert e["alpha_median"] == pytest.approx(0.2, rel=1e-9)
        assert e["beta_median"] == pytest.approx(0.2, rel=1e-9)
    assert k["worst"]["tau_median"] == pytest.approx(1 / 6, rel=1e-9)
    assert k["pass"] == {"tau_median": False, "tau_p90": False, "xinf_max": True,
                         "rate_median": False}
    assert not k["meets_targets"]


def test_rates_scaled_within_the_targets_meet_them(scaled):
    hh = HHKinetics("modern")
    errors = kinetics_errors(scaled(hh, 1.02), hh, -85.0, 35.0)
    worst = summarize_errors(errors)
    assert worst["tau_median"] == pytest.approx(1 - 1 / 1.02, rel=1e-9)
    assert worst["rate_median"] == pytest.approx(0.02, rel=1e-9)
    assert meets_targets(errors) and meets_targets(errors, TARGETS)
    assert not meets_targets(errors, {"rate_median": 0.01})


def test_rate_errors_in_ranges_use_each_rates_own_range(scaled):
    hh = HHKinetics("modern")
    ranges = {"alpha_m": (-60.0, 20.0), "beta_n": (-90.0, -40.0)}
    out = rate_errors_in_ranges(scaled(hh, 1.5), hh, ranges)
    assert set(out) == set(ranges)
    assert out["alpha_m"]["range"] == [-60.0, 20.0] and out["beta_n"]["range"] == [-90.0, -40.0]
    for r in out.values():
        for key in ("median", "p90", "max"):
            assert r[key] == pytest.approx(0.5, rel=1e-9)


def test_untrained_model_has_a_large_error(short_recording):
    from hybridhh.fitting import FitConfig
    from hybridhh.fitting.api import build_model
    from hybridhh.fitting.data import TraceData

    model = build_model(TraceData.from_recording(short_recording), FitConfig())
    k = kinetics_metrics(model, HHKinetics("modern"), -80.0, 30.0)
    assert not k["meets_targets"]
    assert k["worst"]["tau_median"] > 0.3 and k["worst"]["xinf_max"] > 0.2

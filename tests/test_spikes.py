"""hybridhh.analysis.spikes: the one spike definition (threshold relative to rest,
interpolated upward crossings, refractory merge) and the matching of spike trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridhh.analysis import (
    MAX_SPIKE_SHIFT,
    REFRACTORY,
    SPIKE_ABOVE_REST,
    match_spikes,
    spike_indices,
    spike_metrics,
    spike_threshold,
    spike_times,
)
from hybridhh.biophysics import Biophysics
from hybridhh.kinetics import HHKinetics
from hybridhh.protocols import classic_pulses, time_grid
from hybridhh.recording import simulate_recording


def _spike_train(time, spike_at, rest=-65.0, peak=40.0, width=0.5):
    """Gaussian 'spikes' of ``width`` ms peaking at ``spike_at`` (ms) on a flat rest."""
    V = np.full_like(time, rest)
    for s in spike_at:
        V += (peak - rest) * np.exp(-0.5 * ((time - s) / width) ** 2)
    return V


def test_the_constants():
    assert (SPIKE_ABOVE_REST, REFRACTORY, MAX_SPIKE_SHIFT) == (50.0, 1.0, 5.0)


def test_threshold_is_relative_to_rest_in_either_convention():
    assert spike_threshold(-65.0) == -15.0  # modern convention
    assert spike_threshold(0.0) == 50.0  # 1952 convention: rest 0 mV
    assert isinstance(spike_threshold(np.float32(-60.0)), float)


def test_crossings_of_a_piecewise_linear_trace_are_exact():
    # a triangle wave with its corners on samples: linear interpolation is exact there
    t = np.arange(0.0, 40.0 + 1e-9, 0.1)
    phase = np.mod(t, 10.0)
    V = np.where(phase < 5.0, -70.0 + 20.0 * phase, 130.0 - 20.0 * phase)  # -70 .. 30 mV
    # up-ramps from -70 at t = 0, 10, 20, 30 reach -15 mV after 55/20 = 2.75 ms
    np.testing.assert_allclose(spike_times(V, t, -15.0)[0], [2.75, 12.75, 22.75, 32.75],
                               rtol=0, atol=1e-12)
    k = spike_indices(V, t, -15.0)[0]
    np.testing.assert_array_equal(k, [27, 127, 227, 327])  # t[27] = 2.7 < 2.75 <= t[28]


def test_crossings_of_a_sine_to_interpolation_accuracy():
    t = np.arange(0.0, 50.0, 0.01)
    V = -40.0 + 50.0 * np.sin(2 * np.pi * t / 10.0)  # upward through -40 mV at 0, 10, 20...
    found = spike_times(V, t, -15.0)[0]
    # sin(2 pi t / 10) = 0.5 at t = 10/12 ms after each upward zero
    np.testing.assert_allclose(found, 10.0 / 12.0 + 10.0 * np.arange(5), atol=1e-5)


def test_spike_times_find_threshold_crossings():
    t = np.arange(0.0, 100.0, 0.01)
    V = _spike_train(t, [10.0, 30.0, 55.5])
    found = spike_times(V, t, threshold=-15.0)[0]
    # the crossing precedes the peak by width * sqrt(2 ln(105/50))
    lead = 0.5 * np.sqrt(2 * np.log(105.0 / 50.0))
    np.testing.assert_allclose(found, np.array([10.0, 30.0, 55.5]) - lead, atol=1e-3)
    assert [len(x) for x in spike_times(np.stack([V, V - 80.0]), t, -15.0)] == [3, 0]


def test_shapes_and_tensors():
    t = np.arange(0.0, 60.0, 0.01)
    V = _spike_train(t, [10.0, 30.0])
    one = spike_times(V, t, -15.0)
    assert isinstance(one, list) and len(one) == 1  # a [T] trace: a one-element list
    batch = spike_times(torch.tensor(np.stack([V, V]), requires_grad=True), torch.tensor(t),
                        -15.0)
    assert len(batch) == 2
    np.testing.assert_allclose(batch[0], one[0], rtol=0, atol=1e-12)
    assert spike_times(np.full_like(t, -65.0), t, -15.0)[0].shape == (0,)
    assert spike_indices(np.full_like(t, -65.0), t, -15.0)[0].shape == (0,)


def test_refractory_merges_crossings_of_one_spike():
    t = np.arange(0.0, 20.0, 0.01)
    V = _spike_train(t, [10.0])
    V[(t > 9.0) & (t < 9.6)] += 30.0 * np.sin(np.arange(np.sum((t > 9.0) & (t < 9.6))))
    assert len(spike_times(V, t, -15.0)[0]) == 1
    # two crossings 0.5 ms apart: one spike; without a refractory period, two
    V = np.full_like(t, -65.0)
    V[(t >= 5.0) & (t < 5.2)] = 0.0
    V[(t >= 5.5) & (t < 5.7)] = 0.0
    assert len(spike_times(V, t, -15.0)[0]) == 1
    assert len(spike_times(V, t, -15.0, refractory=0.0)[0]) == 2
    # 1.5 ms apart: two spikes
    V[(t >= 6.7) & (t < 6.9)] = 0.0
    np.testing.assert_allclose(spike_times(V, t, -15.0)[0], [4.99 + 50 / 65 * 0.01,
                                                            6.69 + 50 / 65 * 0.01], atol=1e-9)


def test_threshold_relative_to_rest_works_in_the_1952_convention():
    from hybridhh.fitting.data import TraceData

    t = time_grid(20.0, 0.01)
    rec = simulate_recording(classic_pulses(t), Biophysics.standard("hh1952"),
                             HHKinetics("hh1952"))
    rest = TraceData.from_recording(rec).resting_estimate()
    assert abs(rest) < 15.0  # rest 0 mV in 1952 convention (the estimate sees some AHP)
    found = spike_times(rec.voltage, rec.time, spike_threshold(rest))[0]
    assert len(found) >= 1 and len(found) == len(spike_times(rec.voltage, rec.time, 50.0)[0])
    # a fixed modern-convention threshold (0 mV) would count the depolarised plateau too
    assert rec.voltage.max() > 90.0


def test_match_spikes():
    m = match_spikes([10.0, 20.0, 30.0], [10.5, 21.0, 45.0], max_shift=5.0)
    assert (m["matched"], m["missed"], m["extra"]) == (2, 1, 1)
    assert m["mean_abs"] == pytest.approx(0.75) and m["max_abs"] == pytest.approx(1.0)
    assert m["diffs"] == pytest.approx([0.5, 1.0])
    none = match_spikes([10.0], [], 5.0)
    assert none["missed"] == 1 and none["mean_abs"] is None and none["max_abs"] is None
    assert match_spikes([10.0], [16.0], 5.0)["matched"] == 0


def test_match_spikes_pairs_in_order():
    # closest first would pair 12 with 12.4 and leave 10 unmatched (14.5 would cross)
    m = match_spikes([10.0, 12.0], [12.4, 14.5], max_shift=5.0)
    assert m["matched"] == 2 and m["diffs"] == pytest.approx([2.4, 2.5])
    # with equal counts, the order-preserving pairing with the smallest total shift
    m = match_spikes([10.0, 20.0, 30.0], [11.0, 21.0, 31.0], max_shift=15.0)
    assert m["diffs"] == pytest.approx([1.0, 1.0, 1.0])


def test_spike_metrics_totals():
    t = np.arange(0.0, 60.0, 0.01)
    ref = np.stack([_spike_train(t, [10, 30, 50]), _spike_train(t, [20])])
    mod = np.stack([_spike_train(t, [10.2, 30.4]), _spike_train(t, [20.1, 40.0])])
    s = spike_metrics(ref, mod, t, threshold=-15.0, names=["a", "b"])
    assert (s["n_reference"], s["n_model"], s["matched"]) == (4, 4, 3)
    assert (s["missed"], s["extra"], s["count_mismatch"]) == (1, 1, 2)
    assert s["max_abs"] == pytest.approx(0.4, abs=1e-6)
    assert s["mean_abs"] == pytest.approx((0.2 + 0.4 + 0.1) / 3, abs=1e-6)
    assert [p["name"] for p in s["per_trace"]] == ["a", "b"]

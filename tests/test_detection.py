"""Keyword detection on streams: the decision rule and its scoring, on hand-made traces."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop.errors import ParameterError, ShapeError
from spikeloop.training.detection import (
    Detection,
    calibrate_threshold,
    detect,
    score,
)


def trace(steps: int, outputs: int, bumps: list[tuple[int, int, float]]) -> np.ndarray:
    """A readout trace of zeros with ``value`` at ``(step, neuron)``."""
    v = np.zeros((steps, outputs))
    for t, k, value in bumps:
        v[t, k] = value
    return v


def test_rule_threshold_argmax_and_refractory():
    # keyword 0 above θ at steps 10 and 12 (12 within the refractory 0.5 s: dropped),
    # keyword 1 at 100 but "other" (neuron 2) is larger there: no detection,
    # keyword 1 at 150 below θ: none, at 200 above θ: detected.
    v = trace(300, 3, [(10, 0, 2.0), (12, 0, 3.0), (100, 1, 2.0), (100, 2, 5.0),
                       (150, 1, 0.9), (200, 1, 1.5)])
    got = detect(v, 0.01, [1.0, 1.0], keywords=2, refractory=0.5)
    assert got == [Detection(pytest.approx(0.11), 0), Detection(pytest.approx(2.01), 1)]
    # without a refractory period both steps of keyword 0 count
    assert len(detect(v, 0.01, 1.0, keywords=2, refractory=0.0)) == 3
    # the "other" neuron never fires a detection, even far above θ
    assert detect(trace(50, 3, [(5, 2, 9.0)]), 0.01, 0.5, keywords=2) == []


def test_score_hits_latency_false_alarms():
    events = [(1.0, 1.5, 0), (3.0, 3.4, 1), (5.0, 5.5, -1), (8.0, 8.3, 0)]
    dets = [Detection(1.3, 0),   # hit, latency 0.3
            Detection(3.2, 0),   # wrong class during keyword 1: false alarm
            Detection(5.2, 1),   # during a non-keyword word: false alarm
            Detection(8.7, 0),   # within offset + tolerance: hit, latency 0.7
            Detection(8.75, 0)]  # the event is already hit: false alarm
    s = score(dets, events, 10.0, tolerance=0.5)
    assert (s.keywords, s.hits, s.false_alarms) == (3, 2, 3)
    assert s.latencies_s == pytest.approx((0.3, 0.7))
    assert s.median_latency_ms == pytest.approx(500.0)
    # keyword windows [1, 2], [3, 3.9], [8, 8.8] cover 2.7 s of the 10 s
    assert s.non_keyword_s == pytest.approx(7.3)
    assert s.false_alarms_per_hour == pytest.approx(3600 * 3 / 7.3)
    assert s.hit_rate == pytest.approx(2 / 3)
    pooled = s + score([], [], 5.0)
    assert (pooled.keywords, pooled.false_alarms) == (3, 3)
    assert pooled.duration_s == pytest.approx(15.0)
    assert pooled.non_keyword_s == pytest.approx(12.3)


def test_overlapping_windows_counted_once():
    s = score([], [(1.0, 2.0, 0), (1.5, 2.5, 1)], 4.0, tolerance=0.0)
    assert s.non_keyword_s == pytest.approx(2.5)


def test_end_to_end_detect_then_score():
    dt = 0.01
    v = trace(500, 2, [(130, 0, 2.0), (400, 1, 2.0)])
    s = score(detect(v, dt, 1.0), [(1.0, 1.4, 0), (3.8, 4.2, 1)], 5.0)
    assert (s.hits, s.false_alarms) == (2, 0)
    assert s.latencies_s == pytest.approx((0.31, 0.21))


def test_calibrate_threshold_quantile():
    peaks = np.stack([np.arange(100.0), 2 * np.arange(100.0)], axis=1)
    theta = calibrate_threshold(peaks, 0.9)
    assert theta == pytest.approx([89.1, 178.2])
    assert (peaks >= theta).mean(axis=0) == pytest.approx([0.1, 0.1])


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: detect(np.zeros(5), 0.01, 1.0), ShapeError, r"\[T, outputs\]"),
    (lambda: detect(np.full((5, 2), np.nan), 0.01, 1.0), ShapeError, "non-finite"),
    (lambda: detect(np.zeros((5, 2)), 0.01, 1.0, keywords=3), ParameterError, "1..2"),
    (lambda: detect(np.zeros((5, 2)), 0.01, [1.0, 2.0, 3.0]), ParameterError, "one per"),
    (lambda: detect(np.zeros((5, 2)), 0.01, 1.0, refractory=-1), ParameterError, "refractory"),
    (lambda: score([], [(2.0, 1.0, 0)], 5.0), ShapeError, "onset ≤ offset"),
    (lambda: score([], [(1.0, 6.0, 0)], 5.0), ShapeError, "duration_s"),
    (lambda: calibrate_threshold(np.zeros((0, 2))), ShapeError, "n ≥ 1"),
    (lambda: calibrate_threshold(np.zeros((3, 2)), 0.0), ParameterError, "quantile"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()

r"""Keyword detection on a continuous stream: a decision rule on the readout, and its scoring
against labelled word events (detection rate, latency, false alarms per hour).

**Decision rule.** The readout has one neuron per keyword (and optionally one for "other").
With the readout trace ``v[t, k]`` (membranes or any score, one row per step of ``dt``
seconds), keyword ``k`` is *detected* at step ``t`` when

.. math::

    v_t[k] \ge \theta_k \quad\text{and}\quad v_t[k] = \max_j v_t[j]

(``j`` over every readout neuron, "other" included), and no detection happened in the
``refractory`` seconds before. The detection's time is the end of step ``t``,
``(t + 1)·dt`` — the earliest moment a listener could act on it.

**Scoring.** A word event is ``(onset_s, offset_s, label)`` with ``label`` a keyword index or
``-1`` for any other word. A detection of class ``k`` at time ``τ`` *hits* the first
not-yet-hit keyword event with ``label == k`` and ``onset ≤ τ ≤ offset + tolerance``; its
latency is ``τ − onset``. Every other detection is a *false alarm* (wrong word, wrong class or
no word at all, and a second detection within a keyword's window). The false-alarm rate is
per hour of *non-keyword audio*: the stream's duration minus the keyword events' windows
``[onset, offset + tolerance]``
(:func:`~spikeloop.data.keywords.non_keyword_seconds` with ``guard_s = tolerance``); so false
alarms inside keyword windows count, but their time does not, a slight overestimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spikeloop.checks import check_dt, check_real
from spikeloop.data.keywords import non_keyword_seconds
from spikeloop.errors import ParameterError, ShapeError


@dataclass(frozen=True)
class Detection:
    """One detection: keyword ``label`` at ``time_s`` (end of the step it fired in)."""

    time_s: float
    label: int


@dataclass(frozen=True)
class DetectionScore:
    """How a stream's detections compare with its word events.

    Attributes:
        keywords: keyword events in the stream(s).
        hits: keyword events detected with the right class in their window.
        false_alarms: detections that hit no keyword event.
        latencies_s: ``τ − onset`` of every hit (seconds).
        non_keyword_s: seconds of audio outside the keyword windows.
        duration_s: seconds of audio scored.
    """

    keywords: int
    hits: int
    false_alarms: int
    latencies_s: tuple[float, ...]
    non_keyword_s: float
    duration_s: float

    @property
    def hit_rate(self) -> float:
        """Fraction of keyword events detected (nan without keyword events)."""
        return self.hits / self.keywords if self.keywords else float("nan")

    @property
    def false_alarms_per_hour(self) -> float:
        """False alarms per hour of non-keyword audio (nan without any)."""
        return 3600.0 * self.false_alarms / self.non_keyword_s if self.non_keyword_s > 0 \
            else float("nan")

    @property
    def median_latency_ms(self) -> float:
        """Median detection latency of the hits in ms (nan without hits)."""
        return 1e3 * float(np.median(self.latencies_s)) if self.latencies_s else float("nan")

    def __add__(self, other: DetectionScore) -> DetectionScore:
        """Pool the scores of two streams."""
        return DetectionScore(self.keywords + other.keywords, self.hits + other.hits,
                              self.false_alarms + other.false_alarms,
                              self.latencies_s + other.latencies_s,
                              self.non_keyword_s + other.non_keyword_s,
                              self.duration_s + other.duration_s)


def _thresholds(threshold: float | Sequence[float] | np.ndarray, keywords: int) -> np.ndarray:
    theta = np.asarray(threshold, dtype=np.float64)
    if theta.ndim == 0:
        theta = np.full(keywords, float(theta))
    if theta.shape != (keywords,) or not np.isfinite(theta).all():
        raise ParameterError(f"threshold must be one finite number or one per keyword "
                             f"({keywords}), got shape {theta.shape}")
    return theta


def detect(scores: np.ndarray, dt: float, threshold: float | Sequence[float] | np.ndarray, *,
           keywords: int | None = None, refractory: float = 0.5) -> list[Detection]:
    """Apply the decision rule (module docstring) to one stream's readout ``scores [T, O]``.

    Args:
        scores: readout trace, one row per step (membranes, integer or float).
        dt: step in seconds.
        threshold: ``θ`` for every keyword, or one per keyword.
        keywords: how many of the ``O`` readout neurons are keywords (the first ones; the rest,
            e.g. an "other" neuron, only compete in the max). Default: all ``O``.
        refractory: seconds after a detection in which no other is made.

    Raises:
        ShapeError: ``scores`` is not ``[T, O]`` or holds non-finite values.
        ParameterError: bad ``keywords``, ``threshold`` or ``refractory``.
    """
    dt = check_dt(dt)
    refractory = check_real(refractory, "refractory", low=0.0)
    v = np.asarray(scores, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] == 0:
        raise ShapeError(f"scores must be [T, outputs], got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ShapeError("scores hold non-finite values")
    k = v.shape[1] if keywords is None else keywords
    if not 1 <= k <= v.shape[1]:
        raise ParameterError(f"keywords must be in 1..{v.shape[1]} (readout size), got {k}")
    theta = _thresholds(threshold, k)
    winner = v.argmax(axis=1)
    top = v[np.arange(len(v)), winner]
    fires = (winner < k) & (top >= theta[np.minimum(winner, k - 1)])
    out: list[Detection] = []
    last = -np.inf
    for t in np.flatnonzero(fires):
        time = (t + 1) * dt
        if time - last >= refractory - 1e-12:
            out.append(Detection(time, int(winner[t])))
            last = time
    return out


def score(detections: Sequence[Detection], events: np.ndarray | Sequence[tuple[float, float, int]],
          duration_s: float, *, tolerance: float = 0.5) -> DetectionScore:
    """Score one stream's detections against its word events ``[(onset_s, offset_s, label)]``
    (``label`` −1: not a keyword), as the module docstring defines.

    Raises:
        ShapeError: events not ``[n, 3]``, with offset before onset or outside the stream.
        ParameterError: bad ``duration_s`` or ``tolerance``.
    """
    duration_s = check_real(duration_s, "duration_s", low=0.0)
    tolerance = check_real(tolerance, "tolerance", low=0.0)
    ev = np.asarray(events, dtype=np.float64).reshape(-1, 3) if len(events) else np.zeros((0, 3))
    if ev.ndim != 2 or ev.shape[1] != 3:
        raise ShapeError(f"events must be [n, 3] (onset_s, offset_s, label), got {ev.shape}")
    if (ev[:, 1] < ev[:, 0]).any() or (ev[:, 0] < 0).any() or (ev[:, 1] > duration_s).any():
        raise ShapeError(f"events must satisfy 0 ≤ onset ≤ offset ≤ duration_s "
                         f"({duration_s} s)")
    kw = ev[ev[:, 2] >= 0]
    kw = kw[np.argsort(kw[:, 0], kind="stable")]
    hit = np.zeros(len(kw), dtype=bool)
    latencies: list[float] = []
    false_alarms = 0
    for d in sorted(detections, key=lambda d: d.time_s):
        match = np.flatnonzero(~hit & (kw[:, 2] == d.label) & (kw[:, 0] <= d.time_s)
                               & (d.time_s <= kw[:, 1] + tolerance))
        if len(match):
            hit[match[0]] = True
            latencies.append(d.time_s - float(kw[match[0], 0]))
        else:
            false_alarms += 1
    zeros = np.zeros(len(kw), dtype=np.int64)  # one stream; every event a keyword
    non_keyword = non_keyword_seconds(zeros, kw[:, 0], kw[:, 1], zeros, duration_s, 1,
                                      guard_s=tolerance) if duration_s > 0 else 0.0
    return DetectionScore(len(kw), int(hit.sum()), false_alarms, tuple(latencies),
                          non_keyword, duration_s)


def calibrate_threshold(negative_peaks: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """Per-keyword thresholds from the readout peaks on non-keyword samples: ``θ_k`` = the
    ``quantile`` of ``max_t v_t[k]`` over clips that hold no keyword ``k`` (``[n, K]``).

    Raises:
        ShapeError: ``negative_peaks`` is not a non-empty ``[n, K]`` finite array.
        ParameterError: ``quantile`` outside ``(0, 1]``.
    """
    q = check_real(quantile, "quantile", low=0.0, high=1.0, low_open=True)
    p = np.asarray(negative_peaks, dtype=np.float64)
    if p.ndim != 2 or not len(p) or not np.isfinite(p).all():
        raise ShapeError(f"negative_peaks must be a finite [n, keywords] array with n ≥ 1, got "
                         f"shape {p.shape}")
    return np.quantile(p, q, axis=0)

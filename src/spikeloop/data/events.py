"""Event data as tonic-style NumPy structured arrays.

An event array is a 1-d NumPy structured array with one record per spike and the fields

======  =========  =========================================================================
``t``   ``int64``  the time in MICROSECONDS (tonic's unit; the API elsewhere speaks seconds)
``x``   ``int16``  the channel (SHD/SSC: the cochlea unit, ``0 … 699``)
``p``   ``int8``   the polarity (audio has one: ``1``); optional on input
======  =========  =========================================================================

:data:`EVENT_DTYPE` is the layout this package produces. :func:`check_events` also accepts the
arrays other tools hand over — tonic builds its arrays with ``int`` (int64) for every field,
some loaders use a float ``t`` — as long as ``t`` and ``x`` exist and are numeric.

Example:
    >>> ev = make_events([0.0015, 0.0102], [3, 699])
    >>> ev["t"].tolist(), ev["x"].tolist(), event_times(ev).tolist()
    ([1500, 10200], [3, 699], [0.0015, 0.0102])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from spikeloop.checks import check_int, show
from spikeloop.errors import DataFormatError, DTypeError, NonFiniteError, ShapeError

__all__ = ["EVENT_DTYPE", "US_PER_S", "PackedEvents", "as_event_array", "check_events",
           "event_times", "make_events"]

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("p", np.int8)])
"""The event record: time ``t`` (int64 µs), channel ``x`` (int16), polarity ``p`` (int8)."""

US_PER_S = 1_000_000
"""Microseconds per second: ``t_us = round(t_s · 1e6)``."""

_X_MAX = int(np.iinfo(np.int16).max)


def make_events(times_s: Sequence[float] | np.ndarray, channels: Sequence[int] | np.ndarray,
                polarity: Sequence[int] | np.ndarray | int | None = None) -> np.ndarray:
    """Build an event array (:data:`EVENT_DTYPE`) from spike times in seconds and channels.

    ``t = round(times_s · 1e6)`` µs, computed in float64 (a float16 or float32 input is cast
    to float64 BEFORE scaling, so ``1.4`` s in float16 stays ``1 400 391`` µs instead of
    overflowing float16 to ``inf``); ties round half to even. The order of the events is kept.
    ``polarity``: one value for all events (default ``1``) or one per event.

    Raises:
        ShapeError: the inputs are not 1-d of one length.
        DTypeError: times are not real numbers, or channels/polarity not integers.
        NonFiniteError: a time is NaN or ±inf.
        DataFormatError: a negative time, a channel outside ``0 … 32767``, a polarity outside
            int8.
    """
    t = np.asarray(times_s)
    x = np.asarray(channels)
    if t.dtype.kind not in "biuf":
        raise DTypeError(f"make_events: times_s must hold real numbers (seconds), got {t.dtype}")
    if x.dtype.kind not in "biu" and not (x.size == 0 and x.dtype.kind == "f"):
        raise DTypeError(f"make_events: channels must hold integers, got {x.dtype}")
    if t.ndim != 1 or x.shape != t.shape:
        raise ShapeError(f"make_events: times_s and channels must be 1-d of one length, got "
                         f"shapes {t.shape} and {x.shape}")
    t64 = t.astype(np.float64)
    if not np.isfinite(t64).all():
        raise NonFiniteError(f"make_events: times_s holds {int((~np.isfinite(t64)).sum())} "
                             "NaN or infinite values")
    if t64.size and t64.min() < 0:
        raise DataFormatError(f"make_events: times_s must be ≥ 0 s, got {t64.min():g}")
    if x.size and (x.min() < 0 or x.max() > _X_MAX):
        raise DataFormatError(f"make_events: channels must lie in 0 … {_X_MAX}, got "
                              f"{x.min()} … {x.max()}")
    out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    out["t"] = np.rint(t64 * US_PER_S).astype(np.int64)
    out["x"] = x.astype(np.int16)
    if polarity is None:
        out["p"] = 1
    else:
        p = np.asarray(polarity)
        if p.dtype.kind not in "biu":
            raise DTypeError(f"make_events: polarity must hold integers, got {p.dtype}")
        if p.ndim not in (0, 1) or (p.ndim == 1 and p.shape != t.shape):
            raise ShapeError(f"make_events: polarity must be one integer or one per event, "
                             f"got shape {p.shape} for {t.shape[0]} events")
        if p.size and (p.min() < -128 or p.max() > 127):
            raise DataFormatError(f"make_events: polarity must fit int8 (-128 … 127), got "
                                  f"{p.min()} … {p.max()}")
        out["p"] = p.astype(np.int8)
    return out


def check_events(events: Any, who: str = "events", n_channels: int | None = None) -> np.ndarray:
    """Return ``events`` unchanged if it is a valid event array; raise otherwise.

    Valid: a 1-d NumPy structured array with numeric fields ``t`` (µs, integer or float) and
    ``x`` (channel, integer; a float field with whole values is accepted), optionally ``p``
    (numeric); ``t`` finite and ``≥ 0``; ``x`` in ``0 … n_channels − 1`` (``x ≥ 0`` when
    ``n_channels`` is not given). Other fields (tonic's ``y`` for 2-d sensors) are allowed.

    Raises:
        DTypeError: ``events`` is not a NumPy structured array.
        ShapeError: it is not 1-d.
        DataFormatError: ``t`` or ``x`` is missing (the message lists the fields present), a
            field is not numeric, ``x`` is not whole, a negative ``t``, ``x`` out of range.
        NonFiniteError: ``t`` holds NaN or ±inf.
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise DTypeError(f"{who} must be a NumPy structured array with fields t (µs), x "
                         f"(channel) and optionally p, got {show(events)} "
                         f"({type(events).__name__})"
                         + (f" of dtype {events.dtype}" if isinstance(events, np.ndarray)
                            else ""))
    names = events.dtype.names
    for field in ("t", "x"):
        if field not in names:
            raise DataFormatError(f"{who}: the event array has no field {field!r} (fields: "
                                  f"{list(names)}; expected t in µs, x the channel, p optional)")
    for field in ("t", "x", "p"):
        if field in names and events.dtype[field].kind not in "biuf":
            raise DataFormatError(f"{who}: field {field!r} must be numeric, got "
                                  f"{events.dtype[field]}")
    if events.ndim != 1:
        raise ShapeError(f"{who}: an event array must be 1-d (one record per event), got "
                         f"shape {events.shape}")
    if n_channels is not None:
        n_channels = check_int(n_channels, f"{who}: n_channels", 1)
    if events.size == 0:
        return events
    t, x = events["t"], events["x"]
    if t.dtype.kind == "f":
        bad = ~np.isfinite(t)
        if bad.any():
            raise NonFiniteError(f"{who}: field 't' holds {int(bad.sum())} NaN or infinite "
                                 f"times (first at event {int(np.argmax(bad))})")
    if t.min() < 0:
        raise DataFormatError(f"{who}: field 't' must be ≥ 0 µs, got {t.min()} (event "
                              f"{int(np.argmin(t))})")
    if x.dtype.kind == "f" and not (np.isfinite(x).all() and (x == np.round(x)).all()):
        raise DataFormatError(f"{who}: field 'x' must hold whole channel numbers, got "
                              "fractional or non-finite values")
    lo, hi = x.min(), x.max()
    if lo < 0 or (n_channels is not None and hi >= n_channels):
        limit = f"0 … {n_channels - 1}" if n_channels is not None else "≥ 0"
        raise DataFormatError(f"{who}: field 'x' (channel) must lie in {limit}, got "
                              f"{lo:g} … {hi:g}")
    return events


def event_times(events: np.ndarray) -> np.ndarray:
    """The events' times in seconds, float64: ``t / 1e6``.

    Raises:
        DTypeError: not a structured array (the other errors of :func:`check_events` too).
    """
    check_events(events, "event_times: events")
    return events["t"].astype(np.float64) / US_PER_S


def as_event_array(events: np.ndarray, who: str = "events",
                   n_channels: int | None = None) -> np.ndarray:
    """``events`` (any array :func:`check_events` accepts) converted to :data:`EVENT_DTYPE`:
    a float ``t`` (µs) is rounded to whole µs, a missing ``p`` becomes ``1``. An array that
    already has the dtype is returned as is (no copy).

    Raises:
        DataFormatError: ``x`` or ``p`` does not fit int16/int8 (and the errors of
            :func:`check_events`).
    """
    check_events(events, who, n_channels)
    if events.dtype == EVENT_DTYPE:
        return events
    out = np.empty(events.shape[0], dtype=EVENT_DTYPE)
    t = events["t"]
    out["t"] = np.rint(t).astype(np.int64) if t.dtype.kind == "f" else t.astype(np.int64)
    if events.size and events["x"].max() > _X_MAX:
        raise DataFormatError(f"{who}: field 'x' must fit int16 (≤ {_X_MAX}), got "
                              f"{events['x'].max()}")
    out["x"] = events["x"].astype(np.int16)
    if "p" in events.dtype.names:
        p = events["p"]
        if p.size and (p.min() < -128 or p.max() > 127):
            raise DataFormatError(f"{who}: field 'p' must fit int8, got {p.min()} … {p.max()}")
        out["p"] = p.astype(np.int8)
    else:
        out["p"] = 1
    return out


class PackedEvents(Sequence[np.ndarray]):
    """Many event arrays stored as two flat arrays and offsets: sample ``i`` is made on access
    from ``times_s[offsets[i]:offsets[i + 1]]`` and ``channels[...]`` exactly as
    :func:`make_events` makes it (``t = round(float64(times_s) · 1e6)`` µs, ``p = 1``).

    Keeping the file's dtypes (SHD: float16 seconds and uint16 channels, 4 bytes per spike
    instead of the 11 of :data:`EVENT_DTYPE`) keeps a large data set (SSC) in memory. The
    values are checked once here, for all samples, so readers of single samples need not check.

    Raises:
        ShapeError: the arrays are not 1-d, of one length, or ``offsets`` does not run from 0 to
            that length, non-decreasing.
        NonFiniteError: a NaN or infinite time. DataFormatError: a negative time, a channel
            outside ``0 … 32767`` (or ``0 … n_channels − 1``).
    """

    def __init__(self, times_s: np.ndarray, channels: np.ndarray, offsets: np.ndarray,
                 n_channels: int | None = None) -> None:
        t, x, off = np.asarray(times_s), np.asarray(channels), np.asarray(offsets)
        if t.dtype.kind not in "biuf" or x.dtype.kind not in "biu" or off.dtype.kind not in "iu":
            raise DTypeError(f"PackedEvents: times must be real, channels and offsets integers, "
                             f"got {t.dtype}, {x.dtype}, {off.dtype}")
        if t.ndim != 1 or x.shape != t.shape or off.ndim != 1 or off.size < 1:
            raise ShapeError(f"PackedEvents: times {t.shape} and channels {x.shape} must be 1-d "
                             f"of one length, offsets {off.shape} 1-d and not empty")
        if off[0] != 0 or off[-1] != t.size or (np.diff(off) < 0).any():
            raise ShapeError(f"PackedEvents: offsets must run from 0 to {t.size} without "
                             f"decreasing, got {off[0]} … {off[-1]}")
        if t.size:
            t64 = t.astype(np.float64)
            if not np.isfinite(t64).all():
                raise NonFiniteError(f"PackedEvents: {int((~np.isfinite(t64)).sum())} NaN or "
                                     "infinite times")
            if t64.min() < 0:
                raise DataFormatError(f"PackedEvents: times must be ≥ 0 s, got {t64.min():g}")
            top = _X_MAX if n_channels is None else check_int(n_channels, "n_channels", 1) - 1
            if x.min() < 0 or x.max() > top:
                raise DataFormatError(f"PackedEvents: channels must lie in 0 … {top}, got "
                                      f"{x.min()} … {x.max()}")
        self.times_s, self.channels, self.offsets = t, x, off.astype(np.int64)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        n = len(self)
        i = check_int(index, "PackedEvents: index", -n, n - 1) % n
        a, b = self.offsets[i], self.offsets[i + 1]
        out = np.empty(b - a, dtype=EVENT_DTYPE)
        out["t"] = np.rint(self.times_s[a:b].astype(np.float64) * US_PER_S).astype(np.int64)
        out["x"] = self.channels[a:b].astype(np.int16)
        out["p"] = 1
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def sample_of_event(self) -> np.ndarray:
        """The sample index of each stored event (int64, one per spike)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.offsets))

    @property
    def nbytes(self) -> int:
        """Memory held by the stored arrays, in bytes."""
        return int(self.times_s.nbytes + self.channels.nbytes + self.offsets.nbytes)

    def __repr__(self) -> str:
        return (f"PackedEvents({len(self)} samples, {self.times_s.size} events, "
                f"{self.times_s.dtype}/{self.channels.dtype}, {self.nbytes / 2**20:.1f} MiB)")

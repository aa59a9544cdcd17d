"""Transforms on event arrays and rasters: binning, channel down-sampling, crop/pad in time and
the augmentations used on SHD.

Every transform is a callable object ``transform(sample, rng=None)``. Deterministic ones
ignore ``rng``; random ones (:class:`TimeJitter`, :class:`TimeShift`, :class:`ChannelShift`)
need a :class:`numpy.random.Generator` and draw only from it, so a sample's augmentation is a
function of the generator's seed (:class:`~spikeloop.data.loading.EventDataset` seeds one per
sample and epoch). :class:`Compose` chains transforms and hands ``rng`` on.

Events are tonic-style structured arrays (:mod:`spikeloop.data.events`; ``t`` in µs); a
raster is a float32 tensor ``[T, C]`` of spike counts per time bin (time-major, as everywhere in
spikeloop).

Nothing is dropped silently: a transform that removes events or spikes (events past the raster,
events shifted below ``t = 0`` or out of the channel range, time steps cropped away) counts
them in its ``dropped`` attribute (a running total over the calls in this process) and in
``last_dropped`` (the last call). Under a DataLoader with workers each worker holds its own
copy, so these counters describe the main process only; the SHD loader reports the events past
its window from the data itself (``SHD.events_past_duration``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import check_dt, check_int, check_real, check_type, show
from spikeloop.data.events import US_PER_S, as_event_array, check_events
from spikeloop.errors import ArgumentTypeError, ParameterError, ShapeError

__all__ = [
    "ChannelShift",
    "Compose",
    "CropTime",
    "Downsample",
    "FixedLength",
    "PadTime",
    "TimeJitter",
    "TimeShift",
    "ToRaster",
    "Transform",
]


class Transform:
    """Base of the transforms: ``random`` says whether ``__call__`` needs ``rng``; ``dropped``
    and ``last_dropped`` count what the transform removed (events or spikes)."""

    random = False

    def __init__(self) -> None:
        self.dropped = 0
        self.last_dropped = 0

    def _count(self, n: int) -> None:
        self.last_dropped = int(n)
        self.dropped += int(n)

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if k not in ("dropped", "last_dropped") and not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def _generator(rng: Any, who: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(f"{who} is random and needs rng, a numpy.random.Generator "
                                f"(np.random.default_rng(seed)), got {show(rng)} "
                                f"({type(rng).__name__})")
    return rng


def _raster(x: Any, who: str) -> Tensor:
    check_type(x, who, Tensor, "a raster tensor [T, C, ...]")
    if x.dim() < 2:
        raise ShapeError(f"{who}: a raster is [T, C, ...] (time-major), got shape "
                         f"{tuple(x.shape)}")
    return x


class ToRaster(Transform):
    """Bin events into a float32 raster ``[T, C]`` of spike counts.

    Bin ``k`` holds the events with ``k·dt ≤ t < (k + 1)·dt`` (``t`` in seconds; computed on
    whole microseconds when ``dt`` is a whole number of µs, so a spike exactly on a bin edge
    goes to the later bin). The number of bins: ``T`` if given, else
    ``round(duration / dt)``, else just enough for the last event (``⌊t_max / dt⌋ + 1``; an
    empty sample gives one empty bin).

    Events at or past ``T·dt`` are not in the raster: they are counted in ``dropped`` /
    ``last_dropped`` (``strict=True`` raises instead). Channels ``≥ n_channels`` are an error,
    never dropped.

    Example:
        >>> from spikeloop.data.events import make_events
        >>> ToRaster(dt=1e-3, n_channels=2, T=3)(make_events([0.0, 0.0005, 0.0025], [0, 0, 1]))
        tensor([[2., 0.],
                [0., 0.],
                [0., 1.]])

    Raises:
        TimeStepError: ``dt`` is not a number of seconds ``> 0``.
        ParameterError: both ``duration`` and ``T`` given; either ``< dt`` or ``< 1``; with
            ``strict``, an event past the window.
        DataFormatError: a bad event array or a channel ``≥ n_channels`` (see
            :func:`~spikeloop.data.events.check_events`).
    """

    def __init__(self, dt: float, n_channels: int, duration: float | None = None,
                 T: int | None = None, strict: bool = False) -> None:
        super().__init__()
        self.dt = check_dt(dt, "ToRaster: dt")
        self.n_channels = check_int(n_channels, "ToRaster: n_channels", 1)
        if duration is not None and T is not None:
            raise ParameterError("ToRaster: give duration or T, not both")
        if duration is not None:
            duration = check_real(duration, "ToRaster: duration", 0, low_open=True)
            T = round(duration / self.dt)
            if T < 1:
                raise ParameterError(f"ToRaster: duration {duration:g} s is shorter than half "
                                     f"a step dt = {self.dt:g} s")
        self.T = None if T is None else check_int(T, "ToRaster: T", 1)
        self.strict = bool(strict)
        dt_us = self.dt * US_PER_S
        self._dt_us_int = round(dt_us) if abs(dt_us - round(dt_us)) <= 1e-9 * dt_us else None

    def bins(self, events: np.ndarray) -> np.ndarray:
        """The bin index ``⌊t / dt⌋`` of each event (int64)."""
        return self.bins_of_times_us(events["t"])

    def bins_of_times_us(self, t: np.ndarray) -> np.ndarray:
        """The bin index ``⌊t / dt⌋`` of times ``t`` in µs (int64)."""
        if self._dt_us_int is not None and t.dtype.kind in "iu":
            return t.astype(np.int64) // self._dt_us_int
        return np.floor(t.astype(np.float64) / (self.dt * US_PER_S)).astype(np.int64)

    def __call__(self, events: np.ndarray, rng: np.random.Generator | None = None) -> Tensor:
        check_events(events, "ToRaster: events", self.n_channels)
        k = self.bins(events)
        T = self.T if self.T is not None else (int(k.max()) + 1 if k.size else 1)
        inside = k < T
        n_out = int(k.size - inside.sum())
        if n_out and self.strict:
            raise ParameterError(f"ToRaster: {n_out} events lie at or past the window "
                                 f"T·dt = {T * self.dt:g} s (strict=True)")
        self._count(n_out)
        flat = k[inside] * self.n_channels + events["x"][inside].astype(np.int64)
        counts = np.bincount(flat, minlength=T * self.n_channels)
        return torch.from_numpy(counts.reshape(T, self.n_channels).astype(np.float32))


class Downsample(Transform):
    """Merge groups of ``factor`` neighbouring channels.

    On events, channel ``x`` becomes ``x // factor``; on a raster ``[T, C, ...]`` (a tensor)
    groups of ``factor`` channels are summed. Both give ``⌈C / factor⌉`` channels (the last
    group is smaller when ``factor`` does not divide ``C``), so binning then down-sampling equals
    down-sampling then binning. Nothing is dropped.

    Raises:
        ParameterError: ``factor < 1``.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = check_int(factor, "Downsample: factor", 1)

    def n_out(self, n_channels: int) -> int:
        """Channels after down-sampling ``n_channels``: ``⌈n_channels / factor⌉``."""
        return -(-n_channels // self.factor)

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        if isinstance(sample, Tensor):
            x = _raster(sample, "Downsample: raster")
            c = x.shape[1]
            pad = self.n_out(c) * self.factor - c
            if pad:
                x = torch.cat([x, x.new_zeros((x.shape[0], pad, *x.shape[2:]))], dim=1)
            return x.reshape(x.shape[0], -1, self.factor, *x.shape[2:]).sum(dim=2)
        events = as_event_array(sample, "Downsample: events")
        out = events.copy()
        out["x"] = events["x"] // self.factor
        return out


class CropTime(Transform):
    """Keep time steps ``start … start + T − 1`` of a raster ``[T', C, ...]`` (fewer if it is
    shorter). The spikes in the steps cut away are counted in ``dropped``.

    Raises:
        ParameterError: ``T < 1`` or ``start < 0``.
    """

    def __init__(self, T: int, start: int = 0) -> None:
        super().__init__()
        self.T = check_int(T, "CropTime: T", 1)
        self.start = check_int(start, "CropTime: start", 0)

    def __call__(self, raster: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        x = _raster(raster, "CropTime: raster")
        kept = x[self.start:self.start + self.T]
        self._count(int(x.sum().item() - kept.sum().item()))
        return kept


class PadTime(Transform):
    """Zero-pad a raster ``[T', C, ...]`` at the end to at least ``T`` steps (a longer one is
    returned unchanged).

    Raises:
        ParameterError: ``T < 1``.
    """

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = check_int(T, "PadTime: T", 1)

    def __call__(self, raster: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        x = _raster(raster, "PadTime: raster")
        if x.shape[0] >= self.T:
            return x
        return torch.cat([x, x.new_zeros((self.T - x.shape[0], *x.shape[1:]))])


class FixedLength(Transform):
    """Crop or zero-pad a raster to exactly ``T`` steps (:class:`CropTime` then
    :class:`PadTime`); cropped spikes are counted in ``dropped``.

    Raises:
        ParameterError: ``T < 1``.
    """

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = check_int(T, "FixedLength: T", 1)
        self._crop = CropTime(self.T)
        self._pad = PadTime(self.T)

    def __call__(self, raster: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        out = self._pad(self._crop(raster))
        self._count(self._crop.last_dropped)
        return out


def _keep(events: np.ndarray, keep: np.ndarray, transform: Transform) -> np.ndarray:
    n_out = int(keep.size - np.count_nonzero(keep))
    transform._count(n_out)
    return events[keep] if n_out else events


class TimeJitter(Transform):
    """Move every event by its own Gaussian offset: ``t' = t + ε``, ``ε ~ N(0, std_s²)``,
    rounded to whole µs, then re-sorted by time (stable).

    Events moved below ``t = 0`` are DROPPED and counted (``dropped``/``last_dropped``); none
    are clipped to 0. Events moved past a raster's window are dropped (and counted) by
    :class:`ToRaster`. Time jitter on SHD: Nowotny et al. (2025), EventProp on SHD.

    Raises:
        ParameterError: ``std_s < 0``.
        ArgumentTypeError: ``rng`` is not a numpy Generator.
    """

    random = True

    def __init__(self, std_s: float) -> None:
        super().__init__()
        self.std_s = check_real(std_s, "TimeJitter: std_s", 0)

    def __call__(self, events: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _generator(rng, "TimeJitter")
        ev = as_event_array(events, "TimeJitter: events").copy()
        eps = rng.normal(0.0, self.std_s * US_PER_S, size=ev.size)
        t = np.rint(ev["t"].astype(np.float64) + eps).astype(np.int64)
        ev["t"] = t
        ev = _keep(ev, t >= 0, self)
        return ev[np.argsort(ev["t"], kind="stable")]


class TimeShift(Transform):
    """Move all events of a sample by one offset ``s ~ U(−max_s, max_s)`` (seconds), rounded to
    whole µs: ``t' = t + s``.

    Events moved below ``t = 0`` are DROPPED and counted (``dropped``/``last_dropped``);
    events moved past a raster's window are dropped (and counted) by :class:`ToRaster`. Time
    shift on SHD: Nowotny et al. (2025), EventProp on SHD.

    Raises:
        ParameterError: ``max_s < 0``.
        ArgumentTypeError: ``rng`` is not a numpy Generator.
    """

    random = True

    def __init__(self, max_s: float) -> None:
        super().__init__()
        self.max_s = check_real(max_s, "TimeShift: max_s", 0)

    def __call__(self, events: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _generator(rng, "TimeShift")
        ev = as_event_array(events, "TimeShift: events").copy()
        shift = round(rng.uniform(-self.max_s, self.max_s) * US_PER_S)
        ev["t"] = ev["t"] + shift
        return _keep(ev, ev["t"] >= 0, self)


class ChannelShift(Transform):
    """Move all events of a sample by one whole number of channels ``s``, uniform on
    ``−max … max``: ``x' = x + s``.

    Events moved outside ``0 … n_channels − 1`` are DROPPED and counted
    (``dropped``/``last_dropped``), not wrapped or clipped. ``n_channels`` defaults to SHD/SSC's
    700. Channel shift on SHD: Cramer et al. (2022); Hammouamri et al. (2024, learned delays /
    DCLS).

    Raises:
        ParameterError: ``max < 0`` or ``n_channels < 1``.
        ArgumentTypeError: ``rng`` is not a numpy Generator.
    """

    random = True

    def __init__(self, max: int, n_channels: int = 700) -> None:
        super().__init__()
        self.max = check_int(max, "ChannelShift: max", 0)
        self.n_channels = check_int(n_channels, "ChannelShift: n_channels", 1)

    def __call__(self, events: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _generator(rng, "ChannelShift")
        ev = as_event_array(events, "ChannelShift: events", self.n_channels)
        shift = int(rng.integers(-self.max, self.max + 1))
        x = ev["x"].astype(np.int64) + shift
        keep = (x >= 0) & (x < self.n_channels)
        out = ev.copy()
        out["x"] = np.where(keep, x, 0).astype(np.int16)
        return _keep(out, keep, self)


class Compose(Transform):
    """Apply ``transforms`` in order, handing ``rng`` to each (a plain function is called with
    the sample only). ``random`` is true when any member is random; ``dropped`` sums the
    members' counts.

    Raises:
        ArgumentTypeError: a member is not callable.
    """

    def __init__(self, transforms: Sequence[Callable[..., Any]]) -> None:
        super().__init__()
        self.transforms = list(transforms)
        for k, t in enumerate(self.transforms):
            if not callable(t):
                raise ArgumentTypeError(f"Compose: transforms[{k}] must be callable, got "
                                        f"{show(t)} ({type(t).__name__})")
        self.random = any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, sample: Any, rng: np.random.Generator | None = None) -> Any:
        for t in self.transforms:
            sample = apply(t, sample, rng)
        return sample

    @property
    def dropped(self) -> int:  # type: ignore[override]
        return sum(getattr(t, "dropped", 0) for t in self.transforms)

    @dropped.setter
    def dropped(self, value: int) -> None:
        pass

    @property
    def last_dropped(self) -> int:  # type: ignore[override]
        return sum(getattr(t, "last_dropped", 0) for t in self.transforms)

    @last_dropped.setter
    def last_dropped(self, value: int) -> None:
        pass

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def apply(transform: Callable[..., Any], sample: Any, rng: np.random.Generator | None) -> Any:
    """Call ``transform`` on ``sample``: a :class:`Transform` gets ``rng``, a plain callable
    only the sample."""
    if isinstance(transform, Transform):
        return transform(sample, rng)
    return transform(sample)

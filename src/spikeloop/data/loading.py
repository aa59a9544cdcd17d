"""Data sets of event samples for ``torch.utils.data`` and the time-major collate.

:class:`EventDataset` holds a list of event arrays (tonic-style, :mod:`spikeloop.data.events`)
with their labels and a transform (usually ending in :class:`~spikeloop.data.transforms.ToRaster`).
A random transform draws from a generator seeded per sample:

    rng = np.random.default_rng([seed, epoch, index])

so sample ``index`` of epoch ``epoch`` is the same whichever DataLoader worker builds it, with
any number of workers, and after a resume that sets ``epoch`` again. :func:`time_major_collate`
stacks samples ``[T_i, C, ...]`` into a batch ``[T_max, B, C, ...]``.

Example:
    >>> from torch.utils.data import DataLoader
    >>> from spikeloop.data.events import make_events
    >>> from spikeloop.data.transforms import ToRaster
    >>> ds = EventDataset([make_events([0.001], [0]), make_events([0.004], [1])], [0, 1],
    ...                   transform=ToRaster(dt=1e-3, n_channels=2))
    >>> x, y = next(iter(DataLoader(ds, batch_size=2, collate_fn=time_major_collate)))
    >>> tuple(x.shape), y.tolist()
    ((5, 2, 2), [0, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from spikeloop.checks import check_int, check_type, show
from spikeloop.data.events import PackedEvents, check_events
from spikeloop.data.transforms import apply
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    DTypeError,
    ParameterError,
    ShapeError,
)

__all__ = ["EventDataset", "LabelledSubset", "time_major_collate"]


def time_major_collate(batch: Sequence[tuple[Any, Any]]) -> tuple[Tensor, Tensor]:
    """Stack ``(raster [T_i, C, ...], label)`` pairs into ``(x [T_max, B, C, ...], y [B])``.

    ``x`` is zero-padded at the END of each shorter sample (``x[T_i:, b] = 0``) and has the
    samples' dtype; ``y`` is int64. A NumPy raster is converted with ``torch.as_tensor``.

    Raises:
        ParameterError: an empty batch.
        ArgumentTypeError: a sample is not a pair, or a raster is not a tensor/array.
        ShapeError: rasters of rank < 1, or whose shapes after the time axis disagree.
        DTypeError: rasters of different dtypes, or a label that is not an integer.
    """
    if len(batch) == 0:
        raise ParameterError("time_major_collate: the batch is empty")
    xs, ys = [], []
    for b, item in enumerate(batch):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ArgumentTypeError(f"time_major_collate: batch[{b}] must be a pair (raster, "
                                    f"label), got {show(item)} ({type(item).__name__})")
        x, y = item
        if isinstance(x, np.ndarray):
            x = torch.as_tensor(x)
        check_type(x, f"time_major_collate: batch[{b}] raster", Tensor,
                   "a tensor [T, C, ...] (or a NumPy array)")
        if x.dim() < 1:
            raise ShapeError(f"time_major_collate: batch[{b}] raster must be [T, ...], got a "
                             "scalar")
        if xs and (x.shape[1:] != xs[0].shape[1:] or x.dtype != xs[0].dtype):
            err = DTypeError if x.shape[1:] == xs[0].shape[1:] else ShapeError
            raise err(f"time_major_collate: batch[{b}] raster is {tuple(x.shape)} "
                      f"{x.dtype}, batch[0] is {tuple(xs[0].shape)} {xs[0].dtype}: all samples "
                      "must agree after the time axis and in dtype")
        label = y.item() if isinstance(y, Tensor | np.ndarray | np.generic) else y
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise DTypeError(f"time_major_collate: batch[{b}] label must be an integer, got "
                             f"{show(y)} ({type(y).__name__})")
        xs.append(x)
        ys.append(int(label))
    t_max = max(x.shape[0] for x in xs)
    out = xs[0].new_empty((t_max, len(xs), *xs[0].shape[1:]))
    for b, x in enumerate(xs):
        out[: x.shape[0], b] = x
        out[x.shape[0]:, b] = 0
    return out, torch.tensor(ys, dtype=torch.int64)


class EventDataset(Dataset):
    """Event samples with labels and a transform, for ``torch.utils.data``.

    ``events`` is a list of event arrays, or a
    :class:`~spikeloop.data.events.PackedEvents` (kept packed; samples are made on access).

    ``dataset[i]`` is ``(transform(events[i], rng), labels[i])`` with
    ``rng = np.random.default_rng([seed, epoch, i])`` (a plain-function transform is called
    without ``rng``); without a transform the event array itself. Set ``epoch`` (or call
    :meth:`set_epoch`) at the start of each epoch to draw new augmentations; a DataLoader copies
    the dataset into its workers when an iteration starts, so the new epoch reaches them
    (with ``persistent_workers=True`` it would not: do not combine the two).

    Attributes:
        labels: int64 array ``[N]``.
        n_classes: the number of classes (given, or ``max(labels) + 1``).
        sample_shape: a sample's shape after the time axis, e.g. ``(700,)`` (given, or measured
            on sample 0 when first read).
        epoch: the epoch that seeds the augmentation (settable).
        seed: the base seed.

    Raises:
        ShapeError: ``events`` and ``labels`` differ in length, or the labels are not 1-d.
        DTypeError: labels that are not integers.
        ParameterError: a negative label, one ``≥ n_classes``, a negative seed.
        DataFormatError: a bad event array (see :func:`~spikeloop.data.events.check_events`;
            ``n_channels`` bounds the channels when given).
    """

    def __init__(self, events: Sequence[np.ndarray], labels: Sequence[int] | np.ndarray,
                 transform: Callable[..., Any] | None = None, *, seed: int = 0,
                 n_classes: int | None = None, sample_shape: tuple[int, ...] | None = None,
                 n_channels: int | None = None) -> None:
        packed = isinstance(events, PackedEvents)
        self.events: Sequence[np.ndarray] = events if packed else list(events)
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" and not (labels.size == 0):
            raise DTypeError(f"EventDataset: labels must be integers, got {labels.dtype}")
        if labels.ndim != 1 or labels.shape[0] != len(self.events):
            raise ShapeError(f"EventDataset: one label per sample: {len(self.events)} samples, "
                             f"labels of shape {labels.shape}")
        self.labels = labels.astype(np.int64)
        if packed:  # checked when packed; only the channel bound is left
            ch = events.channels
            if n_channels is not None and ch.size and ch.max() >= n_channels:
                raise DataFormatError(f"EventDataset: events hold channel {ch.max()}, must lie "
                                      f"in 0 … {n_channels - 1}")
        else:
            for k, ev in enumerate(self.events):
                check_events(ev, f"EventDataset: events[{k}]", n_channels)
        if self.labels.size and self.labels.min() < 0:
            raise ParameterError(f"EventDataset: labels must be ≥ 0, got {self.labels.min()}")
        top = int(self.labels.max()) + 1 if self.labels.size else 0
        self.n_classes = top if n_classes is None else check_int(
            n_classes, "EventDataset: n_classes", max(top, 1))
        if transform is not None and not callable(transform):
            raise ArgumentTypeError(f"EventDataset: transform must be callable, got "
                                    f"{show(transform)}")
        self.transform = transform
        self.seed = check_int(seed, "EventDataset: seed", 0)
        self.epoch = 0
        self._sample_shape = None if sample_shape is None else tuple(sample_shape)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return (self[i] for i in range(len(self)))

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the augmentation."""
        self.epoch = check_int(epoch, "EventDataset: epoch", 0)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.events)
        index = check_int(index, "EventDataset: index", -n, n - 1)
        index %= n
        sample = self.events[index]
        if self.transform is not None:
            sample = apply(self.transform, sample, self.rng(index))
        return sample, int(self.labels[index])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """A sample's shape after the time axis (measured on sample 0 if not given)."""
        if self._sample_shape is None:
            if len(self.events) == 0:
                raise ParameterError("EventDataset: sample_shape of an empty data set is "
                                     "unknown (pass sample_shape=)")
            x = self[0][0]
            self._sample_shape = tuple(x.shape[1:]) if hasattr(x, "shape") else ()
        return self._sample_shape


class LabelledSubset(Subset):
    """A named subset of an :class:`EventDataset` that keeps its ``labels``, ``n_classes``,
    ``sample_shape`` and ``epoch`` (the epoch is the parent's: setting it sets the parent's).

    ``name`` says how it was chosen (e.g. ``"speaker-holdout val: speakers [9]"``).
    """

    def __init__(self, dataset: EventDataset, indices: Sequence[int], name: str) -> None:
        super().__init__(dataset, list(int(i) for i in indices))
        self.name = name

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels[np.asarray(self.indices, dtype=np.int64)]

    @property
    def n_classes(self) -> int:
        return self.dataset.n_classes

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.dataset.sample_shape

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.dataset.set_epoch(value)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return (self[i] for i in range(len(self)))

    def set_epoch(self, epoch: int) -> None:
        """Set the parent's epoch."""
        self.dataset.set_epoch(epoch)

    def __repr__(self) -> str:
        return f"LabelledSubset({self.name!r}, {len(self)} samples)"

"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC): the published HDF5 layout.

Cramer, Stradmann, Schemmel & Zenke (2022), "The Heidelberg Spiking Data Sets for the
Systematic Evaluation of Spiking Neural Networks", IEEE TNNLS. One file per split
(``shd_train.h5``, ``shd_test.h5``; SSC adds ``ssc_valid.h5``) holds, per sample ``i``:

========================  ==========================================================
``spikes/times[i]``       spike times in seconds, variable length, float16
``spikes/units[i]``       the channel of each spike, 0 … 699, variable length, uint16
``labels[i]``             the class, uint16
``extra/speaker[i]``      the speaker's id, uint16
``extra/keys[k]``         the name of class ``k`` (a string)
``extra/meta_info/...``   speakers' gender, age, body height (not read here)
========================  ==========================================================

The files are served gzipped (``shd_train.h5.gz``) at https://zenkelab.org/datasets/ (mirror
https://compneuro.net/datasets/); the user downloads and un-zips them, nothing downloads here.
SHD has 20 classes (8156 train / 2264 test samples in the current release, 8332 / 2088 in the
2019 one; 12 speakers, two of them only in the test file); SSC has 35 classes and an official
``ssc_valid.h5``. SHD has no validation file: :func:`speaker_holdout` makes one (ours, not
official). The loader accepts any integer dtype for units, labels and speakers and any float
dtype for times; :func:`write_shd` writes the dtypes in the table.

Reading (:func:`read_shd`): times are cast from float16 to float64 BEFORE scaling to µs.
(tonic's ``HSD`` multiplies the float16 array by ``1e6`` — ``tonic/datasets/hsd.py``,
``make_structured_array(file["spikes/times"][index] * 1e6, ...)`` — which under NumPy 2's
promotion stays float16 and overflows to ``inf`` for every time above 65.5 ms.) A sample with a
non-finite time is dropped, counted and reported, never repaired.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeloop.checks import check_choice, check_int, check_path, show
from spikeloop.data.catalog import DATA_SETS
from spikeloop.data.events import US_PER_S, PackedEvents
from spikeloop.data.loading import EventDataset, LabelledSubset
from spikeloop.data.transforms import Compose, Downsample, ToRaster
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    MissingDataError,
    ParameterError,
    ShapeError,
)

__all__ = ["N_CHANNELS", "SHD", "SSC", "ShdFile", "read_shd", "speaker_holdout", "write_shd"]

N_CHANNELS = 700
"""Channels of the SHD/SSC cochlea model (``spikes/units`` lies in ``0 … 699``)."""


def write_shd(
    path: str | os.PathLike[str],
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    speakers: Sequence[int] | np.ndarray,
    keys: Sequence[str],
) -> None:
    """Write samples as an HDF5 file in the published SHD layout (the table above).

    ``times[i]`` (seconds) and ``units[i]`` (channels ``< 700``) are sample ``i``'s spikes; times
    are stored as float16, as in the published files (a time is rounded to float16's 11-bit
    mantissa: ≤ 0.5 ms at 1 s).

    Raises:
        ShapeError: the lists' lengths disagree, or a sample's times and units do.
        DataFormatError: a unit outside ``0 … 699``, a label outside ``0 … len(keys) - 1``.
    """
    import h5py

    n = len(labels)
    if not (len(times) == len(units) == len(speakers) == n):
        raise ShapeError(f"write_shd: times, units, labels and speakers must have one entry "
                         f"per sample, got {len(times)}, {len(units)}, {n}, {len(speakers)}")
    labels = np.asarray(labels)
    for k, (t, u) in enumerate(zip(times, units, strict=True)):
        if np.shape(t) != np.shape(u) or np.ndim(t) != 1:
            raise ShapeError(f"write_shd: sample {k}: times {np.shape(t)} and units "
                             f"{np.shape(u)} must be 1-d of one length")
        if len(u) and (np.min(u) < 0 or np.max(u) >= N_CHANNELS):
            raise DataFormatError(f"write_shd: sample {k}: units must lie in 0 … "
                                  f"{N_CHANNELS - 1}, got {np.min(u)} … {np.max(u)}")
    n_keys = check_int(len(keys), "write_shd: keys", 1)
    if n and (labels.min() < 0 or labels.max() >= n_keys):
        raise DataFormatError(f"write_shd: labels must lie in 0 … {n_keys - 1} (one key per "
                              f"class), got {labels.min()} … {labels.max()}")
    with h5py.File(path, "w") as f:
        spikes = f.create_group("spikes")
        spikes.create_dataset("times", data=_ragged(times, np.float16),
                              dtype=h5py.vlen_dtype(np.float16))
        spikes.create_dataset("units", data=_ragged(units, np.uint16),
                              dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=labels.astype(np.uint16))
        extra = f.create_group("extra")
        extra.create_dataset("speaker", data=np.asarray(speakers).astype(np.uint16))
        extra.create_dataset("keys", data=[str(k).encode() for k in keys])


def _ragged(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for k, a in enumerate(arrays):
        out[k] = np.asarray(a, dtype=dtype)
    return out


# ----------------------------------------------------------------------------- reading

def _source(file_name: str) -> str:
    """Where an SHD or SSC file comes from: the catalog's entry (one text for ``spikeloop
    data``, the catalog's errors and these); nothing is downloaded here."""
    name = "ssc" if file_name.startswith("ssc") else "shd"
    return f"{DATA_SETS[name].how} (nothing is downloaded here)"


@dataclass
class ShdFile:
    """The content of one SHD/SSC file, in memory.

    ``events[i]`` is sample ``i`` as an event array (:data:`~spikeloop.data.events.EVENT_DTYPE`,
    ``t`` in µs, ``p = 1``), made on access from the file's float16 times and uint16 units
    (:class:`~spikeloop.data.events.PackedEvents`: 4 bytes per spike in memory);
    ``labels``/``speakers`` are int64 (``speakers`` is ``None`` for a file without
    ``extra/speaker``). ``source_index[i]`` is sample ``i``'s row in the file;
    ``dropped`` lists the rows left out because a spike time is NaN or infinite.
    """

    path: Path
    events: PackedEvents
    labels: np.ndarray
    speakers: np.ndarray | None
    keys: list[str]
    source_index: np.ndarray
    dropped: list[int] = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        """Samples left out for non-finite spike times."""
        return len(self.dropped)


def _need(f: Any, name: str, path: Path) -> Any:
    """The data set ``name`` of the open file ``f``, or a DataFormatError naming the missing
    group or data set and the file."""
    import h5py

    parts = name.split("/")
    node = f
    for k, part in enumerate(parts):
        if not isinstance(node, h5py.Group):
            raise DataFormatError(f"{path}: {'/'.join(parts[:k])!r} must be a group holding "
                                  f"{part!r}, got a data set — not the published SHD/SSC layout")
        if part not in node:
            where = "/".join(parts[:k]) or "/"
            kind = "data set" if k == len(parts) - 1 else "group"
            raise DataFormatError(f"{path}: no {kind} {'/'.join(parts[:k + 1])!r} (in {where!r})"
                                  f" — not the published SHD/SSC layout (spikes/times, "
                                  f"spikes/units, labels, extra/keys, extra/speaker)")
        node = node[part]
    return node


def _decode(key: Any) -> str:
    return key.decode() if isinstance(key, bytes | np.bytes_) else str(key)


def read_shd(path: str | os.PathLike[str]) -> ShdFile:
    """Read an SHD/SSC HDF5 file (the layout in the module docstring) into memory.

    Spike times are cast from float16 to float64 and then scaled to whole microseconds
    (``t_us = round(t · 1e6)``), so the published times up to ~1.4 s keep their value. A sample
    whose times hold NaN or ±inf is DROPPED: it is listed in ``ShdFile.dropped`` and a
    ``UserWarning`` says how many. ``extra/speaker`` may be absent (``speakers = None``).

    Raises:
        MissingDataError: ``path`` does not exist (the message says where SHD comes from).
        DataFormatError: not an HDF5 file; a missing group or data set (named, with the file);
            ``spikes/times``, ``spikes/units``, ``labels`` (and ``extra/speaker``) of different
            lengths (both lengths named); a sample whose times and units differ in length; a unit
            outside ``0 … 699``; a negative time; a label outside ``0 … len(keys) − 1``.
    """
    import h5py

    path = check_path(path, "read_shd: path")
    if not path.is_file():
        raise MissingDataError(f"SHD/SSC file not found: {path}. To get it, "
                               + _source(path.name))
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path}: not an HDF5 file ({e}); SHD/SSC files are HDF5 "
                              "(un-zip the .h5.gz first)") from None
    with f:
        times = _need(f, "spikes/times", path)[()]
        units = _need(f, "spikes/units", path)[()]
        labels = np.asarray(_need(f, "labels", path)[()])
        keys = [_decode(k) for k in np.atleast_1d(_need(f, "extra/keys", path)[()])]
        has_speaker = "extra" in f and "speaker" in f["extra"]
        speakers = np.asarray(f["extra/speaker"][()]) if has_speaker else None
    lengths = {"spikes/times": len(times), "spikes/units": len(units), "labels": len(labels)}
    if speakers is not None:
        lengths["extra/speaker"] = len(speakers)
    n = lengths["labels"]
    for name, m in lengths.items():
        if m != n:
            raise DataFormatError(f"{path}: {name} has {m} samples but labels has {n}: one "
                                  "entry per sample expected")
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DataFormatError(f"{path}: labels must be 1-d integers, got {labels.dtype} "
                              f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(keys)):
        raise DataFormatError(f"{path}: labels must lie in 0 … {len(keys) - 1} (one per entry "
                              f"of extra/keys), got {labels.min()} … {labels.max()}")
    t_arrays = [np.asarray(times[i]) for i in range(n)]
    u_arrays = [np.asarray(units[i]) for i in range(n)]
    for i, (t, u) in enumerate(zip(t_arrays, u_arrays, strict=True)):
        if t.ndim != 1 or t.shape != u.shape:
            raise DataFormatError(f"{path}: sample {i}: spikes/times has shape {t.shape} and "
                                  f"spikes/units {u.shape}; one unit per spike time expected")
    lengths = np.array([t.size for t in t_arrays], dtype=np.int64)
    t_all = np.concatenate(t_arrays) if n else np.empty(0, np.float16)  # the file's dtype
    u_all = np.concatenate(u_arrays) if n else np.empty(0, np.uint16)
    if t_all.dtype.kind != "f" or (u_all.size and u_all.dtype.kind not in "iu"):
        raise DataFormatError(f"{path}: spikes/times must be floats and spikes/units integers, "
                              f"got {t_all.dtype} and {u_all.dtype}")
    sample = np.repeat(np.arange(n, dtype=np.int64), lengths)
    keep = np.ones(n, dtype=bool)
    keep[sample[~np.isfinite(t_all)]] = False
    dropped = np.flatnonzero(~keep).tolist()
    if dropped:
        kept_events = keep[sample]
        t_all, u_all, sample = t_all[kept_events], u_all[kept_events], sample[kept_events]
    for bad, what in (((u_all < 0) | (u_all >= N_CHANNELS), "units"), (t_all < 0, "times")):
        if bad.any():
            i = int(sample[np.argmax(bad)])
            if what == "units":
                u = u_arrays[i]
                raise DataFormatError(f"{path}: sample {i}: spikes/units must lie in 0 … "
                                      f"{N_CHANNELS - 1}, got {u.min()} … {u.max()}")
            raise DataFormatError(f"{path}: sample {i}: spike times must be ≥ 0 s, got "
                                  f"{float(t_arrays[i].min()):g}")
    offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
    events = PackedEvents(t_all, u_all, offsets, n_channels=N_CHANNELS)
    if dropped:
        warnings.warn(f"{path}: dropped {len(dropped)} of {n} samples whose spike times are NaN "
                      f"or infinite (rows {dropped[:10]}{' …' if len(dropped) > 10 else ''})",
                      UserWarning, stacklevel=2)
    index = np.flatnonzero(keep).astype(np.int64)
    return ShdFile(path=path, events=events, labels=labels.astype(np.int64)[index],
                   speakers=None if speakers is None else speakers.astype(np.int64)[index],
                   keys=keys, source_index=index, dropped=dropped)


# ----------------------------------------------------------------------------- data sets


class SHD(EventDataset):
    """Spiking Heidelberg Digits: one split read into memory, as rasters ``[T, C]``.

    ``path`` is the file itself or a folder holding ``shd_{split}.h5``. Each sample goes
    through ``augment`` (event transforms, e.g. ``[TimeShift(0.05), ChannelShift(5, 700)]``,
    seeded per sample and epoch, see :class:`~spikeloop.data.loading.EventDataset`), then
    :class:`~spikeloop.data.transforms.Downsample` by ``factor`` (``⌈700 / factor⌉``
    channels) and :class:`~spikeloop.data.transforms.ToRaster` with ``dt`` and ``duration``
    seconds (``T = round(duration / dt)``; ``duration=None`` keeps each sample's own length and
    the collate pads).

    Events at or past the window are not in the rasters; the number in the data (before
    augmentation) is ``events_past_duration`` (in ``samples_past_duration`` samples) and is
    shown by ``repr``. Samples with non-finite times are left out when reading: ``dropped``
    holds their rows in the file (a warning says how many).

    Attributes (besides :class:`~spikeloop.data.loading.EventDataset`'s): ``path``, ``split``,
    ``keys`` (class names), ``speakers`` (int64 ``[N]`` or ``None``), ``source_index`` (row in
    the file of each sample), ``dropped``, ``events_past_duration``, ``samples_past_duration``.

    Example:
        >>> ds = SHD("data/shd", "train", dt=1e-3, duration=1.0)   # doctest: +SKIP
        >>> raster, label = ds[0]                                    # [1000, 700], an int

    Raises:
        MissingDataError: the file is not there (the message names the paths searched and
            where SHD/SSC come from).
        ParameterError: an unknown split, ``factor < 1``.
        DataFormatError: a malformed file (see :func:`read_shd`).
    """

    NAME = "shd"
    SPLITS: tuple[str, ...] = ("train", "test")
    N_CLASSES = 20

    def __init__(self, path: str | os.PathLike[str], split: str = "train", *, dt: float = 1e-3,
                 duration: float | None = 1.0, factor: int = 1,
                 augment: Sequence[Callable[..., Any]] | Callable[..., Any] | None = None,
                 seed: int = 0) -> None:
        self.split = check_choice(split, f"{type(self).__name__}: split", self.SPLITS)
        self.path = self.find(path, split)
        data = read_shd(self.path)
        if augment is None:
            augment = []
        elif callable(augment):
            augment = [augment]
        elif not isinstance(augment, list | tuple):
            raise ArgumentTypeError(f"{type(self).__name__}: augment must be a transform or a "
                                    f"list of them, got {show(augment)}")
        down = Downsample(factor)
        n_out = down.n_out(N_CHANNELS)
        raster = ToRaster(dt, n_out, duration=duration)
        steps: list[Callable[..., Any]] = [*augment]
        if down.factor > 1:
            steps.append(down)
        steps.append(raster)
        super().__init__(data.events, data.labels, Compose(steps), seed=seed,
                         n_classes=len(data.keys),
                         sample_shape=(n_out,), n_channels=N_CHANNELS)
        self.keys = data.keys
        self.speakers = data.speakers
        self.source_index = data.source_index
        self.dropped = data.dropped
        self.factor = down.factor
        self.dt = raster.dt
        self.duration = duration
        self.events_past_duration = self.samples_past_duration = 0
        if raster.T is not None and data.events.times_s.size:
            t_us = np.rint(data.events.times_s.astype(np.float64) * US_PER_S).astype(np.int64)
            past = raster.bins_of_times_us(t_us) >= raster.T
            self.events_past_duration = int(past.sum())
            self.samples_past_duration = int(np.unique(data.events.sample_of_event()[past]).size)

    @classmethod
    def find(cls, path: str | os.PathLike[str], split: str) -> Path:
        """The file of ``split``: ``path`` itself if it is a file, else
        ``path/{NAME}_{split}.h5``.

        Raises:
            MissingDataError: neither exists (names the paths searched, mentions a ``.h5.gz``
                found next to it, and where the data set comes from).
        """
        p = check_path(path, f"{cls.__name__}: path")
        if p.is_file():
            return p
        name = f"{cls.NAME}_{split}.h5"
        candidate = p / name
        if candidate.is_file():
            return candidate
        searched = [str(p)] if not p.is_dir() else [str(candidate)]
        hint = ""
        if (p / (name + ".gz")).is_file():
            hint = f" Found {p / (name + '.gz')}: un-zip it first (gunzip -k {name}.gz)."
        raise MissingDataError(f"{cls.__name__} {split} split not found: searched "
                               f"{', '.join(searched)}.{hint} To get it, "
                               + _source(name))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, split={self.split!r}: {len(self)} "
                f"samples, {self.n_classes} classes, sample_shape={self.sample_shape}, "
                f"dt={self.dt:g} s, duration={self.duration}; dropped {len(self.dropped)} "
                f"samples with non-finite times; {self.events_past_duration} events in "
                f"{self.samples_past_duration} samples lie past the window)")


class SSC(SHD):
    """Spiking Speech Commands: as :class:`SHD`, 35 classes, files ``ssc_{split}.h5`` with
    the official ``valid`` split."""

    NAME = "ssc"
    SPLITS = ("train", "valid", "test")
    N_CLASSES = 35


def speaker_holdout(dataset: EventDataset, val_speakers: Sequence[int] | None = None
                    ) -> tuple[LabelledSubset, LabelledSubset]:
    """Split a data set with ``speakers`` into (train, validation) by speaker: every sample of a
    speaker in ``val_speakers`` goes to validation, all others to training.

    This split is OURS, not an official one (SHD publishes train and test only). Default
    ``val_speakers``: the one speaker with the highest id present (deterministic; for SHD's
    training file that is one of its ten speakers, about a tenth of the samples). The subsets
    are named (``"speaker-holdout val: speakers [11]"``).

    Raises:
        DataFormatError: the data set has no speaker ids.
        ParameterError: a requested speaker is not in the data set (the message lists those
            present), or the split would leave training empty.
    """
    speakers = getattr(dataset, "speakers", None)
    if speakers is None:
        raise DataFormatError(f"speaker_holdout: {type(dataset).__name__} has no speaker ids "
                              "(extra/speaker)")
    speakers = np.asarray(speakers, dtype=np.int64)
    present = sorted(int(s) for s in np.unique(speakers))
    if not present:
        raise ParameterError("speaker_holdout: the data set is empty")
    if val_speakers is None:
        val = [present[-1]]
    else:
        if isinstance(val_speakers, int | np.integer):
            val_speakers = [int(val_speakers)]
        val = sorted({check_int(s, "speaker_holdout: val_speakers", 0) for s in val_speakers})
        missing = [s for s in val if s not in present]
        if missing:
            raise ParameterError(f"speaker_holdout: val_speakers {missing} are not in the data "
                                 f"set; speakers present: {present}")
    in_val = np.isin(speakers, val)
    if in_val.all():
        raise ParameterError(f"speaker_holdout: val_speakers {val} are all the speakers "
                             f"present ({present}); training would be empty")
    rest = [s for s in present if s not in val]
    train = LabelledSubset(dataset, np.flatnonzero(~in_val),
                           f"speaker-holdout train: speakers {rest}")
    valid = LabelledSubset(dataset, np.flatnonzero(in_val), f"speaker-holdout val: speakers {val}")
    return train, valid

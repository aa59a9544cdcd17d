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
========================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from spikeloop.checks import check_int
from spikeloop.errors import DataFormatError, ShapeError

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

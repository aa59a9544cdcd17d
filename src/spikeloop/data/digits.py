"""scikit-learn's 8×8 handwritten digits (the data of ``sklearn.datasets.load_digits``: the test
set of the UCI "Optical Recognition of Handwritten Digits" data, Alpaydin & Kaynak 1998) with a
fixed, stratified train / validation / test split. The data are read from the file scikit-learn
bundles (``sklearn/datasets/data/digits.csv.gz``, found by :func:`spikeloop.data.catalog.find`)
without importing scikit-learn, which would import SciPy (seconds).

1797 images of 8×8 pixels, each pixel a count 0 … 16 (black pixels of a 4×4 block of the
32×32 bitmap), 10 classes with 174 … 183 images each. Features are ``pixel / 16`` in
``[0, 1]`` (float32), row by row (``[N, 64]``) or as images (``[N, 8, 8]``).

The split is stratified: for every class ``c`` (in order 0 … 9) one generator
``numpy.random.default_rng(seed)`` permutes that class's image indices; the first
``round(0.2 n_c)`` go to test, the next ``round(0.1 n_c)`` to validation, the rest to train.
Each split's indices are then sorted (the data set's order). With the default seed 0 the
sizes are train 1259, validation 179, test 359 (:data:`DIGITS_SIZES`).
"""

from __future__ import annotations

import functools
import gzip
from typing import Final

import numpy as np

from spikeloop.checks import check_bool, check_choice, check_int
from spikeloop.data.catalog import find
from spikeloop.errors import DataFormatError

__all__ = ["DIGITS_FRACTIONS", "DIGITS_SEED", "DIGITS_SIZES", "digits_split", "load_digits"]

DIGITS_FRACTIONS: Final[dict[str, float]] = {"test": 0.2, "validation": 0.1}
"""Fraction of each class that goes to test and to validation (train: the rest)."""

DIGITS_SEED: Final[int] = 0
"""The default seed of the split."""

DIGITS_SIZES: Final[dict[str, int]] = {"train": 1259, "validation": 179, "test": 359}
"""Split sizes for the default seed (any seed gives the same sizes: they follow from the class
counts and :data:`DIGITS_FRACTIONS`)."""

_SPLITS = ("train", "validation", "test")
_N_IMAGES = 1797


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (float64 counts 0 … 16, ``[1797, 64]``) and labels, read once per process from
    scikit-learn's ``digits.csv.gz`` (the file ``load_digits`` reads: 1797 rows of 64 pixels
    and the label), found by the catalog without importing scikit-learn (and SciPy).

    Raises:
        MissingDataError: scikit-learn is not installed.
        DataFormatError: the file is not 1797 rows of 65 integers, pixels 0 … 16, labels 0 … 9.
    """
    path = find("digits") / "digits.csv.gz"
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", ndmin=2)
    except (ValueError, OSError, EOFError) as err:  # ragged rows, text, a broken gzip stream
        raise DataFormatError(f"{path}: expected {_N_IMAGES} rows of 64 pixels 0 … 16 and a "
                              f"label 0 … 9 as comma-separated numbers: {err}") from None
    if (table.shape != (_N_IMAGES, 65) or not np.array_equal(table, np.round(table))
            or table[:, :64].min() < 0 or table[:, :64].max() > 16
            or table[:, 64].min() < 0 or table[:, 64].max() > 9):
        raise DataFormatError(f"{path}: expected {_N_IMAGES} rows of 64 pixels 0 … 16 and a "
                              f"label 0 … 9, found shape {list(table.shape)}")
    return table[:, :64], table[:, 64].astype(np.int64)


def digits_split(seed: int = DIGITS_SEED) -> dict[str, np.ndarray]:
    """The indices (into the 1797 images, sorted, int64) of each split ``"train"``,
    ``"validation"``, ``"test"``; disjoint and together all 1797 images (module docstring).

    Raises:
        ParameterError: ``seed`` is not an integer ≥ 0.
        MissingDataError: scikit-learn is not installed.
    """
    seed = check_int(seed, "seed", 0)
    _, labels = _load()
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _SPLITS}
    for c in range(int(labels.max()) + 1):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(DIGITS_FRACTIONS["test"] * len(members))
        n_val = round(DIGITS_FRACTIONS["validation"] * len(members))
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


def load_digits(split: str = "train", seed: int = DIGITS_SEED,
           flat: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One split of the 8×8 digits: features ``pixel / 16`` and class labels.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        seed: the split's seed (see the module docstring).
        flat: features as ``[N, 64]`` (row by row); ``False``: images ``[N, 8, 8]``.

    Returns:
        ``(features, labels)``: float32 in ``[0, 1]`` and int64 class indices 0 … 9.

    Raises:
        ParameterError: an unknown ``split`` or a negative ``seed``.
        MissingDataError: scikit-learn is not installed.
        DataFormatError: its ``digits.csv.gz`` is not 1797 rows of 64 pixels and a label.

    Example:
        >>> x, y = load_digits("test")
        >>> x.shape, y.shape, float(x.max())
        ((359, 64), (359,), 1.0)
    """
    check_choice(split, "split", _SPLITS)
    flat = check_bool(flat, "flat")
    index = digits_split(seed)[split]
    pixels, labels = _load()
    features = (pixels[index] / 16.0).astype(np.float32)
    if not flat:
        features = features.reshape(-1, 8, 8)
    return features, labels[index].copy()

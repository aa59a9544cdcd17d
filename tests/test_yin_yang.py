"""Tests of the Yin-Yang generator against independent re-implementations of the reference."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from spikeloop.data import CLASS_NAMES, YIN_YANG_SPLITS, yin_yang, yin_yang_split
from spikeloop.errors import ParameterError, UnknownNameError


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return yin_yang(5000, 42)


def _reference_loop(size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5):
    """Plain transcription of YinYangDataset.__init__/get_sample/which_class (dataset.py)."""
    rng = np.random.RandomState(seed)
    vals, cs = [], []
    for _ in range(size):
        goal_class = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
            d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
            criterion1 = d_right <= r_small
            criterion2 = d_left > r_small and d_left <= 0.5 * r_big
            criterion3 = y > r_big and d_right > 0.5 * r_big
            is_yin = criterion1 or criterion2 or criterion3
            is_circles = d_right < r_small or d_left < r_small
            c = 2 if is_circles else int(is_yin)
            if c == goal_class:
                break
        vals.append([x, y, 1.0 - x, 1.0 - y])
        cs.append(c)
    return np.array(vals), np.array(cs)


def _labels_vectorised(x: np.ndarray, y: np.ndarray, r_small: float, r_big: float) -> np.ndarray:
    """Independent vectorised class rule (hypot instead of sqrt of squares)."""
    d_r = np.hypot(x - 1.5 * r_big, y - r_big)
    d_l = np.hypot(x - 0.5 * r_big, y - r_big)
    dot = (d_r < r_small) | (d_l < r_small)
    one = (
        (d_r <= r_small)
        | ((d_l > r_small) & (d_l <= r_big / 2))
        | ((y > r_big) & (d_r > r_big / 2))
    )
    return np.where(dot, 2, one.astype(np.int64))


def test_golden_first_samples_seed_42() -> None:
    X_ref, c_ref = _reference_loop(25, 42)
    X, c = yin_yang(25, 42)
    np.testing.assert_array_equal(X, X_ref)  # bit-identical, not just close
    np.testing.assert_array_equal(c, c_ref)
    # literal anchor (numpy's RandomState stream is frozen, NEP 19): first sample is a dot
    np.testing.assert_allclose(X[0, :2], [0.68030754, 0.45049925], atol=1e-8)
    assert c[0] == 2


def test_prefix_property_and_golden_other_seed() -> None:
    # samples are generated one after another from one stream: a longer set extends a shorter
    X_ref, c_ref = _reference_loop(40, 7, r_small=0.15, r_big=0.4)
    X, c = yin_yang(40, 7, r_small=0.15, r_big=0.4)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(c, c_ref)
    X_long, c_long = yin_yang(60, 7, r_small=0.15, r_big=0.4)
    np.testing.assert_array_equal(X_long[:40], X)
    np.testing.assert_array_equal(c_long[:40], c)


def test_dtype_and_shape(train) -> None:
    X, c = train
    assert X.shape == (5000, 4) and X.dtype == np.float64
    assert c.shape == (5000,) and c.dtype == np.int64
    assert set(np.unique(c)) == {0, 1, 2}
    assert CLASS_NAMES == ("yin", "yang", "dot")


def test_determinism_and_seeds_differ() -> None:
    X1, c1 = yin_yang(300, 3)
    X2, c2 = yin_yang(300, 3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(c1, c2)
    X3, _ = yin_yang(300, 4)
    assert not np.any(X1[:, 0] == X3[:, 0])


def test_class_balance(train) -> None:
    # Rejection sampling makes every label equal to its goal class, itself uniform on {0,1,2}:
    # counts are Binomial(n=5000, p=1/3), mean 1666.7, std sqrt(n p (1-p)) = 33.3. A 5-sigma
    # band (±167, i.e. ±10 % of the mean) fails by chance with probability ~6e-7 per class.
    _, c = train
    n, p = len(c), 1 / 3
    sigma = math.sqrt(n * p * (1 - p))
    counts = np.bincount(c, minlength=3)
    assert np.all(np.abs(counts - n * p) < 5 * sigma), counts


def test_points_inside_big_circle(train) -> None:
    X, _ = train
    r2 = (X[:, 0] - 0.5) ** 2 + (X[:, 1] - 0.5) ** 2
    assert np.all(r2 <= 0.25 + 1e-12)
    assert np.all((X >= 0) & (X <= 1))


def test_labels_match_independent_rule(train) -> None:
    X, c = train
    np.testing.assert_array_equal(c, _labels_vectorised(X[:, 0], X[:, 1], 0.1, 0.5))
    # non-default radii as well
    X2, c2 = yin_yang(500, 11, r_small=0.2, r_big=1.0)
    assert np.all((X2[:, :2] >= 0) & (X2[:, :2] <= 2.0))
    np.testing.assert_array_equal(c2, _labels_vectorised(X2[:, 0], X2[:, 1], 0.2, 1.0))


def test_dots_are_dots(train) -> None:
    X, c = train
    d = np.minimum(np.hypot(X[:, 0] - 0.25, X[:, 1] - 0.5), np.hypot(X[:, 0] - 0.75, X[:, 1] - 0.5))
    assert np.all(d[c == 2] < 0.1)
    assert np.all(d[c != 2] >= 0.1)


def test_mirrored_features(train) -> None:
    X, _ = train
    np.testing.assert_array_equal(X[:, 2], 1.0 - X[:, 0])
    np.testing.assert_array_equal(X[:, 3], 1.0 - X[:, 1])


def test_splits() -> None:
    assert YIN_YANG_SPLITS == {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}
    X, c = yin_yang_split("test")
    X_ref, c_ref = yin_yang(1000, 40)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(c, c_ref)
    with pytest.raises(UnknownNameError, match="validation"):
        yin_yang_split("valid")


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"size": 0, "seed": 1}, "size"),
        ({"size": 2.5, "seed": 1}, "size"),
        ({"size": 5, "seed": -1}, "seed"),
        ({"size": 5, "seed": 1, "r_small": 0.0}, "r_small"),
        ({"size": 5, "seed": 1, "r_big": float("nan")}, "r_big"),
        ({"size": 5, "seed": 1, "r_small": 0.25}, "r_big / 2"),
    ],
)
def test_invalid_arguments(kwargs, word) -> None:
    with pytest.raises(ParameterError, match=re.escape(word)):
        yin_yang(**kwargs)

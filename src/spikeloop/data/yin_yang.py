"""The Yin-Yang data set (Kriener, Göltz & Petrovici 2021, arXiv:2102.08211).

A 2-D, three-class problem (``yin``, ``yang``, ``dot``) on the unit square that a linear
classifier solves only to ~64 % but a small hidden layer to ~98 %. Samples are produced by
rejection sampling, reproducing the reference generator (``dataset.py`` of
github.com/lkriener/yin_yang_data_set) draw for draw, so a given seed yields bit-identical
points and labels.

Generation of one sample (``rng = numpy.random.RandomState(seed)``, shared by all samples):

1. draw the goal class ``c* = rng.randint(3)``;
2. draw ``(x, y) = rng.rand(2) * 2 * r_big`` (``x`` from the first number, ``y`` the second);
3. reject if ``sqrt((x - r_big)² + (y - r_big)²) > r_big`` (outside the big circle; a point
   exactly on the rim is kept) and go back to 2;
4. compute the class ``c(x, y)`` (below); if ``c ≠ c*`` go back to 2, else keep ``(x, y, c)``.

Class rule, with ``d_r`` / ``d_l`` the distances to the dot centres ``(1.5 r_big, r_big)`` /
``(0.5 r_big, r_big)`` (``(0.75, 0.5)`` and ``(0.25, 0.5)`` for the default ``r_big = 0.5``)::

    dot (2)   if d_r < r_small or d_l < r_small                        (strict)
    yang (1)  if d_r ≤ r_small                                          (never reached: dot)
              or r_small < d_l ≤ r_big / 2
              or (y > r_big and d_r > r_big / 2)
    yin (0)   otherwise

(The reference names the class-1 test ``is_yin`` but lists the names as
``['yin', 'yang', 'dot']``; the integer labels are what matters and are reproduced here.)

Features are ``(x, y, 1 - x, 1 - y)``: the mirrored copies let neurons without an intrinsic
bias see a symmetric input. With ``r_big = 0.5`` all four lie in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from spikeloop.checks import check_int, check_real, check_type
from spikeloop.errors import ParameterError, UnknownNameError

__all__ = ["CLASS_NAMES", "YIN_YANG_SPLITS", "yin_yang", "yin_yang_split"]

CLASS_NAMES: Final[tuple[str, str, str]] = ("yin", "yang", "dot")
"""Label index → class name, as in the reference implementation."""

YIN_YANG_SPLITS: Final[dict[str, tuple[int, int]]] = {
    "train": (5000, 42),
    "validation": (1000, 41),
    "test": (1000, 40),
}
"""Standard splits ``name → (size, seed)`` used by the data set's authors and the SNN papers."""

_MAX_SEED = 2**32 - 1  # numpy.random.RandomState accepts seeds in [0, 2**32 - 1]


def _check_args(size: Any, seed: Any, r_small: Any, r_big: Any) -> tuple[int, int, float, float]:
    """The arguments of :func:`yin_yang`, checked and as Python numbers."""
    size = check_int(size, "size", 1)
    seed = check_int(seed, "seed (numpy RandomState)", 0, _MAX_SEED)
    r_small = check_real(r_small, "r_small", 0, low_open=True)
    r_big = check_real(r_big, "r_big", 0, low_open=True)
    if not r_small < 0.5 * r_big:
        raise ParameterError(
            f"r_small must be < r_big / 2 = {0.5 * r_big} so that the dots lie inside the "
            f"yin and yang halves, got r_small = {r_small}"
        )
    return size, seed, r_small, r_big


def _which_class(x: np.float64, y: np.float64, r_small: float, r_big: float) -> int:
    """Class of a point inside the big circle (same arithmetic as the reference)."""
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2
    is_yang = (
        d_right <= r_small
        or (r_small < d_left <= 0.5 * r_big)
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return int(is_yang)


def yin_yang(
    size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``size`` Yin-Yang samples exactly as the reference generator does.

    See the module docstring for the sampling procedure and the class rule. Each sample
    consumes one ``randint(3)`` draw followed by one or more ``rand(2)`` draws (rejection
    sampling) from a single ``numpy.random.RandomState(seed)``.

    Args:
        size: number of samples, ``>= 1``.
        seed: seed of ``numpy.random.RandomState``, in ``[0, 2**32 - 1]``.
        r_small: radius of the two dots, ``0 < r_small < r_big / 2``.
        r_big: radius of the big circle (``> 0``); points lie in ``[0, 2 r_big]²``.

    Returns:
        ``(X, y)``: float64 features ``[size, 4]`` = ``(x, y, 1 - x, 1 - y)`` and int64 labels
        ``[size]`` in ``{0: yin, 1: yang, 2: dot}``.

    Raises:
        ArgumentTypeError: ``size`` or ``seed`` is not an integer (a float, even ``5.0``, is
            not), a radius not a real number.
        ParameterError: ``size < 1``, a seed numpy cannot use, or invalid radii (not finite,
            ``≤ 0``, ``r_small ≥ r_big / 2``).
    """
    size, seed, r_small, r_big = _check_args(size, seed, r_small, r_big)
    rng = np.random.RandomState(seed)
    features = np.empty((size, 4), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            c = _which_class(x, y, r_small, r_big)
            if c == goal:
                break
        features[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = c
    return features, labels


def yin_yang_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the standard split ``name`` ∈ {train, validation, test}; see ``YIN_YANG_SPLITS``.

    Raises:
        ArgumentTypeError: ``name`` is not a str.
        UnknownNameError: ``name`` is not a known split (the message lists the known ones).
    """
    check_type(name, "split name", str, "a str (train, validation or test)")
    try:
        size, seed = YIN_YANG_SPLITS[name]
    except KeyError:
        known = ", ".join(YIN_YANG_SPLITS)
        raise UnknownNameError(f"unknown Yin-Yang split {name!r}; known: {known}") from None
    return yin_yang(size, seed)

"""Mean and spread over repeated runs (seeds), and how to print them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation of ``values``; the deviation is ``None``
    for a single value (one run measures no spread)."""
    if not values:
        raise ValueError("mean_sd: no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def show_mean_sd(mean: float, sd: float | None, digits: int = 2, unit: str = " %") -> str:
    """``mean ± sd`` (``mean (one run)`` without a deviation), with ``digits`` decimals."""
    if sd is None:
        return f"{mean:.{digits}f}{unit} (one run)"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}{unit}"

"""Checks shared by every layer: time step, shapes, dtype and finiteness of tensors.

Each check exists once; the layers above call it and never restate it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.errors import (
    CheckpointError,
    DTypeError,
    NonFiniteError,
    ShapeError,
    TimeStepError,
)


def check_dt(dt: Any, who: str = "dt") -> float:
    """Return ``dt`` as a float if it is a finite number of seconds ``> 0``.

    Accepts Python and NumPy real numbers and one-element tensors or arrays. Every layer checks
    a time step here, so an invalid one always raises the same error.

    Raises:
        TimeStepError: ``dt`` is not a real number (a bool or a string is not), not finite, or
            ``≤ 0``.
    """
    if isinstance(dt, np.ndarray | Tensor) and math.prod(dt.shape) == 1:
        dt = dt.item()
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real):
        raise TimeStepError(f"{who} must be a finite number > 0 s, got {dt!r}")
    value = float(dt)
    if not (math.isfinite(value) and value > 0):
        raise TimeStepError(f"{who} must be a finite number > 0 s, got {dt!r}")
    return value


def check_shape(shape: int | Iterable[int], who: str = "population") -> tuple[int, ...]:
    """A shape as a tuple of positive integers (an int ``n`` is ``(n,)``)."""
    out = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not out or any(s < 1 for s in out):
        raise ShapeError(f"{who} shape must be positive integers, got {shape!r}")
    return out


def all_finite(x: Tensor) -> bool:
    """True if ``x`` holds no NaN or ±inf (one reduction pass: NaN propagates through
    ``aminmax``, infinities show in its result; no full-size boolean tensor)."""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def require_finite(x: Tensor, who: str) -> None:
    """Raise :class:`NonFiniteError` naming ``who`` if ``x`` holds NaN or ±inf."""
    if not all_finite(x):
        raise NonFiniteError(f"{who}: input holds NaN or infinite values")


def check_sequence(x: Tensor, shape: tuple[int, ...], who: str, finite: bool = True) -> None:
    """Check that ``x`` is a finite time-major tensor ``[T, B, *shape]`` (``finite=False``:
    everything but finiteness, for a caller that checks it itself)."""
    if not isinstance(x, Tensor):
        raise ShapeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
    expected = "[T, B, " + ", ".join(map(str, shape)) + "]"
    if x.dim() != 2 + len(shape):
        raise ShapeError(
            f"{who}: expected a time-major tensor {expected} of rank {2 + len(shape)}, "
            f"got rank {x.dim()} with shape {tuple(x.shape)}"
        )
    if tuple(x.shape[2:]) != shape:
        raise ShapeError(f"{who}: expected {expected}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ShapeError(f"{who}: the time axis (dim 0) is empty")
    if not x.is_floating_point():
        raise DTypeError(f"{who}: expected a floating-point tensor (0/1 spikes as float), "
                         f"got {x.dtype}")
    if finite:
        require_finite(x, who)


def check_state_dict(own: Mapping[str, Tensor], given: Any, strict: bool = True,
                     who: str = "state dict") -> None:
    """Check ``given`` against a module's own ``state_dict()`` before anything is loaded.

    Every key must name a tensor of the same shape (and, with ``strict``, every key of ``own``
    must be there and no other): loading then cannot fail half-way, leaving some tensors
    overwritten and others not, as ``torch.nn.Module.load_state_dict`` does when one tensor of
    many does not fit.

    Raises:
        CheckpointError: ``given`` is not a mapping of names to tensors, or keys are missing,
            unexpected or hold tensors of another shape (up to three of each are named).
    """
    if not isinstance(given, Mapping):
        raise CheckpointError(f"{who}: expected a mapping of tensor names to tensors, got "
                              f"{type(given).__name__}")
    problems = []
    if strict:
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        if missing:
            problems.append(f"missing {_some(missing)}")
        if unexpected:
            problems.append(f"unexpected {_some(unexpected)}")
    wrong = []
    for key, value in given.items():
        if key not in own:
            continue
        if not isinstance(value, Tensor):
            wrong.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif value.shape != own[key].shape:
            wrong.append(f"{key} is {tuple(value.shape)}, the model's {tuple(own[key].shape)}")
    if wrong:
        problems.append(_some(wrong, quote=False))
    if problems:
        raise CheckpointError(f"{who} does not fit the model, nothing was loaded: "
                              f"{'; '.join(problems)}")


def _some(items: list[str], quote: bool = True, n: int = 3) -> str:
    shown = [repr(i) if quote else i for i in items[:n]]
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(shown) + more

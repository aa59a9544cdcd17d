"""Checks shared by every layer: time step, shapes, dtype and finiteness of tensors.

Each check exists once; the layers above call it and never restate it.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.errors import (
    ArgumentTypeError,
    CheckpointError,
    DeviceError,
    DTypeError,
    NonFiniteError,
    ParameterError,
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
    try:
        return check_real(dt, who, 0, low_open=True)
    except ParameterError:  # (an ArgumentTypeError too): one error type for every bad step
        raise TimeStepError(f"{who} must be a finite number > 0 s, got {show(dt)}") from None


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message, shortened to ``limit`` characters (a tensor is shown
    by its shape and dtype)."""
    if isinstance(value, Tensor) and value.numel() > 4:
        return f"tensor of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, np.ndarray) and value.size > 4:
        return f"array of shape {value.shape} ({value.dtype})"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scalar(value: Any) -> Any:
    """A one-element tensor or array as its Python number; anything else unchanged."""
    if isinstance(value, np.ndarray | Tensor) and math.prod(value.shape) == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high:g}")
    return " and ".join(parts)


def check_int(value: Any, who: str, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as a Python ``int`` if it is an integer within ``[low, high]``.

    Python and NumPy integers and one-element integer tensors or arrays are integers (the
    conversion is lossless); a bool, a float (even ``4.0``), a string or anything else is not.

    Raises:
        ArgumentTypeError: ``value`` is not an integer.
        ParameterError: it is outside ``[low, high]``.
    """
    number = _scalar(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise ArgumentTypeError(f"{who} must be an integer, got {show(value)} "
                                f"({type(value).__name__})")
    number = int(number)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ParameterError(f"{who} must be an integer {_bounds(low, high, False, False)}, "
                             f"got {number}")
    return number


def check_real(value: Any, who: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """Return ``value`` as a Python ``float`` if it is a real number in the given range.

    Python and NumPy numbers and one-element tensors or arrays are real numbers; a bool, a
    string (``"10ms"``), ``None`` or a complex number is not. ``low_open``/``high_open`` make a
    bound strict (``> low``); ``finite`` refuses NaN and ±inf (NaN is refused always).

    Raises:
        ArgumentTypeError: ``value`` is not a real number.
        ParameterError: it is NaN, infinite (with ``finite``) or outside the range.
    """
    number = _scalar(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise ArgumentTypeError(f"{who} must be a real number, got {show(value)} "
                                f"({type(value).__name__})")
    number = float(number)
    bounds = _bounds(low, high, low_open, high_open)
    allowed = f"a finite number {bounds}" if finite else f"a number {bounds}"
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ParameterError(f"{who} must be {allowed.strip()}, got {number}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise ParameterError(f"{who} must be {allowed.strip()}, got {number:g}")
    return number


def check_bool(value: Any, who: str) -> bool:
    """Return ``value`` if it is a ``bool`` (or NumPy bool); ``1``, ``"yes"`` and ``None`` are
    not.

    Raises:
        ArgumentTypeError: ``value`` is not a bool.
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ArgumentTypeError(f"{who} must be True or False, got {show(value)} "
                            f"({type(value).__name__})")


def check_choice(value: Any, who: str, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices`` (compared with ``==``; a bool is not ``1``).

    Raises:
        ParameterError: it is not (the message lists the choices).
    """
    options = list(choices)
    for option in options:
        if type(value) is type(option) and value == option:
            return value
    raise ParameterError(f"{who} must be one of {options}, got {show(value)}")


def check_type(value: Any, who: str, types: type | tuple[type, ...], what: str) -> Any:
    """Return ``value`` if it is an instance of ``types``; ``what`` says in words what is
    allowed (``"a Graph"``, ``"a list of layer names"``).

    Raises:
        ArgumentTypeError: it is not.
    """
    if not isinstance(value, types):
        raise ArgumentTypeError(f"{who} must be {what}, got {show(value)} "
                                f"({type(value).__name__})")
    return value


def check_names(value: Any, who: str) -> tuple[str, ...]:
    """Return a list or tuple of strings as a tuple; a single string is refused (it would be
    read as a sequence of one-letter names).

    Raises:
        ArgumentTypeError: ``value`` is a string or not a sequence of strings.
    """
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ArgumentTypeError(f"{who} must be a list of names, got {show(value)} "
                                f"({type(value).__name__}); write [{value!r}] for one name"
                                if isinstance(value, str) else
                                f"{who} must be a list of names, got {show(value)} "
                                f"({type(value).__name__})")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise ArgumentTypeError(f"{who} must be a list of names (strings), got {show(bad[0])} "
                                f"({type(bad[0]).__name__}) in it")
    return tuple(value)


def check_shape(shape: Any, who: str = "population") -> tuple[int, ...]:
    """A shape as a tuple of positive integers (an integer ``n`` is ``(n,)``; a string is not a
    shape).

    Raises:
        ArgumentTypeError: ``shape`` is not an integer or a sequence of integers.
        ShapeError: it is empty or holds an integer ``< 1``.
    """
    if isinstance(shape, str | bytes) or not (isinstance(shape, list | tuple | torch.Size)
                                              or isinstance(_scalar(shape), numbers.Integral)):
        raise ArgumentTypeError(f"{who} shape must be a positive integer or a tuple of them, "
                                f"got {show(shape)} ({type(shape).__name__})")
    items = shape if isinstance(shape, list | tuple | torch.Size) else (shape,)
    out = tuple(check_int(s, f"{who} shape") for s in items)
    if not out or any(s < 1 for s in out):
        raise ShapeError(f"{who} shape must be positive integers, got {show(shape)}")
    return out


def all_finite(x: Tensor) -> bool:
    """True if ``x`` holds no NaN or ±inf (one reduction pass: NaN propagates through
    ``aminmax``, infinities show in its result; no full-size boolean tensor)."""
    return finite_flags([x])[0]


def finite_flags(tensors: Sequence[Tensor]) -> list[bool]:
    """:func:`all_finite` of each tensor, with one host synchronisation where all lie on one
    device: a real floating-point tensor of several entries contributes the two ends of its
    ``aminmax`` (one pass; a full ``isfinite(t).all()`` costs several times more on a weight
    matrix), one entry itself, a complex one ``isfinite(t).all()``; one ``isfinite`` over all
    of them concatenated (with type promotion) gives the flags."""
    if len({t.device for t in tensors}) > 1:  # one synchronisation per device's tensors
        return [finite_flags([t])[0] for t in tensors]
    parts: list[Tensor] = []
    spans: list[tuple[int, int]] = []
    for t in tensors:
        d = t.detach()
        if d.numel() == 0:
            ends: tuple[Tensor, ...] = ()
        elif d.is_complex() or not d.is_floating_point():  # NaN stands for "not finite"
            ends = (torch.where(torch.isfinite(d).all(), 0.0, math.nan).reshape(1),)
        elif d.numel() == 1:
            ends = (d.reshape(1),)
        else:
            ends = tuple(e.reshape(1) for e in torch.aminmax(d))
        spans.append((len(parts), len(parts) + len(ends)))
        parts.extend(ends)
    if not parts:
        return [True] * len(spans)
    ok = torch.isfinite(torch.cat(parts)).tolist()
    return [all(ok[a:b]) for a, b in spans]


def require_finite(x: Tensor, who: str, finite: bool | None = None) -> None:
    """Raise :class:`NonFiniteError` naming ``who`` if ``x`` holds NaN or ±inf (``finite``: the
    answer of a scan the caller ran, e.g. the native kernels'; ``None``: :func:`all_finite`)."""
    if not (all_finite(x) if finite is None else finite):
        raise NonFiniteError(f"{who}: input holds NaN or infinite values")


def check_dense(x: Tensor, who: str) -> None:
    """``x`` is a dense (strided) tensor holding values: not sparse, not on the meta device.

    Raises:
        ArgumentTypeError: a sparse layout.
        DeviceError: a meta tensor.
    """
    if x.layout != torch.strided:
        raise ArgumentTypeError(f"{who}: expected a dense tensor, got layout {x.layout} (use "
                                "x.to_dense())")
    if x.is_meta:
        raise DeviceError(f"{who}: a meta tensor has a shape but no values")


def _check_time_major(x: Any, shape: tuple[int, ...], who: str) -> None:
    """``x`` is a dense tensor with values, of shape ``[T, B, *shape]`` with ``T ≥ 1``."""
    expected = "[T, B, " + ", ".join(map(str, shape)) + "]"
    if not isinstance(x, Tensor):
        hint = (" (convert it with torch.as_tensor(x, dtype=torch.float32))"
                if isinstance(x, np.ndarray | list | tuple | numbers.Number) else "")
        raise ArgumentTypeError(f"{who}: expected a torch.Tensor {expected}, got "
                                f"{type(x).__name__}{hint}")
    check_dense(x, who)
    if x.dim() != 2 + len(shape):
        raise ShapeError(f"{who}: expected a time-major tensor {expected} of rank "
                         f"{2 + len(shape)}, got rank {x.dim()} with shape {tuple(x.shape)}")
    if tuple(x.shape[2:]) != tuple(shape):
        raise ShapeError(f"{who}: expected {expected}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ShapeError(f"{who}: the time axis (dim 0) is empty")


def check_sequence(x: Tensor, shape: tuple[int, ...], who: str, finite: bool = True) -> None:
    """Check that ``x`` is a finite floating-point time-major tensor ``[T, B, *shape]``
    (``finite=False``: everything but finiteness, for a caller that checks it itself).

    Raises:
        ArgumentTypeError: ``x`` is not a tensor or is sparse.
        DeviceError: ``x`` is a meta tensor.
        ShapeError: rank, feature shape or an empty time axis.
        DTypeError: ``x`` is not floating-point.
        NonFiniteError: NaN or ±inf (with ``finite``).
    """
    _check_time_major(x, shape, who)
    if not x.is_floating_point():
        raise DTypeError(f"{who}: expected a floating-point tensor (0/1 spikes as float), "
                         f"got {x.dtype}")
    if finite:
        require_finite(x, who)


def lossless_cast(x: Tensor, dtype: torch.dtype, who: str) -> tuple[Tensor, str | None]:
    """``x`` as ``dtype`` if the conversion changes no value, with a note saying it was cast.

    The one dtype rule of every entry point that takes a tensor: a floating-point ``x`` of a
    lower precision than ``dtype`` (``float16``/``bfloat16`` → ``float32``) is cast; any other
    dtype (``float64`` → ``float32``, integers, ``bool``) is cast only if every value survives the
    round trip exactly (0/1 spikes and small counts do). The note (``None`` if ``x`` had
    ``dtype`` already) is meant for the run's warnings.

    Raises:
        DTypeError: ``x`` is complex, or a value would change (the message names the first such
            value and how to convert explicitly).
    """
    if x.dtype == dtype:
        return x, None
    if x.is_complex():
        raise DTypeError(f"{who}: complex input ({x.dtype}) cannot be simulated; give real "
                         f"{dtype} values")
    y = x.to(dtype)
    widening = x.is_floating_point() and torch.promote_types(x.dtype, dtype) == dtype
    if not widening:
        back = y.to(x.dtype)
        changed = back != x
        if bool(changed.any()):
            first = x.detach()[changed][0].item()
            raise DTypeError(
                f"{who}: the input is {x.dtype} and the network {dtype}; casting would change "
                f"values (e.g. {first!r} → {y.detach()[changed][0].item()!r}), so it is not "
                f"done implicitly: cast the input yourself (x.to({dtype})) or the network "
                f"(net.to({x.dtype}))")
    return y, f"{who}: {x.dtype} input cast to the network's {dtype} (no value changed)"


def check_input(x: Any, shape: tuple[int, ...], dtype: torch.dtype,
                device: torch.device | None = None,
                who: str = "Input") -> tuple[Tensor, str | None]:
    """Check a network's input ``x [T, B, *shape]`` and return it in the network's ``dtype``.

    ``x`` must be a dense (strided) tensor with values, on ``device`` (if given), with a
    non-empty time and batch axis; its dtype follows :func:`lossless_cast`. Finiteness is left
    to the backend, which checks it where it reads the input (often on the events only).

    Returns:
        The tensor (cast if needed) and the cast note (``None`` if nothing was cast).

    Raises:
        ArgumentTypeError: ``x`` is not a tensor (a NumPy array, a list) or is sparse.
        DeviceError: ``x`` is a meta tensor or lies on another device than the network.
        ShapeError: rank, feature shape, an empty time or batch axis.
        DTypeError: see :func:`lossless_cast`.
    """
    _check_time_major(x, shape, who)
    if x.shape[1] == 0:
        raise ShapeError(f"{who}: the batch axis (dim 1) is empty: a run needs at least one "
                         "sample")
    if device is not None and x.device != device:
        raise DeviceError(f"{who}: the input is on {x.device}, the network on {device} (move "
                          f"one of them: x.to({str(device)!r}) or net.to({str(x.device)!r}))")
    return lossless_cast(x, dtype, who)


def check_state_dict(own: Mapping[str, Tensor], given: Any, strict: bool = True,
                     who: str = "state dict") -> None:
    """Check ``given`` against a module's own ``state_dict()`` before anything is loaded.

    Every key must name a tensor of the same shape (and, with ``strict``, every key of ``own``
    must be there and no other): loading then cannot fail half-way, leaving some tensors
    overwritten and others not, as ``torch.nn.Module.load_state_dict`` does when one tensor of
    many does not fit.

    Raises:
        CheckpointError: ``given`` is not a mapping of names to tensors, or keys are missing,
            unexpected, hold tensors of another shape or NaN/inf values (up to three of each
            are named).
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
        elif value.is_floating_point() and not all_finite(value):
            wrong.append(f"{key} holds NaN or infinite values")
    if wrong:
        problems.append(_some(wrong, quote=False))
    if problems:
        raise CheckpointError(f"{who} does not fit the model, nothing was loaded: "
                              f"{'; '.join(problems)}")


def _some(items: list[str], quote: bool = True, n: int = 3) -> str:
    shown = [repr(i) if quote else i for i in items[:n]]
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(shown) + more


# ----------------------------------------------------------------------------- labels, paths


def check_labels(labels: Any, who: str, n_classes: int, batch: int,
                 device: torch.device | None = None) -> Tensor:
    """Return class-index labels ``[batch]`` as an int64 tensor, checked against the batch and
    the number of classes.

    The dtype rule: labels are integer class indices. Every integer dtype (``int64``,
    ``int32``, ``uint8``...) is cast to ``int64``, which is lossless. ``bool`` and floating
    point labels are refused, even when a float holds integral values: a float target is far
    more often one-hot rows, probabilities or a mixed-up tensor than class indices, and rounding
    it would hide that (``labels.long()`` converts deliberately). A list or NumPy array is
    refused too (``torch.as_tensor(labels)`` converts it), as a network input would be.

    Raises:
        ArgumentTypeError: ``labels`` is not a tensor.
        DTypeError: it is not of an integer dtype.
        ShapeError: it is not one-dimensional, its length is not ``batch``, or the batch is
            empty (a mean over no samples is NaN).
        DeviceError: it is on another device than ``device``.
        ParameterError: a label lies outside ``[0, n_classes - 1]``.
    """
    if not isinstance(labels, Tensor):
        raise ArgumentTypeError(f"{who} must be a torch.Tensor of class indices, got "
                                f"{show(labels)} ({type(labels).__name__}); convert it with "
                                f"torch.as_tensor(...)")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise DTypeError(f"{who} must hold integer class indices (int64 or another integer "
                         f"dtype), got {labels.dtype}; float and bool labels are not rounded "
                         f"(use labels.long() if they hold class indices)")
    if labels.dim() != 1:
        raise ShapeError(f"{who} must be class indices of shape [{batch}], got shape "
                         f"{tuple(labels.shape)}")
    if labels.shape[0] != batch:
        raise ShapeError(f"{who}: {labels.shape[0]} labels for a batch of {batch} samples")
    if batch == 0:
        raise ShapeError(f"{who}: the batch is empty (a loss over no samples is undefined)")
    if device is not None and labels.device != device:
        raise DeviceError(f"{who} are on {labels.device}, the network's output on {device}")
    out = labels.to(torch.int64)
    low, high = (int(v) for v in torch.aminmax(out))
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ParameterError(f"{who} must be class indices in [0, {n_classes - 1}] "
                             f"({n_classes} classes), got {bad}")
    return out


def check_path(value: Any, who: str) -> Path:
    """Return a file path given as a ``str`` or an ``os.PathLike`` (``pathlib.Path``) as a
    ``Path``; an empty string is not a path (it would name the current folder).

    Raises:
        ArgumentTypeError: ``value`` is neither (bytes, a number, ``None``...).
        ParameterError: it is an empty string.
    """
    if not isinstance(value, str | os.PathLike) or not isinstance(os.fspath(value), str):
        raise ArgumentTypeError(f"{who} must be a path (a str or pathlib.Path), got "
                                f"{show(value)} ({type(value).__name__})")
    if os.fspath(value) == "":
        raise ParameterError(f"{who} must be a path, got an empty string")
    return Path(value)


# ----------------------------------------------------------------------------- graphs
def check_graph(value: Any, who: str, graph_type: type) -> Any:
    """Return ``value`` if it is a ``graph_type`` (the traced graph, passed in so that this
    bottom layer imports no layer above it).

    Raises:
        ArgumentTypeError: it is not; where ``value`` has a ``.graph`` of that type (a network),
            the message says to pass ``net.graph``.
    """
    if not isinstance(value, graph_type) and isinstance(getattr(value, "graph", None),
                                                          graph_type):
        raise ArgumentTypeError(f"{who} must be a spikeloop {graph_type.__name__}, got a "
                                f"{type(value).__name__}: pass net.graph")
    return check_type(value, who, graph_type, f"a spikeloop {graph_type.__name__} (net.graph)")

# ----------------------------------------------------------------------------- values of parameters
def check_values(value: Any, who: str, shape: tuple[int, ...] | None, *,
                 low: float | None = None, low_open: bool = False) -> Tensor:
    """Return a parameter's value as a new float32 tensor: a real number (a 0-d tensor) or
    values of ``shape`` (a tensor, a NumPy array or a list of numbers; ``shape=None``: any
    shape).

    A bool, a string, ``None`` or values of another kind (complex, strings, ragged lists) are
    not values; a tensor is detached and copied, so the caller owns it.

    Raises:
        ArgumentTypeError: ``value`` is not a real number or an array of them.
        ShapeError: an array whose shape is not ``shape`` (a number is always allowed).
        NonFiniteError: it holds NaN or ±inf.
        ParameterError: a value is outside the range given by ``low``/``low_open``.
    """
    allowed = ("a real number or per-neuron values of shape " + str(shape) if shape is not None
               else "a real number or an array of real numbers")
    bad_type = ArgumentTypeError(f"{who} must be {allowed}, got {show(value)} "
                                 f"({type(value).__name__})")
    number = _scalar(value) if not isinstance(value, list | tuple) else value
    if isinstance(number, bool | str | bytes) or value is None:
        raise bad_type
    if isinstance(number, numbers.Real):
        tensor = torch.tensor(float(number), dtype=torch.float32)
    elif isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise bad_type
        tensor = value.detach().to(torch.float32).clone()
    elif isinstance(value, np.ndarray | list | tuple):
        try:
            array = np.asarray(value)
        except ValueError:  # a ragged list
            raise bad_type from None
        if array.dtype.kind not in "iuf":
            raise bad_type
        tensor = torch.tensor(array, dtype=torch.float32)
    else:
        raise bad_type
    if tensor.dim() and shape is not None and tuple(tensor.shape) != tuple(shape):
        raise ShapeError(f"{who}: per-neuron values must have shape {tuple(shape)} (or be one "
                         f"number), got shape {tuple(tensor.shape)}")
    if not all_finite(tensor):
        raise NonFiniteError(f"{who} must be finite, got {show(value)} (it holds NaN or "
                             "infinite values)")
    if low is not None and tensor.numel():
        smallest = float(tensor.min())
        if smallest < low or (low_open and smallest == low):
            what = "" if tensor.dim() == 0 else "smallest value "
            raise ParameterError(f"{who} must be {'>' if low_open else '≥'} {low:g}, got "
                                 f"{what}{smallest:g}")
    return tensor


def check_ints(value: Any, who: str, n: int, low: int | None = None) -> tuple[int, ...]:
    """Return one integer or ``n`` integers (a tuple, list, NumPy array or tensor) as a tuple
    of ``n`` Python ints, each ``≥ low`` (one integer is repeated: ``3`` → ``(3, 3)``).

    Raises:
        ArgumentTypeError: ``value`` is not an integer or a sequence of integers.
        ParameterError: it holds another number of integers than 1 or ``n``, or one ``< low``.
    """
    given = value
    if isinstance(value, np.ndarray | Tensor) and value.ndim:
        value = list(value.reshape(-1))
    if isinstance(value, list | tuple):
        items = [check_int(v, who, low) for v in value]
        if len(items) not in (1, n):
            raise ParameterError(f"{who} must be one integer or {n} integers, got {show(given)}")
        return tuple(items * n if len(items) == 1 else items)
    number = _scalar(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise ArgumentTypeError(f"{who} must be an integer or {n} integers, got {show(value)} "
                                f"({type(value).__name__})")
    return (check_int(value, who, low),) * n

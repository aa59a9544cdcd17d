"""What export and import share: the metadata key of the discretisation and the array
conventions (float32 arrays out, finite float64 arrays and whole numbers in).

Rules for what a NIR graph may hold (import): every parameter is an array of real numbers (a
string, a bool, ``None`` or a ragged list is not) without NaN or inf; sizes, strides, paddings
and dimensions are whole numbers (an integral float such as ``4.0`` is read as ``4``, ``4.7`` is
refused). A violation raises :class:`~spikeloop.errors.NIRError` naming the node, the attribute
and the value.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import show
from spikeloop.errors import NIRError

METHOD_KEY = "spikeloop_method"
"""NIR node metadata key under which export records the discretisation ``method`` of a
population (import uses it unless ``method`` is given)."""

DELAY_LAYER_KEY = "spikeloop_delay_layer"
"""NIR metadata key on the Linear/Affine node(s) of an exported DelayedLinear: the layer's
name (import rebuilds one DelayedLinear from the branches that carry the same name)."""

DELAY_PER_KEY = "spikeloop_delay_per"
"""NIR metadata key: the exported DelayedLinear's ``per`` (``"synapse"`` or ``"axon"``)."""

MAX_DELAY_KEY = "spikeloop_max_delay"
"""NIR metadata key: the exported DelayedLinear's ``max_delay`` in seconds."""


def f32(value: Tensor | float, shape: tuple[int, ...]) -> np.ndarray:
    """A parameter as a float32 array of ``shape`` (scalars broadcast), as NIR files hold it.

    A float64 model is rounded to float32 on export (its round trip is exact only in float32,
    which is spikeloop's default)."""
    t = torch.as_tensor(value).detach().to("cpu", torch.float32)
    return np.ascontiguousarray(t.expand(shape).numpy().astype(np.float32))


def node_label(node: nir.NIRNode, name: str) -> str:
    """``NIR LIF node 'lif1'``: how error messages name a node."""
    return f"NIR {type(node).__name__} node {name!r}"


def numbers(value: Any, who: str) -> np.ndarray:
    """``value`` as a float64 array if it holds real numbers only (ints or floats; a string,
    bool, ``None``, object or ragged list is refused); ``who`` names it in the message.

    Raises:
        NIRError: it does not.
    """
    if value is None:
        raise NIRError(f"{who} is missing (None)")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise NIRError(f"{who} must be an array of numbers, got {show(value)}: {err}") from None
    if arr.dtype.kind not in "iuf":
        raise NIRError(f"{who} must be an array of numbers, got {show(value)} "
                       f"(dtype {arr.dtype})")
    return arr.astype(np.float64)


def f64(node: nir.NIRNode, attr: str, name: str) -> np.ndarray:
    """The attribute ``attr`` of the NIR node called ``name`` as a float64 array of finite
    real numbers.

    Raises:
        NIRError: it is missing, not numbers, or holds NaN or inf (the node, attribute and value
            are named).
    """
    who = f"{node_label(node, name)}: parameter {attr!r}"
    value = numbers(getattr(node, attr, None), who)
    if not np.isfinite(value).all():
        raise NIRError(f"{who} holds NaN or inf: {show(getattr(node, attr))}")
    return value


def whole(value: Any, who: str, low: int | None = None) -> tuple[int, ...]:
    """``value`` (a number or an array of them) as a flat tuple of Python ints if every entry is
    a whole number ``≥ low`` (``4.0`` counts as ``4``; ``4.7`` does not).

    Raises:
        NIRError: an entry is not a number, not whole, or below ``low``.
    """
    arr = numbers(value, who).reshape(-1)
    if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
        raise NIRError(f"{who} must hold whole numbers, got {show(value)}")
    if low is not None and np.any(arr < low):
        raise NIRError(f"{who} must hold whole numbers ≥ {low}, got {show(value)}")
    return tuple(int(v) for v in arr)

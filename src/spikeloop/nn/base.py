"""What every layer users compose shares: a change counter the containers read to know when
their traced graph is stale.

A layer's description in the IR (:func:`spikeloop.ir.describe`) holds its tensors and settings
as they were when traced. Setting a public attribute of a layer (``layer.dt = …``,
``layer.surrogate = …``, a new tensor for a parameter or buffer), registering a buffer,
parameter or sub-module (``register_buffer`` …) or converting it (``.to(device)``,
``.double()``) increments :func:`version`; a container traces its layers again when the version
moved or its own layers were replaced (:attr:`spikeloop.network.Network.graph`). Changing a
tensor in place (an optimiser step, ``load_state_dict``, ``.data = …``) needs no new trace: the
graph holds the same tensor objects.
"""

from __future__ import annotations

import itertools
from typing import Any

from torch import nn

from spikeloop.errors import ShapeError

_changes = itertools.count()
_version = next(_changes)


def version() -> int:
    """A number that changes whenever a layer's attributes or tensors were replaced."""
    return _version


def _bump() -> None:
    global _version
    _version = next(_changes)


class Layer(nn.Module):
    """Base of spikeloop's layers: records attribute changes and conversions (:func:`version`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_") and name != "training":
            _bump()

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        super().register_buffer(name, tensor, persistent)
        _bump()

    def register_parameter(self, name: str, param: Any) -> None:
        super().register_parameter(name, param)
        _bump()

    def add_module(self, name: str, module: Any) -> None:
        super().add_module(name, module)
        _bump()

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Layer:
        out = super()._apply(fn, *args, **kwargs)
        _bump()  # buffers were replaced by converted tensors
        return out


def check_tensor_shapes(name: str, tensors: Any, need: str = "sizes") -> None:
    """Refuse a layer tensor replaced after construction by one of another shape:
    ``tensors`` yields ``(key, tensor or None, wanted shape)``.

    Raises:
        ShapeError: naming the layer, the tensor, its shape and the one the layer's ``need``
            (its sizes) ask for.
    """
    for key, value, want in tensors:
        if value is not None and tuple(value.shape) != tuple(want):
            raise ShapeError(f"layer {name!r}: {key} has shape {tuple(value.shape)}, the "
                             f"layer's {need} need {tuple(want)}")

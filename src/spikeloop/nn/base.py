"""What every layer users compose shares: a change counter the containers read to know when
their traced graph is stale.

A layer's description in the IR (:func:`spikeloop.ir.describe`) holds its tensors and settings
as they were when traced. Setting a public attribute of a layer (``layer.dt = …``,
``layer.surrogate = …``, a new tensor for a parameter or buffer) or converting it
(``.to(device)``, ``.double()``) increments :func:`version`; a container traces its layers
again when the version moved (:attr:`spikeloop.network.Network.graph`).
"""

from __future__ import annotations

import itertools
from typing import Any

from torch import nn

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

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Layer:
        out = super()._apply(fn, *args, **kwargs)
        _bump()  # buffers were replaced by converted tensors
        return out

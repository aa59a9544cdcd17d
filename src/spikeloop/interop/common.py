"""What export and import share: the metadata key of the discretisation and the array
conventions (float32 arrays out, finite float64 arrays in)."""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch import Tensor

from spikeloop.errors import NIRError

METHOD_KEY = "spikeloop_method"
"""NIR node metadata key under which export records the discretisation ``method`` of a
population (import uses it unless ``method`` is given)."""


def f32(value: Tensor | float, shape: tuple[int, ...]) -> np.ndarray:
    """A parameter as a float32 array of ``shape`` (scalars broadcast), as NIR files hold it.

    A float64 model is rounded to float32 on export (its round trip is exact only in float32,
    which is spikeloop's default)."""
    t = torch.as_tensor(value).detach().to("cpu", torch.float32)
    return np.ascontiguousarray(t.expand(shape).numpy().astype(np.float32))


def f64(node: nir.NIRNode, attr: str) -> np.ndarray:
    """The NIR node's attribute ``attr`` as a float64 array (NaN or inf: :class:`NIRError`)."""
    value = np.asarray(getattr(node, attr), dtype=np.float64)
    if not np.isfinite(value).all():
        raise NIRError(f"NIR {type(node).__name__} parameter {attr!r} holds NaN or inf")
    return value

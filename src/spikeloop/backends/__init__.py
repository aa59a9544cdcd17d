"""Backends: the ``Backend`` protocol, the registry and the simulator.

The chips and the event backend register themselves when first asked for by name
(``BACKENDS.get("chip")``, ``net(x, backend="xylo")``) or imported; importing spikeloop does not
load them.
"""

from __future__ import annotations

import importlib
from typing import Any

from spikeloop.backends.base import BACKENDS, Backend, get_backend
from spikeloop.backends.inloop import in_the_loop
from spikeloop.backends.sim import SimBackend

BACKENDS.add_lazy("event", "spikeloop.backends.event")
BACKENDS.add_lazy("chip", "spikeloop.chips.analog.backend")
BACKENDS.add_lazy("analog", "spikeloop.chips.analog.backend")
BACKENDS.add_lazy("xylo", "spikeloop.chips.xylo.backend")

_LAZY = {"EventBackend": "spikeloop.backends.event", "EventObservables": "spikeloop.backends.event",
         "SpikeEvents": "spikeloop.backends.event"}

__all__ = [
    "BACKENDS", "Backend", "EventBackend", "EventObservables", "SimBackend", "SpikeEvents",
    "get_backend", "in_the_loop",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

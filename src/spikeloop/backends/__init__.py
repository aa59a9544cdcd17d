"""Backends: the ``Backend`` protocol, the registry, the graph executor, the in-the-loop bridge,
the simulator and the event backend.

The chips and the event backend register themselves when first asked for by name
(``BACKENDS.get("chip")``, ``net(x, backend="xylo")``) or imported; importing spikeloop does not
load them. The chips are found by name through their entry points (group ``spikeloop.backends``).
"""

from __future__ import annotations

import importlib
from typing import Any

from spikeloop.backends.base import BACKENDS, Backend, BackendBase, get_backend
from spikeloop.backends.executor import PROJECTIONS, Hooks, ModelHooks, execute
from spikeloop.backends.inloop import in_the_loop
from spikeloop.backends.sim import SimBackend

BACKENDS.add_lazy("event", "spikeloop.backends.event")
# the chips ("chip"/"analog", "xylo") are found through their entry points (pyproject.toml)

_LAZY = {"EventBackend": "spikeloop.backends.event", "EventObservables": "spikeloop.backends.event",
         "SpikeEvents": "spikeloop.backends.event"}

__all__ = [
    "BACKENDS", "PROJECTIONS", "Backend", "BackendBase", "EventBackend", "EventObservables",
    "Hooks", "ModelHooks", "SimBackend", "SpikeEvents", "execute", "get_backend", "in_the_loop",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

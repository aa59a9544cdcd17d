"""Backends: the ``Backend`` protocol, the registry and the simulator."""

# Chips register themselves as backends on import.
import spikeloop.chips.analog  # noqa: F401  (registers "chip" / "analog")
from spikeloop.backends.base import BACKENDS, Backend, get_backend
from spikeloop.backends.event import EventBackend, EventObservables, SpikeEvents
from spikeloop.backends.inloop import in_the_loop
from spikeloop.backends.sim import SimBackend

__all__ = [
    "BACKENDS", "Backend", "EventBackend", "EventObservables", "SimBackend", "SpikeEvents",
    "get_backend", "in_the_loop",
]

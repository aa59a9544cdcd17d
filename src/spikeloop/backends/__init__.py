"""Backends: the ``Backend`` protocol, the registry and the simulator."""

from spikeloop.backends.base import BACKENDS, Backend, get_backend
from spikeloop.backends.sim import SimBackend

__all__ = ["BACKENDS", "Backend", "SimBackend", "get_backend"]

"""spikeloop: spiking neural networks on simulators and (emulated) neuromorphic chips.

The main entry points are re-exported here; subpackages hold the rest:
``spikeloop.dynamics`` (equations), ``spikeloop.nn`` (modules), ``spikeloop.backends``,
``spikeloop.training``, ``spikeloop.data``, ``spikeloop.viz``.

The first time loop on the CPU tunes glibc's allocator (see :mod:`spikeloop._runtime`;
``SPIKELOOP_MALLOC=0`` turns that off). :func:`set_threads` picks torch's thread count the way
the trainer does (``run.threads=auto``: half the usable cores, so another busy process on the
machine does not stall every operator); a script that drives networks itself calls it once.
"""

from spikeloop._runtime import set_threads
from spikeloop.backends import BACKENDS, Backend, get_backend
from spikeloop.errors import (
    CheckpointError,
    ConfigError,
    DeviceError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    SpikeloopError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.ir import Graph, Node, trace
from spikeloop.network import GraphNetwork, Network
from spikeloop.observables import NetworkOutput, Observables

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "Backend",
    "CheckpointError",
    "ConfigError",
    "DeviceError",
    "Graph",
    "GraphNetwork",
    "Network",
    "NetworkOutput",
    "Node",
    "NonFiniteError",
    "Observables",
    "ParameterError",
    "ShapeError",
    "SpikeloopError",
    "TimeStepError",
    "UnknownNameError",
    "__version__",
    "get_backend",
    "set_threads",
    "trace",
]

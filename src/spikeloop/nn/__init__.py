"""Modules users compose: projections, populations, readouts and the ``Network`` container."""

from spikeloop.nn.network import Network
from spikeloop.nn.observables import ExecutionReport, NetworkOutput, Observables
from spikeloop.nn.populations import (
    IF,
    LI,
    LIF,
    POPULATIONS,
    AdaptiveLIF,
    CubaLI,
    CubaLIF,
    Input,
    Population,
    PopulationState,
)
from spikeloop.nn.projections import Conv1d, Conv2d, Flatten, Linear

__all__ = [
    "IF",
    "LI",
    "LIF",
    "POPULATIONS",
    "AdaptiveLIF",
    "Conv1d",
    "Conv2d",
    "CubaLI",
    "CubaLIF",
    "ExecutionReport",
    "Flatten",
    "Input",
    "Linear",
    "Network",
    "NetworkOutput",
    "Observables",
    "Population",
    "PopulationState",
]

"""Modules users compose: projections, populations and readouts (the containers are in
:mod:`spikeloop.network`)."""

from spikeloop.nn.populations import (
    IF,
    LI,
    LIF,
    POPULATIONS,
    AdaptiveLIF,
    CubaLI,
    CubaLIF,
    CubaLIF2,
    Input,
    Population,
    PopulationState,
)
from spikeloop.nn.projections import Conv1d, Conv2d, Flatten, Linear
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

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
    "CubaLIF2",
    "ExecutionReport",
    "Flatten",
    "Input",
    "Linear",

    "NetworkOutput",
    "Observables",
    "Population",
    "PopulationState",
]

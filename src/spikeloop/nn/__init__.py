"""Modules users compose: projections (also with learnable delays), populations, readouts,
batch normalisation and the further NIR layers (gains, pooling, delays, thresholds,
integrators; the containers are in :mod:`spikeloop.network`)."""

from spikeloop.nn.layers import (
    AvgPool2d,
    Delay,
    Integrator,
    IntegratorParameters,
    Scale,
    SumPool2d,
    Threshold,
)
from spikeloop.nn.norm import BatchNorm
from spikeloop.nn.populations import (
    IF,
    LI,
    LIF,
    POPULATIONS,
    AdaptiveLIF,
    AdLIF,
    CubaLI,
    CubaLIF,
    CubaLIF2,
    Input,
    Population,
    PopulationState,
)
from spikeloop.nn.projections import Conv1d, Conv2d, DelayedLinear, Flatten, Linear
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

__all__ = [
    "IF",
    "LI",
    "LIF",
    "POPULATIONS",
    "AdLIF",
    "AdaptiveLIF",
    "AvgPool2d",
    "BatchNorm",
    "Conv1d",
    "Conv2d",
    "CubaLI",
    "CubaLIF",
    "CubaLIF2",
    "Delay",
    "DelayedLinear",
    "ExecutionReport",
    "Flatten",
    "Input",
    "Integrator",
    "IntegratorParameters",
    "Linear",
    "NetworkOutput",
    "Observables",
    "Population",
    "PopulationState",
    "Scale",
    "SumPool2d",
    "Threshold",
]

"""Modules users compose: projections, populations, readouts and the further NIR layers (gains,
pooling, delays, thresholds, integrators; the containers are in :mod:`spikeloop.network`)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

if TYPE_CHECKING:
    from spikeloop.nn.layers import (
        AvgPool2d,
        Delay,
        Integrator,
        IntegratorParameters,
        Scale,
        SumPool2d,
        Threshold,
    )

# spikeloop.nn.layers registers its descriptions with spikeloop.ir, and spikeloop.ir still imports
# the populations from this package: importing it here would be circular, so it loads on first use.
_LAYERS = frozenset({
    "AvgPool2d", "Delay", "Integrator", "IntegratorParameters", "Scale", "SumPool2d", "Threshold",
})


def __getattr__(name: str) -> Any:
    if name in _LAYERS:
        return getattr(import_module("spikeloop.nn.layers"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAYERS)


__all__ = [
    "IF",
    "LI",
    "LIF",
    "POPULATIONS",
    "AdaptiveLIF",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "CubaLI",
    "CubaLIF",
    "Delay",
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

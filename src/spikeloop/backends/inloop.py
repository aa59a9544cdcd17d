"""The in-the-loop bridge: gradients for backends that cannot be differentiated.

A chip runs the forward pass and reports what it observed: spikes and membrane of every
population. :func:`in_the_loop` then re-runs each population's software dynamics (the same step
functions as the simulator) on the spikes the chip observed at its input, and replaces the
software membrane and spikes at every step by the observed ones with a straight-through
identity (value from the chip, gradient through the model). Because the replacement happens
step by step, the model's state always equals the chip's, and the surrogate derivative is
evaluated at the membrane the chip really had.

With an ideal chip (no mismatch, no noise, ideal read-out) the observations equal the
simulator's values and the bridge's gradients equal the simulator's (tested).
"""

from __future__ import annotations

from torch import Tensor

from spikeloop.backends.sim import _run_window
from spikeloop.graph import Graph
from spikeloop.nn.observables import NetworkOutput


def in_the_loop(graph: Graph, x: Tensor, observed: NetworkOutput) -> NetworkOutput:
    """Differentiable observables whose values are ``observed`` and gradients the model's.

    Args:
        graph: the network graph the chip ran.
        x: the input the chip received ``[T, B, *shape]``.
        observed: the chip's observables (spikes and membrane of every population, on the
            simulation grid, in model units).
    """
    populations, _ = _run_window(graph, x, {}, observed.populations)
    return NetworkOutput(populations, graph.output.name, observed.state, observed.report)

r"""EventProp on the time grid: the event backend's ``engine="grid"``.

Time-driven EventProp, as mlGeNN runs it: the network runs in steps of ``dt`` (the simulator's
forward pass, by its fused loops: spikes, membrane and current identical to ``backend="sim"``),
and the spiking populations' backward pass is EventProp's adjoint carried backwards step by
step, with EventProp's jump at each recorded spike, instead of a surrogate derivative at every
step (:mod:`spikeloop.kernels.eventprop` has the equations). Readouts and projections are
differentiated as on the simulator (a non-spiking layer's discrete adjoint is EventProp's on the
grid). As ``dt → 0`` the gradients approach the exact engine's (tested).

It runs the networks the exact engine runs (the same checks,
:func:`~spikeloop.backends.event.layers._layers_and_dt`) except refractory periods and
adaptive (AHP) neurons, and returns the simulator's
:class:`~spikeloop.observables.Observables` (spikes, membrane and current on the grid; the
losses read the grid membrane). A readout's maximum stays at its
step, as on the simulator: where the maximum sits at the arrival of a spike that bends the
membrane down, the exact engine moves the maximum with that spike and differentiates its time
(:mod:`~spikeloop.backends.event.readout`); the grid does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from spikeloop.backends.event.adjoint import _slope_floor
from spikeloop.backends.event.layers import _layers_and_dt, _neuron
from spikeloop.backends.event.records import SpikeEvents
from spikeloop.backends.executor import ModelHooks, execute
from spikeloop.checks import check_sequence
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Graph, Node
from spikeloop.kernels.eventprop import GridEventProp
from spikeloop.kernels.fused import per_neuron
from spikeloop.kernels.loop import Recurrent
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables


def _eventprop(node: Node, like: Tensor) -> GridEventProp:
    """Population ``node``'s constants for EventProp's jump, in ``like``'s dtype and device
    (from the exact engine's reading of the graph, with its slope floor)."""
    c = _neuron(node)
    n = math.prod(node.shape)
    return GridEventProp(*(per_neuron(v, n, like) for v in (c.v_leak, c.r, c.tau_mem, c.tau_syn)),
                         float(node.settings["dt"]), _slope_floor(c))


@dataclass
class _GridHooks(ModelHooks):
    """The simulator's hooks, with EventProp's backward pass for the spiking populations."""

    def run(
        self, graph: Graph, node: Node, current: Tensor, state: Any, p: Any,
        recurrent: Recurrent | None = None, **options: Any,
    ) -> tuple[Observables, Any]:
        if node.model.spiking:
            options["eventprop"] = _eventprop(node, current)
        return super().run(graph, node, current, state, p, recurrent, **options)


def run_grid(graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None,
             membrane: bool) -> NetworkOutput:
    """``EventBackend(engine="grid").run``: ``x`` dense ``[T, B, C]`` or :class:`SpikeEvents`
    (put on the grid by :meth:`SpikeEvents.to_dense`)."""
    start = time.perf_counter()
    layers, dt = _layers_and_dt(graph, state)
    for layer in layers:
        c = _neuron(layer.pop)
        if c.spiking and (c.adaptive or c.t_refrac > 0):
            what = "adaptive (AHP) neurons" if c.adaptive else f"t_refrac = {c.t_refrac} s"
            raise ParameterError(
                f"event backend: population {layer.pop.name!r} has {what}; engine='grid' "
                "runs CUBA-LIF populations without a refractory period (engine='exact' "
                "runs both)")
    n_in = math.prod(graph.input.shape)
    if isinstance(x, SpikeEvents):
        if x.channels.numel() and int(x.channels.max()) >= n_in:
            raise ShapeError(f"SpikeEvents: channel {int(x.channels.max())} does not exist; "
                             f"the input has {n_in} channels (0..{n_in - 1})")
        x = x.to_dense(dt, n_in).to(layers[0].proj.params["weight"].dtype)
    check_sequence(x, graph.input.shape, "event backend input", finite=False)
    if len(graph.input.shape) != 1:
        raise ShapeError("event backend: the input must be 1-d channels [T, B, C]")
    # (the simulator's input check, finiteness included, is the executor's)
    populations, _ = execute(graph, x, _GridHooks(), None)
    if not membrane:  # spiking populations' membranes are not returned (as on the exact engine)
        spiking = {layer.pop.name for layer in layers if layer.pop.model.spiking}
        populations = {k: Observables(spikes=o.spikes, v=None, i=o.i) if k in spiking else o
                       for k, o in populations.items()}
    report = ExecutionReport("event", wall={"run": time.perf_counter() - start},
                             resources={"window_s": x.shape[0] * dt, "engine": "grid"})
    return NetworkOutput(populations, graph.output.name, {}, report)

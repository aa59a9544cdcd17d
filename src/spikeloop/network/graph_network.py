"""``GraphNetwork``: a :class:`~spikeloop.network.Network` whose layers form a directed acyclic
graph (skips, residual sums; what a NIR import with fan-in builds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Graph, Node, describe
from spikeloop.network.network import Network
from spikeloop.nn.populations import Input


class GraphNetwork(Network):
    """A :class:`~spikeloop.network.Network` whose layers form a directed acyclic graph: each
    layer receives the sum of the outputs of the layers named in ``inputs`` (NIR's edge
    semantics) instead of only the previous layer's. It runs on the sim backend like any Network
    (``forward``, parameter checks and backend choice are Network's).

    Args:
        layers: ``name → module`` in a topological order, the first an :class:`Input`, the
            output population last among the populations.
        inputs: ``name → names of the source layers`` for every layer but the input.
        backend: default backend.
    """

    def __init__(
        self,
        layers: Mapping[str, nn.Module],
        inputs: Mapping[str, Sequence[str]],
        *,
        backend: Any = "sim",
    ) -> None:
        # set before Network.__init__, which traces the layers with _trace (a plain attribute,
        # which torch allows before Module.__init__)
        self.inputs = {name: tuple(srcs) for name, srcs in inputs.items()}
        super().__init__(layers, backend=backend)

    def _trace(self, layers: nn.ModuleDict) -> Graph:
        return trace_dag(layers, self.inputs)


def trace_dag(layers: Mapping[str, nn.Module], inputs: Mapping[str, Sequence[str]]) -> Graph:
    """Trace layers given in a topological order into a :class:`~spikeloop.ir.Graph` where each
    layer reads the sum of the layers named in ``inputs[name]`` (each layer describes itself with
    :func:`spikeloop.ir.describe`; the summed inputs must have one shape)."""
    items = list(layers.items())
    if not items or not isinstance(items[0][1], Input):
        raise ShapeError("a network must start with an Input layer")
    unknown = sorted(set(inputs) - set(layers))
    if unknown:
        raise ParameterError(f"inputs are given for layers the network does not have: {unknown}")
    nodes: list[Node] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (name, module) in enumerate(items):
        srcs = tuple(inputs.get(name, ()))
        if i and not srcs:
            raise ShapeError(f"layer {name!r} has no inputs (give its sources in inputs)")
        later = [s for s in srcs if s not in shapes]
        if later:
            raise ShapeError(f"layer {name!r} reads {later}, which are not earlier layers (the "
                             "layers must be in a topological order)")
        in_shapes = {shapes[s] for s in srcs}
        if len(in_shapes) > 1:
            raise ShapeError(f"layer {name!r} sums inputs of different shapes {sorted(in_shapes)}")
        new = describe(module, name, srcs, next(iter(in_shapes)) if srcs else None)
        nodes.extend(new)
        shapes[name] = new[0].shape
    return Graph(tuple(nodes))

"""``GraphNetwork``: a :class:`~spikeloop.network.Network` whose layers form a directed acyclic
graph (skips, residual sums; what a NIR import with fan-in builds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from spikeloop.checks import check_names, check_type, show
from spikeloop.errors import ArgumentTypeError, ShapeError, UnknownNameError
from spikeloop.ir import Graph, Node, check_output, describe
from spikeloop.network.network import Network
from spikeloop.nn.populations import Input


class GraphNetwork(Network):
    """A :class:`~spikeloop.network.Network` whose layers form a directed acyclic graph: each
    layer receives the sum of the outputs of the layers named in ``inputs`` (NIR's edge
    semantics) instead of only the previous layer's. It runs on the sim backend like any Network
    (``forward``, parameter checks and backend choice are Network's).

    Args:
        layers: ``name → module`` in a topological order, the first an :class:`Input`, the
            last a population (the output).
        inputs: ``name → list of the names of its source layers`` for every layer but the
            input (checked by :func:`check_inputs`; a source that is not a layer raises
            :class:`~spikeloop.errors.UnknownNameError`).
        backend: default backend.
        devices: device models by node name (see :class:`~spikeloop.network.Network`).
    """

    def __init__(
        self,
        layers: Mapping[str, nn.Module],
        inputs: Mapping[str, Sequence[str]],
        *,
        backend: Any = "sim",
        devices: Any = None,
    ) -> None:
        # set before Network.__init__, which traces the layers with _trace (a plain attribute,
        # which torch allows before Module.__init__)
        self.inputs = check_inputs(inputs)
        super().__init__(layers, backend=backend, devices=devices)

    def _trace(self, layers: nn.ModuleDict) -> Graph:
        return trace_dag(layers, self.inputs)

    def _structure(self) -> tuple[Any, ...]:
        """The layers and the wiring (``self.inputs`` changed or replaced re-traces)."""
        inputs = self.inputs
        wiring = (tuple((k, tuple(v) if isinstance(v, list | tuple) else v)
                        for k, v in inputs.items()) if isinstance(inputs, Mapping) else inputs)
        return (*super()._structure(), wiring)


def check_inputs(inputs: Any) -> dict[str, tuple[str, ...]]:
    """``inputs`` (``layer name → names of its sources``) as a dict of tuples, after checking
    that it is a mapping of names to lists of names (a string is not a list of names: ``"in"``
    would be read as ``["i", "n"]``).

    Raises:
        ArgumentTypeError: it is not.
    """
    check_type(inputs, "inputs", Mapping, "a mapping of layer names to lists of source names")
    out = {}
    for name, srcs in inputs.items():
        if not isinstance(name, str):
            raise ArgumentTypeError(f"inputs: keys must be layer names (strings), got "
                                    f"{show(name)} ({type(name).__name__})")
        out[name] = check_names(srcs, f"inputs[{name!r}]")
    return out


def trace_dag(layers: Mapping[str, nn.Module], inputs: Mapping[str, Sequence[str]]) -> Graph:
    """Trace layers given in a topological order into a :class:`~spikeloop.ir.Graph` where each
    layer reads the sum of the layers named in ``inputs[name]`` (each layer describes itself with
    :func:`spikeloop.ir.describe`; the summed inputs must have one shape)."""
    inputs = check_inputs(inputs)
    items = list(layers.items())
    if not items or not isinstance(items[0][1], Input):
        raise ShapeError("a network must start with an Input layer")
    unknown = sorted(set(inputs) - set(layers))
    if unknown:
        raise UnknownNameError(f"inputs are given for layers the network does not have: "
                               f"{unknown}; layers: {list(layers)}")
    nodes: list[Node] = []
    shapes: dict[str, tuple[int, ...]] = {}
    read: set[str] = set()
    for i, (name, module) in enumerate(items):
        srcs = inputs.get(name, ())
        if i and not srcs:
            raise ShapeError(f"layer {name!r} has no inputs (give its sources in inputs)")
        missing = [s for s in srcs if s not in layers]
        if missing:
            raise UnknownNameError(f"inputs[{name!r}] names {missing}, which the network does "
                                   f"not have; layers: {list(layers)}")
        read.update(srcs)
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
    check_output(nodes)
    unread = [n.name for n in nodes[:-1] if n.kind in ("projection", "reshape")
              and not n.recurrent and n.name not in read]
    if unread:
        raise ShapeError(f"layers {unread} feed no other layer: a projection or reshape must "
                         "lead to a population (name it in the inputs of a later layer)")
    return Graph(tuple(nodes))

"""The traced, hardware-agnostic network graph.

:func:`trace` turns the ordered layers of a :class:`~spikeloop.nn.Network` into a :class:`Graph`
of nodes — input, populations, projections and reshapes — with per-sample shapes, parameters in
SI units (live tensors, so the graph always shows the current values) and simulation settings.
Backends execute graphs; chip mappers and exporters read them. Which node a module becomes is
decided by :func:`describe`, a registry keyed by module type (``functools.singledispatch``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any, Literal

from torch import Tensor, nn

from spikeloop.errors import ParameterError, ShapeError
from spikeloop.nn.populations import Input, Population
from spikeloop.nn.projections import Conv1d, Conv2d, Flatten, Linear

NodeKind = Literal["input", "population", "projection", "reshape"]


@dataclass(frozen=True)
class Node:
    """One node of the graph.

    Attributes:
        name: unique name (the layer name; ``<population>.recurrent`` for recurrent weights).
        kind: ``"input"``, ``"population"``, ``"projection"`` or ``"reshape"``.
        op: the model or operation (``"CubaLIF"``, ``"Linear"``, ``"Conv2d"``, ``"Flatten"`` …).
        inputs: names of the nodes whose outputs are summed into this node.
        shape: per-sample output shape (neurons for populations).
        params: parameters by NIR-style name (``weight``, ``tau_mem`` …), live tensors.
        settings: non-tensor settings (``dt``, ``method``, ``reset``, ``surrogate`` …).
        synapses: number of synaptic connections (projections).
        recurrent: a projection from a population onto itself, run inside its time loop.
        module: the module that implements the node in the simulator.
    """

    name: str
    kind: NodeKind
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    params: Mapping[str, Tensor] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    synapses: int = 0
    recurrent: bool = False
    module: nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def num_neurons(self) -> int:
        """Neurons in this node (0 unless it is a population or input)."""
        return math.prod(self.shape) if self.kind in ("population", "input") else 0

    @property
    def num_parameters(self) -> int:
        """Trainable scalars owned by this node."""
        if self.module is None:
            return 0
        own = self.module.parameters(recurse=self.kind != "population")
        return sum(p.numel() for p in own if p.requires_grad)


@dataclass(frozen=True)
class Graph:
    """A network as an ordered list of nodes (a topological order)."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ParameterError(f"duplicate node names in graph: {names}")

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __getitem__(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r}; nodes: {[n.name for n in self.nodes]}")

    @property
    def input(self) -> Node:
        """The input node."""
        return self.nodes[0]

    @property
    def output(self) -> Node:
        """The last population (the readout)."""
        return [n for n in self.nodes if n.kind in ("population", "input")][-1]

    def populations(self) -> list[Node]:
        """Population nodes (without the input), in order."""
        return [n for n in self.nodes if n.kind == "population"]

    def projections(self) -> list[Node]:
        """Projection nodes (including recurrent ones), in order."""
        return [n for n in self.nodes if n.kind == "projection"]

    def edges(self) -> list[tuple[str, str]]:
        """``(source, target)`` pairs; a recurrent projection appears as ``(pop, proj)`` and
        ``(proj, pop)``."""
        out = [(src, n.name) for n in self.nodes for src in n.inputs]
        out += [(n.name, n.inputs[0]) for n in self.nodes if n.recurrent]
        return out

    @property
    def num_neurons(self) -> int:
        """Neurons in all populations (the input not counted)."""
        return sum(n.num_neurons for n in self.populations())

    @property
    def num_synapses(self) -> int:
        """Synaptic connections of all projections."""
        return sum(n.synapses for n in self.nodes)

    @property
    def num_parameters(self) -> int:
        """Trainable scalars."""
        return sum(n.num_parameters for n in self.nodes)

    def summary(self) -> str:
        """A printable table of nodes with neurons, synapses and parameters, and totals."""
        rows = [("name", "op", "inputs", "shape", "neurons", "synapses", "params")]
        for n in self.nodes:
            rows.append((
                n.name, n.op, ",".join(n.inputs) or "-", "x".join(map(str, n.shape)),
                str(n.num_neurons), str(n.synapses), str(n.num_parameters),
            ))
        rows.append((
            "total", "", "", "", str(self.num_neurons), str(self.num_synapses),
            str(self.num_parameters),
        ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.insert(len(lines) - 1, lines[1])
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------------- tracing
@singledispatch
def describe(
    module: nn.Module, name: str, inputs: tuple[str, ...], in_shape: tuple[int, ...] | None
) -> list[Node]:
    """Describe ``module`` as graph nodes. Register new layer types with ``describe.register``."""
    raise ParameterError(
        f"cannot trace layer {name!r} of type {type(module).__name__}; supported: "
        + ", ".join(sorted(c.__name__ for c in describe.registry if c is not object))
    )


@describe.register
def _(module: Input, name, inputs, in_shape) -> list[Node]:
    if inputs:
        raise ShapeError(f"the Input layer {name!r} must come first")
    return [Node(name, "input", "Input", (), module.shape, module=module)]


@describe.register
def _(module: Population, name, inputs, in_shape) -> list[Node]:
    if in_shape is not None and tuple(in_shape) != module.shape:
        raise ShapeError(
            f"population {name!r} has shape {module.shape} but receives input of shape {in_shape}"
        )
    settings = {"dt": module.dt, "method": module.method, "surrogate": module.surrogate}
    settings |= module.settings if module.spiking else {}
    pop = Node(
        name, "population", module.model, inputs, module.shape,
        params={n: getattr(module, n) for n in module.tensor_names},
        settings=settings, module=module,
    )
    if module.recurrent is None:
        return [pop]
    rec = module.recurrent
    return [pop, Node(
        f"{name}.recurrent", "projection", "Linear", (name,), module.shape,
        params=_weights(rec), synapses=rec.num_synapses(module.shape), recurrent=True,
        module=rec,
    )]


def _weights(module: nn.Module) -> dict[str, Tensor]:
    out = {"weight": module.weight}
    if getattr(module, "bias", None) is not None:
        out["bias"] = module.bias
    return out


@describe.register(Linear)
@describe.register(Conv1d)
@describe.register(Conv2d)
def _(module: nn.Module, name, inputs, in_shape) -> list[Node]:
    try:
        shape = module.output_shape(in_shape)
    except (ShapeError, RuntimeError) as err:
        raise ShapeError(f"layer {name!r} cannot take input of shape {in_shape}: {err}") from None
    settings = {
        k: getattr(module, k) for k in ("stride", "padding", "dilation", "groups")
        if hasattr(module, k)
    }
    return [Node(
        name, "projection", type(module).__name__, inputs, shape, params=_weights(module),
        settings=settings, synapses=module.num_synapses(in_shape), module=module,
    )]


@describe.register
def _(module: Flatten, name, inputs, in_shape) -> list[Node]:
    return [Node(name, "reshape", "Flatten", inputs, module.output_shape(in_shape), module=module)]


def trace(layers: Mapping[str, nn.Module]) -> Graph:
    """Trace ordered layers (the first an :class:`~spikeloop.nn.Input`) into a :class:`Graph`.

    Each layer receives the output of the previous one; shapes are checked on the way.
    """
    items = list(layers.items())
    if not items or not isinstance(items[0][1], Input):
        raise ShapeError("a network must start with an Input layer, e.g. Input(4)")
    nodes: list[Node] = []
    prev: Node | None = None
    for name, module in items:
        inputs = (prev.name,) if prev is not None else ()
        new = describe(module, name, inputs, prev.shape if prev is not None else None)
        nodes.extend(new)
        prev = new[0]
    if len(nodes) > 1 and nodes[-1].kind not in ("population",) and not nodes[-1].recurrent:
        raise ShapeError(
            f"the last layer {nodes[-1].name!r} must be a population (e.g. a readout), "
            f"not a {nodes[-1].op}"
        )
    return Graph(tuple(nodes))

"""The traced, hardware-agnostic network graph: a description, no live modules.

:func:`trace` turns ordered layers into a :class:`Graph` of nodes — input, populations,
projections and reshapes — with per-sample shapes, parameters in SI units (the layers' own
tensors, so the graph shows the current values) and simulation settings. A population node
names its registered neuron model (``node.op``; :attr:`Node.model` is the description with its
capabilities). Backends execute graphs; chip mappers and exporters read them. Which nodes a
layer becomes is decided by :func:`describe`, a registry keyed by layer type
(``functools.singledispatch``) that each layer type registers with where it is defined.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, singledispatch
from typing import Any, Literal

from torch import Tensor

from spikeloop.dynamics.models import MODELS, SETTINGS, NeuronModel
from spikeloop.errors import ParameterError, ShapeError, TimeStepError

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
        cache: values derived from ``params`` that a backend may keep between calls (e.g. a
            population's coefficients); not part of the description.
        devices: the device models a run realised on this node (:mod:`spikeloop.devices`:
            :meth:`~spikeloop.devices.Devices.realise` sets them on the graph a backend runs;
            empty in a traced graph); not part of the description.
        device_context: where those models draw from in this run (``None``: no devices).
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
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    devices: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    device_context: Any = field(default=None, compare=False, repr=False)

    @property
    def num_neurons(self) -> int:
        """Neurons in this node (0 unless it is a population or input)."""
        return math.prod(self.shape) if self.kind in ("population", "input") else 0

    @property
    def num_parameters(self) -> int:
        """Trainable scalars owned by this node."""
        return sum(p.numel() for p in self.params.values() if p.requires_grad)

    @property
    def model(self) -> NeuronModel:
        """The registered description of a population's neuron model (its capabilities)."""
        if self.kind != "population":
            raise ParameterError(f"node {self.name!r} is a {self.kind}, not a population")
        return MODELS.get(self.op)

    def parameter_record(self) -> Any:
        """A population's parameters as the record its model's step function takes."""
        settings = {k: v for k, v in self.settings.items() if k in SETTINGS}
        return self.model.params(**self.params, **settings)

    @property
    def delay_line(self) -> bool:
        """Whether the node is a projection with a delay line (``Delay``, ``DelayedLinear``):
        its setting ``max_steps`` says how many past inputs it keeps as its state."""
        return self.kind == "projection" and "max_steps" in self.settings

    @property
    def spiking(self) -> bool:
        """Whether the node emits spikes (the input does; populations as their model says)."""
        return self.kind == "input" or (self.kind == "population" and self.model.spiking)


@dataclass(frozen=True)
class Graph:
    """A network as an ordered list of nodes (a topological order)."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ParameterError(f"duplicate node names in graph: {names}")
        dts = {n.name: n.settings["dt"] for n in self.nodes  # (delayed projections have one)
               if n.kind in ("population", "projection") and "dt" in n.settings}
        if len(set(dts.values())) > 1:
            listed = ", ".join(f"{k} {v:g} s" for k, v in dts.items())
            raise TimeStepError(f"all populations and delayed projections of a network must "
                                f"share one dt (one time grid), got {listed}; give every "
                                "population and delayed projection the same dt")

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __getitem__(self, name: str) -> Node:
        try:
            return self.nodes_by_name[name]
        except KeyError:
            raise KeyError(f"no node {name!r}; nodes: {[n.name for n in self.nodes]}") from None

    @cached_property
    def nodes_by_name(self) -> dict[str, Node]:
        """The nodes by name."""
        return {n.name: n for n in self.nodes}

    @cached_property
    def signature(self) -> tuple[tuple[Any, ...], ...]:
        """``(name, kind, op, shape)`` of every node: what a state must have been made for."""
        return tuple((n.name, n.kind, n.op, n.shape) for n in self.nodes)

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
    module: Any, name: str, inputs: tuple[str, ...], in_shape: tuple[int, ...] | None
) -> list[Node]:
    """Describe the layer ``module`` as graph nodes (the first one is the layer's output).

    ``inputs``: names of the nodes feeding it; ``in_shape``: their per-sample shape (``None``
    for the first layer). Layer types register with ``@describe.register`` where they are
    defined; this function knows none of them.
    """
    raise ParameterError(
        f"cannot trace layer {name!r} of type {type(module).__name__}; supported: "
        + ", ".join(sorted(c.__name__ for c in describe.registry if c is not object))
    )


def trace(layers: Mapping[str, Any]) -> Graph:
    """Trace ordered layers (the first an input layer, e.g. ``spikeloop.nn.Input``) into a
    :class:`Graph`.

    Each layer receives the output of the previous one; shapes are checked on the way.
    """
    items = list(layers.items())
    try:
        first = describe(items[0][1], items[0][0], (), None) if items else None
    except (ShapeError, ParameterError):
        first = None
    if not first or first[0].kind != "input":
        raise ShapeError("a network must start with an Input layer, e.g. Input(4)")
    nodes: list[Node] = []
    prev: Node | None = None
    for name, module in items:
        inputs = (prev.name,) if prev is not None else ()
        new = first if prev is None else describe(module, name, inputs, prev.shape)
        nodes.extend(new)
        prev = new[0]
    check_output(nodes)
    return Graph(tuple(nodes))


def check_output(nodes: list[Node] | tuple[Node, ...]) -> None:
    """Raise :class:`ShapeError` unless the last layer traced into ``nodes`` is a population:
    a network's output is a population (a projection's or reshape's output would be dropped,
    and the output taken from an earlier layer)."""
    last = nodes[-1] if nodes else None
    if last is not None and last.recurrent:  # a recurrent population's own weights
        last = next(n for n in nodes if n.name == last.inputs[0])
    if len(nodes) > 1 and last is not None and last.kind != "population":
        raise ShapeError(
            f"the last layer {last.name!r} must be a population (e.g. a readout such as "
            f"CubaLI): a network's output is a population, not a {last.op}"
        )

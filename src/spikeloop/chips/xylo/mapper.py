"""Graph → chip layout: which hidden neurons each population occupies and which matrix block
each projection fills.

Supported graphs: ``Input(≤ 16)``, then one or more ``Linear → CubaLIF`` hidden layers
(recurrent allowed), then ``Linear → CubaLIF`` or ``Linear → CubaLI`` (≤ 8 neurons) as the
readout. Hidden layers are placed one after another in the hidden pool (≤ 1000 neurons); the
first projection fills the input matrix, projections between hidden layers and recurrent
projections fill blocks of the one recurrent matrix, the last projection fills the output
matrix. Every hop between hidden layers and from the last hidden layer to the readout costs
one time step on the chip. Every violated limit raises :class:`~spikeloop.errors.MappingError`
naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spikeloop.chips.xylo.spec import XyloSpec
from spikeloop.errors import MappingError, NonFiniteError
from spikeloop.graph import Graph, Node

HIDDEN_MODELS = ("CubaLIF",)
READOUT_MODELS = ("CubaLIF", "CubaLI")


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden population and the hidden-neuron indices ``offset … offset + size − 1``."""

    node: Node
    offset: int
    size: int


@dataclass(frozen=True)
class ProjectionBlock:
    """A projection filling ``matrix`` (``"in"``, ``"rec"`` or ``"out"``) rows
    ``src_offset …`` and columns ``dst_offset …`` (``[pre, post]``)."""

    node: Node
    matrix: str
    src_offset: int
    dst_offset: int


@dataclass(frozen=True)
class XyloLayout:
    """Where a graph lives on the chip."""

    inputs: int
    hidden: tuple[HiddenLayer, ...]
    readout: Node
    projections: tuple[ProjectionBlock, ...]
    dt: float

    @property
    def num_hidden(self) -> int:
        """Hidden neurons used."""
        return sum(h.size for h in self.hidden)

    @property
    def num_outputs(self) -> int:
        """Output neurons used."""
        return self.readout.num_neurons

    def summary(self) -> dict:
        """Resource use for execution reports."""
        return {"inputs": self.inputs, "hidden": self.num_hidden, "outputs": self.num_outputs,
                "hidden_layers": {h.node.name: (h.offset, h.size) for h in self.hidden},
                "hops": len(self.hidden)}


def _check_population(node: Node, models: tuple[str, ...], role: str) -> None:
    if node.op not in models:
        raise MappingError(f"population {node.name!r} is a {node.op}; the Xylo chip's {role} "
                           f"neurons are current-based: {', '.join(models)}")
    if len(node.shape) != 1:
        raise MappingError(f"population {node.name!r} has shape {node.shape}; flatten to 1-d")
    for key in ("v_leak", "v_reset"):
        value = node.params.get(key)
        if value is not None and bool((value.detach() != 0).any()):
            raise MappingError(f"population {node.name!r}: {key} must be 0 on the Xylo chip "
                               "(its membranes rest at 0 and reset by subtracting the threshold)")
    if node.settings.get("t_refrac", 0.0):
        raise MappingError(f"population {node.name!r}: t_refrac = {node.settings['t_refrac']:g} s;"
                           " the Xylo chip has no refractory period (t_refrac must be 0)")
    for key, value in node.params.items():
        if not bool(torch.isfinite(value.detach()).all()):
            raise NonFiniteError(f"population {node.name!r}: {key} holds NaN or inf")


def map_graph(graph: Graph, spec: XyloSpec | None = None) -> XyloLayout:
    """Lay ``graph`` out on the chip; raises :class:`MappingError` naming any violated limit."""
    spec = spec or XyloSpec()
    nodes = list(graph.nodes)
    inp = nodes[0]
    if len(inp.shape) != 1:
        raise MappingError(f"the input has shape {inp.shape}; the Xylo chip takes 1-d input "
                           f"channels (≤ {spec.inputs})")
    if inp.num_neurons > spec.inputs:
        raise MappingError(f"{inp.num_neurons} input channels exceed the chip's {spec.inputs}")
    pops: list[Node] = []
    projs: list[Node] = []
    recurrent: dict[str, Node] = {}
    for node in nodes[1:]:
        if node.kind == "reshape":
            raise MappingError(f"node {node.name!r} ({node.op}) has no counterpart on the Xylo "
                               "chip; use Linear projections between 1-d populations")
        if node.kind == "projection":
            if node.op != "Linear":
                raise MappingError(f"projection {node.name!r} is a {node.op}; the Xylo chip's "
                                   "weight matrices map Linear projections only")
            w = node.params["weight"].detach()
            if not bool(torch.isfinite(w).all()):
                raise NonFiniteError(f"projection {node.name!r}: weights hold NaN or inf")
            if node.recurrent:
                recurrent[node.inputs[0]] = node
            else:
                projs.append(node)
        elif node.kind == "population":
            pops.append(node)
    if len(pops) < 2:
        raise MappingError("the Xylo chip needs at least one hidden layer before the readout "
                           "(Input → Linear → CubaLIF → Linear → readout)")
    if len(projs) != len(pops):
        raise MappingError("every population must be fed by exactly one Linear projection")
    *hidden_nodes, readout = pops
    for node in hidden_nodes:
        _check_population(node, HIDDEN_MODELS, "hidden")
    _check_population(readout, READOUT_MODELS, "output")
    if readout.name in recurrent:
        raise MappingError(f"the readout {readout.name!r} is recurrent; the Xylo chip's output "
                           "neurons have no recurrent weights (only hidden → output)")
    if readout.num_neurons > spec.outputs:
        raise MappingError(f"the readout {readout.name!r} has {readout.num_neurons} neurons; the "
                           f"chip has {spec.outputs} output neurons")
    total = sum(n.num_neurons for n in hidden_nodes)
    if total > spec.hidden_max:
        raise MappingError(f"{total} hidden neurons exceed the chip's {spec.hidden_max}")
    dts = {n.settings["dt"] for n in pops}
    if len(dts) != 1:
        raise MappingError(f"all populations must share one dt on the chip, got {sorted(dts)}")
    hidden, offset = [], 0
    for node in hidden_nodes:
        hidden.append(HiddenLayer(node, offset, node.num_neurons))
        offset += node.num_neurons
    blocks = [ProjectionBlock(projs[0], "in", 0, 0)]
    for k in range(1, len(hidden)):
        blocks.append(ProjectionBlock(projs[k], "rec", hidden[k - 1].offset, hidden[k].offset))
    blocks.append(ProjectionBlock(projs[-1], "out", hidden[-1].offset, 0))
    for h in hidden:
        if h.node.name in recurrent:
            blocks.append(ProjectionBlock(recurrent[h.node.name], "rec", h.offset, h.offset))
    dt = dts.pop()
    if not (math.isfinite(dt) and dt > 0):
        raise MappingError(f"dt must be a finite number > 0, got {dt!r}")
    return XyloLayout(inp.num_neurons, tuple(hidden), readout, tuple(blocks), dt)

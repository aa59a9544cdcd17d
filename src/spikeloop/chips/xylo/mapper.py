"""Graph → chip layout: which hidden neurons each population occupies, which matrix block each
projection fills and which hidden neurons alias others.

Supported graphs (a :class:`~spikeloop.network.Network` chain or a DAG such as
:class:`~spikeloop.network.GraphNetwork`): ``Input(≤ 16)``, hidden ``CubaLIF``
populations (recurrent allowed) or ``CubaLIF2`` (two synaptic currents: the ``2N`` outputs of
each projection into it fill synapse 0 and 1) and one readout (``CubaLIF`` or ``CubaLI``,
≤ 8 neurons, the graph's last population), every population fed by one or more ``Linear``
projections. Hidden populations are placed one after another in graph order in the hidden pool
(≤ 1000 neurons).
A projection from the input fills the input matrix; one from a hidden population fills a block
of the one recurrent matrix (into a hidden population) or of the output matrix (into the
readout); recurrent projections fill diagonal blocks. So a *weighted skip* — a population fed by
several projections, e.g. ``A → B → C`` and ``A → C`` — is just several blocks.

**Residual skips as aliases.** A projection that reads the *sum* of the spikes of several hidden
populations ``S₁ … S_k`` (equal sizes; e.g. ``W (z_A + z_B)``, a residual connection) is the
chip's alias mechanism: every source but the last in graph order (the *target* ``T``) gets
``alias = T``'s neuron of the same index, so on every step the chip counts the source's spikes
as ``T``'s too and ``T``'s outgoing weights carry ``z_T + Σ z_S`` (capped at 31 per step); the
projection's weights fill ``T``'s rows only. This is exact for the graph only if
every reader of ``T`` reads that same sum (or a larger sum that contains it, below), ``T`` is
not recurrent (its recurrent weights would see the sources' spikes) and a source aliases one
target only (one alias per hidden neuron). **Nested sums** are chains: a residual stack
``x₂ = z_A + z_B``, ``x₃ = x₂ + z_C`` is ``A → B → C`` (``A`` aliases ``B``, ``B`` aliases
``C``); the chip passes a target's whole count on, so ``C``'s weights carry
``z_A + z_B + z_C`` — exact when the outer sum contains the whole inner one. Anything else
(e.g. a sum ``z_B + z_C`` while ``B`` carries ``z_A + z_B``) raises
:class:`~spikeloop.errors.MappingError` saying which rule it breaks.
Sources precede their target in the hidden pool, so the chip adds
their counts before the target fires and the target's own count is recoverable
(:func:`~spikeloop.chips.xylo.dynamics.own_counts`).

**Timing.** Input events reach the hidden neurons in the step they arrive. Each hop from a
hidden population — to another hidden population or to the readout, through weights or an
alias sum — costs one time step: spikes fired at step ``t`` are delivered at ``t + 1``. So in
``A → B → C`` with a skip ``A → C``, ``A``'s spikes reach ``C`` one step after they are fired by
the skip and two steps after by the path through ``B``; :attr:`XyloLayout.hops` lists, for every
population, the fewest and the most hops from the input. The QAT model runs the same timing
(:mod:`spikeloop.chips.xylo.dynamics`); the float model (sim backend) has no hop delays.

Every violated limit raises :class:`~spikeloop.errors.MappingError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from spikeloop.checks import all_finite, check_dt, check_graph
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.dynamics.models import MODELS, NeuronModel
from spikeloop.errors import MappingError, NonFiniteError
from spikeloop.ir import Graph, Node


def _hidden(model: NeuronModel) -> bool:
    """A hidden neuron: spiking, with at most the chip's two synaptic currents."""
    return model.runs_on("xylo") and model.spiking and model.currents <= 2


def _readout(model: NeuronModel) -> bool:
    """An output neuron: one synaptic current (spiking or not)."""
    return model.runs_on("xylo") and model.currents == 1


ROLES: dict[str, Callable[[NeuronModel], bool]] = {"hidden": _hidden, "output": _readout}
"""Which models the chip's hidden and output neurons implement, by their capabilities."""


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden population and the hidden-neuron indices ``offset … offset + size − 1``."""

    node: Node
    offset: int
    size: int


@dataclass(frozen=True)
class ProjectionBlock:
    """A projection filling ``matrix`` (``"in"``, ``"rec"`` or ``"out"``) rows
    ``src_offset …`` and columns ``dst_offset …`` (``[pre, post]``). A projection that feeds
    several populations has one block per population. ``synapses = 2``: the projection feeds a
    two-current population (``CubaLIF2``): its outputs ``[0, N)`` go to synapse 0, ``[N, 2N)``
    to synapse 1."""

    node: Node
    matrix: str
    src_offset: int
    dst_offset: int
    synapses: int = 1


@dataclass(frozen=True)
class Alias:
    """Hidden neuron ``source_offset + k`` aliases ``target_offset + k`` (``k < size``): its
    spikes are also counted as the target's (a residual sum ``z_target + z_source``)."""

    source: str
    target: str
    source_offset: int
    target_offset: int
    size: int


@dataclass(frozen=True)
class XyloLayout:
    """Where a graph lives on the chip."""

    inputs: int
    hidden: tuple[HiddenLayer, ...]
    readout: Node
    projections: tuple[ProjectionBlock, ...]
    dt: float
    aliases: tuple[Alias, ...] = ()
    input_name: str = "input"
    hops: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def num_hidden(self) -> int:
        """Hidden neurons used."""
        return sum(h.size for h in self.hidden)

    @property
    def num_outputs(self) -> int:
        """Output neurons used."""
        return self.readout.num_neurons

    def alias_targets(self) -> Tensor:
        """The chip's alias register ``[N]`` (long): each hidden neuron's target, −1 for none."""
        out = torch.full((self.num_hidden,), -1, dtype=torch.int64)
        for a in self.aliases:
            out[a.source_offset:a.source_offset + a.size] = torch.arange(
                a.target_offset, a.target_offset + a.size)
        return out

    def summary(self) -> dict:
        """Resource use for execution reports (``hops``: fewest and most time steps from an
        input event to the readout)."""
        return {"inputs": self.inputs, "hidden": self.num_hidden, "outputs": self.num_outputs,
                "hidden_layers": {h.node.name: (h.offset, h.size) for h in self.hidden},
                "aliases": {a.source: a.target for a in self.aliases},
                "hops": self.hops.get(self.readout.name, (len(self.hidden),) * 2)}


def _check_population(node: Node, role: str) -> None:
    if not ROLES[role](node.model):
        models = [n for n in MODELS.names() if ROLES[role](MODELS.get(n))]
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
        if not all_finite(value):
            raise NonFiniteError(f"population {node.name!r}: {key} holds NaN or inf")


def _check_projection(node: Node) -> None:
    if node.delay_line:
        raise MappingError(
            f"projection {node.name!r} is a {node.op} with transmission delays (up to "
            f"{node.settings['max_steps']} steps); the Xylo chip has no programmable delays: "
            "its weight matrices act within the step, so use a Linear projection")
    if node.op != "Linear":
        raise MappingError(f"projection {node.name!r} is a {node.op}; the Xylo chip's "
                           "weight matrices map Linear projections only")
    if not all_finite(node.params["weight"]):
        raise NonFiniteError(f"projection {node.name!r}: weights hold NaN or inf")


def _alias_groups(
    projs: list[Node], recurrent: Mapping[str, Node], order: Mapping[str, int]
) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """Target population → the populations whose spike sum its outgoing weights carry (itself
    included), for every projection that sums several hidden populations, and each alias
    source → its (direct) target; checks the rules in the module docstring.

    A *nested* sum (a residual chain ``x₂ = z_A + z_B``, ``x₃ = x₂ + z_C``) is a chain of
    aliases ``A → B → C``: the sum with target ``C`` contains the whole sum with target ``B``,
    so ``B`` is ``C``'s direct source and ``A`` is ``B``'s only."""
    groups: dict[str, frozenset[str]] = {}
    for p in projs:
        if len(p.inputs) < 2:
            continue
        srcs = frozenset(p.inputs)
        if len(srcs) != len(p.inputs):
            raise MappingError(f"projection {p.name!r} reads {list(p.inputs)}: a population "
                               "twice in one sum has no alias counterpart (scale the weights)")
        target = max(srcs, key=order.__getitem__)
        if groups.get(target, srcs) != srcs:
            raise MappingError(
                f"population {target!r} is summed with {sorted(groups[target] - {target})} and "
                f"with {sorted(srcs - {target})}; the chip's alias makes a source's spikes the "
                "target's for every reader, so all sums with one target must be the same")
        groups[target] = srcs
    alias_of: dict[str, str] = {}
    for t in sorted(groups, key=order.__getitem__):
        srcs = groups[t]
        inner = [u for u in srcs - {t} if u in groups]
        for u in inner:
            if not groups[u] <= srcs:
                raise MappingError(
                    f"population {u!r} is an alias source (of {t!r}) and an alias target (of "
                    f"{sorted(groups[u] - {u})}); chained aliases (a sum of sums) are mapped only "
                    f"when the outer sum {sorted(srcs)} contains the whole inner sum "
                    f"{sorted(groups[u])}: the chip passes a target's whole count on")
        covered = {s for u in inner for s in groups[u] - {u}}
        for s in srcs - {t} - covered:  # direct sources: not inside a nested sum
            if alias_of.get(s, t) != t:
                raise MappingError(
                    f"population {s!r} is summed with {alias_of[s]!r} and with {t!r}; the "
                    "chip has one alias per hidden neuron")
            alias_of[s] = t
    for t, srcs in groups.items():
        if t in recurrent:
            raise MappingError(
                f"population {t!r} is recurrent and the alias target of {sorted(srcs - {t})}: "
                "its recurrent weights would also carry their spikes; make another population "
                "of the sum the last in graph order or drop the recurrence")
        for p in projs:
            if t in p.inputs and not (frozenset(p.inputs) in groups.values()
                                      and srcs <= frozenset(p.inputs)):
                raise MappingError(
                    f"projection {p.name!r} reads {list(p.inputs)}, but {t!r} carries the sum "
                    f"{sorted(srcs)} on the chip (alias target): every reader of {t!r} must read "
                    "that same sum (or a sum that contains it)")
    return groups, alias_of


def map_graph(graph: Graph, spec: XyloSpec | None = None) -> XyloLayout:
    """Lay ``graph`` out on the chip.

    Raises:
        ArgumentTypeError: ``graph`` is not a Graph (a Network: pass ``net.graph``) or ``spec``
            not a :class:`XyloSpec`.
        MappingError: a violated limit (named).
        NonFiniteError: a parameter holds NaN or inf.
    """
    graph = check_graph(graph, "graph", Graph)
    spec = spec_or_default(spec)
    nodes = list(graph.nodes)
    by_name = {n.name: n for n in nodes}
    order = {n.name: k for k, n in enumerate(nodes)}
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
            _check_projection(node)
            if node.recurrent:
                recurrent[node.inputs[0]] = node
            else:
                projs.append(node)
        elif node.kind == "population":
            pops.append(node)
    if len(pops) < 2:
        raise MappingError("the Xylo chip needs at least one hidden layer before the readout "
                           "(Input → Linear → CubaLIF → Linear → readout)")
    *hidden_nodes, readout = pops
    consumers: dict[str, list[Node]] = {p.name: [] for p in projs}
    for pop in pops:
        if not pop.inputs:
            raise MappingError(f"population {pop.name!r} receives no input")
        for src in pop.inputs:
            if by_name[src].kind != "projection":
                raise MappingError(
                    f"population {pop.name!r} is fed by {src!r} ({by_name[src].op}) directly; "
                    "on the Xylo chip every population is fed through Linear weights")
            consumers[src].append(pop)
    for p in projs:
        if not consumers[p.name]:
            raise MappingError(f"projection {p.name!r} feeds no population")
        for src in p.inputs:
            s = by_name[src]
            if s is readout:
                raise MappingError(f"projection {p.name!r} reads the readout {readout.name!r}; "
                                   "the chip's output neurons drive no weights")
            if s.kind != "population" and s is not inp:
                raise MappingError(f"projection {p.name!r} reads {src!r} ({s.op}); a Linear "
                                   "reads the input or hidden populations (merge two Linears)")
        if len(p.inputs) > 1 and inp.name in p.inputs:
            raise MappingError(
                f"projection {p.name!r} sums the input channels with hidden spikes "
                f"{list(p.inputs)}; input channels have no aliases on the chip: feed the "
                "population through two Linear projections instead")
    for node in hidden_nodes:
        _check_population(node, "hidden")
    _check_population(readout, "output")
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
    dt = dts.pop()
    check_dt(dt)
    _, alias_of = _alias_groups(projs, recurrent, order)

    hidden, offset = [], 0
    offsets: dict[str, int] = {}
    for node in hidden_nodes:
        hidden.append(HiddenLayer(node, offset, node.num_neurons))
        offsets[node.name] = offset
        offset += node.num_neurons
    aliases = tuple(
        Alias(s, t, offsets[s], offsets[t], by_name[t].num_neurons)
        for s, t in sorted(alias_of.items(), key=lambda st: (order[st[1]], order[st[0]])))
    blocks = []
    hops: dict[str, tuple[int, int]] = {}
    for pop in pops:  # graph order: every source population comes first
        fewest, most = math.inf, -math.inf
        for p in (by_name[name] for name in pop.inputs):
            for src in p.inputs:
                h = 0 if src == inp.name else hops[src][0] + 1
                fewest = min(fewest, h)
                most = max(most, 0 if src == inp.name else hops[src][1] + 1)
            # the weights sit in the rows of the alias target (the last source in graph order)
            src = max(p.inputs, key=order.__getitem__)
            syn = pop.model.currents
            if src == inp.name:
                if pop is readout:
                    raise MappingError(
                        f"projection {p.name!r} feeds the readout from the input; the chip has "
                        "no input → output weights (put a hidden layer between)")
                blocks.append(ProjectionBlock(p, "in", 0, offsets[pop.name], syn))
            elif pop is readout:
                blocks.append(ProjectionBlock(p, "out", offsets[src], 0))
            else:
                blocks.append(ProjectionBlock(p, "rec", offsets[src], offsets[pop.name], syn))
        hops[pop.name] = (int(fewest), int(most))
    for h in hidden:
        if h.node.name in recurrent:
            blocks.append(ProjectionBlock(recurrent[h.node.name], "rec", h.offset, h.offset))
    return XyloLayout(inp.num_neurons, tuple(hidden), readout, tuple(blocks), dt, aliases,
                      inp.name, hops)

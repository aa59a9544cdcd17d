"""Import of graphs: a ``nir.NIRGraph`` → a spikeloop :class:`~spikeloop.network.Network`
(a chain, with recurrent projections) or :class:`~spikeloop.network.GraphNetwork` (a DAG).
Nested subgraphs are inlined, a population's recurrent Linear/Affine is attached to it,
branches ``Delay → Linear/Affine`` of one delayed projection become one
:class:`~spikeloop.nn.DelayedLinear` (:func:`_fuse_delays`), the nodes are put in a
topological order and each is converted by :data:`IMPORTERS`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
from torch import nn

from spikeloop.checks import check_choice, check_dt, check_type, show
from spikeloop.dynamics.neurons import METHODS
from spikeloop.errors import NIRError, ParameterError, ShapeError, UnknownNameError
from spikeloop.interop.common import f64, whole
from spikeloop.interop.importer import (
    IMPORTERS,
    DelayBranches,
    ImportContext,
    delay_tag,
    delayed_linear,
)
from spikeloop.ir import describe
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn.populations import Input, Population


def _layer_name(name: str, taken: set[str]) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "node"
    if hasattr(nn.ModuleDict, out):
        out += "_"
    while out in taken:
        out += "_"
    taken.add(out)
    return out


def _check_structure(graph: nir.NIRGraph, where: str) -> None:
    """``graph.nodes`` is a dict of string names to NIR nodes and ``graph.edges`` a list of
    ``(source, destination)`` pairs of names (``where``: which (sub)graph, for the message)."""
    nodes, edges = getattr(graph, "nodes", None), getattr(graph, "edges", None)
    if not isinstance(nodes, Mapping):
        raise NIRError(f"{where}: nodes must be a dict of node names to NIR nodes, got "
                       f"{show(nodes)} ({type(nodes).__name__})")
    for name, node in nodes.items():
        if not isinstance(name, str):
            raise NIRError(f"{where}: node names must be strings, got {name!r} "
                           f"({type(name).__name__})")
        if not isinstance(node, nir.NIRNode):
            raise NIRError(f"{where}: node {name!r} is a {type(node).__name__}, not a NIR node")
    if not isinstance(edges, list | tuple):
        raise NIRError(f"{where}: edges must be a list of (source, destination) pairs, got "
                       f"{show(edges)} ({type(edges).__name__})")
    for edge in edges:
        if not (isinstance(edge, list | tuple) and len(edge) == 2
                and all(isinstance(end, str) for end in edge)):
            raise NIRError(f"{where}: every edge must be a (source, destination) pair of node "
                           f"names, got {show(edge)}")


def _inline(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode],
                                                            list[tuple[str, str]]]:
    """Flatten nested subgraphs: a subgraph's nodes get ``<subgraph>.<node>`` names; its Input
    and Output nodes become pass-through nodes that :func:`_bypass` removes."""
    _check_structure(graph, f"nested NIR graph {prefix[:-1]!r}" if prefix else "the NIR graph")
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _inline(node, full + ".")
            ins = [full + "." + k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [full + "." + k for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise NIRError(f"nested NIR graph {full!r} must have one Input and one Output "
                               f"node, has {len(ins)} and {len(outs)}")
            nodes.update(sub_nodes)
            edges += sub_edges
            for k in (*ins, *outs):
                nodes[k] = _PASS
            entry[full], exit_[full] = ins, outs
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        src, dst = prefix + str(src), prefix + str(dst)
        for s in exit_.get(src, [src]):
            for d in entry.get(dst, [dst]):
                edges.append((s, d))
    return nodes, edges


_PASS = object()  # marker of a nested graph's Input/Output node (identity, removed)


def _bypass(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for name in [k for k, v in nodes.items() if v is _PASS]:
        ins = [s for s, d in edges if d == name]
        outs = [d for s, d in edges if s == name]
        edges = [e for e in edges if name not in e] + [(s, d) for s in ins for d in outs]
        del nodes[name]
    return list(dict.fromkeys(edges))


_NEURONS = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)


def nir_to_network(graph: nir.NIRGraph, dt: float, method: str | None = None) -> Network:
    """Convert a NIR graph to a spikeloop network (see :func:`from_nir`)."""
    check_type(graph, "graph", nir.NIRGraph, "a nir.NIRGraph (read a file with read_nir)")
    dt = check_dt(dt)
    if method is not None:
        check_choice(method, "method", METHODS)
    nodes, edges = _inline(graph)
    edges = _bypass(nodes, edges)
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                raise NIRError(f"NIR edge ({src!r}, {dst!r}) names a node {end!r} that the "
                               "graph does not have")
    ins = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise NIRError(f"spikeloop networks have one input and one output; the NIR graph has "
                       f"inputs {ins} and outputs {outs}")
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        preds[dst].append(src)
        succs[src].append(dst)
    # a Linear/Affine whose only input and only output is the same neuron node: its recurrence
    recurrent: dict[str, str] = {}
    for name, node in nodes.items():
        if isinstance(node, nir.Linear | nir.Affine) and len(preds[name]) == 1 \
                and preds[name] == succs[name] and isinstance(nodes[preds[name][0]], _NEURONS) \
                and preds[name][0] not in recurrent:
            recurrent[preds[name][0]] = name
    skip = set(recurrent.values())
    edges = [(s, d) for s, d in edges if s not in skip and d not in skip]
    edges = _fuse_delays(nodes, edges)
    preds = {k: [s for s, d in edges if d == k] for k in nodes if k not in skip}
    order = _topological(preds, ins[0], outs[0])
    _reach_output(preds, outs[0])
    taken: set[str] = set()
    names = {k: _layer_name(k, taken) for k in order}
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    shapes: dict[str, tuple[int, ...]] = {}
    output_src = preds[outs[0]]
    if len(output_src) != 1:
        raise NIRError(f"the NIR Output node {outs[0]!r} must have one source, has {output_src}")
    for key in order:
        node = nodes[key]
        if isinstance(node, nir.Output):
            continue
        if isinstance(node, nir.Input):
            shape = _declared(node, "input_type", "input", key)
            if shape is None:
                raise NIRError(f"the NIR Input node {key!r} declares no input shape "
                               f"(input_type {show(node.input_type)})")
            layers[names[key]] = Input(shape)
            shapes[key] = shape
            continue
        src_shapes = {shapes[s] for s in preds[key]}
        if len(src_shapes) != 1:
            raise NIRError(f"NIR node {key!r} receives inputs of shapes {sorted(src_shapes)}"
                           if src_shapes else f"NIR node {key!r} receives no input")
        ctx = ImportContext(key, dt, method, next(iter(src_shapes)))
        if isinstance(node, DelayBranches):
            try:
                module = delayed_linear(node, ctx)
                shapes[key] = describe(module, names[key], ("_",), ctx.in_shape)[0].shape
            except (ShapeError, ParameterError) as err:
                raise NIRError(f"NIR nodes {[p for _, (p, _) in node.branches]} (a delayed "
                               f"projection {key!r}): {err}") from None
            layers[names[key]] = module
            continue
        try:
            conv = IMPORTERS.get(type(node).__name__)
        except UnknownNameError:
            raise NIRError(f"NIR node {key!r} of type {type(node).__name__} has no spikeloop "
                           f"counterpart; importable: {', '.join(IMPORTERS.names())}") from None
        try:
            module = conv.fn(node, ctx)
            if key in recurrent:
                _attach_recurrent(module, nodes[recurrent[key]], key, ctx)
            shapes[key] = describe(module, names[key], ("_",), ctx.in_shape)[0].shape
        except (ShapeError, ParameterError) as err:
            raise NIRError(f"NIR node {key!r} ({type(node).__name__}): {err}") from None
        layers[names[key]] = module
    src = output_src[0]
    declared = _declared(nodes[outs[0]], "output_type", "output", outs[0])
    if declared is not None and declared != shapes[src]:
        raise NIRError(f"the NIR Output node {outs[0]!r} declares shape {declared}, but its "
                       f"source {src!r} produces {shapes[src]}")
    if not isinstance(layers[names[src]], Population | Input):
        raise NIRError(f"the NIR output is fed by {src!r}, a {type(nodes[src]).__name__}; "
                       "spikeloop networks end in a population (add e.g. an LI readout)")
    chain = all(preds[k] == [order[i - 1]] for i, k in enumerate(order) if i and k != outs[0])
    if chain:
        return Network(layers)
    inputs = {names[k]: [names[s] for s in preds[k]] for k in order if k not in (ins[0], outs[0])}
    return GraphNetwork(layers, inputs)


def _fuse_delays(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Replace the branches ``source → Delay → Linear/Affine → destination`` (each Delay and
    projection on no other edge) of one delayed projection by one :class:`DelayBranches` node
    (in ``nodes``, in place; returns the new edges). One projection: the branches spikeloop's
    export marked with one layer name (``per`` and ``max_delay`` as marked), or, unmarked, two
    or more branches between the same two nodes (per synapse). They are fused only where
    every synapse has a non-zero weight in at most one branch and at most one bias is non-zero
    (then the sum of the branches is exactly one DelayedLinear); otherwise, and for one unmarked
    branch, they stay nodes of their own (spikeloop Delay and Linear, summed by the
    GraphNetwork: the same model). The fused node takes the marked layer name where it is
    free, else the first projection's name.
    """
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        preds[dst].append(src)
        succs[src].append(dst)
    groups: dict[tuple[str, str, str | None], list[tuple[str, str]]] = {}
    for name, node in nodes.items():
        if not isinstance(node, nir.Delay) or len(preds[name]) != 1 or len(succs[name]) != 1:
            continue
        proj = succs[name][0]
        if not isinstance(nodes[proj], nir.Linear | nir.Affine) or preds[proj] != [name] \
                or len(succs[proj]) != 1:
            continue
        tag = delay_tag(nodes[proj], proj)
        key = (preds[name][0], succs[proj][0], tag[0] if tag else None)
        groups.setdefault(key, []).append((name, proj))
    for (src, dst, layer), branches in groups.items():
        tags = {delay_tag(nodes[p], p) for _, p in branches}
        if layer is None:
            per, max_delay = "synapse", None
            if len(branches) < 2:
                continue
        else:
            if len(tags) != 1:
                continue  # one name, different settings: not one exported layer
            _, per, max_delay = tags.pop()
            if per == "axon" and len(branches) != 1:
                continue
        if not _disjoint([nodes[p] for _, p in branches]):
            continue
        group = DelayBranches(tuple(((d, nodes[d]), (p, nodes[p])) for d, p in branches),
                              per, max_delay)
        members = {k for pair in branches for k in pair}
        for k in members:
            del nodes[k]
        key = layer if layer is not None and layer not in nodes else branches[0][1]
        nodes[key] = group
        edges = [e for e in edges if not members.intersection(e)] + [(src, key), (key, dst)]
    return list(dict.fromkeys(edges))


def _disjoint(projections: list[nir.NIRNode]) -> bool:
    """Every synapse has a non-zero weight in at most one of ``projections`` (2-d weights of
    one shape) and at most one has a non-zero bias. ``False`` also where a weight is malformed
    (the node's importer then names the problem)."""
    try:
        weights = [f64(p, "weight", "") for p in projections]
        biases = [f64(p, "bias", "") for p in projections if isinstance(p, nir.Affine)]
    except NIRError:
        return False
    if weights[0].ndim != 2 or any(w.shape != weights[0].shape for w in weights):
        return False
    held = sum((w != 0).astype(np.int64) for w in weights)
    return bool(np.all(held <= 1)) and sum(bool(np.any(b != 0)) for b in biases) <= 1


def _topological(preds: dict[str, list[str]], start: str, output: str) -> list[str]:
    """Kahn's order; the output's source is taken last among ready nodes (so that it is the
    graph's last population)."""
    indeg = {k: len(v) for k, v in preds.items()}
    succ: dict[str, list[str]] = {k: [] for k in preds}
    for k, ps in preds.items():
        for p in ps:
            succ[p].append(k)
    last = set(preds[output])
    ready = [k for k, d in indeg.items() if d == 0]
    unreachable = [k for k in ready if k != start]
    if unreachable:
        raise NIRError(f"NIR nodes {unreachable} receive no input (not reachable from the "
                       f"Input node {start!r})")
    order: list[str] = []
    while ready:
        ready.sort(key=lambda k: (k in last or k == output, len(order)))
        key = ready.pop(0)
        order.append(key)
        for s in succ[key]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) != len(preds):
        cyclic = sorted(k for k in preds if k not in order)
        raise NIRError(
            f"the NIR graph has a cycle through {cyclic}; spikeloop runs recurrence only as a "
            "Linear/Affine projection from a population onto itself")
    return order


def _reach_output(preds: dict[str, list[str]], output: str) -> None:
    """Every node leads to the Output node (a branch that ends elsewhere would be computed and
    dropped, or taken for the network's output)."""
    seen, todo = {output}, [output]
    while todo:
        for p in preds[todo.pop()]:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    dead = sorted(k for k in preds if k not in seen)
    if dead:
        raise NIRError(f"NIR nodes {dead} do not lead to the Output node {output!r}; remove them "
                       "or connect them")


def _declared(node: nir.NIRNode, attr: str, port: str, key: str) -> tuple[int, ...] | None:
    """The shape an Input/Output node declares in ``attr[port]`` (``None``: not declared),
    positive whole numbers (``4.7`` or ``-2`` is refused)."""
    types = getattr(node, attr, None)
    if types is None:
        return None
    if not isinstance(types, Mapping):
        raise NIRError(f"NIR {type(node).__name__} node {key!r}: {attr} must be a dict "
                       f"{{{port!r}: shape}}, got {show(types)}")
    value = types.get(port)
    if value is None or np.size(value) == 0:
        return None
    return whole(value, f"NIR {type(node).__name__} node {key!r}: {attr}[{port!r}]", 1)


def _attach_recurrent(module: nn.Module, node: nir.NIRNode, key: str, ctx: ImportContext) -> None:
    if not isinstance(module, Population) or not module.spiking:
        raise NIRError(f"NIR node {key!r} has a recurrent projection but imports as a "
                       f"non-spiking {type(module).__name__}")
    if len(module.shape) != 1:
        raise NIRError(f"recurrent population {key!r} must be 1-d, has shape {module.shape}")
    n = module.shape[0]
    rec_ctx = ImportContext(key + ".recurrent", ctx.dt, ctx.method, (n,))
    rec = IMPORTERS.get(type(node).__name__).fn(node, rec_ctx)
    if rec.out_features != n:
        raise NIRError(f"recurrent projection of {key!r} has {rec.out_features} outputs for "
                       f"{n} neurons")
    module.recurrent = rec

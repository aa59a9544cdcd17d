"""Export: a traced spikeloop :class:`~spikeloop.ir.Graph` → a ``nir.NIRGraph``, one registered
:class:`Exporter` per node ``op`` in :data:`EXPORTERS`. The conventions (time constants, ``r``,
``w_in``, ``dt``) are described in :mod:`spikeloop.interop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import check_dt, require_finite
from spikeloop.errors import NIRError, UnknownNameError
from spikeloop.interop.common import (
    DELAY_LAYER_KEY,
    DELAY_PER_KEY,
    MAX_DELAY_KEY,
    METHOD_KEY,
    f32,
)
from spikeloop.ir import Graph, Node
from spikeloop.kernels import ops
from spikeloop.registry import Registry


@dataclass(frozen=True)
class Exporter:
    """Converts one spikeloop graph node into one NIR node, or a chain of them.

    ``fn(node, ctx) -> nir.NIRNode``, a tuple of NIR nodes applied one after the other (the
    last takes the node's name, the others ``<name>_<type>``), or :class:`Branches`;
    ``produces``: the NIR node types it can return.
    """

    fn: Callable[[Node, ExportContext], nir.NIRNode | tuple[nir.NIRNode, ...] | Branches]
    produces: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Branches:
    """Parallel chains that each take the node's inputs and whose outputs sum into every node
    the node feeds (NIR sums the edges into a node): ``chains[suffix]`` is a chain of NIR
    nodes as an exporter returns one, named like a node called ``<name><suffix>`` (its last
    node ``<name><suffix>``, the others ``<name><suffix>_<type>``)."""

    chains: Mapping[str, tuple[nir.NIRNode, ...]]


EXPORTERS: Registry[Exporter] = Registry("NIR exporter")
"""Exporters by spikeloop node ``op`` (``"LIF"``, ``"Linear"``, ``"Conv2d"`` …)."""


def exporter(op: str, produces: Sequence[str], note: str = "") -> Callable:
    """Decorator registering ``fn(node, ctx) -> nir.NIRNode`` for spikeloop nodes of ``op``."""

    def deco(fn: Callable) -> Callable:
        EXPORTERS.add(op, Exporter(fn, tuple(produces), note))
        return fn

    return deco


@dataclass(frozen=True)
class ExportContext:
    """What an exporter needs besides the node: ``dt`` (s) and the node's input shape."""

    dt: float
    in_shape: tuple[int, ...] | None


def _population_export(node: Node) -> tuple[Callable[[str], np.ndarray], dict[str, Any]]:
    """For a population node: ``param(name)``, its parameter as a float32 array of the
    population's shape, and the NIR metadata (its ``method``), read from the IR's params and
    settings. Refuses what NIR's neurons lack (a reset other than to ``v_reset``, refractoriness).
    """
    if node.kind != "population":
        raise NIRError(f"node {node.name!r} ({node.op}) is a {node.kind}, not a population")
    settings = node.settings
    reset = settings.get("reset", "value")
    if reset != "value":
        raise NIRError(
            f"population {node.name!r} uses reset={reset!r}; NIR's spiking neurons reset to "
            "v_reset (spikeloop reset='value'), so it cannot be exported without changing "
            "the model")
    if settings.get("t_refrac", 0.0):
        raise NIRError(
            f"population {node.name!r} has t_refrac={settings['t_refrac']!r}; NIR "
            "neurons have no refractory period")

    def param(name: str) -> np.ndarray:
        return f32(node.params[name], node.shape)

    return param, {"metadata": {METHOD_KEY: settings["method"]}}


@exporter("Input", ("Input",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Input(input_type=np.array(node.shape))


@exporter("Linear", ("Linear", "Affine"), "with a bias: Affine, without: Linear")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    weight = f32(node.params["weight"], tuple(node.params["weight"].shape))
    if len(node.shape) != 1:
        raise NIRError(f"Linear layer {node.name!r} acts on inputs of shape {ctx.in_shape}; "
                       "NIR Linear/Affine take 1-d inputs (flatten first)")
    if "bias" in node.params:
        return nir.Affine(weight=weight, bias=f32(node.params["bias"], (weight.shape[0],)))
    return nir.Linear(weight=weight)


def _conv_export(node: Node, ctx: ExportContext, cls: type) -> nir.NIRNode:
    weight = node.params["weight"]
    bias = node.params.get("bias")
    out_channels = weight.shape[0]
    s = node.settings
    spatial = tuple(ctx.in_shape[1:]) if ctx.in_shape is not None else None
    one = cls is nir.Conv1d

    def arg(v: Any) -> Any:
        if isinstance(v, str):
            return v
        return int(v[0]) if one else tuple(int(i) for i in v)

    return cls(
        input_shape=(spatial[0] if one else spatial) if spatial is not None else None,
        weight=f32(weight, tuple(weight.shape)),
        stride=arg(s["stride"]), padding=arg(s["padding"]), dilation=arg(s["dilation"]),
        groups=int(s["groups"]),
        bias=f32(bias if bias is not None else 0.0, (out_channels,)),
    )


@exporter("Conv1d", ("Conv1d",), "a missing bias is written as zeros")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return _conv_export(node, ctx, nir.Conv1d)


@exporter("Conv2d", ("Conv2d",), "a missing bias is written as zeros")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return _conv_export(node, ctx, nir.Conv2d)


@exporter("Flatten", ("Flatten",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Flatten(input_type={"input": np.array(ctx.in_shape)}, start_dim=0, end_dim=-1)


@exporter("LIF", ("LIF",), "reset='value' and t_refrac=0 only")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.LIF(tau=p("tau_mem"), r=p("r"), v_leak=p("v_leak"), v_threshold=p("v_threshold"),
                   v_reset=p("v_reset"), **meta)


@exporter("CubaLIF", ("CubaLIF",), "w_in = tau_syn/dt; reset='value' and t_refrac=0 only")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.CubaLIF(
        tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), r=p("r"), v_leak=p("v_leak"),
        v_threshold=p("v_threshold"), v_reset=p("v_reset"),
        w_in=p("tau_syn").astype(np.float64) / ctx.dt, **meta)


@exporter("LI", ("LI",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.LI(tau=p("tau_mem"), r=p("r"), v_leak=p("v_leak"), **meta)


@exporter("CubaLI", ("CubaLI",), "w_in = tau_syn/dt")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.CubaLI(tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), r=p("r"), v_leak=p("v_leak"),
                      w_in=p("tau_syn").astype(np.float64) / ctx.dt, **meta)


@exporter("IF", ("IF",), "R = r/dt; reset='value' and t_refrac=0 only")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.IF(r=p("r").astype(np.float64) / ctx.dt, v_threshold=p("v_threshold"),
                  v_reset=p("v_reset"), **meta)


@exporter("I", ("I",), "R = r/dt")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    p, meta = _population_export(node)
    return nir.I(r=p("r").astype(np.float64) / ctx.dt, **meta)


@exporter("Scale", ("Scale",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Scale(scale=f32(node.params["scale"], node.shape))


def _pool_export(node: Node, cls: type) -> nir.NIRNode:
    s = node.settings
    return cls(kernel_size=np.array(s["kernel_size"]), stride=np.array(s["stride"]),
               padding=np.array(s["padding"]))


@exporter("SumPool2d", ("SumPool2d",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return _pool_export(node, nir.SumPool2d)


@exporter("AvgPool2d", ("AvgPool2d",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return _pool_export(node, nir.AvgPool2d)


@exporter("Delay", ("Delay",), "delay = steps·dt")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    steps = node.settings["steps"].detach().cpu().double().expand(node.shape).numpy()
    return nir.Delay(delay=steps * ctx.dt)


def _delay_steps(node: Node) -> Tensor:
    """The delays of a DelayedLinear node as whole steps (float64, the delays' shape: ``[in]``
    per axon, ``[out, in]`` per synapse), read as the forward pass reads them
    (:func:`~spikeloop.kernels.ops.delay_taps`: a delay within rounding of a whole step is that
    step; at ``D`` the whole weight sits on tap ``D``).

    Raises:
        ParameterError: a delay outside ``[0, max_delay]`` (:func:`~spikeloop.kernels.ops.
            check_delay_range`).
        NIRError: a delay between two whole steps (NIR's ``Delay`` has no interpolation), naming
            the worst one, how many there are and ``round_delays_()``.
    """
    dt, max_steps = float(node.settings["dt"]), int(node.settings["max_steps"])
    delay = node.params["delay"].detach().cpu()
    ops.check_delay_range(delay, max_steps * dt, "NIR export writes the delays the layer runs")
    lo, frac = ops.delay_taps(delay.double(), dt, max_steps)  # the forward pass's taps
    frac = frac.detach()
    between = (frac > 0) & (frac < 1)  # weight on two taps: no NIR counterpart
    if bool(between.any()):
        worst = int((0.5 - (frac - 0.5).abs()).argmax())
        where = (f"input {worst}" if delay.dim() == 1
                 else f"synapse [{worst // delay.shape[1]}, {worst % delay.shape[1]}] (out, in)")
        raise NIRError(
            f"node {node.name!r}: DelayedLinear delays must be whole steps of dt = {dt:g} s to "
            f"export (NIR's Delay is y(t) = x(t − d); the layer's interpolation between two "
            f"steps has no NIR counterpart), got {float(delay.view(-1)[worst]):g} s = "
            f"{float((lo + frac).view(-1)[worst]):g} steps at {where} "
            f"({int(between.sum())} off a whole step): call round_delays_() on the layer first")
    return (lo + frac).double()  # whole steps (f = 1 only at D: the whole weight on tap D)


def _tagged(project: nir.NIRNode, node: Node) -> nir.NIRNode:
    """``project`` (a Linear/Affine of the DelayedLinear ``node``) with what import needs to
    rebuild the layer in its metadata: the layer's name (which branches belong together),
    ``per`` and ``max_delay`` (s)."""
    project.metadata = {
        DELAY_LAYER_KEY: node.name, DELAY_PER_KEY: node.settings["per"],
        MAX_DELAY_KEY: float(node.settings["max_steps"]) * float(node.settings["dt"])}
    return project


@exporter("DelayedLinear", ("Delay", "Linear", "Affine"),
          "whole-step delays; per axon: Delay then Linear (Affine with a bias); per synapse: "
          "one Delay → Linear branch per distinct delay, summed (the bias on the first)")
def _(node: Node, ctx: ExportContext) -> tuple[nir.NIRNode, ...] | Branches:
    steps = _delay_steps(node)
    linear = EXPORTERS.get("Linear").fn  # weight and bias as a Linear's
    if node.settings["per"] == "axon":
        return nir.Delay(delay=steps.numpy() * ctx.dt), _tagged(linear(node, ctx), node)
    weight = node.params["weight"].detach().cpu()
    n_in = weight.shape[1]
    chains: dict[str, tuple[nir.NIRNode, ...]] = {}
    for k, d in enumerate(int(s) for s in torch.unique(steps).tolist()):  # ascending
        params = {"weight": torch.where(steps == d, weight, torch.zeros_like(weight))}
        if k == 0 and "bias" in node.params:
            params["bias"] = node.params["bias"]
        branch = replace(node, params=params)
        chains[f"_d{d}"] = (nir.Delay(delay=np.full(n_in, d * ctx.dt)),
                            _tagged(linear(branch, ctx), node))
    return Branches(chains)


@exporter("Threshold", ("Threshold",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Threshold(threshold=f32(node.params["threshold"], node.shape))


def _model_dt(graph: Graph, dt: float | None) -> float:
    dts = {n.name: float(n.settings["dt"]) for n in graph.populations() if "dt" in n.settings}
    if dt is None:
        if not dts:
            raise NIRError("the model has no population to take dt from; pass dt")
        dt = next(iter(dts.values()))
    check_dt(dt)
    for name, pop_dt in dts.items():
        if not math.isclose(pop_dt, dt, rel_tol=1e-9):
            raise NIRError(f"population {name!r} is simulated with dt = {pop_dt:g} s, not the "
                           f"dt = {dt:g} s asked for: the conversion of w_in and r needs the "
                           "step the model was trained with")
    return float(dt)


NO_COUNTERPART = {
    "AdLIF": " (NIR 1.0 has no neuron with an adaptation variable: its LIF and CubaLIF have "
             "no state besides the membrane and the synaptic current)",
    "AdaptiveLIF": " (NIR 1.0 has no neuron with an after-hyperpolarisation current: its LIF "
                   "and CubaLIF have no state besides the membrane and the synaptic current)",
    "BatchNorm": " (fold it into the preceding convolution or Linear for deployment: "
                 "spikeloop.network.fold_batchnorm(net) on the network in eval mode)",
    "CubaLIF2": " (a neuron with two synaptic currents fed by one 2N-wide projection: NIR's "
                "CubaLIF has one current and NIR has no node that splits a projection's output "
                "between two currents)",
}
"""Why a spikeloop op cannot be exported, for the error message."""


def _free(name: str, *taken: Any) -> str:
    """``name``, with underscores appended until no mapping in ``taken`` holds it."""
    while any(name in t for t in taken):
        name += "_"
    return name


def graph_to_nir(graph: Graph, dt: float | None = None) -> nir.NIRGraph:
    """Convert a traced :class:`~spikeloop.ir.Graph` to a NIR graph (see :func:`to_nir`);
    a parameter holding NaN or inf raises :class:`~spikeloop.errors.NonFiniteError`."""
    dt = _model_dt(graph, dt)
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    shapes = {n.name: n.shape for n in graph.nodes}
    exits: dict[str, list[str]] = {}  # the NIR nodes that carry a spikeloop node's output
    for node in graph.nodes:
        for key, value in node.params.items():
            require_finite(value, f"node {node.name!r} parameter {key!r}")
        in_shape = shapes[node.inputs[0]] if node.inputs else None
        if node.recurrent:
            if "bias" in node.params:
                w = nir.Affine(weight=f32(node.params["weight"], node.params["weight"].shape),
                               bias=f32(node.params["bias"], node.shape))
            else:
                w = nir.Linear(weight=f32(node.params["weight"], node.params["weight"].shape))
            nodes[node.name] = w
            edges += [(node.inputs[0], node.name), (node.name, node.inputs[0])]
            exits[node.name] = [node.name]
            continue
        try:
            conv = EXPORTERS.get(node.op)
        except UnknownNameError:
            why = NO_COUNTERPART.get(node.op, "")
            raise NIRError(
                f"node {node.name!r} is a {node.op}, which has no NIR counterpart{why}; "
                "exportable: " + ", ".join(EXPORTERS.names())) from None
        made = conv.fn(node, ExportContext(dt, in_shape))
        if isinstance(made, Branches):
            chains = dict(made.chains)
        else:
            chains = {"": made if isinstance(made, tuple) else (made,)}
        exits[node.name] = []
        for suffix, chain in chains.items():
            last = _free(node.name + suffix, nodes, shapes) if suffix else node.name
            names = [_free(f"{last}_{type(n).__name__.lower()}", nodes, shapes)
                     for n in chain[:-1]] + [last]
            for name, nir_node in zip(names, chain, strict=True):
                nodes[name] = nir_node
            edges += [(src, names[0]) for s in node.inputs for src in exits[s]]
            edges += list(pairwise(names))
            exits[node.name].append(last)
    out = "output"
    while out in nodes:
        out += "_"
    nodes[out] = nir.Output(output_type=np.array(graph.output.shape))
    edges += [(src, out) for src in exits[graph.output.name]]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "spikeloop", "dt": dt})

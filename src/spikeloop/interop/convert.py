"""Conversion between spikeloop graphs and NIR graphs, one registered converter per node type.

Export walks the traced :class:`~spikeloop.ir.Graph` and asks :data:`EXPORTERS` (keyed by the
node's ``op``) for each NIR node; import asks :data:`IMPORTERS` (keyed by the NIR node's type
name) for each module and assembles a :class:`~spikeloop.nn.Network`. The conventions (time
constants, ``r``, ``w_in``, ``dt``) are described in :mod:`spikeloop.interop`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from spikeloop.checks import check_dt
from spikeloop.dynamics.neurons import METHODS
from spikeloop.errors import (
    NIRError,
    ParameterError,
    ShapeError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.ir import Graph, Node, describe
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn.layers import AvgPool2d, Delay, Integrator, Scale, SumPool2d, Threshold
from spikeloop.nn.populations import IF, LI, LIF, CubaLI, CubaLIF, Input, Population
from spikeloop.nn.projections import Conv1d, Conv2d, Flatten, Linear
from spikeloop.registry import Registry

METHOD_KEY = "spikeloop_method"
"""NIR node metadata key under which export records the discretisation ``method`` of a
population (import uses it unless ``method`` is given)."""


# ----------------------------------------------------------------------------- registries
@dataclass(frozen=True)
class Exporter:
    """Converts one spikeloop graph node into one NIR node.

    ``fn(node, ctx) -> nir.NIRNode``; ``produces``: the NIR node types it can return.
    """

    fn: Callable[[Node, ExportContext], nir.NIRNode]
    produces: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Importer:
    """Converts one NIR node into one spikeloop module: ``fn(node, ctx) -> nn.Module``."""

    fn: Callable[[nir.NIRNode, ImportContext], nn.Module]
    builds: str
    note: str = ""


EXPORTERS: Registry[Exporter] = Registry("NIR exporter")
"""Exporters by spikeloop node ``op`` (``"LIF"``, ``"Linear"``, ``"Conv2d"`` …)."""

IMPORTERS: Registry[Importer] = Registry("NIR importer")
"""Importers by NIR node type name (``"LIF"``, ``"Affine"``, ``"SumPool2d"`` …)."""


def exporter(op: str, produces: Sequence[str], note: str = "") -> Callable:
    """Decorator registering ``fn(node, ctx) -> nir.NIRNode`` for spikeloop nodes of ``op``."""

    def deco(fn: Callable) -> Callable:
        EXPORTERS.add(op, Exporter(fn, tuple(produces), note))
        return fn

    return deco


def importer(nir_type: str, builds: str, note: str = "") -> Callable:
    """Decorator registering ``fn(node, ctx) -> nn.Module`` for NIR nodes of ``nir_type``."""

    def deco(fn: Callable) -> Callable:
        IMPORTERS.add(nir_type, Importer(fn, builds, note))
        return fn

    return deco


@dataclass(frozen=True)
class ExportContext:
    """What an exporter needs besides the node: ``dt`` (s) and the node's input shape."""

    dt: float
    in_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class ImportContext:
    """What an importer needs: node name, ``dt`` (s), ``method`` and the input shape."""

    name: str
    dt: float
    method: str | None
    in_shape: tuple[int, ...]


# ----------------------------------------------------------------------------- helpers
def _np(value: Tensor | float, shape: tuple[int, ...]) -> np.ndarray:
    """A parameter as a float32 array of the population's shape (scalars broadcast).

    NIR files hold float32 here: a float64 model is rounded to float32 on export (its round
    trip is exact only in float32, which is spikeloop's default)."""
    t = torch.as_tensor(value).detach().to("cpu", torch.float32)
    return np.ascontiguousarray(t.expand(shape).numpy().astype(np.float32))


def _f64(node: nir.NIRNode, attr: str) -> np.ndarray:
    value = np.asarray(getattr(node, attr), dtype=np.float64)
    if not np.isfinite(value).all():
        raise NIRError(f"NIR {type(node).__name__} parameter {attr!r} holds NaN or inf")
    return value


def _param(value: np.ndarray, shape: tuple[int, ...], who: str, attr: str) -> Tensor | float:
    """A NIR parameter for a population of ``shape``: a float where all values are equal
    (spikeloop's scalar parameters), else a float32 tensor of ``shape``."""
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        raise NIRError(f"{who}: parameter {attr!r} is empty")
    if np.all(flat == flat[0]):
        return float(np.float32(flat[0]))
    if flat.size != math.prod(shape):
        raise NIRError(f"{who}: parameter {attr!r} has {flat.size} values but the population "
                       f"receives input of shape {shape}")
    return torch.from_numpy(flat.astype(np.float32).reshape(shape))


def _population_export(node: Node) -> tuple[Population, tuple[int, ...], dict[str, Any]]:
    module = node.module
    if not isinstance(module, Population):
        raise NIRError(f"node {node.name!r} ({node.op}) has no population module")
    if module.spiking:
        reset = module.settings.get("reset", "value")
        if reset != "value":
            raise NIRError(
                f"population {node.name!r} uses reset={reset!r}; NIR's spiking neurons reset to "
                "v_reset (spikeloop reset='value'), so it cannot be exported without changing "
                "the model")
        if module.settings.get("t_refrac", 0.0):
            raise NIRError(
                f"population {node.name!r} has t_refrac={module.settings['t_refrac']!r}; NIR "
                "neurons have no refractory period")
    return module, node.shape, {"metadata": {METHOD_KEY: module.method}}


def _method(node: nir.NIRNode, ctx: ImportContext) -> str:
    method = ctx.method
    if method is None:
        method = str((getattr(node, "metadata", None) or {}).get(METHOD_KEY, "exact"))
    if method not in METHODS:
        raise NIRError(f"node {ctx.name!r}: unknown discretisation method {method!r}; known: "
                       f"{', '.join(METHODS)}")
    return method


def _population(cls: type[Population], node: nir.NIRNode, ctx: ImportContext,
                **params: np.ndarray) -> Population:
    who = f"NIR {type(node).__name__} node {ctx.name!r}"
    values = {k: _param(v, ctx.in_shape, who, k) for k, v in params.items()}
    try:
        return cls(ctx.in_shape, dt=ctx.dt, method=_method(node, ctx), **values)
    except (ParameterError, TimeStepError, ShapeError) as err:  # e.g. dt ≥ tau
        raise NIRError(f"{who}: {err}") from None


# ----------------------------------------------------------------------------- export
@exporter("Input", ("Input",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Input(input_type=np.array(node.shape))


@exporter("Linear", ("Linear", "Affine"), "with a bias: Affine, without: Linear")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    weight = _np(node.params["weight"], tuple(node.params["weight"].shape))
    if len(node.shape) != 1:
        raise NIRError(f"Linear layer {node.name!r} acts on inputs of shape {ctx.in_shape}; "
                       "NIR Linear/Affine take 1-d inputs (flatten first)")
    if "bias" in node.params:
        return nir.Affine(weight=weight, bias=_np(node.params["bias"], (weight.shape[0],)))
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
        weight=_np(weight, tuple(weight.shape)),
        stride=arg(s["stride"]), padding=arg(s["padding"]), dilation=arg(s["dilation"]),
        groups=int(s["groups"]),
        bias=_np(bias if bias is not None else 0.0, (out_channels,)),
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
    m, shape, meta = _population_export(node)
    return nir.LIF(tau=_np(m.tau_mem, shape), r=_np(m.r, shape), v_leak=_np(m.v_leak, shape),
                   v_threshold=_np(m.v_threshold, shape), v_reset=_np(m.v_reset, shape), **meta)


@exporter("CubaLIF", ("CubaLIF",), "w_in = tau_syn/dt; reset='value' and t_refrac=0 only")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    m, shape, meta = _population_export(node)
    tau_syn = _np(m.tau_syn, shape)
    return nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=_np(m.tau_mem, shape), r=_np(m.r, shape),
        v_leak=_np(m.v_leak, shape), v_threshold=_np(m.v_threshold, shape),
        v_reset=_np(m.v_reset, shape), w_in=(tau_syn.astype(np.float64) / ctx.dt), **meta)


@exporter("LI", ("LI",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    m, shape, meta = _population_export(node)
    return nir.LI(tau=_np(m.tau_mem, shape), r=_np(m.r, shape), v_leak=_np(m.v_leak, shape),
                  **meta)


@exporter("CubaLI", ("CubaLI",), "w_in = tau_syn/dt")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    m, shape, meta = _population_export(node)
    tau_syn = _np(m.tau_syn, shape)
    return nir.CubaLI(tau_syn=tau_syn, tau_mem=_np(m.tau_mem, shape), r=_np(m.r, shape),
                      v_leak=_np(m.v_leak, shape), w_in=tau_syn.astype(np.float64) / ctx.dt,
                      **meta)


@exporter("IF", ("IF",), "R = r/dt; reset='value' and t_refrac=0 only")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    m, shape, meta = _population_export(node)
    return nir.IF(r=_np(m.r, shape).astype(np.float64) / ctx.dt,
                  v_threshold=_np(m.v_threshold, shape), v_reset=_np(m.v_reset, shape), **meta)


@exporter("I", ("I",), "R = r/dt")
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    m, shape, meta = _population_export(node)
    return nir.I(r=_np(m.r, shape).astype(np.float64) / ctx.dt, **meta)


@exporter("Scale", ("Scale",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Scale(scale=_np(node.params["scale"], node.shape))


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


@exporter("Threshold", ("Threshold",))
def _(node: Node, ctx: ExportContext) -> nir.NIRNode:
    return nir.Threshold(threshold=_np(node.params["threshold"], node.shape))


def _model_dt(graph: Graph, dt: float | None) -> float:
    dts = {n.name: float(n.module.dt) for n in graph.populations() if hasattr(n.module, "dt")}
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


def graph_to_nir(graph: Graph, dt: float | None = None) -> nir.NIRGraph:
    """Convert a traced :class:`~spikeloop.ir.Graph` to a NIR graph (see :func:`to_nir`)."""
    dt = _model_dt(graph, dt)
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    shapes = {n.name: n.shape for n in graph.nodes}
    for node in graph.nodes:
        in_shape = shapes[node.inputs[0]] if node.inputs else None
        if node.recurrent:
            if "bias" in node.params:
                w = nir.Affine(weight=_np(node.params["weight"], node.params["weight"].shape),
                               bias=_np(node.params["bias"], node.shape))
            else:
                w = nir.Linear(weight=_np(node.params["weight"], node.params["weight"].shape))
            nodes[node.name] = w
            edges += [(node.inputs[0], node.name), (node.name, node.inputs[0])]
            continue
        try:
            conv = EXPORTERS.get(node.op)
        except UnknownNameError:
            raise NIRError(
                f"node {node.name!r} is a {node.op}, which has no NIR counterpart; exportable: "
                + ", ".join(EXPORTERS.names())) from None
        nodes[node.name] = conv.fn(node, ExportContext(dt, in_shape))
        edges += [(src, node.name) for src in node.inputs]
    out = "output"
    while out in nodes:
        out += "_"
    nodes[out] = nir.Output(output_type=np.array(graph.output.shape))
    edges.append((graph.output.name, out))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "spikeloop", "dt": dt})


# ----------------------------------------------------------------------------- import
def _weight2d(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    weight = _f64(node, "weight")
    if weight.ndim != 2:
        raise NIRError(f"NIR {type(node).__name__} node {ctx.name!r} has a weight of shape "
                       f"{weight.shape}; spikeloop takes 2-d weights [out, in]")
    if ctx.in_shape[-1:] != (weight.shape[1],) or len(ctx.in_shape) != 1:
        raise NIRError(f"NIR {type(node).__name__} node {ctx.name!r} with weight {weight.shape} "
                       f"receives input of shape {ctx.in_shape}")
    return weight


def _set(param: Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)).reshape(param.shape))


@importer("Affine", "Linear(bias=True)", "an all-zero bias is dropped")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    weight = _weight2d(node, ctx)
    bias = _f64(node, "bias")
    module = Linear(weight.shape[1], weight.shape[0], bias=bool(np.any(bias != 0)))
    _set(module.weight, weight)
    if module.bias is not None:
        _set(module.bias, bias)
    return module


@importer("Linear", "Linear")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    weight = _weight2d(node, ctx)
    module = Linear(weight.shape[1], weight.shape[0])
    _set(module.weight, weight)
    return module


def _conv_import(node: nir.NIRNode, ctx: ImportContext, cls: type, spatial: int) -> nn.Module:
    weight = _f64(node, "weight")
    if weight.ndim != 2 + spatial or len(ctx.in_shape) != 1 + spatial:
        raise NIRError(f"NIR {type(node).__name__} node {ctx.name!r}: weight {weight.shape} "
                       f"and input shape {ctx.in_shape} do not fit a {spatial}-d convolution")
    bias = _f64(node, "bias") if getattr(node, "bias", None) is not None else np.zeros(1)

    def arg(v: Any) -> Any:
        if isinstance(v, str | bytes):
            return v.decode() if isinstance(v, bytes) else v
        values = [int(i) for i in np.asarray(v).reshape(-1)]
        return values[0] if len(values) == 1 else tuple(values)

    module = cls(
        weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
        stride=arg(node.stride), padding=arg(node.padding), dilation=arg(node.dilation),
        groups=int(node.groups), bias=bool(np.any(bias != 0)),
    )
    _set(module.weight, weight)
    if module.bias is not None:
        _set(module.bias, np.broadcast_to(bias, (weight.shape[0],)))
    return module


@importer("Conv1d", "Conv1d", "an all-zero bias is dropped")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _conv_import(node, ctx, Conv1d, 1)


@importer("Conv2d", "Conv2d", "an all-zero bias is dropped")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _conv_import(node, ctx, Conv2d, 2)


@importer("Flatten", "Flatten", "flattening all (non-batch) dimensions only")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    rank = len(ctx.in_shape)
    start, end = int(node.start_dim), int(node.end_dim)
    start, end = start % rank if rank else 0, end % rank if rank else 0
    if rank > 1 and (start, end) != (0, rank - 1):
        raise NIRError(f"NIR Flatten node {ctx.name!r} flattens dimensions {node.start_dim}.."
                       f"{node.end_dim} of {ctx.in_shape}; spikeloop's Flatten flattens all")
    return Flatten()


@importer("LIF", "LIF", "reset to v_reset")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(LIF, node, ctx, tau_mem=_f64(node, "tau"), r=_f64(node, "r"),
                       v_leak=_f64(node, "v_leak"), v_threshold=_f64(node, "v_threshold"),
                       v_reset=_f64(node, "v_reset"))


def _cuba_r(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    """``r · w_in · dt / τ_syn``: NIR's input weight folded into the membrane resistance (the
    current enters the membrane only through ``r·I``, so scaling both is the same model)."""
    return _f64(node, "r") * _f64(node, "w_in") * ctx.dt / _f64(node, "tau_syn")


@importer("CubaLIF", "CubaLIF", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLIF, node, ctx, tau_mem=_f64(node, "tau_mem"),
                       tau_syn=_f64(node, "tau_syn"), r=_cuba_r(node, ctx),
                       v_leak=_f64(node, "v_leak"), v_threshold=_f64(node, "v_threshold"),
                       v_reset=_f64(node, "v_reset"))


@importer("LI", "LI")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(LI, node, ctx, tau_mem=_f64(node, "tau"), r=_f64(node, "r"),
                       v_leak=_f64(node, "v_leak"))


@importer("CubaLI", "CubaLI", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLI, node, ctx, tau_mem=_f64(node, "tau_mem"),
                       tau_syn=_f64(node, "tau_syn"), r=_cuba_r(node, ctx),
                       v_leak=_f64(node, "v_leak"))


@importer("IF", "IF", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(IF, node, ctx, r=_f64(node, "r") * ctx.dt,
                       v_threshold=_f64(node, "v_threshold"), v_reset=_f64(node, "v_reset"))


@importer("I", "Integrator", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(Integrator, node, ctx, r=_f64(node, "r") * ctx.dt)


@importer("Scale", "Scale")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    scale = _f64(node, "scale")
    if scale.size not in (1, math.prod(ctx.in_shape)):
        raise NIRError(f"NIR Scale node {ctx.name!r} of shape {scale.shape} receives input of "
                       f"shape {ctx.in_shape}")
    return Scale(torch.from_numpy(np.broadcast_to(scale.astype(np.float32).reshape(
        scale.shape if scale.size == 1 else ctx.in_shape), ctx.in_shape).copy()))


@importer("SumPool2d", "SumPool2d")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return SumPool2d(node.kernel_size, node.stride, node.padding)


@importer("AvgPool2d", "AvgPool2d", "padded zeros counted")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return AvgPool2d(node.kernel_size, node.stride, node.padding)


@importer("Delay", "Delay", "delays must be whole multiples of dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    steps = _f64(node, "delay") / ctx.dt
    whole = np.round(steps)
    if np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1.0, whole)) or np.any(whole < 0):
        raise NIRError(f"NIR Delay node {ctx.name!r}: delays {_f64(node, 'delay')} s are not "
                       f"whole non-negative multiples of dt = {ctx.dt:g} s")
    flat = whole.reshape(-1)
    if np.all(flat == flat[0]):
        return Delay(int(flat[0]))
    return Delay(torch.from_numpy(whole.astype(np.int64).reshape(ctx.in_shape)))


@importer("Threshold", "Threshold")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    threshold = _param(_f64(node, "threshold"), ctx.in_shape, f"NIR Threshold {ctx.name!r}",
                       "threshold")
    return Threshold(torch.as_tensor(threshold, dtype=torch.float32))


# ----------------------------------------------------------------------------- graph import
def _layer_name(name: str, taken: set[str]) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "node"
    if hasattr(nn.ModuleDict, out):
        out += "_"
    while out in taken:
        out += "_"
    taken.add(out)
    return out


def _inline(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode],
                                                            list[tuple[str, str]]]:
    """Flatten nested subgraphs: a subgraph's nodes get ``<subgraph>.<node>`` names; its Input
    and Output nodes become pass-through nodes that :func:`_bypass` removes."""
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
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    check_dt(dt)
    if method is not None and method not in METHODS:
        raise NIRError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
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
    preds = {k: [s for s, d in edges if d == k] for k in nodes if k not in skip}
    order = _topological(preds, ins[0], outs[0])
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
            shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
            layers[names[key]] = Input(shape)
            shapes[key] = shape
            continue
        src_shapes = {shapes[s] for s in preds[key]}
        if len(src_shapes) != 1:
            raise NIRError(f"NIR node {key!r} receives inputs of shapes {sorted(src_shapes)}"
                           if src_shapes else f"NIR node {key!r} receives no input")
        ctx = ImportContext(key, float(dt), method, next(iter(src_shapes)))
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
    if not isinstance(layers[names[src]], Population | Input):
        raise NIRError(f"the NIR output is fed by {src!r}, a {type(nodes[src]).__name__}; "
                       "spikeloop networks end in a population (add e.g. an LI readout)")
    chain = all(preds[k] == [order[i - 1]] for i, k in enumerate(order) if i and k != outs[0])
    if chain:
        return Network(layers)
    inputs = {names[k]: [names[s] for s in preds[k]] for k in order if k not in (ins[0], outs[0])}
    return GraphNetwork(layers, inputs)


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

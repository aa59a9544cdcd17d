"""Import of single nodes: a NIR node → a spikeloop module, one registered :class:`Importer`
per NIR node type in :data:`IMPORTERS` (the graph is assembled by
:mod:`spikeloop.interop.assemble`). The conventions are described in :mod:`spikeloop.interop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from spikeloop.checks import show
from spikeloop.dynamics.neurons import METHODS
from spikeloop.errors import NIRError, ParameterError, ShapeError, TimeStepError
from spikeloop.interop.common import (
    DELAY_LAYER_KEY,
    DELAY_PER_KEY,
    MAX_DELAY_KEY,
    METHOD_KEY,
    f64,
    node_label,
    numbers,
    whole,
)
from spikeloop.nn.layers import AvgPool2d, Delay, Integrator, Scale, SumPool2d, Threshold
from spikeloop.nn.populations import IF, LI, LIF, CubaLI, CubaLIF, Population
from spikeloop.nn.projections import Conv1d, Conv2d, DelayedLinear, Flatten, Linear
from spikeloop.registry import Registry


@dataclass(frozen=True)
class Importer:
    """Converts one NIR node into one spikeloop module: ``fn(node, ctx) -> nn.Module``."""

    fn: Callable[[nir.NIRNode, ImportContext], nn.Module]
    builds: str
    note: str = ""


IMPORTERS: Registry[Importer] = Registry("NIR importer")
"""Importers by NIR node type name (``"LIF"``, ``"Affine"``, ``"SumPool2d"`` …)."""


def importer(nir_type: str, builds: str, note: str = "") -> Callable:
    """Decorator registering ``fn(node, ctx) -> nn.Module`` for NIR nodes of ``nir_type``."""

    def deco(fn: Callable) -> Callable:
        IMPORTERS.add(nir_type, Importer(fn, builds, note))
        return fn

    return deco


@dataclass(frozen=True)
class ImportContext:
    """What an importer needs: node name, ``dt`` (s), ``method`` and the input shape."""

    name: str
    dt: float
    method: str | None
    in_shape: tuple[int, ...]


def _param(value: np.ndarray, shape: tuple[int, ...], who: str, attr: str) -> Tensor | float:
    """A NIR parameter for a node whose input has ``shape``: one value (any array of size 1)
    or one per element of ``shape``. A float where all values are equal (spikeloop's scalar
    parameters), else a float32 tensor of ``shape``.

    Raises:
        NIRError: the parameter has another number of values (an all-equal array of the wrong
            length is refused too: it describes another number of neurons).
    """
    flat = _sized(value, shape, who, attr)
    if np.all(flat == flat[0]):
        return float(np.float32(flat[0]))
    return torch.from_numpy(flat.astype(np.float32).reshape(shape))


def _sized(value: np.ndarray, shape: tuple[int, ...], who: str, attr: str) -> np.ndarray:
    """``value`` flattened, if it has one value or one per element of ``shape`` (of that shape
    or flat).

    Raises:
        NIRError: another number of values or another arrangement of them (``(6, 1)`` for 6
            neurons).
    """
    array = np.asarray(value, dtype=np.float64)
    size = math.prod(shape)
    if array.size != 1 and array.shape not in (tuple(shape), (size,)):
        raise NIRError(f"{who}: parameter {attr!r} has {array.size} values (shape "
                       f"{array.shape}) but the node receives input of shape {shape}: give one "
                       f"value or {size}, one per neuron (shape {tuple(shape)}"
                       f"{f' or ({size},)' if len(shape) > 1 else ''})")
    return array.reshape(-1)


def _tau(node: nir.NIRNode, attr: str, ctx: ImportContext) -> np.ndarray:
    """A time constant (s): finite and > 0."""
    tau = f64(node, attr, ctx.name)
    if np.any(tau <= 0):
        raise NIRError(f"{node_label(node, ctx.name)}: parameter {attr!r} must be > 0 s (a time "
                       f"constant), got {float(tau.min()):g} s")
    return tau


def _method(node: nir.NIRNode, ctx: ImportContext) -> str:
    if ctx.method is not None:
        return ctx.method
    metadata = getattr(node, "metadata", None) or {}
    if not isinstance(metadata, Mapping):
        raise NIRError(f"{node_label(node, ctx.name)}: metadata must be a dict, got "
                       f"{show(metadata)} ({type(metadata).__name__})")
    method = metadata.get(METHOD_KEY, "exact")
    if method not in METHODS:
        raise NIRError(f"{node_label(node, ctx.name)}: unknown discretisation method "
                       f"{show(method)} in its metadata {METHOD_KEY!r}; known: "
                       f"{', '.join(METHODS)}")
    return method


_NIR_NAMES = {"tau_mem": "tau"}


def _population(cls: type[Population], node: nir.NIRNode, ctx: ImportContext,
                **params: np.ndarray) -> Population:
    who = node_label(node, ctx.name)
    # messages name NIR's attribute (LIF/LI ``tau`` is spikeloop's ``tau_mem``)
    values = {k: _param(v, ctx.in_shape, who, k if hasattr(node, k) else _NIR_NAMES.get(k, k))
              for k, v in params.items()}
    try:
        return cls(ctx.in_shape, dt=ctx.dt, method=_method(node, ctx), **values)
    except (ParameterError, TimeStepError, ShapeError) as err:  # e.g. dt ≥ tau
        raise NIRError(f"{who}: {err}") from None


def _weight2d(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    weight = f64(node, "weight", ctx.name)
    if weight.ndim != 2:
        raise NIRError(f"{node_label(node, ctx.name)} has a weight of shape {weight.shape}; "
                       "spikeloop takes 2-d weights [out, in]")
    if ctx.in_shape[-1:] != (weight.shape[1],) or len(ctx.in_shape) != 1:
        raise NIRError(f"{node_label(node, ctx.name)} with weight {weight.shape} receives input "
                       f"of shape {ctx.in_shape}")
    return weight


def _set(param: Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)).reshape(param.shape))


@importer("Affine", "Linear(bias=True)", "an all-zero bias is dropped")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    weight = _weight2d(node, ctx)
    bias = f64(node, "bias", ctx.name)
    if bias.size not in (1, weight.shape[0]):
        raise NIRError(f"{node_label(node, ctx.name)}: bias has {bias.size} values for "
                       f"{weight.shape[0]} outputs (weight {weight.shape})")
    module = Linear(weight.shape[1], weight.shape[0], bias=bool(np.any(bias != 0)))
    _set(module.weight, weight)
    if module.bias is not None:
        _set(module.bias, np.broadcast_to(bias.reshape(-1), (weight.shape[0],)))
    return module


@importer("Linear", "Linear")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    weight = _weight2d(node, ctx)
    module = Linear(weight.shape[1], weight.shape[0])
    _set(module.weight, weight)
    return module


def _conv_import(node: nir.NIRNode, ctx: ImportContext, cls: type, spatial: int) -> nn.Module:
    weight = f64(node, "weight", ctx.name)
    who = node_label(node, ctx.name)
    if weight.ndim != 2 + spatial or len(ctx.in_shape) != 1 + spatial:
        raise NIRError(f"{who}: weight {weight.shape} and input shape {ctx.in_shape} do not fit "
                       f"a {spatial}-d convolution")
    bias = f64(node, "bias", ctx.name) if getattr(node, "bias", None) is not None else np.zeros(1)
    if bias.size not in (1, weight.shape[0]):
        raise NIRError(f"{who}: bias has {bias.size} values for {weight.shape[0]} output "
                       "channels")

    def arg(attr: str, low: int) -> Any:
        v = getattr(node, attr, None)
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, str):
            if attr != "padding" or v not in ("same", "valid"):
                raise NIRError(f"{who}: {attr} must be whole numbers"
                               + (" or 'same'/'valid'" if attr == "padding" else "")
                               + f", got {v!r}")
            return v
        values = whole(v, f"{who}: {attr}", low)
        if len(values) not in (1, spatial):
            raise NIRError(f"{who}: {attr} has {len(values)} values for a {spatial}-d "
                           "convolution")
        return values[0] if len(values) == 1 else values

    groups = whole(getattr(node, "groups", None), f"{who}: groups", 1)
    if len(groups) != 1 or weight.shape[0] % groups[0]:
        raise NIRError(f"{who}: groups must be one whole number ≥ 1 that divides the "
                       f"{weight.shape[0]} output channels, got {node.groups!r}")
    module = cls(
        weight.shape[1] * groups[0], weight.shape[0], tuple(weight.shape[2:]),
        stride=arg("stride", 1), padding=arg("padding", 0), dilation=arg("dilation", 1),
        groups=groups[0], bias=bool(np.any(bias != 0)),
    )
    _set(module.weight, weight)
    if module.bias is not None:
        _set(module.bias, np.broadcast_to(bias.reshape(-1), (weight.shape[0],)))
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
    who = node_label(node, ctx.name)
    dims = [whole(getattr(node, a, None), f"{who}: {a}") for a in ("start_dim", "end_dim")]
    if any(len(d) != 1 for d in dims):
        raise NIRError(f"{who}: start_dim and end_dim must be single whole numbers, got "
                       f"{node.start_dim!r}, {node.end_dim!r}")
    start, end = dims[0][0], dims[1][0]
    start, end = start % rank if rank else 0, end % rank if rank else 0
    if rank > 1 and (start, end) != (0, rank - 1):
        raise NIRError(f"{who} flattens dimensions {node.start_dim}..{node.end_dim} of "
                       f"{ctx.in_shape}; spikeloop's Flatten flattens all")
    return Flatten()


@importer("LIF", "LIF", "reset to v_reset")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(LIF, node, ctx, tau_mem=_tau(node, "tau", ctx), r=f64(node, "r", ctx.name),
                       v_leak=f64(node, "v_leak", ctx.name),
                       v_threshold=f64(node, "v_threshold", ctx.name),
                       v_reset=f64(node, "v_reset", ctx.name))


def _cuba_r(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    """``r · w_in · dt / τ_syn``: NIR's input weight folded into the membrane resistance (the
    current enters the membrane only through ``r·I``, so scaling both is the same model)."""
    who = node_label(node, ctx.name)
    r, w_in, tau_syn = (_sized(v, ctx.in_shape, who, k) for k, v in (
        ("r", f64(node, "r", ctx.name)), ("w_in", f64(node, "w_in", ctx.name)),
        ("tau_syn", _tau(node, "tau_syn", ctx))))
    return r * w_in * ctx.dt / tau_syn


@importer("CubaLIF", "CubaLIF", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLIF, node, ctx, tau_mem=_tau(node, "tau_mem", ctx),
                       tau_syn=_tau(node, "tau_syn", ctx), r=_cuba_r(node, ctx),
                       v_leak=f64(node, "v_leak", ctx.name),
                       v_threshold=f64(node, "v_threshold", ctx.name),
                       v_reset=f64(node, "v_reset", ctx.name))


@importer("LI", "LI")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(LI, node, ctx, tau_mem=_tau(node, "tau", ctx), r=f64(node, "r", ctx.name),
                       v_leak=f64(node, "v_leak", ctx.name))


@importer("CubaLI", "CubaLI", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLI, node, ctx, tau_mem=_tau(node, "tau_mem", ctx),
                       tau_syn=_tau(node, "tau_syn", ctx), r=_cuba_r(node, ctx),
                       v_leak=f64(node, "v_leak", ctx.name))


@importer("IF", "IF", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(IF, node, ctx, r=f64(node, "r", ctx.name) * ctx.dt,
                       v_threshold=f64(node, "v_threshold", ctx.name),
                       v_reset=f64(node, "v_reset", ctx.name))


@importer("I", "Integrator", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(Integrator, node, ctx, r=f64(node, "r", ctx.name) * ctx.dt)


@importer("Scale", "Scale")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    scale = _param(f64(node, "scale", ctx.name), ctx.in_shape, node_label(node, ctx.name),
                   "scale")
    return Scale(torch.as_tensor(scale, dtype=torch.float32).expand(ctx.in_shape).clone())


def _pool(node: nir.NIRNode, ctx: ImportContext, cls: type) -> nn.Module:
    who = node_label(node, ctx.name)
    args = []
    for attr, low in (("kernel_size", 1), ("stride", 1), ("padding", 0)):
        values = whole(getattr(node, attr, None), f"{who}: {attr}", low)
        if len(values) not in (1, 2):
            raise NIRError(f"{who}: {attr} must be one or two whole numbers, got "
                           f"{getattr(node, attr)!r}")
        args.append(values * 2 if len(values) == 1 else values)
    return cls(*args)


@importer("SumPool2d", "SumPool2d")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _pool(node, ctx, SumPool2d)


@importer("AvgPool2d", "AvgPool2d", "padded zeros counted")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _pool(node, ctx, AvgPool2d)


@importer("Delay", "Delay", "delays must be whole multiples of dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    who = node_label(node, ctx.name)
    delay = f64(node, "delay", ctx.name)
    _param(delay, ctx.in_shape, who, "delay")  # one value or one per element
    steps = delay / ctx.dt
    rounded = np.round(steps)
    if np.any(np.abs(steps - rounded) > 1e-6 * np.maximum(1.0, rounded)) or np.any(rounded < 0):
        raise NIRError(f"{who}: delays {delay} s are not whole non-negative multiples of "
                       f"dt = {ctx.dt:g} s")
    flat = rounded.reshape(-1)
    if np.all(flat == flat[0]):
        return Delay(int(flat[0]))
    return Delay(torch.from_numpy(rounded.astype(np.int64).reshape(ctx.in_shape)))


@importer("Threshold", "Threshold")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    threshold = _param(f64(node, "threshold", ctx.name), ctx.in_shape,
                       node_label(node, ctx.name), "threshold")
    return Threshold(torch.as_tensor(threshold, dtype=torch.float32))


@dataclass(frozen=True)
class DelayBranches:
    r"""Branches ``source → Delay → Linear/Affine → destination`` that import as one
    :class:`~spikeloop.nn.DelayedLinear` (:func:`delayed_linear`); the assembler finds them.

    Branch ``b`` delays every input ``i`` by ``s_b[i]`` steps and projects it with ``W_b``;
    NIR sums the branches: ``y_k[j] = Σ_b Σ_i W_b[j, i] x_{k − s_b[i]}[i] (+ b_j)``. Where every
    synapse ``(j, i)`` has a non-zero weight in at most one branch, this is a DelayedLinear per
    synapse with ``W[j, i] = Σ_b W_b[j, i]`` and ``d[j, i] = s_b[i]·dt`` of that branch (at whole
    steps its kernel is one tap, :math:`K[j, i, m] = W[j, i]\,[m = d_{ji}/dt]`).

    Attributes:
        branches: ``((delay name, Delay node), (projection name, Linear/Affine node))`` each.
        per: ``"synapse"``, or ``"axon"`` (one branch: ``d[i] = s[i]·dt``).
        max_delay: the layer's ``max_delay`` (s) as exported; ``None``: the largest delay.
    """

    branches: tuple[tuple[tuple[str, nir.NIRNode], tuple[str, nir.NIRNode]], ...]
    per: str
    max_delay: float | None


def delay_tag(node: nir.NIRNode, name: str) -> tuple[str, str, float] | None:
    """The ``(layer, per, max_delay)`` that spikeloop's export wrote into the metadata of a
    DelayedLinear's Linear/Affine node, or ``None`` where it wrote none (another writer).

    Raises:
        NIRError: the metadata names a layer but holds an unknown ``per`` or a ``max_delay``
            that is not one finite number ≥ 0 s.
    """
    metadata = getattr(node, "metadata", None)
    if not isinstance(metadata, Mapping) or DELAY_LAYER_KEY not in metadata:
        return None
    who = f"{node_label(node, name)}: metadata"
    layer, per = metadata[DELAY_LAYER_KEY], metadata.get(DELAY_PER_KEY)
    if not isinstance(layer, str) or per not in ("synapse", "axon"):
        raise NIRError(f"{who} {DELAY_LAYER_KEY!r} = {show(layer)} and {DELAY_PER_KEY!r} = "
                       f"{show(per)}: expected a layer name and 'synapse' or 'axon'")
    max_delay = numbers(metadata.get(MAX_DELAY_KEY), f"{who} {MAX_DELAY_KEY!r}").reshape(-1)
    if max_delay.size != 1 or not np.isfinite(max_delay[0]) or max_delay[0] < 0:
        raise NIRError(f"{who} {MAX_DELAY_KEY!r} must be one finite number ≥ 0 (s), got "
                       f"{show(metadata.get(MAX_DELAY_KEY))}")
    return layer, per, float(max_delay[0])


def delayed_linear(group: DelayBranches, ctx: ImportContext) -> DelayedLinear:
    """One :class:`~spikeloop.nn.DelayedLinear` from its NIR branches (see
    :class:`DelayBranches`). Each Delay and Linear/Affine node is read by its own importer
    (whole-step delays, one per input; a weight ``[out, in]`` for the input). A synapse whose
    weight is 0 in every branch carries nothing; it takes the shortest delay its input has in
    the branches. ``max_delay``: the exported one, else the largest delay.

    Raises:
        NIRError: from the node importers (named), or branches of different output sizes.
        ParameterError: a delay above the exported ``max_delay``, or a ``max_delay`` that is
            not a whole number of steps ``dt`` (the assembler names the node).
    """
    steps, weights, bias = [], [], None
    for (d_name, d_node), (p_name, p_node) in group.branches:
        delay = IMPORTERS.get("Delay").fn(d_node, replace(ctx, name=d_name))
        proj = IMPORTERS.get(type(p_node).__name__).fn(p_node, replace(ctx, name=p_name))
        steps.append(delay.steps.double().expand(ctx.in_shape))
        weights.append(proj.weight.detach())
        if proj.bias is not None:
            bias = proj.bias.detach()
    if len({w.shape for w in weights}) != 1:
        names = [p for _, (p, _) in group.branches]
        raise NIRError(f"NIR nodes {names} project one delayed input to one node but have "
                       f"weights of shapes {[tuple(w.shape) for w in weights]}")
    w = torch.stack(weights)  # [K, out, in]
    s = torch.stack(steps)[:, None, :].expand(w.shape)  # [K, out, in]: branch delay per synapse
    held = w != 0
    owner = held.to(torch.int64).argmax(0, keepdim=True)  # the branch holding each synapse
    synapse = torch.where(held.any(0), s.gather(0, owner)[0], s.min(0).values)
    delay = (synapse if group.per == "synapse" else s[0, 0]) * ctx.dt
    max_delay = group.max_delay if group.max_delay is not None else float(delay.max())
    module = DelayedLinear(w.shape[2], w.shape[1], max_delay, dt=ctx.dt, per=group.per,
                           delay=delay, bias=bias is not None)
    with torch.no_grad():
        module.weight.copy_(w.sum(0))  # one non-zero term per synapse: exact
        if bias is not None:
            module.bias.copy_(bias)
    return module

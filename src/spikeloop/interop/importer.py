"""Import of single nodes: a NIR node → a spikeloop module, one registered :class:`Importer`
per NIR node type in :data:`IMPORTERS` (the graph is assembled by
:mod:`spikeloop.interop.assemble`). The conventions are described in :mod:`spikeloop.interop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from spikeloop.dynamics.neurons import METHODS
from spikeloop.errors import NIRError, ParameterError, ShapeError, TimeStepError
from spikeloop.interop.common import METHOD_KEY, f64
from spikeloop.nn.layers import AvgPool2d, Delay, Integrator, Scale, SumPool2d, Threshold
from spikeloop.nn.populations import IF, LI, LIF, CubaLI, CubaLIF, Population
from spikeloop.nn.projections import Conv1d, Conv2d, Flatten, Linear
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


def _weight2d(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    weight = f64(node, "weight")
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
    bias = f64(node, "bias")
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
    weight = f64(node, "weight")
    if weight.ndim != 2 + spatial or len(ctx.in_shape) != 1 + spatial:
        raise NIRError(f"NIR {type(node).__name__} node {ctx.name!r}: weight {weight.shape} "
                       f"and input shape {ctx.in_shape} do not fit a {spatial}-d convolution")
    bias = f64(node, "bias") if getattr(node, "bias", None) is not None else np.zeros(1)

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
    return _population(LIF, node, ctx, tau_mem=f64(node, "tau"), r=f64(node, "r"),
                       v_leak=f64(node, "v_leak"), v_threshold=f64(node, "v_threshold"),
                       v_reset=f64(node, "v_reset"))


def _cuba_r(node: nir.NIRNode, ctx: ImportContext) -> np.ndarray:
    """``r · w_in · dt / τ_syn``: NIR's input weight folded into the membrane resistance (the
    current enters the membrane only through ``r·I``, so scaling both is the same model)."""
    return f64(node, "r") * f64(node, "w_in") * ctx.dt / f64(node, "tau_syn")


@importer("CubaLIF", "CubaLIF", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLIF, node, ctx, tau_mem=f64(node, "tau_mem"),
                       tau_syn=f64(node, "tau_syn"), r=_cuba_r(node, ctx),
                       v_leak=f64(node, "v_leak"), v_threshold=f64(node, "v_threshold"),
                       v_reset=f64(node, "v_reset"))


@importer("LI", "LI")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(LI, node, ctx, tau_mem=f64(node, "tau"), r=f64(node, "r"),
                       v_leak=f64(node, "v_leak"))


@importer("CubaLI", "CubaLI", "r·w_in·dt/tau_syn becomes r")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(CubaLI, node, ctx, tau_mem=f64(node, "tau_mem"),
                       tau_syn=f64(node, "tau_syn"), r=_cuba_r(node, ctx),
                       v_leak=f64(node, "v_leak"))


@importer("IF", "IF", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(IF, node, ctx, r=f64(node, "r") * ctx.dt,
                       v_threshold=f64(node, "v_threshold"), v_reset=f64(node, "v_reset"))


@importer("I", "Integrator", "r = R·dt")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    return _population(Integrator, node, ctx, r=f64(node, "r") * ctx.dt)


@importer("Scale", "Scale")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    scale = f64(node, "scale")
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
    steps = f64(node, "delay") / ctx.dt
    whole = np.round(steps)
    if np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1.0, whole)) or np.any(whole < 0):
        raise NIRError(f"NIR Delay node {ctx.name!r}: delays {f64(node, 'delay')} s are not "
                       f"whole non-negative multiples of dt = {ctx.dt:g} s")
    flat = whole.reshape(-1)
    if np.all(flat == flat[0]):
        return Delay(int(flat[0]))
    return Delay(torch.from_numpy(whole.astype(np.int64).reshape(ctx.in_shape)))


@importer("Threshold", "Threshold")
def _(node: nir.NIRNode, ctx: ImportContext) -> nn.Module:
    threshold = _param(f64(node, "threshold"), ctx.in_shape, f"NIR Threshold {ctx.name!r}",
                       "threshold")
    return Threshold(torch.as_tensor(threshold, dtype=torch.float32))

"""What the event backend reads from the IR graph: the chain of layers it supports and each
population's per-neuron constants."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.event.cuba import _F, _INF, _Neuron
from spikeloop.checks import check_dt
from spikeloop.dynamics.models import MODELS
from spikeloop.errors import ParameterError
from spikeloop.ir import Graph, Node
from spikeloop.kernels.ops import check_delay_range


def _event_models() -> str:
    models = sorted((m for m in map(MODELS.get, MODELS.names()) if m.runs_on("event")),
                    key=lambda m: (not m.spiking, m.name))
    return ", ".join(f"{m.name} ({'spiking' if m.spiking else 'readout'})" for m in models)


def _supported(node: Node) -> str | None:
    """``"spiking"`` or ``"readout"`` for a population whose model declares the ``"event"``
    engine (the exact CUBA maths of cuba.py: one synaptic current, one input per neuron, and
    optionally the AHP current), else ``None``."""
    if node.kind != "population" or not node.model.runs_on("event"):
        return None
    return "spiking" if node.model.spiking else "readout"


@dataclass(frozen=True)
class _Layer:
    proj: Node
    pop: Node
    rec: Node | None


def _layers(graph: Graph) -> list[_Layer]:
    """The chain ``Input → (P → CubaLIF | AdaptiveLIF [+ recurrent])* → P → CubaLI | CubaLIF``
    (any model declaring the ``"event"`` engine) with each
    projection ``P`` a ``Linear`` or a per-axon ``DelayedLinear`` (no bias)."""
    nodes = list(graph.nodes)[1:]
    layers, proj = [], None
    k = 0
    while k < len(nodes):
        node = nodes[k]
        if node.kind == "projection" and not node.recurrent:
            if node.op not in ("Linear", "DelayedLinear"):
                raise ParameterError(f"event backend: layer {node.name!r} is a {node.op}; the "
                                     "event backend supports Linear projections and "
                                     "DelayedLinear with per=\"axon\" only")
            if node.op == "DelayedLinear" and node.settings.get("per") != "axon":
                raise ParameterError(
                    f"event backend: layer {node.name!r} is a DelayedLinear with a delay per "
                    f"synapse (per={node.settings.get('per')!r}); the event backend runs "
                    "DelayedLinear with per=\"axon\" (one delay per presynaptic neuron)")
            if node.params.get("bias") is not None:
                raise ParameterError(f"event backend: {node.op} {node.name!r} has a bias (a "
                                     "constant current), which the event backend does not model")
            if proj is not None:
                raise ParameterError(f"event backend: two projections in a row at {node.name!r}")
            proj = node
        elif node.kind == "population":
            role = _supported(node)
            reason = node.model.unsupported.get("event") if role is None else None
            if reason is not None:
                raise ParameterError(
                    f"event backend: population {node.name!r} is a {node.op}, which the event "
                    f"backend cannot run: {reason}. Supported neuron models: "
                    f"{_event_models()}")
            if role is None:
                raise ParameterError(
                    f"event backend: population {node.name!r} is a {node.op}; supported neuron "
                    f"models: {_event_models()}")
            if proj is None:
                raise ParameterError(f"event backend: population {node.name!r} needs a Linear "
                                     "(or per-axon DelayedLinear) projection in front of it")
            if role != "spiking" and node is not graph.output:
                raise ParameterError(f"event backend: the non-spiking {node.op} "
                                     f"{node.name!r} must be the last layer (readout)")
            rec = None
            if k + 1 < len(nodes) and nodes[k + 1].recurrent:
                rec = nodes[k + 1]
                if rec.params.get("bias") is not None:
                    raise ParameterError(f"event backend: recurrent {rec.name!r} has a bias")
                k += 1
            for name, p in node.params.items():
                if p.requires_grad and torch.is_grad_enabled():
                    raise ParameterError(
                        f"event backend: {node.name}.{name} is learned, but EventProp here "
                        "gives gradients for weights only; learn weights (model.learn: [])")
            layers.append(_Layer(proj, node, rec))
            proj = None
        else:
            raise ParameterError(f"event backend: layer {node.name!r} ({node.op}) is not "
                                 f"supported; networks are Input → Linear → {_event_models()}")
        k += 1
    if not layers:
        raise ParameterError("event backend: the network has no population")
    return layers


def _layers_and_dt(graph: Graph, state: Any) -> tuple[list[_Layer], float]:
    """What both engines check first: a run from rest (no ``state``), the supported chain
    (:func:`_layers`) and one ``dt`` for every population; returns the layers and ``dt``."""
    if state:
        raise ParameterError("event backend: runs start from rest; continuing from a "
                             "state (streaming) is not supported")
    layers = _layers(graph)
    dts = {check_dt(layer.pop.settings.get("dt"), f"event backend: {layer.pop.name}.dt")
           for layer in layers}
    if len(dts) != 1:
        raise ParameterError(f"event backend: all populations need the same dt (the grid "
                             f"of the observables), got {sorted(dts)}")
    return layers, dts.pop()


def _delay(proj: Node) -> Tensor | None:
    """The per-axon delays ``[C]`` (s) of a ``DelayedLinear`` projection (the live tensor:
    a parameter keeps its gradient), checked to lie in ``[0, max_steps·dt]`` by the dense
    simulator's own check (its message, prefixed with the layer's name); ``None`` for a
    ``Linear``."""
    if proj.op != "DelayedLinear":
        return None
    delay = proj.params["delay"]
    try:
        check_delay_range(delay, proj.settings["max_steps"] * proj.settings["dt"])
    except ParameterError as err:
        raise ParameterError(f"event backend: layer {proj.name!r}: {err}") from None
    return delay


def _neuron(node: Node) -> _Neuron:
    """The float64 constants of population ``node`` (one of :func:`_layers`), from its
    parameters and settings in the graph; a readout has no threshold (``+inf``)."""
    n = math.prod(node.shape)

    def vec(name: str, default: float = 0.0) -> Tensor:
        value = node.params.get(name, default)
        return torch.as_tensor(value).detach().to(_F).expand(n).clone()

    spiking = _supported(node) == "spiking"
    adapt = ((vec("tau_adapt"), vec("adapt_increment"))
             if spiking and "adapt_increment" in node.params else (None, None))
    nrn = _Neuron(vec("tau_mem"), vec("tau_syn"), vec("v_leak"), vec("r"),
                  vec("v_threshold", _INF), vec("v_reset"),
                  float(node.settings.get("t_refrac", 0.0)), spiking, *adapt)
    taus = [nrn.tau_mem, nrn.tau_syn] + ([nrn.tau_adapt] if nrn.adaptive else [])
    if any(bool((tau <= 0).any()) for tau in taus):
        raise ParameterError(f"event backend: population {node.name!r} needs tau_mem > 0, "
                             "tau_syn > 0" + (" and tau_adapt > 0" if nrn.adaptive else ""))
    if spiking:
        if bool((nrn.v_reset >= nrn.v_threshold).any()):
            raise ParameterError(f"event backend: population {node.name!r} needs v_reset < "
                                 "v_threshold (a neuron reset above threshold would fire "
                                 "infinitely often)")
        if not (math.isfinite(nrn.t_refrac) and nrn.t_refrac >= 0):
            raise ParameterError(f"event backend: t_refrac must be finite and ≥ 0 s, got "
                                 f"{nrn.t_refrac}")
    return nrn

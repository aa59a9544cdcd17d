"""What the event backend reads from the IR graph: the chain of layers it supports and each
population's per-neuron constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.backends.event.cuba import _F, _INF, _Neuron
from spikeloop.errors import ParameterError
from spikeloop.ir import Graph, Node
from spikeloop.nn.populations import CubaLI, CubaLIF


@dataclass(frozen=True)
class _Layer:
    proj: Node
    pop: Node
    rec: Node | None


def _layers(graph: Graph) -> list[_Layer]:
    """The chain ``Input → (Linear → CubaLIF [+ recurrent])* → Linear → CubaLI | CubaLIF``."""
    supported = "CubaLIF (spiking, optionally recurrent) and CubaLI (readout)"
    nodes = list(graph.nodes)[1:]
    layers, proj = [], None
    k = 0
    while k < len(nodes):
        node = nodes[k]
        if node.kind == "projection" and not node.recurrent:
            if node.op != "Linear":
                raise ParameterError(f"event backend: layer {node.name!r} is a {node.op}; the "
                                     "event backend supports Linear projections only")
            if node.module.bias is not None:
                raise ParameterError(f"event backend: Linear {node.name!r} has a bias (a "
                                     "constant current), which the event backend does not model")
            if proj is not None:
                raise ParameterError(f"event backend: two projections in a row at {node.name!r}")
            proj = node
        elif node.kind == "population":
            module = node.module
            if type(module) not in (CubaLIF, CubaLI):
                raise ParameterError(
                    f"event backend: population {node.name!r} is a {node.op}; supported neuron "
                    f"models: {supported}")
            if proj is None:
                raise ParameterError(f"event backend: population {node.name!r} needs a Linear "
                                     "projection in front of it")
            if not module.spiking and node is not graph.output:
                raise ParameterError(f"event backend: the non-spiking {node.op} "
                                     f"{node.name!r} must be the last layer (readout)")
            rec = None
            if k + 1 < len(nodes) and nodes[k + 1].recurrent:
                rec = nodes[k + 1]
                if rec.module.bias is not None:
                    raise ParameterError(f"event backend: recurrent {rec.name!r} has a bias")
                k += 1
            for name, p in module.named_parameters(recurse=False):
                if p.requires_grad and torch.is_grad_enabled():
                    raise ParameterError(
                        f"event backend: {node.name}.{name} is learned, but EventProp here "
                        "gives gradients for weights only; learn weights (model.learn: [])")
            layers.append(_Layer(proj, node, rec))
            proj = None
        else:
            raise ParameterError(f"event backend: layer {node.name!r} ({node.op}) is not "
                                 f"supported; networks are Input → Linear → {supported}")
        k += 1
    if not layers:
        raise ParameterError("event backend: the network has no population")
    return layers


def _neuron(node: Node) -> _Neuron:
    module = node.module
    p = module.parameter_record()
    n = module.size

    def vec(name: str, default: float = 0.0) -> Tensor:
        value = getattr(p, name, default)
        return torch.as_tensor(value).detach().to(_F).expand(n).clone()

    spiking = isinstance(module, CubaLIF)
    nrn = _Neuron(vec("tau_mem"), vec("tau_syn"), vec("v_leak"), vec("r"),
                  vec("v_threshold", _INF), vec("v_reset"),
                  float(getattr(p, "t_refrac", 0.0)), spiking)
    if bool((nrn.tau_mem <= 0).any()) or bool((nrn.tau_syn <= 0).any()):
        raise ParameterError(f"event backend: population {node.name!r} needs tau_mem > 0 and "
                             "tau_syn > 0")
    if spiking:
        if bool((nrn.v_reset >= nrn.v_threshold).any()):
            raise ParameterError(f"event backend: population {node.name!r} needs v_reset < "
                                 "v_threshold (a neuron reset above threshold would fire "
                                 "infinitely often)")
        if not (math.isfinite(nrn.t_refrac) and nrn.t_refrac >= 0):
            raise ParameterError(f"event backend: t_refrac must be finite and ≥ 0 s, got "
                                 f"{nrn.t_refrac}")
    return nrn

r"""ANN-proxy training (Kheradpisheh, Mirsadeghi & Masquelier 2022, arXiv:2109.13208).

A network of integrate-and-fire (IF) neurons and a rate network ("ANN") share every tensor.
The spiking network runs the forward pass and the loss is computed on its observables; the
gradient flows through the rate network instead, whose activation is the IF neuron's firing
rate. It is the in-the-loop bridge
(:func:`~spikeloop.backends.in_the_loop`) with the rate network as the replayed model: values
from the spiking run, gradients from the rate model, through
:func:`~spikeloop.dynamics.straight_through`.

The rate network walks the same graph (:func:`~spikeloop.backends.execute`) on the time mean
of the input, :math:`\bar x = \frac1T \sum_k x_k`, with one step:

- a projection (``Linear``, convolution, pooling, ``Scale``, ``Flatten``) is applied as it is;
- a ``BatchNorm`` node (:class:`~spikeloop.nn.BatchNorm`) is ordinary batch normalisation of
  its time-mean input, :math:`γ (\bar x - μ)/\sqrt{σ^2 + ε} + β`: in training mode with the
  statistics of the rate network's own :math:`\bar x` over the batch (differentiable, so the
  gradient flows through :math:`μ, σ^2` as in any batch-normalised network; the running
  statistics are updated by the spiking run only), in eval mode with the running ones. The
  spiking run's layer is the same affine map at every step, with the statistics of *its*
  input's time mean: before the first spiking population both inputs are the same
  :math:`\bar x` and the rate network's value is exactly the time mean of the spiking one;
  deeper, each network normalises what it receives (spike counts over :math:`T` steps are not
  exactly the rates);
- a spiking population with current :math:`I` (per step) fires at its integrate-and-fire
  rate, spikes per step

  .. math:: a = \min\!\left(1, \max\!\left(0, \frac{g\,I}{ϑ - v_{reset}}\right)\right),

  with :math:`g` the input gain ``r`` of the non-leaky membrane :math:`v ← v + g I`. For
  ``reset: subtract`` this is the exact long-run rate of a constant current (each spike removes
  :math:`ϑ - v_{reset}`); with ``reset: value`` the rate :math:`1/\lceil (ϑ - v_{reset})/(g I)
  \rceil` is approximated by it. The paper's ANN uses a plain ReLU; the clip at one spike per
  step is what an IF neuron can do.
- a non-spiking readout runs its own dynamics over the :math:`T` steps of the spiking run
  with the constant mean current, so a loss reads the same quantities (``max_membrane_ce``:
  :math:`\max_t v_t`) from both.

Only networks whose spiking populations are non-leaky IF neurons (no leak, no synaptic
current, no adaptation, no refractory period, no recurrent weights) and whose projections are
stateless and linear have such a rate network; :func:`check_proxy` refuses the rest, naming the
node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends import ModelHooks, execute, in_the_loop
from spikeloop.backends.executor import recurrent_of
from spikeloop.dynamics import straight_through
from spikeloop.errors import ConfigError
from spikeloop.ir import Graph, Node
from spikeloop.kernels import ops
from spikeloop.observables import NetworkOutput, Observables

RATE_OPS = ("Linear", "Conv1d", "Conv2d", "Flatten", "Scale", "SumPool2d", "AvgPool2d",
            "BatchNorm")
"""Projection and reshape operations the rate network applies as they are (stateless and
linear; ``BatchNorm`` is affine in every step and leaves its running statistics alone
there)."""


def _all(value: Any, target: float) -> bool:
    """Whether a coefficient (a number or a tensor) equals ``target`` everywhere."""
    if isinstance(value, Tensor):
        return bool((value == target).all())
    return float(value) == target


def check_proxy(graph: Graph) -> None:
    """Refuse a graph that has no rate network (see the module docstring), naming the node.

    Raises:
        ConfigError: a spiking population that is not a non-leaky IF neuron, one with
            ``v_threshold ≤ v_reset``, one with a recurrent projection, or a projection outside
            :data:`RATE_OPS`.
    """
    for node in graph.nodes:
        if node.kind == "input":
            continue
        if node.recurrent or (node.kind == "population" and recurrent_of(graph, node)):
            name = node.name.removesuffix(".recurrent")
            raise ConfigError(f"ann_proxy: population {name!r} has recurrent weights; the rate "
                              f"network has no time to run them in (use model.recurrent: false)")
        if node.kind != "population":
            if node.op not in RATE_OPS:
                raise ConfigError(f"ann_proxy: {node.op} node {node.name!r} has no rate "
                                  f"counterpart; the rate network takes {', '.join(RATE_OPS)}")
            continue
        if not node.model.spiking:
            continue
        p = node.parameter_record()
        c = node.model.coefficients(p, node.settings["dt"], node.settings["method"])
        leaky = node.model.currents or not _all(c.beta, 1.0) or not _all(c.rest, 0.0)
        if leaky or not _all(c.adapt_gain, 0.0) or c.refrac_steps:
            raise ConfigError(
                f"ann_proxy: population {node.name!r} ({node.op}) is not a non-leaky "
                f"integrate-and-fire neuron without synaptic current, adaptation or refractory "
                f"period, whose rate the proxy's activation is; use model.neuron: if")
        gap = torch.as_tensor(p.v_threshold - p.v_reset)
        if not bool((gap > 0).all()):
            raise ConfigError(
                f"ann_proxy: population {node.name!r} has v_threshold ≤ v_reset (smallest "
                f"v_threshold − v_reset: {float(gap.min()):g}); its rate g·I/(ϑ − v_reset) is "
                f"undefined there (a trained threshold may have drifted down to the reset)")


def if_gain(node: Node) -> Tensor | float:
    r"""The slope :math:`c = g / (ϑ - v_{reset})` of IF population ``node``'s rate
    :math:`a = \min(1, \max(0, c\,I))` (a number or per-neuron values)."""
    p = node.parameter_record()
    c = node.model.coefficients(p, node.settings["dt"], node.settings["method"])
    return c.x_gain / (p.v_threshold - p.v_reset)


def if_rate(node: Node, current: Tensor) -> Tensor:
    """Spikes per step of IF population ``node`` driven by the constant ``current``:
    ``clamp(if_gain(node) · current, 0, 1)``."""
    return (if_gain(node) * current).clamp(0.0, 1.0)


@dataclass
class RateHooks(ModelHooks):
    """The rate network's evaluation (:func:`execute` hooks): spiking populations fire at their
    IF rate, non-spiking ones run ``steps`` steps of their dynamics on the constant current."""

    steps: int = 1

    def projection(self, graph: Graph, node: Node, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        if node.op == "BatchNorm":  # the spiking run alone moves the running statistics
            p, s = node.params, node.settings
            return ops.batch_norm(x, p["weight"], p["bias"], p["running_mean"],
                                  p["running_var"], s["eps"], s["momentum"], s["training"],
                                  update=False), None
        return super().projection(graph, node, x, state)

    def population(self, graph: Graph, node: Node, current: Tensor, state: Any
                   ) -> tuple[Observables, Any]:
        if node.model.spiking:
            return Observables(spikes=if_rate(node, current)), None
        held = current.expand(self.steps, *current.shape[1:])
        return super().population(graph, node, held, state)


def rate_network(graph: Graph, x: Tensor, steps: int | None = None) -> dict[str, Observables]:
    """The rate network of ``graph`` on the time mean of ``x [T, B, ...]``.

    Spiking populations give their rates ``spikes [1, B, ...]`` (spikes per step); non-spiking
    ones their trajectory over ``steps`` steps (default ``T``) with the mean current held.

    Raises:
        ConfigError: ``graph`` has no rate network (:func:`check_proxy`).
    """
    check_proxy(graph)
    steps = x.shape[0] if steps is None else steps
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    mean = x.mean(0, keepdim=True, dtype=dtype)
    populations, _ = execute(graph, mean, RateHooks(kernel="reference", steps=steps))
    return populations


def proxy_output(graph: Graph, x: Tensor, observed: NetworkOutput) -> NetworkOutput:
    """The spiking run ``observed`` (on input ``x``) with the rate network's gradients.

    Every population's spikes and membrane keep their observed values; where the rate network
    has the same quantity (spikes of IF populations as rates held over the ``T`` steps, the
    readout's membrane), the gradient is the rate network's; elsewhere there is none. The rate
    network runs on the same tensors as the spiking network (no copy).

    Raises:
        ConfigError: ``graph`` has no rate network, or ``observed`` holds a backend's own
            records (e.g. the event backend's exact spike times) rather than grid observables.
    """
    for name, obs in observed.items():
        if type(obs) is not Observables:
            raise ConfigError(f"ann_proxy needs grid observables from the spiking run; "
                              f"population {name!r} came as {type(obs).__name__} (run the "
                              f"forward pass on the sim backend)")
    steps = x.shape[0]

    def replay(seen: Mapping[str, Observables]) -> dict[str, Observables]:
        model = rate_network(graph, x, steps)
        out = {}
        for name, obs in seen.items():
            fields: dict[str, Tensor] = {}
            for key in ("spikes", "v"):
                value = getattr(obs, key)
                if value is None:
                    continue
                rate = getattr(model[name], key) if name != graph.input.name else None
                fields[key] = (value.detach() if rate is None
                               else straight_through(rate.expand_as(value), value))
            out[name] = replace(obs, **fields)
        return out

    return in_the_loop(graph, x, observed, replay)

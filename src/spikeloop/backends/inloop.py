"""The in-the-loop bridge: gradients for backends that cannot be differentiated.

A chip runs the forward pass and reports what it observed: spikes and membrane of every
population. :func:`in_the_loop` then replays a software model of the chip on the same input
and replaces the model's values at every step by the observed ones with a straight-through
identity (value from the chip, gradient through the model,
:func:`~spikeloop.dynamics.straight_through`). Because the replacement happens step by step,
the model's state always equals the chip's, and the surrogate derivative is evaluated at the
membrane the chip really had.

The default model is the graph's own populations (the same step functions as the simulator),
each re-run on the spikes the chip observed at its input. A chip whose dynamics those
populations do not reproduce passes its own ``replay`` (the integer Xylo chip replays its
integer step function with one-step hops and bit-shift decays,
:func:`spikeloop.chips.xylo.dynamics.run`); the bridge checks that the replay's values are the
observed ones.

With an ideal chip (no mismatch, no noise, ideal read-out) the observations equal the model's
values and the bridge's gradients equal the model's (tested for the analog chip against the
simulator and for the Xylo chip against its QAT model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.executor import ModelHooks, execute, input_checkers
from spikeloop.errors import ReplayError
from spikeloop.ir import Graph
from spikeloop.observables import NetworkOutput, Observables

Replay = Callable[[Mapping[str, Observables]], Mapping[str, Observables]]
"""A chip model replayed at the observations: ``observed populations → differentiable
populations`` whose values are the observed ones."""


def in_the_loop(
    graph: Graph, x: Tensor, observed: NetworkOutput, replay: Replay | None = None, *,
    deferred: bool = False,
) -> NetworkOutput:
    """Differentiable observables whose values are ``observed`` and gradients the model's.

    Args:
        graph: the network graph the chip ran.
        x: the input the chip received ``[T, B, *shape]``.
        observed: the chip's observables (spikes and membrane of every population, on the
            simulation grid, in model units).
        replay: the chip's own model (default: the graph's populations re-run on the observed
            presynaptic spikes; the event backend passes its exact model with the spike times
            forced to the observed ones). Its spikes and membranes must equal the observed ones
            (:class:`~spikeloop.errors.ReplayError` otherwise).
        deferred: run ``replay`` only when a gradient is asked for (in the backward pass), not
            in the forward pass: the forward then costs only the chip's run, and a replay that
            is slow (a step-by-step integer model) is paid for only by training. The values
            are the observed ones either way; the replay's check against them happens in the
            backward pass.
    """
    if replay is not None and deferred:
        return _deferred(graph, x, observed, replay)
    if replay is None:
        hooks = ModelHooks(observed=observed.populations,
                           checkers=input_checkers(graph, "auto"))  # derived once per call
        populations, _ = execute(graph, x, hooks)
    else:
        populations = dict(replay(observed.populations))
        _check_replay(observed.populations, populations)
    return NetworkOutput(populations, graph.output.name, observed.state, observed.report)


def _check_replay(observed: Mapping[str, Observables],
                  populations: Mapping[str, Observables]) -> None:
    """The replay's spikes and membranes are the observed ones (:class:`ReplayError`)."""
    for name, seen in observed.items():
        for key in ("spikes", "v"):
            value, model = getattr(seen, key), getattr(populations.get(name), key, None)
            if name not in populations:
                raise ReplayError(f"in-the-loop replay: population {name!r} is missing")
            if value is not None and (model is None or model.shape != value.shape
                                      or not torch.equal(model.detach(), value.detach())):
                raise ReplayError(f"in-the-loop replay: population {name!r} {key} differs "
                                  "from the chip's observation")


@dataclass
class _Replay:
    """What the deferred replay needs in the backward pass."""

    replay: Replay
    observed: Mapping[str, Observables]
    fields: list[tuple[str, str]]  # (population, "spikes" | "v") returned by the Function
    inputs: list[Tensor]  # the tensors gradients are asked for: parameters (and x)


class _DeferredReplay(torch.autograd.Function):
    """Values: the observed ones. Backward: the replay, run then, differentiated."""

    @staticmethod
    def forward(ctx: Any, box: _Replay, *inputs: Tensor) -> tuple[Tensor, ...]:
        ctx.box = box
        ctx.save_for_backward(*inputs)  # torch refuses the backward if one changed in place
        return tuple(getattr(box.observed[name], key).detach()  # no copy: the observation
                     for name, key in box.fields)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        ctx.saved_tensors  # noqa: B018 (the in-place-modification check)
        box = ctx.box
        with torch.enable_grad():
            populations = dict(box.replay(box.observed))
            _check_replay(box.observed, populations)
            outs = [getattr(populations[name], key) for name, key in box.fields]
        pairs = [(o, g) for o, g in zip(outs, grads, strict=True)
                 if g is not None and o.requires_grad]
        if not pairs:
            return (None, *(None for _ in box.inputs))
        got = torch.autograd.grad([o for o, _ in pairs], box.inputs, [g for _, g in pairs],
                                  allow_unused=True)
        return (None, *got)


def _deferred(graph: Graph, x: Tensor, observed: NetworkOutput, replay: Replay
              ) -> NetworkOutput:
    """:func:`in_the_loop` with the replay run in the backward pass (``deferred=True``)."""
    inputs: list[Tensor] = []
    for node in graph.nodes:
        for t in node.params.values():
            if isinstance(t, Tensor) and t.requires_grad and all(t is not u for u in inputs):
                inputs.append(t)
    if x.requires_grad:
        inputs.append(x)
    if not inputs:  # nothing asks for a gradient: the observation is the result
        return observed
    fields = [(name, key) for name, o in observed.populations.items()
              if name != graph.input.name for key in ("spikes", "v")
              if getattr(o, key) is not None]
    values = _DeferredReplay.apply(_Replay(replay, observed.populations, fields, inputs),
                                   *inputs)
    populations = dict(observed.populations)
    for (name, key), value in zip(fields, values, strict=True):
        populations[name] = replace(populations[name], **{key: value})
    populations[graph.input.name] = replace(populations[graph.input.name], spikes=x)
    return NetworkOutput(populations, graph.output.name, observed.state, observed.report)

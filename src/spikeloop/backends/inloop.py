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
    graph: Graph, x: Tensor, observed: NetworkOutput, replay: Replay | None = None
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
    """
    if replay is None:
        hooks = ModelHooks(observed=observed.populations,
                           checkers=input_checkers(graph, "auto"))  # derived once per call
        populations, _ = execute(graph, x, hooks)
    else:
        populations = dict(replay(observed.populations))
        for name, seen in observed.populations.items():
            for key in ("spikes", "v"):
                value, model = getattr(seen, key), getattr(populations.get(name), key, None)
                if name not in populations:
                    raise ReplayError(f"in-the-loop replay: population {name!r} is missing")
                if value is not None and (model is None or model.shape != value.shape
                                          or not torch.equal(model.detach(), value.detach())):
                    raise ReplayError(f"in-the-loop replay: population {name!r} {key} differs "
                                     "from the chip's observation")
    return NetworkOutput(populations, graph.output.name, observed.state, observed.report)

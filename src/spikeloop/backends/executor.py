"""The graph executor: one walk over an IR graph, with hooks for how each node is evaluated.

:func:`execute` visits the nodes in graph order. The input node gives the input; every other
node receives the **sum** of its inputs' outputs (spikes of spiking nodes, membrane of
non-spiking ones, values of projections); a population's recurrent projection runs inside its
time loop. What a node *does* is left to the hooks (:class:`Hooks`):

- the simulator evaluates the software model (:class:`ModelHooks`: the registered neuron model
  through :func:`~spikeloop.kernels.loop.run_population`, projections through
  :data:`PROJECTIONS`);
- a chip emulator evaluates its own synapses and neurons (e.g. the analog chip's noisy 6-bit
  weights and calibrated circuits) and otherwise inherits the model's hooks;
- the in-the-loop bridge replays the model with each population's device observation
  (``ModelHooks(observed=...)``).

So the walk — which node reads which, how inputs are summed, where state goes — exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from spikeloop.checks import check_sequence
from spikeloop.devices import NeuronDevice, SynapseDevice, device_context, node_devices
from spikeloop.dynamics.models import PopulationState
from spikeloop.errors import ParameterError
from spikeloop.ir import Graph, Node
from spikeloop.kernels import event_linear, ops
from spikeloop.kernels.loop import KERNELS, Kernel, Recurrent, run_population
from spikeloop.observables import Observables
from spikeloop.registry import Registry

RECORDABLE = ("spikes", "v", "i")
"""Fields of :class:`~spikeloop.observables.Observables` a run can select per population."""


class Hooks(Protocol):
    """How :func:`execute` evaluates nodes."""

    def input(self, graph: Graph, node: Node, x: Tensor) -> Observables:
        """Observables of the input node for input ``x``."""
        ...

    def population(
        self, graph: Graph, node: Node, current: Tensor, state: Any
    ) -> tuple[Observables, Any]:
        """Run population ``node`` on its summed input ``current [T, B, ...]``."""
        ...

    def projection(
        self, graph: Graph, node: Node, x: Tensor, state: Any
    ) -> tuple[Tensor, Any]:
        """Apply projection/reshape ``node`` to ``x``; returns its output and state (``None``
        for a stateless one)."""
        ...


def execute(
    graph: Graph, x: Tensor, hooks: Hooks, state: Mapping[str, Any] | None = None
) -> tuple[dict[str, Observables], dict[str, Any]]:
    """Walk ``graph`` once on ``x [T, B, *input_shape]`` from ``state`` (``None``: rest).

    Returns the observables of the input and every population, and the new state of every
    population and stateful projection (by node name).
    """
    state = state or {}
    values: dict[str, Tensor] = {}
    populations: dict[str, Observables] = {}
    new_state: dict[str, Any] = {}
    for node in graph.nodes:
        if node.recurrent:  # run inside its population's time loop
            continue
        if node.kind == "input":
            obs = hooks.input(graph, node, x)
            new_state[node.name] = None
        else:
            inp = values[node.inputs[0]]
            for other in node.inputs[1:]:
                inp = inp + values[other]
            if node.kind != "population":
                values[node.name], after = hooks.projection(graph, node, inp,
                                                            state.get(node.name))
                if after is not None:
                    new_state[node.name] = after
                continue
            obs, new_state[node.name] = hooks.population(graph, node, inp, state.get(node.name))
        values[node.name] = obs.spikes if obs.spikes is not None else obs.v
        populations[node.name] = obs
    return populations, new_state


# ----------------------------------------------------------------------------- the model's hooks
Projection = Callable[[Graph, Node, Tensor, Any, "ModelHooks"], tuple[Tensor, Any]]

PROJECTIONS: Registry[Projection] = Registry("projection op")
"""How the software model evaluates a projection or reshape node, by ``node.op``:
``fn(graph, node, x, state, hooks) → (y, state)``. Register new ops with
``PROJECTIONS.register``."""


@PROJECTIONS.register("Linear")
def _linear(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    w, b = node.params["weight"], node.params.get("bias")
    if hooks.kernel == "reference" or x.shape[-1] != w.shape[1]:  # (ops.linear: shape error)
        return ops.linear(x, w, b), None
    return event_linear(x, w, b, check_finite=hooks.input_check(graph, node)), None


@PROJECTIONS.register("Conv1d")
@PROJECTIONS.register("Conv2d")
def _conv(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    return ops.conv(x, node.params["weight"], node.params.get("bias"), **node.settings), None


@PROJECTIONS.register("Flatten")
def _flatten(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    return ops.flatten(x), None


@PROJECTIONS.register("Scale")
def _scale(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    return ops.scale(x, node.params["scale"]), None


@PROJECTIONS.register("SumPool2d")
@PROJECTIONS.register("AvgPool2d")
def _pool(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    s = node.settings
    kind = "sum" if node.op == "SumPool2d" else "avg"
    return ops.pool2d(x, kind, s["kernel_size"], s["stride"], s["padding"]), None


@PROJECTIONS.register("BatchNorm")
def _batch_norm(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    p, s = node.params, node.settings
    return ops.batch_norm(x, p["weight"], p["bias"], p["running_mean"], p["running_var"],
                          s["eps"], s["momentum"], s["training"]), None


@PROJECTIONS.register("Threshold")
def _threshold(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, None]:
    return ops.threshold(x, node.params["threshold"], node.settings["surrogate"]), None


@PROJECTIONS.register("Delay")
def _delay(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, Tensor]:
    return ops.delay(x, node.settings["steps"], state, node.settings.get("max_steps"))


@PROJECTIONS.register("DelayedLinear")
def _delayed_linear(
    graph: Graph, node: Node, x: Tensor, state: Any, hooks: ModelHooks
) -> tuple[Tensor, Tensor]:
    p, s = node.params, node.settings
    return ops.delayed_linear(x, p["weight"], p["delay"], s["dt"], s["max_steps"], p.get("bias"),
                              state, event=hooks.kernel != "reference",
                              check_finite=hooks.input_check(graph, node))


def recurrent_of(graph: Graph, node: Node) -> Node | None:
    """The recurrent projection of population ``node`` (``None`` if it has none)."""
    return graph.nodes_by_name.get(f"{node.name}.recurrent")


def input_checkers(graph: Graph, kernel: Kernel) -> frozenset[str]:
    """Projections that check the input for NaN/inf on its events (a few % of its entries)
    instead of the input node's own pass over it: all readers of the input, if every one is a
    plain event-driven ``Linear`` or ``DelayedLinear`` of the input alone (each checks the
    input itself where it takes its dense path); otherwise none."""
    readers = [n for n in graph.nodes if graph.input.name in n.inputs]
    if kernel != "reference" and readers and all(
            n.op in ("Linear", "DelayedLinear") and n.inputs == (graph.input.name,)
            and not n.recurrent for n in readers):
        return frozenset(n.name for n in readers)
    return frozenset()


@dataclass
class ModelHooks:
    """The software model's evaluation (the simulator's, and the in-the-loop replay's).

    Args:
        kernel: ``"auto"``, ``"fused"`` or ``"reference"`` (see
            :func:`~spikeloop.kernels.loop.run_population`).
        grad_band: sparse surrogate backprop band (``None``: off).
        fields: per population, the observables to return (``None``: all).
        observed: per population, device observations the model is replayed at (in-the-loop
            bridge); values become the observed ones, gradients the model's.
        checkers: :func:`input_checkers` of the graph run (derived per call when ``None``).
    """

    kernel: Kernel = "auto"
    grad_band: float | None = None
    fields: Mapping[str, tuple[str, ...]] | None = None
    observed: Mapping[str, Observables] | None = None
    checkers: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ParameterError(f"unknown kernel {self.kernel!r}; known: {', '.join(KERNELS)}")

    def wanted(self, node: Node) -> tuple[str, ...]:
        """The fields of ``node`` to return."""
        return RECORDABLE if self.fields is None else self.fields.get(node.name, ())

    def checkers_of(self, graph: Graph) -> frozenset[str]:
        """The projections that check the input's finiteness on its events."""
        return self.checkers if self.checkers is not None else input_checkers(graph, self.kernel)

    def input_check(self, graph: Graph, node: Node) -> str | None:
        """``"Input"`` (the name its NaN/inf error gives) if projection ``node`` checks the
        network's input on its events, else ``None``."""
        return "Input" if node.name in self.checkers_of(graph) else None

    def input(self, graph: Graph, node: Node, x: Tensor) -> Observables:
        check_sequence(x, node.shape, "Input", finite=not self.checkers_of(graph))
        return Observables(spikes=x)

    def population(
        self, graph: Graph, node: Node, current: Tensor, state: PopulationState | None
    ) -> tuple[Observables, PopulationState]:
        return self.run(graph, node, current, state, node.parameter_record())

    def run(
        self, graph: Graph, node: Node, current: Tensor, state: PopulationState | None, p: Any,
        recurrent: Recurrent | None = None, **options: Any,
    ) -> tuple[Observables, PopulationState]:
        """Run population ``node`` with parameter record ``p`` (a chip passes the parameters
        its circuits have, and its own ``recurrent`` synapses)."""
        if recurrent is None:
            rec = recurrent_of(graph, node)
            if rec is not None:
                recurrent = Recurrent(rec.params["weight"], rec.params.get("bias"))
        wanted = self.wanted(node)
        s = node.settings
        options = {"kernel": self.kernel, "grad_band": self.grad_band,
                   "record_current": "i" in wanted, "record_v": "v" in wanted} | options
        observed = self.observed.get(node.name) if self.observed else None
        return run_population(node.model, current, p, dt=s["dt"], method=s["method"],
                              surrogate=s["surrogate"], shape=node.shape, state=state,
                              observed=observed, recurrent=recurrent, cache=node.cache,
                              device=neuron_device(node), **options)

    def projection(
        self, graph: Graph, node: Node, x: Tensor, state: Any
    ) -> tuple[Tensor, Any]:
        y, after = PROJECTIONS.get(node.op)(graph, node, x, state, self)
        if node.devices:  # (a graph without devices: nothing more per window or step)
            for m in node_devices(node, SynapseDevice):
                if m.per_step:
                    y = m.output(x, y, node.params["weight"], device_context(node))
        return y, after


def neuron_device(node: Node) -> Callable[[Tensor, Any, Any, Any], Tensor] | None:
    """The neuron device models a realisation attached to population ``node``, as one
    ``(x_t, neuron_state, p, c) → x̃_t`` for :func:`~spikeloop.kernels.loop.run_population`
    (``None``: none)."""
    models = node_devices(node, NeuronDevice)
    if not models:
        return None
    ctx = device_context(node)

    def current(x: Tensor, neuron: Any, p: Any, c: Any) -> Tensor:
        for m in models:
            x = m.current(x, neuron, ctx, p, c)
        return x

    return current

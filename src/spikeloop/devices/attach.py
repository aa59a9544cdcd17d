"""Attaching device models to a network's nodes, and realising them for one run.

:class:`Devices` maps node names to device models and keeps what a realisation needs
between runs: the *programming instance* (which fixed pattern of device variation and faults
the weights were programmed into), the time since programming (drift) and the running
stream of read noise. :meth:`Devices.realise` turns a traced graph into the graph a backend
runs: projection weights replaced by what the devices hold (with the model's gradient), and
every node's models and their random context attached to it (``Node.devices``,
``Node.device_context``), where the step loop, the executor's projection hook and the integer
chip read them. Whether a backend can run a model is a capability it declares
(``device_support``, :data:`~spikeloop.devices.base.CAPABILITIES`), not its name.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from spikeloop.checks import check_int, check_real, show
from spikeloop.devices.base import DeviceContext, DeviceModel, SynapseDevice, build_device
from spikeloop.errors import DeviceModelError, ParameterError
from spikeloop.ir import Graph, Node

__all__ = ["WILDCARD", "Devices", "device_context", "node_devices"]


def _as_models(name: str, value: Any) -> tuple[DeviceModel, ...]:
    items = [value] if isinstance(value, DeviceModel | Mapping) else value
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise DeviceModelError(f"devices[{name!r}]: give a device model, a list of them or "
                               f"{{name: ..., option: value}}, got {show(value)}")
    return tuple(build_device(m) for m in items)


class Devices(Mapping[str, tuple[DeviceModel, ...]]):
    """Device models by node name, and the state of their realisation.

    Args:
        models: ``{node name: model | [models] | {name: ..., option: value}}``. Several
            models on one node act in the order given (e.g. a crossbar, then read noise).
            The key ``"*"`` attaches each of its models to every node it can act on (whose
            :meth:`~spikeloop.devices.DeviceModel.check_node` passes: a crossbar to every
            projection with a weight matrix, an analog neuron to every spiking population
            with one input), after a node's own models; :meth:`of` lists a node's models.
        instance: the programming instance (seed of the device variation and faults).
        t: seconds since programming (drift), ≥ 0.
        seed: start of the read-noise stream.
        stream: a name that separates these devices' random streams from others' with the
            same instance and seed (e.g. ``"train"``: the instances a noise-aware training
            draws are never the ones it is evaluated on).

    Raises:
        DeviceModelError: a value that is not a device model.
        ParameterError: a negative or non-finite ``t``, a negative ``instance`` or ``seed``.

    Example:
        >>> from spikeloop.devices import Crossbar, Devices
        >>> net.devices = Devices({"fc1": Crossbar(levels=16, program_std=0.03)}, t=3600.0)
    """

    def __init__(self, models: Mapping[str, Any] | None = None, *, instance: int = 0,
                 t: float = 0.0, seed: int = 0, stream: str = "") -> None:
        if models is not None and not isinstance(models, Mapping):
            raise DeviceModelError(f"devices must map node names to device models, got "
                                   f"{show(models)}")
        self._models = {str(k): _as_models(str(k), v) for k, v in (models or {}).items()}
        self.instance = check_int(instance, "devices: instance", 0)
        self.t = t
        self.seed = check_int(seed, "devices: seed", 0)
        self.stream = str(stream)
        # the read stream's seed is a hash of ``seed``: never torch.manual_seed(seed)'s own
        # stream, which test data drawn with the same seed would be correlated with
        self.read = torch.Generator().manual_seed(
            zlib.crc32(f"read:{self.stream}:{self.seed}".encode()))

    # -- mapping of node names to models
    def __getitem__(self, name: str) -> tuple[DeviceModel, ...]:
        return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"Devices({self._models!r}, instance={self.instance}, t={self.t:g})"

    @property
    def t(self) -> float:
        """Seconds since the weights were programmed (drift), ≥ 0."""
        return self._t

    @t.setter
    def t(self, value: float) -> None:
        self._t = check_real(value, "devices: t (seconds since programming; a drift time "
                             "cannot be negative)", 0.0)

    def program(self, instance: int | None = None) -> None:
        """Program the weights again: a new instance of device variation and faults
        (``instance``; default: the next one), and the drift clock restarts at ``t = 0``."""
        self.instance = (self.instance + 1 if instance is None
                         else check_int(instance, "devices: instance", 0))
        self.t = 0.0

    # -- checks and realisation
    def of(self, node: Node) -> tuple[DeviceModel, ...]:
        """The models acting on ``node``: its own, then those of ``"*"`` that can act on it."""
        own = self._models.get(node.name, ())
        wild = tuple(m for m in self._models.get(WILDCARD, ()) if _fits(m, node))
        return own + wild

    def check(self, graph: Graph, backend: Any) -> None:
        """Raise :class:`DeviceModelError` unless every model's node exists, is of the kind
        the model acts on, and ``backend`` (a backend object) can run it."""
        for name, models in self._models.items():
            if name == WILDCARD:
                for m in models:
                    nodes = [n for n in graph.nodes if _fits(m, n)]
                    if not nodes:
                        raise DeviceModelError(f"devices['*']: no node of the network is one "
                                               f"{type(m).__name__} can act on")
                    for node in nodes:
                        m.check_backend(node, backend)
                continue
            if name not in graph.nodes_by_name:
                known = [n.name for n in graph.nodes if n.kind in ("projection", "population")]
                raise DeviceModelError(f"devices: the network has no node {name!r}; "
                                       f"projections and populations: {known}")
            node = graph[name]
            for m in models:
                m.check_node(node)
                m.check_backend(node, backend)

    def context(self, node: str) -> DeviceContext:
        """The :class:`DeviceContext` of ``node`` for one run."""
        key = zlib.crc32(f"{self.stream}:{self.instance}:{node}".encode())
        program = torch.Generator().manual_seed(key)
        return DeviceContext(node, program, self.read, self.t)

    def realise(self, graph: Graph, backend: Any) -> Graph:
        """The graph ``backend`` (a backend object: its ``device_support`` says what it can
        run, :data:`~spikeloop.devices.base.CAPABILITIES`) runs: every device model applied
        (see the module docstring). A graph without devices is returned as it is."""
        if not self._models:
            return graph
        self.check(graph, backend)
        nodes = []
        for node in graph.nodes:
            models = self.of(node)
            if not models:
                nodes.append(node)
                continue
            ctx = self.context(node.name)
            params = dict(node.params)
            for m in models:
                if isinstance(m, SynapseDevice):
                    w = params["weight"]
                    w_dev = m.weights(w, ctx)
                    if w_dev.shape != w.shape or w_dev.dtype != w.dtype:
                        raise ParameterError(f"{type(m).__name__}.weights changed the weights' "
                                             f"shape or dtype on {node.name!r}")
                    params["weight"] = w_dev
            nodes.append(replace(node, params=params, cache=node.cache, devices=models,
                                 device_context=ctx))
        return Graph(tuple(nodes))

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: instance, drift time and the read stream's state."""
        return {"instance": self.instance, "t": self.t, "read": self.read.get_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state`."""
        self.instance = check_int(state["instance"], "devices: instance", 0)
        self.t = state["t"]
        self.read.set_state(state["read"])


WILDCARD = "*"
"""The key of :class:`Devices` whose models act on every node they can act on."""


def _fits(model: DeviceModel, node: Node) -> bool:
    """Whether ``model`` can act on ``node`` (what ``"*"`` attaches it to): its
    :meth:`~spikeloop.devices.DeviceModel.check_node` passes."""
    try:
        model.check_node(node)
    except DeviceModelError:
        return False
    return True


def node_devices(node: Node, kind: type[DeviceModel]) -> tuple[Any, ...]:
    """The realised models of ``kind`` on ``node`` (empty if none)."""
    return tuple(m for m in node.devices if isinstance(m, kind))


def device_context(node: Node) -> DeviceContext:
    """The :class:`DeviceContext` a realisation attached to ``node``."""
    return node.device_context


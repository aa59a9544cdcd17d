"""What every device model is: a frozen value that says where it acts and which backends can
run it, and the context a realisation draws its randomness from.

Three kinds, by what they change:

- :class:`SynapseDevice` (on a projection): the weights a device *stores and reads*,
  :meth:`SynapseDevice.weights` ``w → w̃`` (e.g. a memristive crossbar), and optionally a
  per-step change of the projection's output, :meth:`SynapseDevice.output` (read noise drawn
  at every time step);
- :class:`NeuronDevice` (on a population): the input current a device's neuron really
  integrates, :meth:`NeuronDevice.current` ``(x_t, state, p, c) → x̃_t`` applied before every step
  of the neuron model (an analog neuron's transfer non-linearity);
- :class:`MemoryDevice` (on a projection or a population of an integer chip): faults in the
  chip's integer memories (single-event upsets), applied by the chip's backend itself.

Models are attached to a network's nodes with :class:`~spikeloop.devices.Devices`; the
network realises them once per run (:meth:`~spikeloop.devices.Devices.realise`), so every
backend sees the same realised weights: one option, no per-backend code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from spikeloop.errors import ConfigError, DeviceModelError
from spikeloop.registry import Registry

if TYPE_CHECKING:
    from spikeloop.ir import Node

__all__ = ["CAPABILITIES", "DEVICE_MODELS", "DeviceContext", "DeviceModel", "MemoryDevice",
           "NeuronDevice", "SynapseDevice", "build_device", "device_support", "straight_through"]

Target = Literal["projection", "population"]


@dataclass(frozen=True)
class DeviceContext:
    """Where a realisation draws from.

    Attributes:
        node: name of the node the model acts on.
        program: generator of the *programming* randomness (variation at programming, stuck
            devices, per-device drift exponents): seeded by the programming instance and the
            node, so the same instance realises the same devices at every run.
        read: generator of the *read* randomness (noise at every evaluation or step): a
            running stream, advanced by every run.
        t: time since programming in seconds (drift).
        memo: what a model's :meth:`SynapseDevice.weights` leaves for its
            :meth:`SynapseDevice.output` in the same run (one context per node and run), by
            model.
    """

    node: str
    program: torch.Generator
    read: torch.Generator
    t: float
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


CAPABILITIES: dict[str, str] = {
    "weights": "runs the projection weights of the graph it is given",
    "step_loop": "runs populations through the neuron model's step loop",
    "projection_hook": "evaluates projections step by step through the graph executor's "
                       "projection hook, each time step once",
    "integer_memories": "holds weights and neuron states in integer memories",
}
"""What a backend can do for device models, by name. A backend declares the ones it offers
in its attribute ``device_support`` (default: ``{"weights"}``: every backend runs the graph's
weights); a model says which it needs in :meth:`DeviceModel.requires`."""


def device_support(backend: Any) -> frozenset[str]:
    """The :data:`CAPABILITIES` ``backend`` offers (its ``device_support``, default
    ``{"weights"}``)."""
    return frozenset(getattr(backend, "device_support", {"weights"}))


@dataclass(frozen=True)
class DeviceModel:
    """Base of every device model: a frozen, comparable value.

    Subclasses set ``target`` (``"projection"`` or ``"population"``) and ``name`` (the
    registry name used in configs), and say in :meth:`requires` which backend capabilities
    (:data:`CAPABILITIES`) they need.
    """

    name: ClassVar[str] = "device"
    target: ClassVar[Target] = "projection"

    def requires(self) -> frozenset[str]:
        """The backend capabilities this model needs (:data:`CAPABILITIES`)."""
        return frozenset({"weights"})

    def check_node(self, node: Node) -> None:
        """Raise :class:`DeviceModelError` unless this model can act on ``node``."""
        kinds = ("projection",) if self.target == "projection" else ("population",)
        if node.kind not in kinds:
            raise DeviceModelError(
                f"{type(self).__name__} acts on a {self.target}; {node.name!r} is a "
                f"{node.kind} ({node.op}): attach it to a "
                f"{'projection (Linear, Conv …)' if self.target == 'projection' else 'population'}")
        if self.target == "projection" and (
                "weight" not in node.params or node.params["weight"].dim() < 2):
            raise DeviceModelError(f"{type(self).__name__} acts on a stored weight matrix; "
                                   f"projection {node.name!r} ({node.op}) has none")

    def check_backend(self, node: Node, backend: Any) -> None:
        """Raise :class:`DeviceModelError` if ``backend`` lacks a capability this model needs."""
        missing = sorted(self.requires() - device_support(backend))
        if missing:
            name = getattr(backend, "label", None) or repr(getattr(backend, "name",
                                                                   type(backend).__name__))
            needs = " and ".join(f"a backend that {CAPABILITIES[c]} ({_OFFERED[c]})"
                                 for c in missing)
            raise DeviceModelError(f"{type(self).__name__} on {node.name!r} cannot run on the "
                                   f"{name} backend: it needs {needs}")


_OFFERED = {"weights": "every backend", "step_loop": "'sim' and the analog 'chip'",
            "projection_hook": "'sim' without checkpoint",
            "integer_memories": "'xylo' in mode 'chip'"}
"""Who offers each capability (for messages; the backends' ``device_support`` decides)."""


@dataclass(frozen=True)
class SynapseDevice(DeviceModel):
    """A device that stores a projection's weights (see the module docstring)."""

    target: ClassVar[Target] = "projection"
    per_step: ClassVar[bool] = False
    """Whether :meth:`output` changes the projection's output at every step."""

    def weights(self, w: Tensor, ctx: DeviceContext) -> Tensor:
        """The weights the device holds and reads when asked to store ``w`` (same shape and
        dtype). Gradients flow as the model's: ``∂w̃/∂w = 1`` (:func:`straight_through`)
        unless the model says otherwise."""
        return w

    def output(self, x: Tensor, y: Tensor, w: Tensor, ctx: DeviceContext) -> Tensor:
        """The projection's output ``y [T, B, out]`` as the device delivers it for input
        ``x [T, B, in]`` and realised weights ``w`` (only called when ``per_step``)."""
        return y


@dataclass(frozen=True)
class NeuronDevice(DeviceModel):
    """A device that implements a population's neurons (see the module docstring)."""

    target: ClassVar[Target] = "population"

    def current(self, x: Tensor, state: Any, ctx: DeviceContext, p: Any, c: Any) -> Tensor:
        """The input ``x [B, *shape]`` of one step as the device's neuron integrates it, given
        the neuron state before the step (``state.v`` …), the parameter record ``p`` the
        population runs with (a chip's own circuits' values on a chip) and its coefficients
        ``c`` (:class:`~spikeloop.dynamics.Coefficients`: ``β``, input gains …)."""
        return x

    def requires(self) -> frozenset[str]:
        return frozenset({"step_loop"})


@dataclass(frozen=True)
class MemoryDevice(DeviceModel):
    """Faults of an integer chip's memories, applied by the chip's backend itself."""

    def check_node(self, node: Node) -> None:
        if node.kind not in ("projection", "population"):
            raise DeviceModelError(f"{type(self).__name__} acts on a projection's weight memory "
                                   f"or a population's state memory; {node.name!r} is a "
                                   f"{node.kind}")


def straight_through(w: Tensor, realised: Tensor) -> Tensor:
    """``realised`` as the value, ``w``'s gradient (``∂/∂w = 1``): the device's stochastic
    forward, the model's backward."""
    return w + (realised - w).detach()


DEVICE_MODELS: Registry[type[DeviceModel]] = Registry("device model")
"""Device model classes by registry name, for configs: ``{name: crossbar, levels: 16, …}``."""


def build_device(spec: DeviceModel | Mapping[str, Any]) -> DeviceModel:
    """A device model from an instance or ``{"name": ..., option: value}``.

    Raises:
        ConfigError: not a mapping with a ``name``, or an option the model does not take.
        UnknownNameError: no model has the name.
    """
    if isinstance(spec, DeviceModel):
        return spec
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"a device model is a DeviceModel or {{name: ..., option: value}} "
                          f"(names: {', '.join(DEVICE_MODELS.names())}), got {spec!r}")
    options = {k: v for k, v in spec.items() if k != "name"}
    cls = DEVICE_MODELS.get(spec["name"])
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"device model {spec['name']!r}: {e}") from None

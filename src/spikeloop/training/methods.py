r"""Training methods: how the trainer changes the weights (``train.method``).

A method is a registered :class:`TrainingMethod`. The trainer owns the data, the run folder,
checkpoints, evaluation and the schedule; the method decides what one training batch does:

- a **gradient method** (``gradient = True``) gives the forward pass whose loss the trainer
  backpropagates and steps its optimiser with: ``backprop`` (surrogate gradients on the
  simulator, EventProp on the event backend, the in-the-loop bridge on a chip) and
  ``ann_proxy`` (:mod:`spikeloop.training.proxy`);
- a **local method** (``gradient = False``) changes the weights itself in
  :meth:`TrainingMethod.train_batch`, without an autograd graph (plasticity rules, desire
  backpropagation, VDSP, stochastic spike-coded backprop).

``train.method`` is a name or a mapping ``{name: <method>, <option>: <value>, ...}``; the
options are the method's :attr:`TrainingMethod.Options` (a frozen dataclass whose defaults are
the values of the method's paper). Unknown names and keys are refused with the known ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from spikeloop.errors import ConfigError
from spikeloop.observables import NetworkOutput
from spikeloop.registry import Registry
from spikeloop.training.proxy import check_proxy, proxy_output

if TYPE_CHECKING:  # the trainer imports this module, not the other way round
    from spikeloop.training.trainer import Trainer


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


class TrainingMethod:
    """What one training batch does (see the module docstring).

    Subclasses set :attr:`name`, :attr:`gradient` and :attr:`Options`, and override
    :meth:`forward` (gradient methods) or :meth:`train_batch` (local methods).
    """

    name: ClassVar[str] = ""
    gradient: ClassVar[bool] = True
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any) -> None:
        self.options = options

    def check(self, trainer: Trainer) -> None:
        """Refuse a network or setting this method cannot train (``ConfigError`` naming the
        node or key). Called once, when the trainer is built."""

    def forward(self, trainer: Trainer, x: Tensor) -> NetworkOutput:
        """Gradient methods: the forward pass whose loss the trainer backpropagates."""
        return trainer.forward(x)

    def train_batch(self, trainer: Trainer, x: Tensor, y: Tensor) -> tuple[float, int]:
        """Local methods: update the weights on batch ``(x, y)`` in place; return the summed
        loss over the batch (``nan`` where the method has none) and the number of correct
        predictions made on the way."""
        raise NotImplementedError(f"{type(self).__name__} is a gradient method")

    def predict(self, trainer: Trainer, out: NetworkOutput) -> Tensor | None:
        """The predicted class of every sample; ``None``: the loss's prediction."""
        return None

    def end_epoch(self, trainer: Trainer) -> None:
        """Called after every training epoch, before validation (e.g. label assignment)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the method (besides the network's weights)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


METHODS: Registry[type[TrainingMethod]] = Registry("training method")
"""Training methods by name (``train.method``)."""


def register_method(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    """Class decorator: add ``cls`` to :data:`METHODS` under ``cls.name``."""
    METHODS.add(cls.name, cls)
    return cls


def method_options(spec: str | Mapping[str, Any]) -> tuple[type[TrainingMethod], Any]:
    """The method class and its parsed options for a ``train.method`` value.

    Raises:
        ConfigError: not a name or a mapping with ``name``, an unknown method (listing the
            known ones), an option the method does not have (listing its options), or an
            option value its :attr:`~TrainingMethod.Options` refuses.
    """
    if isinstance(spec, str):
        name, given = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name, given = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ConfigError(f"train.method must be a name or a mapping with a 'name' key, got "
                          f"{spec!r}")
    if name not in METHODS:
        raise ConfigError(f"unknown train.method {name!r}; known: {', '.join(METHODS.names())}")
    cls = METHODS.get(name)
    known = [f.name for f in dataclasses.fields(cls.Options)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"train.method {name}: unknown option(s) {unknown}; known: "
                          f"{known or 'none'}")
    try:
        return cls, cls.Options(**given)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"train.method {name}: {err}") from None


def make_method(spec: str | Mapping[str, Any]) -> TrainingMethod:
    """The :class:`TrainingMethod` a ``train.method`` value names, with its options."""
    cls, options = method_options(spec)
    return cls(options)


@register_method
class Backprop(TrainingMethod):
    """Backpropagation through the backend: surrogate gradients through time on the
    simulator, exact EventProp gradients on ``event``, and on a chip the in-the-loop bridge
    (the chip's forward pass, the software model's backward pass at the observed states)."""

    name = "backprop"


@register_method
class AnnProxy(TrainingMethod):
    """ANN-proxy training (:mod:`spikeloop.training.proxy`): the spiking network's loss,
    backpropagated through the rate network that shares its tensors."""

    name = "ann_proxy"

    def check(self, trainer: Trainer) -> None:
        check_proxy(trainer.network.graph)

    def forward(self, trainer: Trainer, x: Tensor) -> NetworkOutput:
        with torch.no_grad():
            out = trainer.forward(x)
        return proxy_output(trainer.network.graph, x, out)

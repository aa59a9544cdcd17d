r"""Layers for the NIR node types beyond projections and the classic populations: gains,
pooling, delays, thresholds and a pure integrator (users compose them like any layer; NIR import
builds them).

Each one is a small ``torch.nn.Module`` on time-major tensors ``[T, B, ...]`` that registers its
own graph description (:func:`spikeloop.ir.describe`, below), so the sim backend runs it like any
other layer.

==============  ===========================================================  =================
layer           one step                                                     graph node kind
==============  ===========================================================  =================
``Scale``       ``y_k = s ⊙ x_k``                                            projection
``SumPool2d``   sum over each window of ``[C, H, W]``                        projection
``AvgPool2d``   mean over each window (zero padding counted)                 projection
``Delay``       ``y_k = x_{k−d}`` with ``d = delay/dt`` steps per neuron     projection (state)
``Threshold``   ``z_k = H(x_k − ϑ)`` (surrogate derivative in backward)      reshape
``Integrator``  non-spiking integrator ``v_{k+1} = v_k + r x_k`` (NIR ``I``)  population
==============  ===========================================================  =================

``Delay`` carries the last ``max(d)`` inputs as explicit state (``stateful = True``: the sim
backend passes it in and out, so ``mode="step"``, checkpoint windows and streaming agree with a
single run). ``Integrator`` reuses the IF coefficients and the LI step function of
:mod:`spikeloop.dynamics.neurons` (``β = 1``, no rest term, ``x_gain = r``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikeloop.checks import check_int, check_ints, check_values, show
from spikeloop.dynamics import models
from spikeloop.dynamics.neurons import IntegratorParameters
from spikeloop.dynamics.surrogate import Surrogate, make_surrogate
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import ops
from spikeloop.nn.base import Layer
from spikeloop.nn.populations import LI


class Scale(Layer):
    """Element-wise gain ``y_k = s ⊙ x_k`` (NIR ``Scale``); ``s`` has the per-sample shape
    (finite real numbers: a tensor, an array, a list or one number)."""

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(check_values(scale, "Scale scale", None))

    def forward(self, x: Tensor) -> Tensor:
        return ops.scale(x, self.scale)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample (the input shape)."""
        if tuple(input_shape) != tuple(self.scale.shape):
            raise ShapeError(f"Scale of shape {tuple(self.scale.shape)} cannot take input of "
                             f"shape {input_shape}")
        return tuple(input_shape)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """One connection per element."""
        return self.scale.numel()


class _Pool2d(Layer):
    """2-d pooling over ``[T, B, C, H, W]``, one step at a time: ``kernel_size`` and ``stride``
    one or two integers ``≥ 1`` (``stride`` defaults to ``kernel_size``), ``padding`` ``≥ 0``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        who = type(self).__name__
        self.kernel_size = check_ints(kernel_size, f"{who} kernel_size", 2, low=1)
        self.stride = (check_ints(stride, f"{who} stride", 2, low=1) if stride is not None
                       else self.kernel_size)
        self.padding = check_ints(padding, f"{who} padding", 2, low=0)

    kind: str

    def forward(self, x: Tensor) -> Tensor:
        return ops.pool2d(x, self.kind, self.kernel_size, self.stride, self.padding)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample."""
        if len(input_shape) != 3:
            raise ShapeError(f"{type(self).__name__} expects [C, H, W] inputs, got {input_shape}")
        c, h, w = input_shape
        out = [
            (n + 2 * p - k) // s + 1
            for n, k, s, p in zip((h, w), self.kernel_size, self.stride, self.padding, strict=True)
        ]
        if min(out) < 1:
            raise ShapeError(f"{type(self).__name__}: input {input_shape} is smaller than the "
                             f"kernel {self.kernel_size}")
        return (c, *out)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """Connections: output positions × kernel size."""
        return math.prod(self.output_shape(input_shape)) * math.prod(self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class SumPool2d(_Pool2d):
    """Sum over each ``kernel_size`` window (NIR ``SumPool2d``; zero padding)."""

    kind = "sum"


class AvgPool2d(_Pool2d):
    """Mean over each ``kernel_size`` window (NIR ``AvgPool2d``; padded zeros are counted, as
    ``torch.nn.AvgPool2d`` does by default)."""

    kind = "avg"


class Threshold(Layer):
    """Heaviside ``z_k = H(x_k − ϑ)`` (NIR ``Threshold``), with a surrogate derivative;
    ``threshold``: finite real numbers broadcasting to the input (one number or a tensor)."""

    def __init__(self, threshold: Tensor, surrogate: str | Surrogate | dict = "superspike") -> None:
        super().__init__()
        self.register_buffer("threshold", check_values(threshold, "Threshold threshold", None))
        self.surrogate = make_surrogate(surrogate, "Threshold surrogate")

    def forward(self, x: Tensor) -> Tensor:
        return ops.threshold(x, self.threshold, self.surrogate)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input shape (``threshold`` must broadcast to it)."""
        try:
            torch.broadcast_shapes(tuple(self.threshold.shape), tuple(input_shape))
        except RuntimeError:
            raise ShapeError(f"Threshold of shape {tuple(self.threshold.shape)} cannot take "
                             f"input of shape {input_shape}") from None
        return tuple(input_shape)


class Delay(Layer):
    """Per-neuron transmission delay ``y_k = x_{k−d}`` (NIR ``Delay``), ``d`` in whole steps.

    Args:
        steps: delay of each element in steps (an int, or integers of the per-sample shape).

    ``forward(x, state)`` returns ``(y, state)``; the state holds the last ``max(d)`` inputs
    (zeros at the start), so consecutive windows give the same result as one run.
    """

    stateful = True

    def __init__(self, steps: int | Tensor) -> None:
        super().__init__()
        if isinstance(steps, Tensor | np.ndarray) and steps.ndim:
            values = check_values(steps, "Delay steps", None, low=0)
            if not torch.equal(values, values.round()):
                raise ParameterError(f"Delay steps must be whole numbers ≥ 0, got {show(steps)}")
            steps = values.long()
        else:
            steps = torch.tensor(check_int(steps, "Delay steps", low=0))
        self.register_buffer("steps", steps)
        self.max_steps = int(steps.max()) if steps.numel() else 0

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Delay ``x [T, B, *shape]``; ``state``: the previous call's (``None``: zeros)."""
        return ops.delay(x, self.steps, state)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input shape (per-element delays must have it)."""
        if self.steps.dim() and tuple(self.steps.shape) != tuple(input_shape):
            raise ShapeError(f"Delay of shape {tuple(self.steps.shape)} cannot take input of "
                             f"shape {input_shape}")
        return tuple(input_shape)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """One (delayed) connection per element."""
        return math.prod(input_shape)


class Integrator(LI):
    """Non-spiking integrator population (NIR ``I``): ``v_{k+1} = v_k + r x_k`` from ``v = 0``,
    run by LI's step (:func:`~spikeloop.dynamics.li_step`) with ``β = 1``."""

    description = models.INTEGRATOR


# ----------------------------------------------------------------------------- tracing
def _check_input(module: nn.Module, name: str, in_shape: tuple[int, ...] | None) -> tuple:
    if in_shape is None:
        raise ShapeError(f"layer {name!r} ({type(module).__name__}) cannot be the first layer")
    try:
        return module.output_shape(tuple(in_shape))
    except (ShapeError, RuntimeError) as err:
        raise ShapeError(f"layer {name!r} cannot take input of shape {in_shape}: {err}") from None


@describe.register(Scale)
def _(module: Scale, name, inputs, in_shape) -> list[Node]:
    shape = _check_input(module, name, in_shape)
    return [Node(name, "projection", "Scale", inputs, shape, params={"scale": module.scale},
                 synapses=module.num_synapses(shape))]


@describe.register(SumPool2d)
@describe.register(AvgPool2d)
def _(module: _Pool2d, name, inputs, in_shape) -> list[Node]:
    shape = _check_input(module, name, in_shape)
    settings = {"kernel_size": module.kernel_size, "stride": module.stride,
                "padding": module.padding}
    return [Node(name, "projection", type(module).__name__, inputs, shape, settings=settings,
                 synapses=module.num_synapses(tuple(in_shape)))]


@describe.register(Delay)
def _(module: Delay, name, inputs, in_shape) -> list[Node]:
    shape = _check_input(module, name, in_shape)
    return [Node(name, "projection", "Delay", inputs, shape, settings={"steps": module.steps,
                                                           "max_steps": module.max_steps},
                 synapses=module.num_synapses(shape))]


@describe.register(Threshold)
def _(module: Threshold, name, inputs, in_shape) -> list[Node]:
    shape = _check_input(module, name, in_shape)
    return [Node(name, "reshape", "Threshold", inputs, shape,
                 params={"threshold": module.threshold},
                 settings={"surrogate": module.surrogate})]


__all__ = [
    "AvgPool2d",
    "Delay",
    "Integrator",
    "IntegratorParameters",
    "Scale",
    "SumPool2d",
    "Threshold",
]

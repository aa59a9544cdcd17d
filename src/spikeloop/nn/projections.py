"""Projections (synapses) between populations, applied to time-major tensors ``[T, B, ...]``.

They are ordinary ``torch.nn`` layers (same constructor arguments, same ``weight``/``bias``)
that fold the time axis into the batch axis, so each time step is projected independently.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikeloop.errors import ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import event_linear, ops
from spikeloop.nn.base import Layer


class Linear(Layer, nn.Linear):
    """Dense projection ``y_t = W x_t (+ b)`` for every time step; ``W`` is ``[out, in]``.

    Bias defaults to ``False``: a constant current is rarely wanted in SNNs.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def forward_events(self, x: Tensor, max_density: float = 0.15,
                       check_finite: str | None = None) -> Tensor:
        """Same result as :meth:`forward`, computed from the non-zero entries of ``x`` when at
        most ``max_density`` of them are non-zero (float32 on the CPU; see
        :func:`spikeloop.kernels.event_linear`, also for ``check_finite``)."""
        if x.shape[-1] != self.in_features:
            return self.forward(x)  # raises the shape error
        return event_linear(x, self.weight, self.bias, max_density, check_finite)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample."""
        if not input_shape or input_shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear expects {self.in_features} input features, got input shape {input_shape}"
            )
        return (*input_shape[:-1], self.out_features)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """Number of synaptic connections."""
        return self.weight.numel() * math.prod(input_shape[:-1])


class _ConvMixin:
    """Folds ``[T, B, C, ...]`` into ``[T·B, C, ...]`` around an ``nn.ConvNd``."""

    spatial: int

    def forward(self, x: Tensor) -> Tensor:
        return ops.conv(x, self.weight, self.bias, **conv_settings(self))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample (a dry run on one zero sample)."""
        weight = self.weight  # type: ignore[attr-defined]
        with torch.no_grad():
            out = self.forward(weight.new_zeros((1, 1, *input_shape)))
        return tuple(out.shape[2:])

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """Connections: output positions × (in channels / groups) × kernel size."""
        weight = self.weight  # type: ignore[attr-defined]
        return math.prod(self.output_shape(input_shape)) * math.prod(weight.shape[1:])


class Conv1d(_ConvMixin, Layer, nn.Conv1d):
    """1-d convolution over ``[T, B, C, L]``, one step at a time (``nn.Conv1d`` arguments)."""

    spatial = 1

    def __init__(self, *args, bias: bool = False, **kwargs) -> None:
        super().__init__(*args, bias=bias, **kwargs)


class Conv2d(_ConvMixin, Layer, nn.Conv2d):
    """2-d convolution over ``[T, B, C, H, W]``, one step at a time (``nn.Conv2d`` arguments)."""

    spatial = 2

    def __init__(self, *args, bias: bool = False, **kwargs) -> None:
        super().__init__(*args, bias=bias, **kwargs)


class Flatten(Layer):
    """Flatten all dimensions after ``[T, B]``."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.flatten(x)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample."""
        return (math.prod(input_shape),)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """A reshape has no synapses."""
        return 0


# ----------------------------------------------------------------------------- IR description
def conv_settings(module: nn.Module) -> dict[str, object]:
    """A convolution's settings as :func:`spikeloop.kernels.ops.conv` takes them."""
    return {"stride": module.stride, "padding": module.padding, "dilation": module.dilation,
            "groups": module.groups, "padding_mode": module.padding_mode,
            "pad": tuple(module._reversed_padding_repeated_twice)}


def weights(module: nn.Module) -> dict[str, Tensor]:
    """``weight`` and (if any) ``bias`` of a projection, by NIR name."""
    out = {"weight": module.weight}
    if getattr(module, "bias", None) is not None:
        out["bias"] = module.bias
    return out


@describe.register(Linear)
@describe.register(Conv1d)
@describe.register(Conv2d)
def _(module: nn.Module, name, inputs, in_shape) -> list[Node]:
    try:
        shape = module.output_shape(in_shape)
    except (ShapeError, RuntimeError, TypeError) as err:
        raise ShapeError(f"layer {name!r} cannot take input of shape {in_shape}: {err}") from None
    op = "Linear" if isinstance(module, Linear) else f"Conv{module.spatial}d"
    settings = {} if op == "Linear" else conv_settings(module)
    return [Node(
        name, "projection", op, inputs, shape, params=weights(module),
        settings=settings, synapses=module.num_synapses(in_shape),
    )]


@describe.register
def _(module: Flatten, name, inputs, in_shape) -> list[Node]:
    if in_shape is None:
        raise ShapeError(f"layer {name!r} (Flatten) cannot be the first layer")
    return [Node(name, "reshape", "Flatten", inputs, module.output_shape(in_shape))]

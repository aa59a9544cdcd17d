"""Projections (synapses) between populations, applied to time-major tensors ``[T, B, ...]``.

They are ordinary ``torch.nn`` layers (same constructor arguments, same ``weight``/``bias``)
that fold the time axis into the batch axis, so each time step is projected independently.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from spikeloop.checks import check_bool, check_choice, check_int, check_ints
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import event_linear, ops
from spikeloop.nn.base import Layer


class Linear(Layer, nn.Linear):
    """Dense projection ``y_t = W x_t (+ b)`` for every time step; ``W`` is ``[out, in]``.

    Bias defaults to ``False``: a constant current is rarely wanted in SNNs. ``in_features`` and
    ``out_features`` are integers ``≥ 1`` (NumPy integers too), ``bias`` a bool.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(check_int(in_features, "Linear in_features", low=1),
                         check_int(out_features, "Linear out_features", low=1),
                         bias=check_bool(bias, "Linear bias"))

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


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_args(who: str, spatial: int, in_channels: Any, out_channels: Any, kernel_size: Any,
               stride: Any, padding: Any, dilation: Any, groups: Any, bias: Any,
               padding_mode: Any) -> dict[str, Any]:
    """The arguments of a ``spatial``-d convolution, checked, as ``nn.ConvNd`` takes them."""
    args = {
        "in_channels": check_int(in_channels, f"{who} in_channels", low=1),
        "out_channels": check_int(out_channels, f"{who} out_channels", low=1),
        "kernel_size": check_ints(kernel_size, f"{who} kernel_size", spatial, low=1),
        "stride": check_ints(stride, f"{who} stride", spatial, low=1),
        "dilation": check_ints(dilation, f"{who} dilation", spatial, low=1),
        "groups": check_int(groups, f"{who} groups", low=1),
        "bias": check_bool(bias, f"{who} bias"),
        "padding_mode": check_choice(padding_mode, f"{who} padding_mode", PADDING_MODES),
    }
    if isinstance(padding, str):
        args["padding"] = check_choice(padding, f"{who} padding", ("same", "valid"))
        if padding == "same" and max(args["stride"]) > 1:
            raise ParameterError(f"{who} padding='same' needs stride 1, got stride "
                                 f"{args['stride']}")
    else:
        args["padding"] = check_ints(padding, f"{who} padding", spatial, low=0)
    for name in ("in_channels", "out_channels"):
        if args[name] % args["groups"]:
            raise ParameterError(f"{who} {name} ({args[name]}) must be divisible by groups "
                                 f"({args['groups']})")
    return args


class Conv1d(_ConvMixin, Layer, nn.Conv1d):
    """1-d convolution over ``[T, B, C, L]``, one step at a time (``nn.Conv1d`` arguments;
    checked: channels, sizes and ``groups`` integers ``≥ 1``, padding ``≥ 0`` or ``"same"`` /
    ``"valid"``, ``bias`` a bool, which defaults to ``False``)."""

    spatial = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: int | tuple[int] | str = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = False,
                 padding_mode: str = "zeros") -> None:
        super().__init__(**_conv_args("Conv1d", 1, in_channels, out_channels, kernel_size,
                                      stride, padding, dilation, groups, bias, padding_mode))


class Conv2d(_ConvMixin, Layer, nn.Conv2d):
    """2-d convolution over ``[T, B, C, H, W]``, one step at a time (``nn.Conv2d`` arguments,
    checked as :class:`Conv1d`'s)."""

    spatial = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = False,
                 padding_mode: str = "zeros") -> None:
        super().__init__(**_conv_args("Conv2d", 2, in_channels, out_channels, kernel_size,
                                      stride, padding, dilation, groups, bias, padding_mode))


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
    if isinstance(module, Linear):
        expected = (module.out_features, module.in_features)
    else:
        expected = (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
    for key, value, want in (("weight", module.weight, expected),
                             ("bias", module.bias, expected[:1])):
        if value is not None and tuple(value.shape) != want:  # a tensor replaced after
            raise ShapeError(f"layer {name!r}: {key} has shape {tuple(value.shape)}, the layer's "
                             f"sizes need {want}")  # construction
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

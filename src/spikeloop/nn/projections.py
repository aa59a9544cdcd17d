"""Projections (synapses) between populations, applied to time-major tensors ``[T, B, ...]``.

They are ordinary ``torch.nn`` layers (same constructor arguments, same ``weight``/``bias``)
that fold the time axis into the batch axis, so each time step is projected independently.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from spikeloop.checks import (
    check_bool,
    check_choice,
    check_dt,
    check_int,
    check_ints,
    check_real,
    check_values,
)
from spikeloop.errors import NonFiniteError, ParameterError, ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import event_linear, ops
from spikeloop.nn.base import Layer, check_tensor_shapes


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


class DelayedLinear(Layer):
    r"""Dense projection with learnable transmission delays, per synapse or per axon.

    Each synapse ``i → j`` has a weight ``W[j, i]`` and a delay ``d`` in seconds, ``0 ≤ d ≤
    max_delay`` (``D = max_delay / dt`` whole steps). Its weight is spread over the two whole-step
    taps around ``d / dt`` of a causal temporal kernel by linear (triangle) interpolation:

    .. math::

        K[j, i, m] = W[j, i] \max(0, 1 - |m - d_{ji} / dt|), \quad m = 0 … D, \qquad
        y_k[j] = \sum_i \sum_{m=0}^{D} K[j, i, m]\, x_{k-m}[i] \;(+\, b_j)

    ``per="synapse"``: one delay ``d[j, i]`` per weight; ``per="axon"``: one delay ``d[i]`` per
    presynaptic neuron, shared by all its targets. At whole-step delays this is exactly a delay
    line followed by a :class:`Linear` (per axon: :class:`~spikeloop.nn.Delay` then
    :class:`Linear`).

    Why this method: it is DCLS (Hammouamri, Khalfaoui-Hassani & Masquelier, ICLR 2024,
    "Learning delays in SNNs using dilated convolutions with learnable spacings") with a
    triangle kernel, the method behind the best feed-forward SHD/SSC results. It runs in the
    dense simulator with autograd as one convolution over time (no event times needed), and the
    gradient with respect to ``d`` is the exact gradient of this interpolated model (piecewise
    linear in ``d``; at a whole step its right derivative), so it is checked against finite
    differences. On the event backend a per-axon layer is the exact model instead: each spike
    of axon ``i`` arrives ``d_i`` later in continuous time, with EventProp delay gradients
    (see :mod:`spikeloop.backends.event`); per synapse it is refused there.

    The state of a streaming run is the last ``D`` inputs (``stateful``: the simulator passes
    it in and out, so consecutive windows give the same result as one run).

    Args:
        in_features: inputs (an integer ``≥ 1``).
        out_features: outputs (an integer ``≥ 1``).
        max_delay: the largest delay in seconds, ``≥ 0`` and a whole number of steps ``dt``.
        dt: simulation step in seconds (the network's).
        per: ``"synapse"`` (delays ``[out, in]``) or ``"axon"`` (delays ``[in]``).
        delay: initial delays in seconds: one number or a tensor of the delays' shape; ``None``
            (default): uniform in ``[0, max_delay]`` from torch's generator.
        learn_delay: the delays are a trainable ``nn.Parameter`` (else a buffer).
        bias: add a learnable bias ``b [out]`` (default ``False``).

    Learned delays are projected back into ``[0, max_delay]`` by :meth:`constrain_` after each
    optimiser step (the :class:`~spikeloop.training.Trainer` does, via ``Network.constrain_``);
    initial delays outside it are refused, never clipped.

    Raises:
        ParameterError: a size, ``max_delay`` or ``per`` is invalid, ``max_delay`` is not a
            whole number of steps, or an initial delay is negative, non-finite or above
            ``max_delay``.
        TimeStepError: ``dt`` is not a finite number ``> 0``.

    Example:
        >>> import torch
        >>> from spikeloop.network import Network
        >>> from spikeloop.nn import CubaLI, CubaLIF, DelayedLinear, Input, Linear
        >>> dt = 1e-3
        >>> net = Network({"input": Input(20),
        ...                "fc1": DelayedLinear(20, 32, 25e-3, dt=dt, per="synapse"),
        ...                "hidden": CubaLIF(32, dt=dt),
        ...                "fc2": Linear(32, 4), "out": CubaLI(4, dt=dt)})
        >>> out = net((torch.rand(50, 8, 20) < 0.1).float())
        >>> out.output.v.shape
        torch.Size([50, 8, 4])
    """

    stateful = True

    def __init__(self, in_features: int, out_features: int, max_delay: float, *, dt: float,
                 per: Literal["synapse", "axon"] = "synapse", delay: Any = None,
                 learn_delay: bool = True, bias: bool = False) -> None:
        super().__init__()
        n_in = check_int(in_features, "DelayedLinear in_features", low=1)
        n_out = check_int(out_features, "DelayedLinear out_features", low=1)
        self._dt = check_dt(dt, "DelayedLinear dt")
        self._max_delay = check_real(max_delay, "DelayedLinear max_delay (s)", 0)
        steps = self._max_delay / self._dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ParameterError(f"DelayedLinear max_delay = {self._max_delay:g} s must be a "
                                 f"whole number of steps dt = {self._dt:g} s, got {steps:g}")
        self._max_steps = round(steps)
        self._per = check_choice(per, "DelayedLinear per", ("synapse", "axon"))
        learn = check_bool(learn_delay, "DelayedLinear learn_delay")
        self.in_features, self.out_features = n_in, n_out
        ref = nn.Linear(n_in, n_out, bias=check_bool(bias, "DelayedLinear bias"))
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        shape = (n_out, n_in) if per == "synapse" else (n_in,)
        if delay is None:
            value = torch.rand(shape) * self._max_delay
        else:
            value = self._checked_delay(delay, shape)
        value = value.to(self.weight.dtype)
        if learn:
            self.delay = nn.Parameter(value)
        else:
            self.register_buffer("delay", value)

    def _checked_delay(self, delay: Any, shape: tuple[int, ...]) -> Tensor:
        """``delay`` (seconds) as float64 values of ``shape`` (the caller casts them once to
        the weight's dtype), or the ParameterError of :func:`~spikeloop.kernels.ops.
        check_delay_range` naming the worst value outside ``[0, max_delay]`` (NaN and ±inf
        included) and the limit."""
        who = f"DelayedLinear delay (per {self._per}, seconds)"
        with contextlib.suppress(NonFiniteError):  # type and shape (a number always fits);
            check_values(delay, who, shape)  # the values are taken below, in float64
        if isinstance(delay, Tensor):
            value = delay.detach().to(device="cpu", dtype=torch.float64)
        else:
            value = torch.tensor(np.asarray(delay, dtype=np.float64))
        value = value.expand(shape).clone()
        ops.check_delay_range(value, self._max_delay, "initial delays are never clipped")
        return value

    @property
    def dt(self) -> float:
        """Simulation step in seconds (fixed at construction)."""
        return self._dt

    @property
    def max_delay(self) -> float:
        """The largest delay in seconds (fixed at construction)."""
        return self._max_delay

    @property
    def max_steps(self) -> int:
        """``D = max_delay / dt``: the delay line's length in steps."""
        return self._max_steps

    @property
    def per(self) -> str:
        """``"synapse"`` or ``"axon"``."""
        return self._per

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Project ``x [T, B, in]`` through the delayed weights; ``state``: the previous call's
        last ``D`` inputs (``None``: zeros). Returns ``(y [T, B, out], state)``.

        Raises:
            ParameterError: a delay lies outside ``[0, max_delay]`` (or is NaN): its taps would
                be lost; learned delays are kept in range by :meth:`constrain_`.
            ShapeError: ``x`` is not ``[T, B, in]`` or ``state`` not ``[D, B, in]``.
        """
        return ops.delayed_linear(x, self.weight, self.delay, self._dt, self._max_steps,
                                  self.bias, state, event=True)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the delays back into ``[0, max_delay]`` (in place; call after an optimiser
        step — the :class:`~spikeloop.training.Trainer` does, via ``Network.constrain_``)."""
        self.delay.clamp_(0.0, self._max_delay)

    @torch.no_grad()
    def round_delays_(self) -> None:
        """Move every delay to its nearest whole step, ``d ← round(d / dt) · dt`` (in place).

        For deployment where delays are whole steps: NIR export (a ``Delay`` node delays by
        ``d`` exactly; the interpolation between two steps has no counterpart there) and
        hardware delay lines. The outputs change wherever a delay was between two steps;
        evaluate the rounded model before deploying it (a delay half a step off moves half of
        its weight by one step).

        Raises:
            ParameterError: a delay lies outside ``[0, max_delay]`` or is NaN (rounding must
                not hide it; :meth:`constrain_` keeps learned delays in range).
        """
        ops.check_delay_range(self.delay, self._max_delay)
        steps = (self.delay.double() / self._dt).round()  # in [0, D]: checked above
        self.delay.copy_(steps * self._dt)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample."""
        if tuple(input_shape) != (self.in_features,):
            raise ShapeError(f"DelayedLinear expects input of shape ({self.in_features},), got "
                             f"{input_shape}")
        return (self.out_features,)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """Number of synaptic connections."""
        return self.weight.numel()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"max_delay={self._max_delay:g}, dt={self._dt:g}, per={self._per!r}, "
                f"learn_delay={isinstance(self.delay, nn.Parameter)}, "
                f"bias={self.bias is not None}")


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
    check_tensor_shapes(name, (("weight", module.weight, expected),
                               ("bias", module.bias, expected[:1])))
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


@describe.register(DelayedLinear)
def _(module: DelayedLinear, name, inputs, in_shape) -> list[Node]:
    if in_shape is None:
        raise ShapeError(f"layer {name!r} (DelayedLinear) cannot be the first layer")
    delay_shape = ((module.out_features, module.in_features) if module.per == "synapse"
                   else (module.in_features,))
    check_tensor_shapes(name, (("weight", module.weight,
                                (module.out_features, module.in_features)),
                               ("bias", module.bias, (module.out_features,)),
                               ("delay", module.delay, delay_shape)))
    try:
        shape = module.output_shape(in_shape)
    except ShapeError as err:
        raise ShapeError(f"layer {name!r} cannot take input of shape {in_shape}: {err}") from None
    params = weights(module) | {"delay": module.delay}
    settings = {"dt": module.dt, "max_steps": module.max_steps, "per": module.per}
    return [Node(name, "projection", "DelayedLinear", inputs, shape, params=params,
                 settings=settings, synapses=module.num_synapses(in_shape))]


@describe.register
def _(module: Flatten, name, inputs, in_shape) -> list[Node]:
    if in_shape is None:
        raise ShapeError(f"layer {name!r} (Flatten) cannot be the first layer")
    return [Node(name, "reshape", "Flatten", inputs, module.output_shape(in_shape))]

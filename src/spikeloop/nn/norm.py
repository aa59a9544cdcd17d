r"""Batch normalisation for spiking networks, on time-major tensors ``[T, B, C, ...]``.

:class:`BatchNorm` normalises each channel ``C`` of a projection's output (the currents into
a population) with one affine map for every step,

.. math::

    y_t = γ \frac{x_t - μ}{\sqrt{σ^2 + ε}} + β ,

where in training mode :math:`μ, σ^2` are the statistics of the **time mean**
:math:`\bar x = \frac1T \sum_t x_t` over the batch (and every position of a feature map), and
in eval mode the running statistics. Because the map is affine, :math:`\frac1T \sum_t y_t` is
ordinary batch normalisation of :math:`\bar x`: the rate network of ANN-proxy training
(:mod:`spikeloop.training.proxy`), which sees time means, has the same layer (Ioffe & Szegedy,
ICML 2015, arXiv:1502.03167; used for the IF network trained via proxy by Kheradpisheh,
Mirsadeghi & Masquelier, IEEE Access 2022, arXiv:2109.13208).

In the graph it is a projection node ``"BatchNorm"`` with ``params`` ``weight`` (γ), ``bias``
(β), ``running_mean``, ``running_var`` and ``settings`` ``eps``, ``momentum``, ``training``.
The mode is part of the description: switching it (``net.train()`` / ``net.eval()``) makes
the containers trace again. Chips and the event backend have no such node and refuse it;
for deployment :func:`spikeloop.network.fold_batchnorm` folds it into the preceding
convolution or ``Linear``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikeloop.checks import check_int, check_real
from spikeloop.errors import ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import ops
from spikeloop.nn.base import Layer, _bump, check_tensor_shapes


class BatchNorm(Layer):
    r"""Per-channel batch normalisation of ``[T, B, C]`` (features) or ``[T, B, C, ...]``
    (feature maps), statistics from the time mean (see the module docstring).

    Args:
        num_features: channels ``C`` (an integer ``≥ 1``).
        eps: :math:`ε > 0` added to the variance.
        momentum: ``m`` in ``(0, 1]`` of the running statistics' update
            ``r ← (1 − m) r + m s`` (the unbiased variance, as ``torch.nn.BatchNorm``).

    γ starts at one, β at zero, the running mean at zero and the running variance at one.

    Raises:
        ParameterError: ``num_features < 1``, ``eps ≤ 0`` or ``momentum`` outside ``(0, 1]``
            (:class:`~spikeloop.errors.ArgumentTypeError` for a non-number).

    Example:
        >>> import torch
        >>> bn = BatchNorm(3).eval()
        >>> torch.allclose(bn(torch.ones(4, 2, 3)), torch.ones(4, 2, 3) / (1 + 1e-5) ** 0.5)
        True
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        n = check_int(num_features, "BatchNorm num_features", low=1)
        self.num_features = n
        self.eps = check_real(eps, "BatchNorm eps", 0.0, low_open=True)
        self.momentum = check_real(momentum, "BatchNorm momentum", 0.0, 1.0, low_open=True)
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def train(self, mode: bool = True) -> BatchNorm:
        """Set training (batch statistics) or eval mode (running statistics); a change of
        mode changes the layer's description, so containers trace again."""
        changed = self.training != mode
        super().train(mode)
        if changed:
            _bump()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                              self.eps, self.momentum, self.training)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one time step's output for one sample (the input shape)."""
        if not input_shape or input_shape[0] != self.num_features:
            raise ShapeError(f"BatchNorm({self.num_features}) normalises channel dimension 0 "
                             f"of a sample; it cannot take input of shape {input_shape}")
        return tuple(input_shape)

    def num_synapses(self, input_shape: tuple[int, ...]) -> int:
        """One connection per element (a per-channel gain, as :class:`~spikeloop.nn.Scale`)."""
        return math.prod(input_shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}"


@describe.register
def _(module: BatchNorm, name, inputs, in_shape) -> list[Node]:
    if in_shape is None:
        raise ShapeError(f"layer {name!r} (BatchNorm) cannot be the first layer")
    n = module.num_features
    tensors = {"weight": module.weight, "bias": module.bias,
               "running_mean": module.running_mean, "running_var": module.running_var}
    check_tensor_shapes(name, ((key, value, (n,)) for key, value in tensors.items()),
                        "num_features")
    try:
        shape = module.output_shape(in_shape)
    except ShapeError as err:
        raise ShapeError(f"layer {name!r}: {err}") from None
    settings = {"eps": module.eps, "momentum": module.momentum, "training": module.training}
    return [Node(name, "projection", "BatchNorm", inputs, shape, params=tensors,
                 settings=settings, synapses=module.num_synapses(in_shape))]

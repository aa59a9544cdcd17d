r"""Deployment form of a batch-normalised network: every :class:`~spikeloop.nn.BatchNorm`
folded into the projection in front of it.

In eval mode a ``BatchNorm`` is the per-channel affine map
:math:`y = s\,(x - μ_r) + β` with :math:`s = γ / \sqrt{σ_r^2 + ε}` (running statistics).
Following a projection :math:`x = W u + b` (a ``Linear`` or a convolution, channel ``c`` its
output ``c``) it folds into it:

.. math::

    W'_{c\,\cdot} = s_c W_{c\,\cdot}, \qquad b'_c = s_c (b_c - μ_{r,c}) + β_c ,

so the folded network's currents, and therefore its spikes, are those of the unfolded one in
eval mode (up to float rounding). An average pooling without padding between them commutes
with the per-channel map and stays where it is. Chips, the event backend and NIR export take
the folded network (a convolution with a bias; NIR ``Conv2d``/``Affine``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from spikeloop.checks import check_type
from spikeloop.errors import ParameterError
from spikeloop.network.network import Network
from spikeloop.nn import AvgPool2d, BatchNorm, Conv1d, Conv2d, Linear


def _with_bias(layer: nn.Module) -> nn.Module:
    """A copy of projection ``layer`` that has a bias (zero where it had none)."""
    if layer.bias is not None:
        return copy.deepcopy(layer)
    if isinstance(layer, Linear):
        new = Linear(layer.in_features, layer.out_features, bias=True)
    else:
        kind = Conv1d if isinstance(layer, Conv1d) else Conv2d
        new = kind(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                   padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                   bias=True, padding_mode=layer.padding_mode)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        new.bias.zero_()
    return new


def fold_batchnorm(net: Network) -> Network:
    """A new :class:`Network` with every ``BatchNorm`` of ``net`` folded into the projection
    before it (see the module docstring); ``net`` is left unchanged. The result is in eval
    mode and holds copies of the tensors (the folded weights are new values).

    Raises:
        ArgumentTypeError: ``net`` is not a :class:`Network` (a :class:`GraphNetwork` wires
            its layers otherwise; it is refused too).
        ParameterError: a ``BatchNorm`` is not preceded by a ``Linear``, ``Conv1d`` or
            ``Conv2d`` (only padding-free ``AvgPool2d`` may stand between them), the network
            is in training mode (folding uses the running statistics), or a running
            variance is negative.
    """
    check_type(net, "fold_batchnorm: net", Network, "a Network (a chain of layers)")
    if type(net) is not Network:
        raise ParameterError(f"fold_batchnorm takes a plain Network (a chain), got "
                             f"{type(net).__name__}")
    names = list(net.layers)
    bns = [k for k, name in enumerate(names) if isinstance(net.layers[name], BatchNorm)]
    if any(net.layers[names[k]].training for k in bns):
        raise ParameterError("fold_batchnorm: the network is in training mode, where batch "
                             "normalisation uses each batch's statistics; call net.eval() "
                             "first (folding uses the running statistics)")
    layers = {name: net.layers[name] for name in names}
    for k in bns:
        bn = net.layers[names[k]]
        j = k - 1
        while j > 0 and isinstance(net.layers[names[j]], AvgPool2d) \
                and tuple(net.layers[names[j]].padding) == (0, 0):
            j -= 1
        proj = net.layers[names[j]] if j > 0 else None
        if not isinstance(proj, Linear | Conv1d | Conv2d):
            got = type(proj).__name__ if proj is not None else "nothing"
            raise ParameterError(
                f"fold_batchnorm: BatchNorm {names[k]!r} follows {got} "
                f"{names[j]!r}; it folds into a Linear, Conv1d or Conv2d right before it "
                "(a padding-free AvgPool2d may stand between them)")
        if bool((bn.running_var < 0).any()):
            raise ParameterError(f"fold_batchnorm: BatchNorm {names[k]!r} has a negative "
                                 f"running variance ({float(bn.running_var.min()):g})")
        folded = _with_bias(layers[names[j]])
        with torch.no_grad():
            s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            folded.weight.mul_(s.reshape(-1, *(1,) * (folded.weight.dim() - 1)))
            folded.bias.copy_(s * (folded.bias - bn.running_mean) + bn.bias)
        layers[names[j]] = folded
        layers[names[k]] = None
    kept = {name: layer if layer is not net.layers[name] else copy.deepcopy(layer)
            for name, layer in layers.items() if layer is not None}
    out = Network(kept, backend=net.backend)
    return out.eval()

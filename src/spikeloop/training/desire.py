r"""Desire backpropagation (Gerlinghoff, Luo, Goh, Zhou & Wong, "Desire backpropagation: a
lightweight training algorithm for multi-layer spiking neural networks based on
spike-timing-dependent plasticity", Neurocomputing 2023, arXiv:2211.05412).

Every neuron gets a ternary *desire* per sample, :math:`d \in \{+1, 0, -1\}` (spike more,
ignore, spike less), derived from the output error and propagated backwards through the
weights; each layer then learns with an STDP-like rule whose sign is the desire of the
postsynaptic neuron. The paper's code (github.com/DanielGerlinghoff/desire-backpropagation,
``desire_pytorch.py``) is the reference for the details below.

Output layer (spike counts :math:`c_j` over the :math:`T` steps, target
:math:`c^* = T - m`, ``margin`` :math:`m`, label :math:`\ell`):

.. math::
    e_j = \begin{cases} 1 - c_j / c^* & j = \ell \\ c_j / c^* & j \ne \ell \end{cases}, \qquad
    d_j = \begin{cases} +1 & j = \ell,\ e_j > θ_{out} \\ -1 & j \ne \ell,\ e_j > θ_{out}
    \\ 0 & \text{otherwise} \end{cases}

Hidden layers (presynaptic neuron :math:`i` of a projection :math:`W_{ji}` whose
postsynaptic neurons have desires :math:`d_j`):

.. math::
    ε_j = \left| [d_j = +1] - c_j / c^* \right|, \qquad
    s_i = \sum_j W_{ji}\, d_j\, ε_j, \qquad
    d_i = \operatorname{sign}(s_i)\,[\,|s_i| ≥ θ_{hid}\,]

(:math:`ε_j` is the paper's L1 error between the "spike" bit of the desire and the
normalised count; a neuron with :math:`s_i = 0` is ignored.)

Weight update of a projection (learning rate :math:`η`, pre trace :math:`\tilde x_i(t) =
\sum_{t' ≤ t} λ^{t - t'} x_i(t')` *including* the spike of step :math:`t`, decay
:math:`λ = e^{-dt/τ}`, post spikes :math:`y_j(t)`):

.. math::
    Δw_{ji} = η\, d_j \sum_t y_j(t)\, \tilde x_i(t)

so a single pre spike at :math:`t_i` and post spike at :math:`t_j ≥ t_i` change the weight
by :math:`η\, d_j\, λ^{t_j - t_i}`, and by nothing when :math:`t_j < t_i`. The desire is known
only after the forward pass: the rule accumulates the eligibility
:math:`\sum_t y_j(t) \tilde x_i(t)` and applies it when the desire arrives
(:func:`desire_stdp`, ``apply="end"``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spikeloop.checks import check_labels, check_real, check_type
from spikeloop.errors import ArgumentTypeError, ShapeError

__all__ = ["desire_error", "hidden_desire", "output_desire"]


def _counts(counts: Any, who: str) -> Tensor:
    check_type(counts, who, Tensor, "a torch.Tensor of spike counts [B, N]")
    if counts.dim() != 2:
        raise ShapeError(f"{who} must be spike counts [B, N], got shape {tuple(counts.shape)}")
    if not counts.is_floating_point():
        counts = counts.to(torch.get_default_dtype())
    return counts


def _desire(desire: Any, shape: tuple[int, ...], who: str) -> Tensor:
    check_type(desire, who, Tensor, "a torch.Tensor of desires in {-1, 0, +1}")
    if tuple(desire.shape) != shape:
        raise ShapeError(f"{who} must have the shape {shape} of the spike counts, got "
                         f"{tuple(desire.shape)}")
    if not bool(((desire == 1) | (desire == 0) | (desire == -1)).all()):
        raise ArgumentTypeError(f"{who} must hold only -1, 0 and +1 (ternary desires)")
    return desire


def output_desire(counts: Tensor, labels: Tensor, target: float, threshold: float) -> Tensor:
    r"""The output layer's desires from its spike counts and the labels (module docstring):
    :math:`+1` for the label's neuron when :math:`1 - c_\ell / c^* > θ`, :math:`-1` for
    another neuron when :math:`c_j / c^* > θ`, else :math:`0`.

    Args:
        counts: spike counts ``[B, N]`` of the output neurons over the sample.
        labels: class indices ``[B]`` in ``[0, N - 1]``.
        target: :math:`c^*`, the spike count the label's neuron should reach (``> 0``).
        threshold: :math:`θ_{out}` (``≥ 0``).

    Returns:
        Desires ``[B, N]`` in ``{-1, 0, +1}``, the dtype of ``counts`` (float).

    Example:
        >>> output_desire(torch.tensor([[2., 16., 8.]]), torch.tensor([2]), 16.0, 0.3)
        tensor([[ 0., -1.,  1.]])

    Raises:
        ArgumentTypeError, ShapeError: not tensors, counts not ``[B, N]``, labels not ``[B]``.
        ParameterError: ``target ≤ 0``, ``threshold < 0``, a label outside ``[0, N - 1]``.
    """
    counts = _counts(counts, "output_desire: counts")
    labels = check_labels(labels, "output_desire: labels", counts.shape[1], counts.shape[0],
                          counts.device)
    target = check_real(target, "output_desire: target", 0, low_open=True)
    threshold = check_real(threshold, "output_desire: threshold", 0)
    want = torch.zeros_like(counts).scatter_(1, labels[:, None], 1.0)  # [d = +1] wished
    error = (want - counts / target) * (2 * want - 1)  # 1 − c/c* for the label, c/c* else
    return torch.where(error > threshold, 2 * want - 1, torch.zeros_like(want))


def desire_error(desire: Tensor, counts: Tensor, target: float) -> Tensor:
    r"""The error magnitude :math:`ε_j = |[d_j = +1] - c_j / c^*|` of neurons with desires
    ``desire`` and spike counts ``counts`` (both ``[B, N]``), as the paper's code measures it
    before propagating (module docstring).

    Example:
        >>> desire_error(torch.tensor([[1., -1., 0.]]), torch.tensor([[4., 4., 4.]]), 16.0)
        tensor([[0.7500, 0.2500, 0.2500]])

    Raises:
        ArgumentTypeError, ShapeError: not tensors, shapes differ, a desire not in
            ``{-1, 0, +1}``. ParameterError: ``target ≤ 0``.
    """
    counts = _counts(counts, "desire_error: counts")
    desire = _desire(desire, tuple(counts.shape), "desire_error: desire")
    target = check_real(target, "desire_error: target", 0, low_open=True)
    return ((desire > 0).to(counts.dtype) - counts / target).abs()


def hidden_desire(weight: Tensor, desire: Tensor, counts: Tensor, target: float,
                  threshold: float) -> Tensor:
    r"""Propagate desires one projection back: the presynaptic neurons' desires
    :math:`d_i = \operatorname{sign}(s_i)\,[|s_i| ≥ θ]` with
    :math:`s_i = \sum_j W_{ji}\, d_j\, ε_j` (module docstring).

    Args:
        weight: the projection's weight ``[N_post, N_pre]`` (``torch.nn.Linear`` layout).
        desire: the postsynaptic desires ``[B, N_post]`` in ``{-1, 0, +1}`` (a neuron
            dropped out during the sample has desire 0).
        counts: the postsynaptic spike counts ``[B, N_post]``.
        target: :math:`c^*` (``> 0``).
        threshold: :math:`θ_{hid}` (``> 0``; a neuron with :math:`s_i = 0` gets desire 0).

    Returns:
        Desires ``[B, N_pre]`` in ``{-1, 0, +1}``, the dtype of ``counts``.

    Example:
        >>> w = torch.tensor([[0.5, -0.2], [0.1, 0.3]])
        >>> hidden_desire(w, torch.tensor([[1., -1.]]), torch.tensor([[0., 16.]]), 16.0, 0.05)
        tensor([[ 1., -1.]])

    Raises:
        ArgumentTypeError, ShapeError: not tensors, shapes that do not fit together, a desire
            not in ``{-1, 0, +1}``. ParameterError: ``target ≤ 0``, ``threshold ≤ 0``.
    """
    check_type(weight, "hidden_desire: weight", Tensor, "a torch.Tensor [N_post, N_pre]")
    counts = _counts(counts, "hidden_desire: counts")
    if weight.dim() != 2 or weight.shape[0] != counts.shape[1]:
        raise ShapeError(f"hidden_desire: weight must be [N_post, N_pre] with N_post = "
                         f"{counts.shape[1]} (the counts' neurons), got "
                         f"{tuple(weight.shape)}")
    threshold = check_real(threshold, "hidden_desire: threshold", 0, low_open=True)
    signal = desire * desire_error(desire, counts, target)
    s = signal @ weight.to(counts.dtype)
    return torch.where(s.abs() >= threshold, torch.sign(s), torch.zeros_like(s))

r"""Voltage-dependent synaptic plasticity (VDSP): unsupervised learning with winner-take-all,
homeostasis and label assignment.

Garg, Balafrej, Stewart, Portal, Magnier, Drouin, Alibart & Rouat, "Voltage-dependent synaptic
plasticity: unsupervised probabilistic Hebbian plasticity rule based on memristive synapses",
Frontiers in Neuroscience 2022 (arXiv:2203.11022). Their code: github.com/nikhil-garg/VDSP_Nengo
(``utilis.py``: ``fun_post_baseline``, ``CustomRule_post_baseline``, ``STDPLIF``;
``mnist_vdsp_multiple_baseline.py``; the 400- and 500-neuron MNIST sweeps
``exploration scripts/mnist_multiple_exploration_baseline_v{3,4}.py``).

The rule
--------
A synapse changes only when its **postsynaptic** neuron spikes; the sign and size of the change
are set by the **presynaptic membrane potential** :math:`v_i` at that moment (the voltage a
memristor between the two neurons would see, :math:`V_{app} = v_{prog} - v_i`) and by the
weight itself (the memristor's state, soft bounds in :math:`[0, 1]`):

.. math::
    Δw_{ij} = η\, z_j \big[\, g_+(v_i)\, f_+(w_{ij}) - g_-(v_i)\, f_-(w_{ij}) \big], \\
    g_+(v) = e^{\max(v_{prog} - v,\,0)} - 1,\qquad g_-(v) = e^{\max(v - v_{prog},\,0)} - 1, \\
    f_+(w) = e^{-α w}(1 - w),\qquad f_-(w) = e^{α (w - 1)}\, w,

clipped to :math:`w \in [0, 1]`. A presynaptic neuron that fired shortly before the
postsynaptic spike has been reset below :math:`v_{prog} = 0` (potentiation); one that is
charging towards its threshold without having fired sits above it (depression); a silent input
at rest (:math:`v = 0`) is left alone. No timing traces are kept: half the updates of pair
STDP (only post spikes trigger one). The paper's baseline is :math:`α = 0`
(``fun_post_baseline``: :math:`f_+ = 1 - w`, :math:`f_- = w`).

The network (the paper's defaults)
----------------------------------
- input: one LIF neuron per pixel driven by the pixel intensity :math:`x \in [0, 1]` as a
  current (gain 4, bias 0.5, :math:`τ = 30` ms, threshold 1, reset to −1, refractory 5 ms),
  so every input neuron has a membrane; a pixel above 1/8 fires.
- output: LIF neurons (:math:`τ = 30` ms, threshold 1, reset 0, refractory 5 ms) fed through a
  5 ms synapse, with a hard **winner-take-all**: at a step where neurons cross the threshold,
  only the one with the highest membrane spikes; every other neuron's membrane is set to 0
  and held there (inhibited) for 10 ms.
- **homeostasis**: each output neuron carries an adaptation :math:`θ_j` that every spike raises
  by :math:`θ_+` and that decays with :math:`τ_θ`, kept from sample to sample (the paper's
  code: ``inc_n = 0.01``, ``tau_n = 1`` s, subtracted from the input current), so that no
  neuron wins every sample.
- images shown for 350 ms at dt = 5 ms (70 steps), one epoch, learning rate
  :math:`η` swept over 0.004–0.011 in the code.
- **label assignment**: after learning, each output neuron is labelled with the class to whose
  training images it responds most on average (:func:`assign_labels`); an image is classified
  as the class whose neurons fire most in total (:func:`vote`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from spikeloop.checks import check_int, check_labels, check_real
from spikeloop.errors import ArgumentTypeError, ShapeError

# ----------------------------------------------------------------------------- the rule


def g_potentiation(v: Tensor, v_prog: float = 0.0) -> Tensor:
    r""":math:`g_+(v) = e^{\max(v_{prog} - v, 0)} - 1`: how strongly a presynaptic membrane
    below :math:`v_{prog}` potentiates (0 at or above it)."""
    return torch.expm1((v_prog - v).clamp(min=0))


def g_depression(v: Tensor, v_prog: float = 0.0) -> Tensor:
    r""":math:`g_-(v) = e^{\max(v - v_{prog}, 0)} - 1`: how strongly a presynaptic membrane
    above :math:`v_{prog}` depresses (0 at or below it)."""
    return torch.expm1((v - v_prog).clamp(min=0))


def f_potentiation(w: Tensor, alpha: float = 0.0) -> Tensor:
    r""":math:`f_+(w) = e^{-α w}(1 - w)`: the memristor's potentiation window (0 at
    :math:`w = 1`)."""
    out = 1.0 - w
    return out if alpha == 0 else out * torch.exp(-alpha * w)


def f_depression(w: Tensor, alpha: float = 0.0) -> Tensor:
    r""":math:`f_-(w) = e^{α (w - 1)} w`: the memristor's depression window (0 at
    :math:`w = 0`)."""
    return w if alpha == 0 else w * torch.exp(alpha * (w - 1.0))


def vdsp_delta(w: Tensor, v_pre: Tensor, z_post: Tensor, lr: float, alpha: float = 0.0,
               v_prog: float = 0.0) -> Tensor:
    r"""The closed form of one step of VDSP, summed over the batch:

    .. math::
        Δw_{ij} = η \sum_b z_{bj}\big[g_+(v_{bi}) f_+(w_{ij}) - g_-(v_{bi}) f_-(w_{ij})\big].

    ``w``: ``[N_pre, N_post]`` (``Linear.weight.T``); ``v_pre``: ``[B, N_pre]``;
    ``z_post``: ``[B, N_post]``. The reference the engine's :func:`vdsp` rule is tested against.

    Raises:
        ShapeError: the shapes do not fit together.
    """
    if w.dim() != 2 or v_pre.dim() != 2 or z_post.dim() != 2:
        raise ShapeError(f"vdsp_delta: w [N_pre, N_post], v_pre [B, N_pre] and z_post "
                         f"[B, N_post], got {tuple(w.shape)}, {tuple(v_pre.shape)}, "
                         f"{tuple(z_post.shape)}")
    if (v_pre.shape[1], z_post.shape[1]) != tuple(w.shape) or v_pre.shape[0] != z_post.shape[0]:
        raise ShapeError(f"vdsp_delta: w {tuple(w.shape)} does not fit v_pre "
                         f"{tuple(v_pre.shape)} and z_post {tuple(z_post.shape)}")
    pot = g_potentiation(v_pre, v_prog).T @ z_post      # [N_pre, N_post]
    dep = g_depression(v_pre, v_prog).T @ z_post
    return lr * (pot * f_potentiation(w, alpha) - dep * f_depression(w, alpha))


# ----------------------------------------------------------------------------- WTA, homeostasis


def winner_take_all(v: Tensor, z: Tensor) -> Tensor:
    r"""The spikes that survive a hard winner-take-all: in every sample with at least one
    spike, only the spiking neuron with the highest membrane keeps its spike (the first on a
    tie). ``v``, ``z``: ``[B, N]``; returns ``[B, N]`` with at most one 1 per row.

    Raises:
        ShapeError: ``v`` and ``z`` differ in shape or are not ``[B, N]``.
    """
    if v.shape != z.shape or v.dim() != 2:
        raise ShapeError(f"winner_take_all: v and z must both be [B, N], got {tuple(v.shape)} "
                         f"and {tuple(z.shape)}")
    masked = torch.where(z > 0, v, torch.full_like(v, -torch.inf))
    winner = masked.argmax(dim=1, keepdim=True)
    out = torch.zeros_like(z)
    out.scatter_(1, winner, 1.0)
    return out * (z.amax(dim=1, keepdim=True) > 0)


def homeostasis_step(theta: Tensor, z: Tensor, decay: float, increment: float) -> Tensor:
    r"""One step of the homeostatic adaptation, shared by a batch:
    :math:`θ_j \leftarrow ρ\, θ_j + θ_+ \sum_b z_{bj}` with ``decay`` :math:`ρ` and
    ``increment`` :math:`θ_+`. Over a spike train, :math:`θ_T = ρ^T θ_0 + θ_+ \sum_{k<T}
    ρ^{T-1-k} \sum_b z_{k,b}`.

    ``theta``: ``[N]``; ``z``: ``[B, N]`` (or ``[N]``).
    """
    spikes = z.sum(dim=0) if z.dim() == 2 else z
    return decay * theta + increment * spikes


# ----------------------------------------------------------------------------- labels


@dataclass
class Responses:
    r"""The summed responses of ``n_neurons`` neurons to the samples of each of ``n_classes``
    classes: ``sums[c, j] = Σ_{b: y_b = c} counts[b, j]``, ``samples[c]`` = number of samples
    of class ``c`` seen. Filled batch by batch with :meth:`add`; :meth:`labels` assigns."""

    n_classes: int
    n_neurons: int
    sums: Tensor = field(init=False)
    samples: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.n_classes = check_int(self.n_classes, "Responses: n_classes", 1)
        self.n_neurons = check_int(self.n_neurons, "Responses: n_neurons", 1)
        self.sums = torch.zeros(self.n_classes, self.n_neurons, dtype=torch.float64)
        self.samples = torch.zeros(self.n_classes, dtype=torch.float64)

    def add(self, counts: Tensor, labels: Tensor) -> None:
        """Add the spike counts ``[B, n_neurons]`` of a batch with class labels ``[B]``.

        Raises:
            ShapeError, DTypeError, ParameterError: see :func:`~spikeloop.checks.check_labels`;
            ``counts`` not ``[B, n_neurons]``.
        """
        if not isinstance(counts, Tensor):
            raise ArgumentTypeError(f"Responses.add: counts must be a tensor, got "
                                    f"{type(counts).__name__}")
        if counts.dim() != 2 or counts.shape[1] != self.n_neurons:
            raise ShapeError(f"Responses.add: counts must be [B, {self.n_neurons}], got "
                             f"{tuple(counts.shape)}")
        y = check_labels(labels, "Responses.add: labels", self.n_classes, counts.shape[0])
        c = counts.detach().to(device="cpu", dtype=torch.float64)
        self.sums.index_add_(0, y.cpu(), c)
        self.samples += torch.bincount(y.cpu(), minlength=self.n_classes).to(torch.float64)

    def labels(self) -> Tensor:
        """:func:`assign_labels` of what was added."""
        return assign_labels(self.sums, self.samples)


def assign_labels(sums: Tensor, samples: Tensor) -> Tensor:
    r"""Label every neuron with the class it responds to most on average:
    :math:`\ell_j = \arg\max_c\, \mathrm{sums}_{cj} / \mathrm{samples}_c` (classes without
    samples are skipped; the first class on a tie). A neuron that never fired is labelled −1
    and votes for no class.

    ``sums``: ``[C, N]`` summed responses per class; ``samples``: ``[C]`` samples per class.

    Raises:
        ShapeError: the shapes do not fit.
    """
    if sums.dim() != 2 or samples.shape != (sums.shape[0],):
        raise ShapeError(f"assign_labels: sums [C, N] and samples [C], got "
                         f"{tuple(sums.shape)} and {tuple(samples.shape)}")
    seen = samples > 0
    mean = torch.where(seen[:, None], sums / samples.clamp(min=1)[:, None],
                       torch.full_like(sums, -torch.inf))
    labels = mean.argmax(dim=0)
    return torch.where(sums.sum(dim=0) > 0, labels, torch.full_like(labels, -1))


def vote(counts: Tensor, neuron_labels: Tensor, n_classes: int, mean: bool = False) -> Tensor:
    r"""Classify each sample by the class whose neurons fire most:
    :math:`\hat y_b = \arg\max_c \sum_{j: \ell_j = c} n_{bj}` (the paper's code), or with
    ``mean`` the mean over the class's neurons (Diehl & Cook 2015). Neurons labelled −1 do not
    vote; a class without neurons scores 0 (−∞ with ``mean``).

    ``counts``: ``[B, N]`` spike counts; ``neuron_labels``: ``[N]``. Returns ``[B]`` int64.

    Raises:
        ShapeError: the shapes do not fit.
    """
    n_classes = check_int(n_classes, "vote: n_classes", 1)
    if counts.dim() != 2 or neuron_labels.shape != (counts.shape[1],):
        raise ShapeError(f"vote: counts [B, N] and neuron_labels [N], got "
                         f"{tuple(counts.shape)} and {tuple(neuron_labels.shape)}")
    lab = neuron_labels.to(counts.device)
    onehot = torch.zeros(counts.shape[1], n_classes, dtype=counts.dtype, device=counts.device)
    known = lab >= 0
    onehot[known.nonzero().squeeze(1), lab[known]] = 1.0
    scores = counts @ onehot
    if mean:
        size = onehot.sum(dim=0)
        scores = torch.where(size > 0, scores / size.clamp(min=1), -torch.inf)
    return scores.argmax(dim=1)


def check_rates(lr: float, alpha: float, v_prog: float) -> tuple[float, float, float]:
    """The rule's parameters checked: ``lr ≥ 0``, ``alpha ≥ 0`` finite, ``v_prog`` finite."""
    return (check_real(lr, "vdsp: lr", low=0), check_real(alpha, "vdsp: alpha", low=0),
            check_real(v_prog, "vdsp: v_prog"))

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
- output: LIF neurons (:math:`τ = 30` ms, threshold 1, reset 0, refractory 5 ms; the code's
  5 ms synaptic filter equals its dt and is left out here: the voltage LIF integrates the
  input directly), with a hard **winner-take-all**: at a step where neurons cross the threshold,
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeloop.checks import check_choice, check_int, check_labels, check_real
from spikeloop.dynamics.models import PopulationState
from spikeloop.dynamics.neurons import LIFState
from spikeloop.errors import ArgumentTypeError, ConfigError, ShapeError
from spikeloop.observables import Observables
from spikeloop.training.methods import TrainingMethod, register_method
from spikeloop.training.plasticity import Factor, Plasticity, Rule, Term

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
    r"""One step of the homeostatic adaptation: :math:`θ \leftarrow ρ\, θ + θ_+ z` with
    ``decay`` :math:`ρ` and ``increment`` :math:`θ_+`, element by element. Over a spike train,
    :math:`θ_T = ρ^T θ_0 + θ_+ \sum_{k<T} ρ^{T-1-k} z_k`.
    """
    return decay * theta + increment * z


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


# ----------------------------------------------------------------------------- the engine's rule


def _not(x: Tensor) -> Tensor:
    return 1.0 - x


def vdsp(lr: float = 8e-3, alpha: float = 0.0, v_prog: float = 0.0, v_reset_pre: float = -1.0,
         w_min: float = 0.0, w_max: float = 1.0) -> Rule:
    r"""VDSP as a rule of the plasticity engine (:class:`~spikeloop.training.plasticity.Rule`):
    :func:`vdsp_delta` at every step, with the presynaptic membrane read *after* the step's
    reset.

    The engine's ``v_pre`` is the membrane compared with the threshold (before reset), so a
    presynaptic neuron that spikes at this step (``x0 = 1``) is counted at its reset value
    ``v_reset_pre`` — as the paper's presynaptic neuron, reset when it fired and read when the
    postsynaptic neuron spikes:

    .. math::
        Δw = η\,y_0\big[(1-x_0)\,(g_+(v) f_+(w) - g_-(v) f_-(w))
             + x_0\,(g_+(v_r) f_+(w) - g_-(v_r) f_-(w))\big].

    Terms: ``+g_+(v_pre)(1−x0)·y0·f_+``, ``−g_-(v_pre)(1−x0)·y0·f_-`` and the reset value's
    constant terms ``g_±(v_r)·x0·y0·f_±`` (only the non-zero ones). Weights stay in
    ``[w_min, w_max]`` (the memristor's range, ``[0, 1]``).

    Raises:
        ParameterError: ``lr`` or ``alpha`` negative, a value not finite.
    """
    lr, alpha, v_prog = check_rates(lr, alpha, v_prog)
    v_r = check_real(v_reset_pre, "vdsp: v_reset_pre")

    def pot(w: Tensor) -> Tensor:
        return f_potentiation(w, alpha)

    def dep(w: Tensor) -> Tensor:
        return f_depression(w, alpha)

    def g_pot(v: Tensor) -> Tensor:
        return g_potentiation(v, v_prog)

    def g_dep(v: Tensor) -> Tensor:
        return g_depression(v, v_prog)

    silent = Factor("x0", _not)
    terms = [Term(1.0, (Factor("v_pre", g_pot), silent), ("y0",), pot),
             Term(-1.0, (Factor("v_pre", g_dep), silent), ("y0",), dep)]
    at_reset = (math.expm1(max(v_prog - v_r, 0.0)), math.expm1(max(v_r - v_prog, 0.0)))
    if at_reset[0]:
        terms.append(Term(at_reset[0], ("x0",), ("y0",), pot))
    if at_reset[1]:
        terms.append(Term(-at_reset[1], ("x0",), ("y0",), dep))
    return Rule(tuple(terms), {}, lr, w_min, w_max, name="vdsp")


# ----------------------------------------------------------------------------- the network


class Competition:
    r"""The output layer's hard winner-take-all and homeostasis, as the engine's
    ``before_rule`` hook (:meth:`~spikeloop.training.plasticity.Plasticity.run`).

    Homeostasis: every output neuron of every sample row ``b`` has an adaptive threshold
    :math:`ϑ + θ_{bj}`; each of its spikes raises :math:`θ_{bj}` by ``theta_plus`` and
    :math:`θ` decays with ``tau_theta`` (:func:`homeostasis_step`). A neuron that crossed the
    population's threshold :math:`ϑ` but not its own :math:`ϑ + θ_{bj}` did not spike: its
    membrane is put back to the value it had before the reset (the observed one) and it is not
    refractory.

    Winner-take-all: of the neurons above their adaptive threshold, only the one furthest above
    it spikes (:func:`winner_take_all`); every other neuron of the sample is reset to
    ``v_reset`` and held there for ``inhibit_steps`` steps (the LIF model's refractory counter).

    Batches: row ``b`` of a batch is a stream of samples (the ``b``-th sample of every batch)
    that keeps its :math:`θ_b` from batch to batch (:attr:`theta`, ``[B, N]``), as the paper's
    single sequential stream keeps its adaptation from image to image. With ``adapt=False``
    (the reading runs: label assignment and prediction) :math:`θ` is fixed at the value given
    to :meth:`start` (Diehl & Cook 2015 freeze it after learning).
    """

    def __init__(self, name: str, population: Any, inhibit_steps: int, theta_plus: float,
                 tau_theta: float, adapt: bool = True) -> None:
        self.name = name
        self.population = population
        self.inhibit = float(inhibit_steps)
        self.theta_plus = theta_plus
        self.rho = math.exp(-population.dt / tau_theta)
        self.adapt = adapt
        self.theta: Tensor | None = None
        """:math:`θ` ``[B, N]`` of every row (``None`` before the first run)."""
        self._rows = 0

    def start(self, batch: int, like: Tensor, theta: Tensor | None = None) -> None:
        """Prepare a run of ``batch`` samples: with ``theta`` ``[N]`` every row starts from
        it; else the rows kept from the last run go on and new rows start from 0."""
        n = math.prod(self.population.shape)
        if theta is not None:
            self.theta = theta.reshape(1, n).to(like).expand(batch, n).clone()
        else:
            kept = self.theta if self.theta is not None else like.new_zeros(0, n)
            if kept.shape[0] < batch:
                kept = torch.cat([kept, like.new_zeros(batch - kept.shape[0], n)])
            self.theta = kept
        self._rows = batch

    def __call__(self, t: int, obs: Mapping[str, Observables], state: dict[str, Any]) -> None:
        o = obs[self.name]
        z, v = o.spikes[0], o.v[0]
        theta = self.theta[:self._rows].reshape(z.shape)
        margin = v - self.population.v_threshold - theta
        above = (z > 0) & (margin >= 0)
        zw = winner_take_all(margin, above.to(z.dtype))
        s = state[self.name].neuron
        undo = (z > 0) & ~above
        losers = (zw.sum(1, keepdim=True) > 0) & (zw == 0)
        v_next = torch.where(losers, self.population.v_reset, torch.where(undo, v, s.v))
        refrac = torch.where(losers, self.inhibit,
                             torch.where(undo, torch.zeros_like(s.refrac), s.refrac))
        state[self.name] = state[self.name]._replace(neuron=s._replace(v=v_next, refrac=refrac))
        z.copy_(zw)
        if self.adapt:
            self.theta[:self._rows] = homeostasis_step(theta, zw, self.rho,
                                                       self.theta_plus).reshape(len(zw), -1)


# ----------------------------------------------------------------------------- train.method


@dataclass(frozen=True)
class VDSPOptions:
    """``train.method: {name: vdsp, ...}``; defaults: the paper's code (module docstring).

    ``lr``: :math:`η` (the code sweeps 0.004–0.011; 0.008 is the middle of the sweep, the
    value behind the paper's table is not in the code). ``alpha``, ``v_prog``: the rule's
    weight and voltage dependences. ``input_gain``, ``input_bias``, ``input_reset``: the input
    neurons (current ``gain·x + bias``, reset value). ``output_r``: the output neurons'
    resistance (the code's synaptic amplitude 0.05 × gain 2). ``t_refrac``: both layers'
    refractory time (s); ``t_inhibit``: how long the losers of the winner-take-all are held (s).
    ``theta_plus``, ``tau_theta`` (s): homeostasis. ``w_init``: initial weights uniform in
    ``[0, w_init]``. ``vote``: ``sum`` (the code) or ``mean`` (Diehl & Cook). ``assign``:
    ``pass`` — label the neurons after every epoch by a run over the training set without
    learning (the code) — or ``train``: by the responses recorded while learning (no extra
    pass). ``input_v0``: the input membranes start uniform in ``[0, input_v0]`` (the code's
    Nengo default), so the pixels do not all fire in the same steps.
    """

    lr: float = 8e-3
    alpha: float = 0.0
    v_prog: float = 0.0
    input_gain: float = 4.0
    input_bias: float = 0.5
    input_reset: float = -1.0
    output_r: float = 0.1
    t_refrac: float = 5e-3
    t_inhibit: float = 10e-3
    theta_plus: float = 0.01
    tau_theta: float = 1.0
    w_init: float = 1.0
    vote: str = "sum"
    assign: str = "pass"
    input_v0: float = 1.0

    def __post_init__(self) -> None:
        check_rates(self.lr, self.alpha, self.v_prog)
        for name in ("input_gain", "output_r", "tau_theta"):
            check_real(getattr(self, name), f"vdsp {name}", low=0, low_open=True)
        for name in ("t_refrac", "t_inhibit", "theta_plus", "input_v0"):
            check_real(getattr(self, name), f"vdsp {name}", low=0)
        check_real(self.input_bias, "vdsp input_bias")
        check_real(self.input_reset, "vdsp input_reset")
        check_real(self.w_init, "vdsp w_init", low=0, high=1)
        check_choice(self.vote, "vdsp vote", ("sum", "mean"))
        check_choice(self.assign, "vdsp assign", ("pass", "train"))


LAYERS = ("input", "fc1", "hidden1", "fc2", "hidden2")
"""The layers :class:`VDSP` trains: ``model.hidden: [n_in, N]`` with ``neuron: lif``."""


@register_method
class VDSP(TrainingMethod):
    r"""Unsupervised VDSP (Garg et al. 2022) with winner-take-all, homeostasis and label
    assignment (module docstring).

    The network is ``model.hidden: [n_in, N]`` of ``lif`` neurons built by the trainer: the
    method makes ``fc1`` the identity and ``hidden1`` the paper's input neurons (``r =
    input_gain``, ``v_leak = input_bias``, ``v_reset = input_reset``), so that each pixel's
    current drives one input neuron with a membrane; ``fc2`` (``N × n_in``) is learned by
    :func:`vdsp` from the input membranes; ``hidden2`` are the ``N`` output neurons
    (``r = output_r``) under :class:`Competition`. The readout behind them is not used: the
    labels come only from the label assignment at the end of every epoch, and the method
    predicts by :func:`vote` over the output neurons' spike counts in a run with the
    winner-take-all, weights and thresholds fixed (:math:`θ`: the rows' mean).
    """

    name = "vdsp"
    gradient = False
    Options = VDSPOptions

    def __init__(self, options: VDSPOptions) -> None:
        super().__init__(options)
        self.neuron_labels: Tensor | None = None
        self.responses: Responses | None = None

    def check(self, trainer: Any) -> None:
        """Refuse another network; set up the input layer and the engines.

        Raises:
            ConfigError: layers other than ``input, fc1, hidden1, fc2, hidden2, ...``, hidden
                populations that are not voltage LIF, ``hidden1`` not as wide as the input.
        """
        o = self.options
        layers = trainer.network.layers
        names = list(layers.keys())
        if names[:len(LAYERS)] != list(LAYERS):
            raise ConfigError(f"train.method vdsp trains input → fc1 → hidden1 → fc2 → "
                              f"hidden2 (model.hidden: [n_in, N]); the network's layers are "
                              f"{names}")
        for name in ("hidden1", "hidden2"):
            if layers[name].model != "LIF":
                raise ConfigError(f"train.method vdsp: {name} is {layers[name].model}; VDSP's "
                                  f"neurons are voltage LIF (model.neuron: lif)")
        n_in = math.prod(trainer.data["train"].spikes.shape[2:])
        fc1, pixels, out = layers["fc1"], layers["hidden1"], layers["hidden2"]
        if fc1.weight.shape != (n_in, n_in):
            raise ConfigError(f"train.method vdsp: hidden1 are the input neurons, one per input "
                              f"({n_in}): model.hidden must start with {n_in}, fc1 is "
                              f"{tuple(fc1.weight.shape)}")
        dt = pixels.dt
        generator = torch.Generator().manual_seed(trainer.config.run.seed + 7)
        with torch.no_grad():
            fc1.weight.copy_(torch.eye(n_in))
            layers["fc2"].weight.copy_(torch.rand(layers["fc2"].weight.shape,
                                                  generator=generator) * o.w_init)
        fc1.weight.requires_grad_(False)
        layers["fc2"].weight.requires_grad_(False)
        pixels.r = o.input_gain
        pixels.v_leak = o.input_bias
        pixels.v_reset = o.input_reset
        pixels.settings = {"t_refrac": o.t_refrac}
        out.r = o.output_r
        out.settings = {"t_refrac": o.t_refrac}
        v_reset = float(pixels.v_reset)
        inhibit = round(o.t_inhibit / dt)
        self.generator = generator
        self.learning = Competition("hidden2", out, inhibit, o.theta_plus, o.tau_theta)
        self.reading = Competition("hidden2", out, inhibit, o.theta_plus, o.tau_theta,
                                   adapt=False)
        self.learner = Plasticity(trainer.network, {
            "fc2": vdsp(o.lr, o.alpha, o.v_prog, v_reset)})
        self.reader = Plasticity(trainer.network, {})
        self.n_classes = int(max(int(s.labels.max()) for s in trainer.data.values())) + 1
        self.responses = Responses(self.n_classes, math.prod(out.shape))

    def _state(self, x: Tensor, trainer: Any) -> dict[str, Any]:
        """Input membranes uniform in ``[0, input_v0]``, everything else at rest."""
        pixels = trainer.network.layers["hidden1"]
        batch = x.shape[1]
        v = torch.rand((batch, *pixels.shape), generator=self.generator) * self.options.input_v0
        return {"hidden1": PopulationState(LIFState(v.to(x), torch.zeros_like(v).to(x)))}

    def counts(self, trainer: Any, x: Tensor, learn: bool) -> Tensor:
        """Spike counts ``[B, N]`` of the output neurons on ``x [T, B, n_in]``, learning (the
        rows keep their homeostasis from batch to batch) or not (weights and thresholds fixed,
        :math:`θ` the mean over the rows)."""
        hook = self.learning if learn else self.reading
        theta = None
        if not learn:  # the rows' mean θ, frozen
            kept = self.learning.theta
            theta = (kept.mean(0) if kept is not None
                     else x.new_zeros(math.prod(self.learning.population.shape)))
        hook.start(x.shape[1], x, theta)
        if learn:
            c = self.learner.run(x, scale=trainer.lr_factor, state=self._state(x, trainer),
                                 before_rule=hook)
        else:
            c = self.reader.run(x, state=self._state(x, trainer), before_rule=hook)
        return c["hidden2"].reshape(x.shape[1], -1)

    def _vote(self, counts: Tensor) -> Tensor:
        if self.neuron_labels is None:
            return torch.full((counts.shape[0],), -1, dtype=torch.int64)
        return vote(counts, self.neuron_labels, self.n_classes, self.options.vote == "mean")

    def train_batch(self, trainer: Any, x: Tensor, y: Tensor) -> tuple[float, int]:
        c = self.counts(trainer, x, learn=True)
        if self.options.assign == "train" and self.responses is not None:
            self.responses.add(c, y)
        return float("nan"), int((self._vote(c) == y.to(c.device)).sum())

    def end_epoch(self, trainer: Any) -> None:
        """Label the output neurons (``assign: pass``: a run over the training set without
        learning; ``train``: the responses recorded during the epoch)."""
        n = self.responses.n_neurons
        if self.options.assign == "pass":
            self.responses = Responses(self.n_classes, n)
            split = trainer.data["train"]
            size = trainer.config.train.batch_size
            for k in range(0, len(split), size):
                x, y = split.batch(slice(k, min(k + size, len(split))))
                self.responses.add(self.counts(trainer, x, learn=False), y)
        self.neuron_labels = self.responses.labels()
        self.responses = Responses(self.n_classes, n)

    def predict(self, trainer: Any, out: Any) -> Tensor:
        x = out["input"].spikes
        return self._vote(self.counts(trainer, x, learn=False)).to(x.device)

    def state_dict(self) -> dict[str, Any]:
        return {"neuron_labels": self.neuron_labels, "theta": self.learning.theta,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.neuron_labels = state.get("neuron_labels")
        self.learning.theta = state.get("theta")
        if state.get("generator") is not None:  # the input membranes' random starts
            self.generator.set_state(state["generator"])

r"""Stochastic spike-coded backpropagation (SSNN-BP).

After Biswas, Saraswat & Ganguly, "A temporally and spatially local spike-based
backpropagation algorithm to enable training in hardware", Neuromorphic Computing and
Engineering 3 (2023), doi:10.1088/2634-4386/acf1c5, arXiv:2207.09755. What is built here
follows the paper's abstract (the full text was not available to us): *composite* stochastic
neurons carry both the forward activations and the backward gradients as spike trains; the
signed gradient travels as two non-negative streams (positive and negative); a weight changes
by the coincidences of its pre-synaptic spikes with the post-synaptic neuron's gradient spikes
(temporally and spatially local, as a resistive crossbar's stochastic pulse update); the
soft-max cross-entropy comes from a winner-take-all (WTA) output with lateral inhibition; with
long enough spike trains the updates approach those of backpropagation in the same network
trained as an ANN. The equations below are ours.

**Network.** ``input → (Linear W_l → IF population) × (L − 1) → Linear W_L → readout``
(:func:`ssnn_stages`). A hidden neuron's activation is its integrate-and-fire rate
(:func:`~spikeloop.training.proxy.if_rate`),

.. math:: a = \min(1, \max(0, c\,v)), \qquad c = g / (ϑ - v_{reset}),

which is also its spike probability per step.

**Forward window** (``T`` steps, layer after layer). The input neurons fire with the pixel
intensities :math:`p\in[0,1]` as probabilities, :math:`s_{0,t}\sim\mathrm{Bernoulli}(p)`.
The integrating compartment of a neuron of layer :math:`l` averages its input current over the
window and the spiking compartment then fires with its activation:

.. math:: v_l = W_l\,\bar s_{l-1} + b_l,\quad \bar s = \tfrac1T\textstyle\sum_t s_t,\qquad
          s_{l,t} \sim \mathrm{Bernoulli}(a_l).

The output neurons' membranes are :math:`z = W_L \bar s_{L-1} + b_L`.

**WTA output.** At every step exactly one output neuron fires: each races the others with a
first spike after an exponential time of rate :math:`e^{z_k}` and the first spike silences
the rest (lateral inhibition), so neuron :math:`k` wins with probability
:math:`e^{z_k}/\sum_j e^{z_j} = \mathrm{softmax}(z)_k` (:func:`wta`).

**Learning window** (``T`` steps; membranes held). The output error streams compare the
winner :math:`w_t` (one-hot) with the label :math:`y` (one-hot):

.. math:: ε^+_{L,t} = y\,(1 - w_t), \qquad ε^-_{L,t} = w_t\,(1 - y),\qquad
          \mathbb E[ε^+ - ε^-] = y - \mathrm{softmax}(z) = -\partial \mathcal L/\partial z,

:math:`\mathcal L = -\log \mathrm{softmax}(z)_y`. A hidden neuron's backward compartment sums
the error spikes of the layer above through the same synapses (transposed), gated by its
activation's slope, and fires on one of its two streams:

.. math:: J_{l,t} = c_l\,\mathbb 1[0 < c_l v_l < 1] \odot
          W_{l+1}^\top\big(γ_{l+1}\odot(ε^+_{l+1,t} - ε^-_{l+1,t})\big),\qquad
          ε^\pm_{l,t} \sim \mathrm{Bernoulli}\big(\min(1, \max(0, \pm J_{l,t}/γ_l))\big),

with :math:`γ_L = 1` and :math:`γ_l` a bound on :math:`|J_l|` the neuron knows from its own
outgoing weights (so the probability never clips): :math:`γ_{L-1,j} = c_j g_j (\max_k W_{kj}
- \min_k W_{kj})` (one output error spike is positive, at most one negative) and deeper
:math:`γ_{l,j} = c_j g_j \sum_k |W_{l+1,kj}|\,γ_{l+1,k}` (:math:`g_j` the gate). Thus
:math:`\mathbb E[γ_l(ε^+_l - ε^-_l)] = -\partial\mathcal L/\partial v_l`.

**Weight update** (STDP-like coincidences). The neurons keep firing at their activations
through the learning window, :math:`x_{l,t} \sim \mathrm{Bernoulli}(a_l)` (fresh spikes,
:math:`a_0 = p`), and every synapse counts coincidences of its pre-synaptic spikes with the
post-synaptic error spikes over the window and the batch of :math:`B` samples:

.. math:: ΔW_l = \frac{η}{T B}\sum_{b,t} γ_l\,(ε^+_{l,t} - ε^-_{l,t})\,x_{l-1,t}^\top,
          \qquad Δb_l = \frac{η}{T B}\sum_{b,t} γ_l\,(ε^+_{l,t} - ε^-_{l,t}):

a pre spike meeting a positive error spike potentiates, one meeting a negative error spike
depresses (:func:`coincidence_update`). Given the forward window's membranes the fresh pre
spikes and the error spikes are independent, so :math:`\mathbb E[ΔW_l] = -η\,\partial\mathcal
L/\partial W_l` of the network with activations :math:`a_l`; as :math:`T\to\infty` the
membranes become the ANN's and the expected update the ANN's gradient step. With
``stochastic=False`` every spike train is replaced by its probability (one step): that *is*
the ANN (clipped-ReLU MLP, soft-max cross-entropy, plain SGD), trained by the same code.
No autograd graph is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_int, check_type
from spikeloop.errors import ConfigError, ParameterError, ShapeError
from spikeloop.ir import Graph, Node
from spikeloop.observables import NetworkOutput
from spikeloop.training.methods import TrainingMethod, register_method
from spikeloop.training.proxy import check_proxy, if_gain, if_rate

if TYPE_CHECKING:  # the trainer imports the methods, not the other way round
    from spikeloop.training.trainer import Trainer


@dataclass(frozen=True)
class Stage:
    """One layer SSNN-BP trains: the ``Linear`` projection and the population it feeds (an
    IF population, or the non-spiking readout whose membranes the WTA races on)."""

    projection: Node
    population: Node


def ssnn_stages(graph: Graph, who: str = "ssnn_bp") -> tuple[Stage, ...]:
    """The stages of a network SSNN-BP can train, input to output.

    The graph must be ``input → (Linear → IF population) × (L − 1) → Linear → readout``: flat
    input, ``Linear`` projections each reading the node before it, non-leaky IF hidden
    populations (no synaptic current, adaptation, refractory period or recurrent weights:
    their rate :math:`\\mathrm{clamp}(c\\,I, 0, 1)` is the spike probability) and a
    non-spiking readout.

    Raises:
        ConfigError: naming the first node that does not fit (``who`` starts the message).
    """
    if len(graph.input.shape) != 1:
        raise ConfigError(f"{who}: the input must be flat features, got samples of shape "
                          f"{graph.input.shape} (set data.params.flat: true)")
    nodes = [n for n in graph.nodes if n.kind != "input"]
    stages: list[Stage] = []
    previous = graph.input.name
    for k in range(0, len(nodes), 2):
        proj = nodes[k]
        if proj.recurrent or proj.op != "Linear" or proj.kind != "projection":
            raise ConfigError(f"{who}: node {proj.name!r} ({proj.op}) is not a feed-forward "
                              f"Linear projection; SSNN-BP trains input → (Linear → IF) × n → "
                              f"Linear → readout")
        if proj.inputs != (previous,):
            raise ConfigError(f"{who}: projection {proj.name!r} reads {list(proj.inputs)}, "
                              f"not only the layer before it ({previous!r})")
        if k + 1 == len(nodes) or nodes[k + 1].kind != "population":
            raise ConfigError(f"{who}: projection {proj.name!r} does not feed a population")
        pop = nodes[k + 1]
        if pop.inputs != (proj.name,):
            raise ConfigError(f"{who}: population {pop.name!r} reads {list(pop.inputs)}, not "
                              f"only {proj.name!r}")
        last = k + 2 == len(nodes)
        if last and pop.model.spiking:
            raise ConfigError(f"{who}: the last population {pop.name!r} ({pop.op}) spikes; "
                              f"SSNN-BP's winner-take-all races on a non-spiking readout's "
                              f"membranes (model.readout: li)")
        if not last and not pop.model.spiking:
            raise ConfigError(f"{who}: hidden population {pop.name!r} ({pop.op}) does not "
                              f"spike; use model.neuron: if")
        stages.append(Stage(proj, pop))
        previous = pop.name
    if not stages:
        raise ConfigError(f"{who}: the network has no Linear → readout stage")
    try:  # the IF conditions of the rate network, where the activation comes from
        check_proxy(graph)
    except ConfigError as err:
        raise ConfigError(f"{who}: {str(err).removeprefix('ann_proxy: ')}") from None
    return tuple(stages)


def wta(z: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Winner-take-all spikes ``[steps, B, K]`` (one-hot per step) of output membranes
    ``z [B, K]``: every step each neuron's first spike comes after an exponential time of rate
    :math:`e^{z_k}`, the first one fires and inhibits the rest, so neuron :math:`k` wins with
    probability :math:`\mathrm{softmax}(z)_k`.

    Raises:
        ShapeError: ``z`` is not ``[B, K]``. ParameterError: ``steps < 1``.
    """
    if z.ndim != 2:
        raise ShapeError(f"wta: membranes must be [B, K], got shape {tuple(z.shape)}")
    steps = check_int(steps, "wta: steps", 1)
    rate = torch.exp(z - z.amax(-1, keepdim=True))  # rates up to a common factor, max 1
    rate = rate.clamp(min=torch.finfo(rate.dtype).tiny)  # e^{-1000}: never 0/0
    first = torch.empty((steps, *z.shape), dtype=z.dtype, device=z.device)
    first.exponential_(generator=generator)
    winner = (first / rate).argmin(-1)
    return torch.nn.functional.one_hot(winner, z.shape[-1]).to(z.dtype)


def coincidence_update(pre: Tensor, plus: Tensor, minus: Tensor, scale: Tensor | float = 1.0
                       ) -> Tensor:
    r"""The summed coincidences :math:`\frac1{TB}\sum_{t,b} γ_j\,(ε^+_{tbj} - ε^-_{tbj})\,
    x_{tbi}` as a weight change ``[M, N]`` (before the learning rate).

    Args:
        pre: pre-synaptic spikes ``[T, B, N]``.
        plus, minus: the post-synaptic positive and negative error streams ``[T, B, M]``
            (non-negative).
        scale: :math:`γ`, ``[B, M]`` or a number.

    Raises:
        ShapeError: the shapes do not fit.
    """
    if pre.ndim != 3 or plus.shape != minus.shape or plus.ndim != 3 \
            or plus.shape[:2] != pre.shape[:2]:
        raise ShapeError(f"coincidence_update: pre [T, B, N] and streams [T, B, M] expected, got "
                         f"{tuple(pre.shape)}, {tuple(plus.shape)}, {tuple(minus.shape)}")
    return _coincidences(pre, (plus - minus) * scale)


def _coincidences(pre: Tensor, signed: Tensor) -> Tensor:
    """:func:`coincidence_update` with the signed, scaled streams ``γ (ε⁺ − ε⁻)`` given."""
    steps, batch = pre.shape[:2]
    return signed.flatten(0, 1).T @ pre.flatten(0, 1) / (steps * batch)


@dataclass
class SSNNStep:
    """What one SSNN-BP pass over a batch gives.

    Attributes:
        updates: per projection name (and ``<name>.bias`` where it has a bias), the weight
            change per unit learning rate (an estimate of :math:`-\\partial\\mathcal
            L/\\partial W`, averaged over the batch).
        logits: the output membranes :math:`z` ``[B, K]`` of the forward window.
        wins: the WTA's output spikes per neuron over the learning window ``[B, K]``
            (``stochastic=False``: the soft-max probabilities).
    """

    updates: dict[str, Tensor]
    logits: Tensor
    wins: Tensor

    def loss(self, labels: Tensor) -> Tensor:
        """Soft-max cross-entropy of the membranes per sample ``[B]``."""
        return torch.nn.functional.cross_entropy(self.logits, labels, reduction="none")

    def predict(self) -> Tensor:
        """The class whose output neuron fired most (ties: the larger membrane)."""
        return (self.wins + 0.5 * torch.softmax(self.logits, -1)).argmax(-1)


def check_probabilities(p: Tensor, n_in: int, who: str = "ssnn_bp") -> Tensor:
    """``p [B, F]`` as firing probabilities of the ``n_in`` input neurons.

    Raises:
        ShapeError: not ``[B, n_in]``. ParameterError: values outside ``[0, 1]`` (or not
            finite): SSNN-BP's input neurons fire with the features as probabilities.
    """
    check_type(p, f"{who}: input", Tensor, "a tensor")
    if p.ndim != 2 or p.shape[1] != n_in:
        raise ShapeError(f"{who}: input probabilities must be [B, {n_in}], got "
                         f"{tuple(p.shape)}")
    bad = ~((p >= 0) & (p <= 1))
    if bool(bad.any()):
        raise ParameterError(f"{who}: input features are firing probabilities and must lie in "
                             f"[0, 1]; got {float(p[bad][0])} (use the direct encoder with "
                             f"gain 1 on features in [0, 1])")
    return p


def _spikes(prob: Tensor, steps: int, generator: torch.Generator | None,
            stochastic: bool) -> Tensor:
    """Bernoulli spike trains ``[steps, *prob.shape]``, or ``prob[None]`` (expectations)."""
    if not stochastic:
        return prob.unsqueeze(0)
    draw = torch.rand((steps, *prob.shape), generator=generator, dtype=prob.dtype,
                      device=prob.device)
    return draw.lt_(prob)  # 1.0 where the uniform draw falls below the probability


def _rate_of(prob: Tensor, steps: int, generator: torch.Generator | None,
             stochastic: bool) -> Tensor:
    """The mean ``s̄`` of ``steps`` Bernoulli spikes of probability ``prob`` (what the
    integrating compartment keeps), drawn at once as a binomial count over ``steps``; or
    ``prob`` itself (expectations)."""
    if not stochastic:
        return prob
    count = torch.binomial(torch.full_like(prob, float(steps)), prob, generator=generator)
    return count / steps


def _projection(stage: Stage, x: Tensor) -> Tensor:
    """``W x + b`` of the stage's Linear on ``x [..., N]``."""
    node = stage.projection
    out = x @ node.params["weight"].T
    bias = node.params.get("bias")
    return out if bias is None else out + bias


def ssnn_forward(stages: tuple[Stage, ...], p: Tensor, steps: int,
                 generator: torch.Generator | None = None, stochastic: bool = True
                 ) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """The forward window: activations ``[a_0 = p, a_1 … a_{L-1}]`` (each ``[B, N_l]``),
    hidden membranes ``[v_1 … v_{L-1}]`` and output membranes ``z [B, K]``
    (see the module docstring)."""
    acts, membranes = [p], []
    for stage in stages[:-1]:
        v = _projection(stage, _rate_of(acts[-1], steps, generator, stochastic))
        membranes.append(v)
        acts.append(if_rate(stage.population, v))
    return acts, membranes, _projection(stages[-1], _rate_of(acts[-1], steps, generator,
                                                             stochastic))


def _check_step(stages: tuple[Stage, ...], p: Tensor, labels: Tensor, steps: int,
                stochastic: bool) -> tuple[Tensor, int, bool]:
    """Checked ``p``, ``steps`` and ``stochastic`` of :func:`ssnn_step`."""
    steps = check_int(steps, "ssnn_bp: steps", 1)
    stochastic = check_bool(stochastic, "ssnn_bp: stochastic")
    p = check_probabilities(p, stages[0].projection.params["weight"].shape[1])
    n_out = stages[-1].projection.params["weight"].shape[0]
    check_type(labels, "ssnn_bp: labels", Tensor, "a tensor of classes")
    if labels.shape != p.shape[:1] or int(labels.min()) < 0 or int(labels.max()) >= n_out:
        raise ShapeError(f"ssnn_bp: labels must be [{p.shape[0]}] classes in [0, {n_out}), got "
                         f"shape {tuple(labels.shape)}")
    return p, steps, stochastic


def ssnn_step(stages: tuple[Stage, ...], p: Tensor, labels: Tensor, steps: int,
              generator: torch.Generator | None = None, stochastic: bool = True) -> SSNNStep:
    """One SSNN-BP pass over a batch: the forward window (:func:`ssnn_forward`), then the
    learning window (:func:`ssnn_learn`); nothing is written to the weights.

    Args:
        stages: from :func:`ssnn_stages`.
        p: input firing probabilities ``[B, F]`` in ``[0, 1]``.
        labels: classes ``[B]``.
        steps: spike-train length ``T`` of each window.
        generator: the random source of every spike.
        stochastic: ``False``: expectations instead of spike trains (the ANN).

    Raises:
        ShapeError, ParameterError: ``p`` (:func:`check_probabilities`) or ``labels`` do not
            fit; ``steps < 1``.
    """
    p, steps, stochastic = _check_step(stages, p, labels, steps, stochastic)
    with torch.no_grad():
        acts, membranes, z = ssnn_forward(stages, p, steps, generator, stochastic)
        return ssnn_learn(stages, acts, membranes, z, labels, steps, generator, stochastic)


def ssnn_learn(stages: tuple[Stage, ...], acts: list[Tensor], membranes: list[Tensor],
               z: Tensor, labels: Tensor, steps: int, generator: torch.Generator | None = None,
               stochastic: bool = True) -> SSNNStep:
    """The learning window after a forward window (:func:`ssnn_forward`'s activations,
    membranes and output membranes, held): WTA, error streams and coincidence updates
    (module docstring). Given the forward window, the expected updates are exactly
    backpropagation's in the network with these activations, for any ``steps``."""
    n_out = z.shape[-1]
    with torch.no_grad():
        target = torch.nn.functional.one_hot(labels, n_out).to(z.dtype)
        if stochastic:
            winners = wta(z, steps, generator)
            plus, minus = target * (1 - winners), winners * (1 - target)
            wins = winners.sum(0)
        else:
            soft = torch.softmax(z, -1)
            error = (target - soft).unsqueeze(0)
            plus, minus = error.clamp(min=0), (-error).clamp(min=0)
            wins = soft
        scale: Tensor | float = 1.0
        updates: dict[str, Tensor] = {}
        for level in range(len(stages) - 1, -1, -1):
            stage = stages[level]
            pre = _spikes(acts[level], steps, generator, stochastic)
            weight = stage.projection.params["weight"]
            signed = (plus - minus) * scale  # γ (ε⁺ − ε⁻)
            updates[stage.projection.name] = _coincidences(pre, signed)
            if stage.projection.params.get("bias") is not None:
                updates[f"{stage.projection.name}.bias"] = signed.mean((0, 1))
            if level == 0:
                break
            below = stages[level - 1].population
            v = membranes[level - 1]
            c = torch.as_tensor(if_gain(below), dtype=v.dtype)
            gate = c * ((c * v > 0) & (c * v < 1)).to(v.dtype)  # slope of clamp(c v, 0, 1)
            current = gate * (signed @ weight)  # J [T, B, N]
            if not stochastic:
                plus, minus, scale = current.clamp(min=0), (-current).clamp(min=0), 1.0
                continue
            if level == len(stages) - 1:
                bound = weight.amax(0) - weight.amin(0)  # one +1 and at most one −1 arrive
            else:
                bound = torch.as_tensor(scale) @ weight.abs()
            scale = gate * bound
            ratio = torch.where(scale > 0, current / scale.clamp(min=torch.finfo(v.dtype).tiny),
                                torch.zeros_like(current)).clamp(-1.0, 1.0)
            plus = torch.bernoulli(ratio.clamp(min=0), generator=generator)
            minus = torch.bernoulli((-ratio).clamp(min=0), generator=generator)
    return SSNNStep(updates, z, wins)


def ssnn_predict(stages: tuple[Stage, ...], p: Tensor, steps: int,
                 generator: torch.Generator | None = None, stochastic: bool = True
                 ) -> tuple[Tensor, Tensor]:
    """Inference: the class whose WTA output neuron fired most over ``steps`` steps after the
    forward window (ties: the larger membrane; ``stochastic=False``: the largest membrane),
    and the output membranes ``z [B, K]``."""
    steps = check_int(steps, "ssnn_bp: steps", 1)
    p = check_probabilities(p, stages[0].projection.params["weight"].shape[1])
    with torch.no_grad():
        _, _, z = ssnn_forward(stages, p, steps, generator, stochastic)
        wins = wta(z, steps, generator).sum(0) if stochastic else torch.zeros_like(z)
        return (wins + 0.5 * torch.softmax(z, -1)).argmax(-1), z


def apply_updates(stages: tuple[Stage, ...], step: SSNNStep, lr: float) -> None:
    """Add ``lr ×`` each update to its weight (and bias) in place."""
    with torch.no_grad():
        for stage in stages:
            node = stage.projection
            node.params["weight"].add_(step.updates[node.name], alpha=lr)
            bias = node.params.get("bias")
            if bias is not None:
                bias.add_(step.updates[f"{node.name}.bias"], alpha=lr)


# ----------------------------------------------------------------------------- train.method
@dataclass(frozen=True)
class SSNNOptions:
    """``train.method: {name: ssnn_bp, ...}``. The paper's abstract gives no numbers; these
    defaults are ours.

    Attributes:
        steps: spike-train length ``T`` of each window (forward and learning); the paper: the
            updates approach backprop's "with sufficiently long spike-trains".
        stochastic: ``false`` trains the same network as an ANN: every spike train replaced
            by its probability (clipped-ReLU MLP, soft-max cross-entropy, plain SGD).
        eval_steps: ``T`` of inference (the WTA output counted over it); ``null``: ``steps``.
    """

    steps: int = 32
    stochastic: bool = True
    eval_steps: int | None = None

    def __post_init__(self) -> None:
        check_int(self.steps, "train.method ssnn_bp: steps", 1)
        check_bool(self.stochastic, "train.method ssnn_bp: stochastic")
        if self.eval_steps is not None:
            check_int(self.eval_steps, "train.method ssnn_bp: eval_steps", 1)


@register_method
class SSNNBackprop(TrainingMethod):
    """Stochastic spike-coded backprop (module docstring) as a local training method.

    The input neurons fire with the time mean of the encoded input as probability (the
    ``direct`` encoder gives the pixel intensities). Each batch: the forward and learning
    windows of :func:`ssnn_step`, then plain SGD :math:`W ← W + η\\,ΔW` with
    :math:`η` = ``train.lr`` × the schedule's factor (the trainer's optimiser is not used).
    Accuracy: the class whose WTA neuron fired most (:func:`ssnn_predict`); the loss
    reported for training batches is the soft-max cross-entropy of the output membranes.
    """

    name = "ssnn_bp"
    gradient = False
    Options = SSNNOptions

    def __init__(self, options: SSNNOptions) -> None:
        super().__init__(options)
        self.generator = torch.Generator()
        self._stages: tuple[Graph, tuple[Stage, ...]] | None = None

    def check(self, trainer: Trainer) -> None:
        self.stages(trainer)
        self.generator.manual_seed(trainer.config.run.seed + 3)

    def stages(self, trainer: Trainer) -> tuple[Stage, ...]:
        """The network's stages (:func:`ssnn_stages`), again only when its graph changed."""
        graph = trainer.network.graph
        if self._stages is None or self._stages[0] is not graph:
            self._stages = (graph, ssnn_stages(graph))
        return self._stages[1]

    def train_batch(self, trainer: Trainer, x: Tensor, y: Tensor) -> tuple[float, int]:
        if not len(y):
            return 0.0, 0
        stages = self.stages(trainer)
        opts = self.options
        step = ssnn_step(stages, x.mean(0), y, opts.steps, self.generator, opts.stochastic)
        apply_updates(stages, step, trainer.config.train.lr * trainer.lr_factor)
        return float(step.loss(y).sum()), int((step.predict() == y).sum())

    def predict(self, trainer: Trainer, out: NetworkOutput) -> Tensor:
        stages = self.stages(trainer)
        spikes = out[trainer.network.graph.input.name].spikes
        opts = self.options
        pred, _ = ssnn_predict(stages, spikes.mean(0), opts.eval_steps or opts.steps,
                               self.generator, opts.stochastic)
        return pred

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])

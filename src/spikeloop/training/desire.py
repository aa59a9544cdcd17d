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
(:func:`desire_stdp`, ``apply="end"``). Only a postsynaptic spike changes a weight: a neuron
that should spike but stays silent learns nothing itself; the layers below it learn to drive
it.

``train.method: desire_bp`` (:class:`DesireBackprop`) trains a chain input → (``Linear`` →
spiking population)+ with it, with the paper's dropout (:attr:`DesireOptions.dropout`). Its
input layer of integrate-and-fire neurons is the encoder ``integrate``
(:func:`spikeloop.data.encoders.integrate`). Not taken from the paper's code: its layers lag
one step behind each other; here every layer sees the spikes of the same step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from spikeloop.backends import ModelHooks, execute
from spikeloop.checks import check_int, check_labels, check_real, check_type
from spikeloop.errors import ArgumentTypeError, ConfigError, ShapeError
from spikeloop.ir import Graph, Node
from spikeloop.observables import NetworkOutput, Observables
from spikeloop.training.methods import TrainingMethod, register_method
from spikeloop.training.plasticity import Plasticity, Rule, Term

if TYPE_CHECKING:  # the trainer imports the methods, not the other way round
    from spikeloop.training.trainer import Trainer

__all__ = ["DesireBackprop", "DesireOptions", "desire_chain", "desire_error", "desire_stdp",
           "hidden_desire", "output_desire", "unique_argmax"]


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


def unique_argmax(counts: Tensor) -> Tensor:
    """The class of every sample ``[B]`` from output spike counts ``[B, N]``: the neuron with
    the most spikes, and ``-1`` (wrong whatever the label) when several share the most — the
    paper's code counts a tie as an error.

    Example:
        >>> unique_argmax(torch.tensor([[1., 5., 2.], [3., 3., 0.]]))
        tensor([ 1, -1])
    """
    counts = _counts(counts, "unique_argmax: counts")
    top = counts.max(dim=1, keepdim=True).values
    unique = (counts == top).sum(dim=1) == 1
    return torch.where(unique, counts.argmax(dim=1), -torch.ones_like(unique, dtype=torch.long))


def desire_stdp(lr: float = 1.0, tau: float = 1e-3 / math.log(4 / 3)) -> Rule:
    r"""Desire backpropagation's weight update as a plasticity rule (module docstring):

    .. math::
        Δw_{ji} = η\, r_j \sum_t y_j(t)\,\bigl(x_i(t) + x^{(1)}_i(t)\bigr)

    with :math:`r_j` the postsynaptic neuron's desire (the third factor, ``+1/0/−1``) and
    :math:`x^{(1)}` the presynaptic trace (time constant ``tau``) of the spikes before step
    :math:`t`: together with the spike :math:`x_i(t)` of the step itself it is the paper's trace
    :math:`\tilde x_i(t)`. Terms ``x0·y0·r`` and ``x1·y0·r``, ``apply="end"``: the desire is
    known after the forward pass. The default ``tau`` makes the trace decay by the paper's
    :math:`λ = 1 - 2^{-2} = 0.75` per step of 1 ms (:math:`τ = dt / \ln(4/3)`).

    Example:
        >>> rule = desire_stdp(lr=1e-5)
        >>> sorted(rule.variables), rule.apply
        (['r', 'x0', 'x1', 'y0'], 'end')

    Raises:
        ParameterError: ``lr`` not a finite number ``> 0``, ``tau`` not ``> 0``.
    """
    lr = check_real(lr, "desire_stdp: lr", 0, low_open=True)
    tau = check_real(tau, "desire_stdp: tau (s)", 0, low_open=True)
    return Rule((Term(1.0, ("x0",), ("y0", "r")), Term(1.0, ("x1",), ("y0", "r"))),
                {"x1": tau}, lr, apply="end", name="desire_stdp")


@dataclass(frozen=True)
class DesireOptions:
    r"""``train.method: {name: desire_bp, ...}``; the defaults are the paper's code's
    (``desire_pytorch.py``): a target of ``T − 4`` spikes, thresholds 0.05 (hidden) and 0.30
    (output), traces decaying by 0.75 per step and the learning rate decaying by
    :math:`e^{-0.04\,\mathrm{epoch}}`. The rate itself is ``train.lr`` (the paper's 1e-5 for
    a linear layer), scaled by ``train.schedule`` and by ``lr_decay``, and applied after every
    sample (:attr:`updates`).
    """

    margin: int = 4
    """The label's neuron should fire ``T − margin`` spikes (``T`` the steps of a sample)."""
    hidden_threshold: float = 0.05
    """:math:`θ_{hid}`: a hidden neuron gets a desire when :math:`|s_i| ≥ θ_{hid}`."""
    output_threshold: float = 0.30
    """:math:`θ_{out}`: an output neuron gets a desire when its error exceeds it."""
    trace_decay: float = 0.75
    """:math:`λ`, the presynaptic trace's decay per step (the paper's :math:`1 − 2^{-2}`)."""
    lr_decay: float = 0.04
    r"""The rate is multiplied by :math:`e^{-\mathrm{lr\_decay} \cdot \mathrm{epoch}}`."""
    updates: str = "sample"
    """When the weights change: ``"sample"`` after every sample, as the paper's code (each
    sample of a batch runs alone, through the fused kernels, and its update applies before
    the next runs); ``"batch"`` once per batch, the sum of its samples' updates (one batched
    run through the plasticity engine: faster per sample, but every sample of the batch sees
    the weights of the batch's start)."""
    dropout: tuple[float, float] = (0.0, 0.3)
    r"""Dropout probabilities ``(input, hidden)`` during training, as the paper's code
    (0.0 / 0.3; its Fashion-MNIST run 0.05 / 0.40): per sample, each input channel and each
    hidden neuron (not the output) is silenced with that probability for the whole sample; the
    spikes of the others reach the next layer scaled by :math:`1/(1 - p)`. The rule and the
    desires see the unscaled 0/1 spikes (the paper clamps its traces at 1), and a silenced
    neuron has no desire. Evaluation runs without dropout."""

    def __post_init__(self) -> None:
        check_int(self.margin, "train.method desire_bp: margin", 0)
        check_real(self.hidden_threshold, "train.method desire_bp: hidden_threshold", 0,
                   low_open=True)
        check_real(self.output_threshold, "train.method desire_bp: output_threshold", 0)
        check_real(self.trace_decay, "train.method desire_bp: trace_decay", 0, 1,
                   low_open=True, high_open=True)
        check_real(self.lr_decay, "train.method desire_bp: lr_decay", 0)
        if self.updates not in ("sample", "batch"):
            raise ConfigError(f"train.method desire_bp: updates must be 'sample' or 'batch', got "
                              f"{self.updates!r}")
        if (isinstance(self.dropout, (str, bytes)) or not hasattr(self.dropout, "__len__")
                or len(self.dropout) != 2):
            raise ConfigError(f"train.method desire_bp: dropout must be two probabilities "
                              f"[input, hidden], got {self.dropout!r}")
        object.__setattr__(self, "dropout", tuple(
            check_real(p, f"train.method desire_bp: dropout[{k}] ({side})", 0, 1,
                       high_open=True)
            for k, (p, side) in enumerate(zip(self.dropout, ("input", "hidden"), strict=True))))


@dataclass(frozen=True)
class _Layer:
    """A plastic projection ``fc`` from ``pre`` (a population, or the input) to ``post``."""

    fc: Node
    pre: Node
    post: Node


def desire_chain(graph: Graph) -> list[_Layer]:
    """The projections of a feed-forward chain input → (Linear → spiking population)+, in
    order, for desire backpropagation.

    Raises:
        ConfigError: a projection that is not a feed-forward ``Linear`` (a convolution, a
            recurrent or delayed projection), a population that does not spike (the output
            must count spikes: ``model.readout: lif``), or a branching graph — naming the node.
    """
    layers = []
    for node in graph.nodes:
        if node.kind == "projection":
            if node.op != "Linear" or node.recurrent or node.delay_line:
                raise ConfigError(f"desire_bp: projection {node.name!r} is a "
                                  f"{'recurrent ' if node.recurrent else ''}{node.op}; desire "
                                  f"backpropagation trains feed-forward Linear projections only")
        elif node.kind == "population":
            if not node.spiking:
                raise ConfigError(f"desire_bp: population {node.name!r} ({node.op}) does not "
                                  f"spike; desires come from spike counts (use model.readout: "
                                  f"lif for the output)")
            if len(node.inputs) != 1 or graph[node.inputs[0]].kind != "projection":
                raise ConfigError(f"desire_bp: population {node.name!r} must be fed by exactly "
                                  f"one Linear projection, it is fed by {list(node.inputs)}")
            fc = graph[node.inputs[0]]
            pre = graph[fc.inputs[0]]
            while pre.kind == "reshape":
                pre = graph[pre.inputs[0]]
            expected = layers[-1].post.name if layers else graph.input.name
            if pre.name != expected:
                raise ConfigError(f"desire_bp: projection {fc.name!r} reads {pre.name!r}; "
                                  f"desire backpropagation needs a chain in which it reads "
                                  f"{expected!r}")
            layers.append(_Layer(fc, pre, node))
    if not layers:
        raise ConfigError("desire_bp: the network has no Linear projection into a population")
    return layers


@dataclass
class _Dropout(ModelHooks):
    """The reference evaluation with per-sample dropout: ``keep`` ``[B, *shape]`` (0/1) per
    dropped node (the input or a hidden population) silences its channels for the sample, and
    each projection in ``scale`` multiplies what it reads by :math:`1/(1 - p)` of its source,
    so the observables — what the rule and the desires read — stay 0/1."""

    keep: dict[str, Tensor] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    def input(self, graph: Graph, node: Node, x: Tensor) -> Observables:
        obs = super().input(graph, node, x)
        keep = self.keep.get(node.name)
        return obs if keep is None else Observables(spikes=obs.spikes * keep)

    def population(self, graph: Graph, node: Node, current: Tensor, state: Any
                   ) -> tuple[Observables, Any]:
        obs, after = super().population(graph, node, current, state)
        keep = self.keep.get(node.name)
        if keep is not None:
            obs = dataclasses.replace(obs, spikes=obs.spikes * keep)
        return obs, after

    def projection(self, graph: Graph, node: Node, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        factor = self.scale.get(node.name)
        return super().projection(graph, node, x if factor is None else x * factor, state)


@register_method
class DesireBackprop(TrainingMethod):
    """Desire backpropagation (module docstring) as ``train.method: desire_bp``.

    Every projection learns by :func:`desire_stdp`. A run's spike counts give the desires of
    every layer (:func:`output_desire`, :func:`hidden_desire`, with the weights as they were
    during the run), and the update, with the desires as third factor, follows the run
    (:attr:`DesireOptions.updates`): after every sample, each sample run alone through the
    fused kernels and its update computed from the recorded spike trains
    (:meth:`~spikeloop.training.plasticity.Plasticity.replay`); or once per batch, the batch
    run step by step through the plasticity engine and its samples' updates summed
    (:meth:`~spikeloop.training.plasticity.Plasticity.finish`). A sample is classified by the
    output neuron with the most spikes, a tie counting as wrong (:func:`unique_argmax`).
    """

    name = "desire_bp"
    gradient = False
    Options = DesireOptions

    def __init__(self, options: DesireOptions) -> None:
        super().__init__(options)
        self._engine: tuple[Graph, list[_Layer], Plasticity] | None = None
        self._fields: tuple[Graph, dict[str, tuple[str, ...]]] | None = None

    def check(self, trainer: Trainer) -> None:
        self._setup(trainer)

    def _setup(self, trainer: Trainer) -> tuple[list[_Layer], Plasticity]:
        net = trainer.network
        if self._engine is None or self._engine[0] is not net.graph:
            layers = desire_chain(net.graph)
            dt = float(layers[0].post.settings["dt"])
            rule = desire_stdp(trainer.config.train.lr, -dt / math.log(self.options.trace_decay))
            self._engine = (net.graph, layers,
                            Plasticity(net, {layer.fc.name: rule for layer in layers}))
        return self._engine[1], self._engine[2]

    def desires(self, layers: list[_Layer], counts: dict[str, Tensor], labels: Tensor,
                steps: int, keep: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The desire ``[B, N_post]`` of every projection's postsynaptic neurons, from the
        spike counts of a run of ``steps`` steps (module docstring); ``keep`` ``[B, N]`` per
        dropped-out population (0: silenced for the sample, so no desire)."""
        target = steps - self.options.margin
        if target <= 0:
            raise ConfigError(f"desire_bp: a sample of {steps} steps cannot reach the target of "
                              f"T − margin = {steps} − {self.options.margin} spikes; use more "
                              f"steps (data.duration / data.dt) or a smaller margin")
        flat = {name: c.reshape(c.shape[0], -1) for name, c in counts.items()}
        out: dict[str, Tensor] = {}
        last = layers[-1]
        desire = output_desire(flat[last.post.name], labels, target,
                               self.options.output_threshold)
        out[last.fc.name] = desire
        for lower, upper in zip(reversed(layers[:-1]), reversed(layers[1:]), strict=True):
            desire = hidden_desire(upper.fc.params["weight"], desire, flat[upper.post.name],
                                   target, self.options.hidden_threshold)
            if keep is not None and lower.post.name in keep:
                desire = desire * keep[lower.post.name]
            out[lower.fc.name] = desire
        return out

    def _dropout(self, layers: list[_Layer], x: Tensor, kernel: str = "reference"
                 ) -> tuple[_Dropout | None, dict[str, Tensor]]:
        """This batch's dropout masks (:attr:`DesireOptions.dropout`), drawn from torch's
        global generator (a checkpoint keeps its state): one per sample and channel of the
        input and of every hidden population, the same at every step; the hooks evaluate the
        network with ``kernel``."""
        p_in, p_hidden = self.options.dropout
        batch = x.shape[1]
        keep: dict[str, Tensor] = {}
        scale: dict[str, float] = {}
        for layer in layers:
            p = p_in if layer is layers[0] else p_hidden
            if p > 0:
                keep[layer.pre.name] = (torch.rand((batch, *layer.pre.shape), device=x.device)
                                        >= p).to(x.dtype)
                scale[layer.fc.name] = 1.0 / (1.0 - p)
        if not keep:
            return None, keep
        return _Dropout(kernel=kernel, keep=keep, scale=scale), keep

    def train_batch(self, trainer: Trainer, x: Tensor, y: Tensor) -> tuple[float, int]:
        layers, engine = self._setup(trainer)
        if not len(y):
            return 0.0, 0
        scale = trainer.lr_factor * math.exp(-self.options.lr_decay * trainer.epoch)
        if self.options.updates == "sample":
            out = torch.cat([self._train_sample(layers, engine, trainer, x[:, b:b + 1],
                                                y[b:b + 1], scale) for b in range(len(y))])
        else:
            hooks, keep = self._dropout(layers, x)
            counts = engine.run(x, hooks=hooks)
            desires = self.desires(layers, counts, y, x.shape[0], keep)
            engine.finish(third=desires, scale=scale)
            out = counts[layers[-1].post.name]
        correct = int((unique_argmax(out.reshape(out.shape[0], -1)) == y).sum())
        return float("nan"), correct

    def _train_sample(self, layers: list[_Layer], engine: Plasticity, trainer: Trainer,
                      x: Tensor, y: Tensor, scale: float) -> Tensor:
        """One sample ``x [T, 1, ...]``: a run through the fused kernels (dropout hooks where
        the options drop anything), its desires, and its update applied at once
        (:meth:`~spikeloop.training.plasticity.Plasticity.replay`); returns the output's spike
        counts ``[1, ...]``."""
        hooks, keep = self._dropout(layers, x, kernel="auto")
        if hooks is None:
            hooks = ModelHooks(kernel="auto")
        if self._fields is None or self._fields[0] is not trainer.network.graph:
            graph = trainer.network.graph  # every node records its spikes only
            self._fields = (graph, {node.name: ("spikes",) for node in graph.nodes})
        hooks.fields = self._fields[1]
        with torch.no_grad():
            obs, _ = execute(trainer.network.graph, x, hooks)
            counts = {name: o.spikes.sum(0) for name, o in obs.items()}
            engine.replay(obs, third=self.desires(layers, counts, y, x.shape[0], keep),
                          scale=scale)
        return counts[layers[-1].post.name]

    def predict(self, trainer: Trainer, out: NetworkOutput) -> Tensor | None:
        spikes = out.output.spikes
        if spikes is None:
            return None
        counts = spikes.sum(0)
        return unique_argmax(counts.reshape(counts.shape[0], -1))

r"""Local plasticity: learning rules written as sums of products of traces, applied online.

A rule changes the weight :math:`w_{ij}` of a ``Linear`` projection from presynaptic neuron
:math:`i` to postsynaptic neuron :math:`j` by a sum of products, as Loihi's programmable
learning engine does (Davies et al., IEEE Micro 2018):

.. math::
    Δw_{ij} = η\,ℓ \sum_{b} \sum_{k} c_k \prod_{u ∈ \mathrm{pre}_k} u_{bi}
              \prod_{u ∈ \mathrm{post}_k} u_{bj}\; f_k(w_{ij})

summed over the samples :math:`b` of the batch, with :math:`η` the rule's rate, :math:`ℓ` a
scale the caller gives (e.g. the schedule's factor), :math:`c_k` a term's coefficient and
:math:`f_k` its optional weight dependence. The variables a term may read (:data:`PRE`,
:data:`POST`):

=========  =======================================================================
``x0``     the presynaptic spike at this step (0/1)
``x1 x2``  presynaptic traces, :math:`x ← x\,e^{-Δt/τ}`, plus 1 per spike
``v_pre``  the presynaptic membrane (a population only: an ``Input`` has none)
``y0``     the postsynaptic spike at this step
``y1–y3``  postsynaptic traces
``v_post`` the postsynaptic membrane
``r``      a third factor per postsynaptic neuron, given by the caller (reward, error,
           desire)
=========  =======================================================================

A :class:`Factor` applies an element-wise function to a variable (VDSP's dependence on the
presynaptic membrane). Order within a step :math:`t`: the traces decay to :math:`t`, the rule
reads them — so they hold the spikes of strictly earlier steps (the :math:`t − ε` of the triplet
rule) — and then the spikes of step :math:`t` are added. A pre/post pair at the same step
therefore changes nothing through ``x1·y0`` or ``x0·y1``.

``apply="step"`` adds :math:`Δw` at every step (online). ``apply="end"`` accumulates it as an
eligibility and adds it when the run ends, with the third factor ``r`` known only then (desire
backpropagation): terms without ``r`` are summed over the batch (:math:`O(\text{weights})`),
terms with ``r`` keep what the factor multiplies per sample — the summed presynaptic product
(:math:`O(B N_{pre})`) when ``r`` is the term's only postsynaptic factor, else the per-sample
correlation (:math:`O(B \cdot \text{weights})`). For a short run the correlation is kept as its
rows instead — every step's postsynaptic product and presynaptic product, :math:`O(T B (N_{pre}
+ N_{post}))`, multiplied out in one matrix product by :meth:`Plasticity.finish` — as long as
they take less memory than the correlation (:math:`T < N_{pre} N_{post} / (N_{pre} +
N_{post})`); then they are folded into it. Nothing kept exceeds the correlation's size, however
many steps run.

:class:`Plasticity` runs a network step by step through the graph executor
(:func:`~spikeloop.backends.execute`, the registered neuron step functions) under
``torch.no_grad``: no autograd graph, and only the last step's observables, the traces and
spike counts are kept. It runs on the simulator; :func:`chip_support` says which emulated or
real chips could run a rule themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import torch
from torch import Tensor

from spikeloop.backends import ModelHooks, execute
from spikeloop.errors import ConfigError, PlasticityBackendError, UnknownTraceError
from spikeloop.ir import Graph, Node

PRE = ("x0", "x1", "x2", "v_pre")
"""Variables of the presynaptic neuron a rule may read."""
POST = ("y0", "y1", "y2", "y3", "v_post", "r")
"""Variables of the postsynaptic neuron a rule may read."""
TRACES = ("x1", "x2", "y1", "y2", "y3")
"""The variables that are exponential traces (their time constants are the rule's ``taus``)."""


@dataclass(frozen=True)
class Factor:
    """A variable through an element-wise function, e.g. ``Factor("v_pre", g)``."""

    name: str
    fn: Callable[[Tensor], Tensor] | None = None


def _name(u: str | Factor) -> str:
    return u.name if isinstance(u, Factor) else u


@dataclass(frozen=True)
class Term:
    """One product of a rule: ``coef · Π pre · Π post · weight(w)``."""

    coef: float
    pre: tuple[str | Factor, ...] = ()
    post: tuple[str | Factor, ...] = ()
    weight: Callable[[Tensor], Tensor] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(_name(u) for u in (*self.pre, *self.post))


@dataclass(frozen=True)
class Rule:
    """A local learning rule (see the module docstring).

    Attributes:
        terms: the products summed.
        taus: time constant (s) of every trace the terms read (``{"x1": 20e-3, ...}``).
        lr: the rate :math:`η`.
        w_min, w_max: hard bounds of the weight after every update (``None``: unbounded);
            part of the rule (a memristor's conductance range), not a silent clip.
        apply: ``"step"`` (online) or ``"end"`` (eligibility, applied by the run's end).
        name: for messages.
    """

    terms: tuple[Term, ...]
    taus: Mapping[str, float] = field(default_factory=dict)
    lr: float = 1.0
    w_min: float | None = None
    w_max: float | None = None
    apply: Literal["step", "end"] = "step"
    name: str = "rule"

    def __post_init__(self) -> None:
        if self.apply not in ("step", "end"):
            raise ConfigError(f"rule {self.name!r}: apply must be 'step' or 'end', got "
                              f"{self.apply!r}")
        for k, term in enumerate(self.terms):
            for side, allowed in (("pre", PRE), ("post", POST)):
                for u in getattr(term, side):
                    name = _name(u)
                    if name not in allowed:
                        other = "post" if side == "pre" else "pre"
                        where = (f"; {name!r} is a {other}synaptic variable"
                                 if name in (POST if side == "pre" else PRE) else "")
                        raise UnknownTraceError(
                            f"rule {self.name!r}: term {k} reads {side}synaptic variable "
                            f"{name!r}, which does not exist{where}; {side}synaptic variables: "
                            f"{', '.join(allowed)}")
                    if name in TRACES and name not in self.taus:
                        declared = ", ".join(sorted(self.taus)) or "none"
                        raise UnknownTraceError(
                            f"rule {self.name!r}: term {k} reads trace {name!r}, which the rule "
                            f"does not declare (declared traces: {declared}); give its time "
                            f"constant in taus")
        for name, tau in self.taus.items():
            if name not in TRACES:
                raise UnknownTraceError(f"rule {self.name!r}: taus names {name!r}, which is no "
                                        f"trace; traces: {', '.join(TRACES)}")
            if not (isinstance(tau, int | float) and math.isfinite(tau) and tau > 0):
                raise ConfigError(f"rule {self.name!r}: the time constant of {name} must be a "
                                  f"finite number > 0 s, got {tau!r}")
        if (self.w_min is not None and self.w_max is not None and self.w_min >= self.w_max):
            raise ConfigError(f"rule {self.name!r}: w_min = {self.w_min} must be below "
                              f"w_max = {self.w_max}")

    @cached_property
    def variables(self) -> frozenset[str]:
        """Every variable the terms read (derived once: the engine asks at every step)."""
        return frozenset(n for t in self.terms for n in t.names)


def stdp_pair(a_plus: float = 1.0, a_minus: float = 1.0, tau_plus: float = 20e-3,
              tau_minus: float = 20e-3, lr: float = 1e-2, w_min: float | None = None,
              w_max: float | None = None) -> Rule:
    r"""Pair-based STDP (all-to-all pairs; Bi & Poo 1998, Song, Miller & Abbott 2000).

    A post spike at :math:`t_{post}` after a pre spike at :math:`t_{pre}`, and the reverse:

    .. math::
        Δw = η A_+ e^{-(t_{post}-t_{pre})/τ_+}\ (t_{post} > t_{pre}),\qquad
        Δw = -η A_- e^{-(t_{pre}-t_{post})/τ_-}\ (t_{pre} > t_{post});

    terms ``A+ · x1 · y0`` and ``−A− · x0 · y1``.
    """
    return Rule((Term(a_plus, ("x1",), ("y0",)), Term(-a_minus, ("x0",), ("y1",))),
                {"x1": tau_plus, "y1": tau_minus}, lr, w_min, w_max, name="stdp_pair")


def stdp_triplet(a2_plus: float = 5e-10, a3_plus: float = 6.2e-3, a2_minus: float = 7e-3,
                 a3_minus: float = 2.3e-4, tau_plus: float = 16.8e-3,
                 tau_minus: float = 33.7e-3, tau_x: float = 101e-3, tau_y: float = 125e-3,
                 lr: float = 1.0, w_min: float | None = None,
                 w_max: float | None = None) -> Rule:
    r"""Triplet STDP (Pfister & Gerstner, J. Neurosci. 2006), all-to-all interactions.

    .. math::
        Δw = η\,x_1 (A_2^+ + A_3^+ y_2(t-ε))\ \text{at a post spike},\qquad
        Δw = -η\,y_1 (A_2^- + A_3^- x_2(t-ε))\ \text{at a pre spike},

    with :math:`x_1, x_2` (:math:`τ_+, τ_x`) and :math:`y_1, y_2` (:math:`τ_-, τ_y`) the pre
    and post traces. The defaults are the paper's all-to-all fit to visual-cortex data
    (Table 2; the values are from its table as recalled, check before relying on them).
    """
    return Rule((Term(a2_plus, ("x1",), ("y0",)), Term(a3_plus, ("x1",), ("y0", "y2")),
                 Term(-a2_minus, ("x0",), ("y1",)), Term(-a3_minus, ("x0", "x2"), ("y1",))),
                {"x1": tau_plus, "x2": tau_x, "y1": tau_minus, "y2": tau_y}, lr, w_min, w_max,
                name="stdp_triplet")


# ----------------------------------------------------------------------------- chips
CHIP_PLASTICITY: Mapping[str, tuple[frozenset[str], str]] = {
    "loihi": (frozenset({"x0", "x1", "x2", "y0", "y1", "y2", "y3", "r"}),
              "Loihi's learning engine evaluates sums of products of pre/post traces and a "
              "reward trace per synapse (Davies et al., IEEE Micro 2018); it does not read "
              "membranes; not emulated here"),
    "analog": (frozenset({"x0", "x1", "y0", "y1", "v_post", "r"}),
               "BrainScaleS-2 runs rules on its plasticity processor from per-synapse causal "
               "and acausal correlation sensors (exponential pair traces) and the digitised "
               "membrane of its own neurons (Pehle et al., Front. Neurosci. 2022; recalled); "
               "spikeloop's analog emulator does not model them"),
    "xylo": (frozenset(),
             "Xylo has no on-chip learning: its weights are a fixed integer configuration"),
}
"""Per chip: the variables its own plasticity hardware could compute, and why."""


def chip_support(rule: Rule) -> dict[str, tuple[bool, str]]:
    """For every chip of :data:`CHIP_PLASTICITY`: whether it could run ``rule`` itself, and
    why (the variables it lacks)."""
    out = {}
    for chip, (has, why) in CHIP_PLASTICITY.items():
        missing = sorted(rule.variables - has - {"x0", "y0"} if has else rule.variables)
        out[chip] = (not missing and bool(has),
                     why + (f"; lacks {', '.join(missing)}" if missing else ""))
    return out


CHIP_BACKENDS = {"chip": "analog", "xylo": "xylo"}
"""The chip of :data:`CHIP_PLASTICITY` each chip backend emulates."""

PLASTIC_BACKENDS = ("sim",)
"""Backends on which :class:`Plasticity` runs rules."""

_REFUSED = {
    "event": "the event backend integrates each window in closed form between exact spike "
             "times; it has no per-step traces to update weights from",
}


def check_backend(backend: Any, rules: Mapping[str, Rule]) -> None:
    """Refuse a backend that cannot run local plasticity.

    Raises:
        PlasticityBackendError: any backend but the simulator, naming why and, for a chip,
            what its own plasticity hardware could do (:func:`chip_support`).
    """
    name = backend if isinstance(backend, str) else (
        backend.get("name") if isinstance(backend, Mapping) else getattr(backend, "name", None))
    if name in PLASTIC_BACKENDS:
        return
    why = _REFUSED.get(name)
    chip = CHIP_BACKENDS.get(name)
    if why is None and chip is not None:
        could = [f"rule {r.name!r} on {target!r}: "
                 f"{'could run on the chip' if chip_support(r)[chip][0] else 'not on the chip'}"
                 for target, r in rules.items()]
        why = f"{CHIP_PLASTICITY[chip][1]} ({'; '.join(could)})"
    raise PlasticityBackendError(
        f"local plasticity runs on {', '.join(PLASTIC_BACKENDS)}, not on backend {name!r}: "
        f"{why or 'it exposes no per-step state to update weights from'}")


# ----------------------------------------------------------------------------- the engine
@dataclass
class _Synapses:
    """A plastic projection: its rule, nodes, traces and eligibility."""

    rule: Rule
    proj: Node
    pre: Node
    post: Node
    decay: dict[str, float]
    traces: dict[str, Tensor] = field(default_factory=dict)
    eligible: dict[int, Tensor] = field(default_factory=dict)
    rows: dict[int, list[tuple[Tensor, Tensor]]] = field(default_factory=dict)
    """Per term, its kept products ``(post, pre)``: ``[B, N]`` per step (run), or ``[T, B, N]``
    for a whole record (replay); finish() multiplies them out over every leading dimension."""


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


class Plasticity:
    """Run ``network`` with local rules on its ``Linear`` projections (module docstring).

    Args:
        network: a :class:`~spikeloop.network.Network` (or anything with ``.graph``).
        rules: rule per ``Linear`` layer name.
        backend: where the network would run (default: the network's); only the simulator
            runs local rules (:func:`check_backend`).

    Raises:
        ConfigError: a rule for a layer the network does not have, or one that is not a
            feed-forward ``Linear`` projection into one population.
        UnknownTraceError: a rule reading the membrane of an ``Input`` (``v_pre``) or a spike
            of a non-spiking node.
        PlasticityBackendError: a backend that cannot run local rules.

    Example:
        >>> from spikeloop.network import Network
        >>> from spikeloop.nn import LIF, Input, Linear
        >>> net = Network({"input": Input(3), "fc": Linear(3, 2), "out": LIF(2)})
        >>> engine = Plasticity(net, {"fc": stdp_pair()})
        >>> counts = engine.run(torch.rand(50, 4, 3).lt(0.2).float())
        >>> counts["out"].shape
        torch.Size([4, 2])
    """

    def __init__(self, network: Any, rules: Mapping[str, Rule], backend: Any = None) -> None:
        self.graph: Graph = network.graph
        check_backend(network.backend if backend is None else backend, rules)
        self.synapses = {name: self._synapses(name, rule) for name, rule in rules.items()}

    def _synapses(self, name: str, rule: Rule) -> _Synapses:
        graph = self.graph
        names = [n.name for n in graph.nodes]
        if name not in names:
            raise ConfigError(f"plasticity: the network has no layer {name!r}; layers: "
                              f"{', '.join(names)}")
        proj = graph[name]
        if proj.kind != "projection" or proj.op != "Linear" or proj.recurrent:
            raise ConfigError(f"plasticity: rule {rule.name!r} is for {name!r}, a "
                              f"{'recurrent ' if proj.recurrent else ''}{proj.op} node; local "
                              f"rules change feed-forward Linear projections")
        posts = [n for n in graph.nodes if name in n.inputs]
        if len(posts) != 1 or posts[0].kind != "population":
            raise ConfigError(f"plasticity: Linear {name!r} must feed exactly one population "
                              f"directly, it feeds {[n.name for n in posts]}")
        pre = graph[proj.inputs[0]]
        while pre.kind == "reshape":  # Flatten: the same neurons, another shape
            pre = graph[pre.inputs[0]]
        post = posts[0]
        for node, side, spike, membrane in ((pre, "pre", "x", "v_pre"),
                                            (post, "post", "y", "v_post")):
            reads = {n for n in rule.variables if n.startswith(spike) or n == membrane}
            if membrane in reads and node.kind != "population":
                raise UnknownTraceError(
                    f"rule {rule.name!r} on {name!r} reads {membrane}, but its {side}synaptic "
                    f"node {node.name!r} is an {node.op} (no membrane); put a population "
                    f"there (e.g. input neurons driven by the input)")
            if reads - {membrane} and not node.spiking:
                raise UnknownTraceError(
                    f"rule {rule.name!r} on {name!r} reads {sorted(reads - {membrane})}, but "
                    f"its {side}synaptic node {node.name!r} ({node.op}) does not spike")
        dt = float(post.settings["dt"])
        decay = {k: math.exp(-dt / tau) for k, tau in rule.taus.items()}
        return _Synapses(rule, proj, pre, post, decay)

    def run(self, x: Tensor, third: Mapping[str, Tensor] | None = None, scale: float = 1.0,
            on_step: Callable[[int, Mapping[str, Any]], None] | None = None,
            state: Mapping[str, Any] | None = None,
            before_rule: Callable[[int, Mapping[str, Any], dict[str, Any]], None] | None = None,
            hooks: ModelHooks | None = None,
            ) -> dict[str, Tensor]:
        """Run ``x [T, B, *input]`` step by step, updating the weights by the rules.

        Args:
            third: the third factor ``r`` per plastic layer: ``[B, N_post]`` (the same at every
                step) or ``[T, B, N_post]``; for ``apply="end"`` rules it may instead be given
                to :meth:`finish`.
            scale: multiplies every rule's rate (e.g. the schedule's factor).
            on_step: called after every step with ``(t, observables)`` (homeostasis, WTA
                bookkeeping); it may change parameters in place.
            state: the network state to start from (``None``: rest).
            before_rule: called after every step of the network, before the spikes are
                counted and the rules read them, with ``(t, observables, state)``; it may
                change both in place (a hard winner-take-all keeps one spike per sample and
                resets the losers' membranes).
            hooks: the simulator's evaluation of the network (``None``: the reference step
                functions); a subclass of :class:`~spikeloop.backends.ModelHooks` may change
                what populations pass on (dropout masks, :class:`~spikeloop.training.desire.
                DesireBackprop`). It must keep the reference kernel: the rules read every step.

        Returns:
            Spike counts ``[B, *shape]`` of every spiking population (and the input), and for
            non-spiking populations their largest membrane over the run.

        ``apply="end"`` rules keep their eligibility until :meth:`finish`.
        """
        steps, batch = x.shape[:2]
        if hooks is None:
            hooks = ModelHooks(kernel="reference")
        elif hooks.kernel != "reference":
            raise ConfigError(f"Plasticity.run: hooks must use kernel='reference' (the rules read "
                              f"every step), got kernel={hooks.kernel!r}")
        counts: dict[str, Tensor] = {}
        for syn in self.synapses.values():
            syn.traces = {k: x.new_zeros(batch, math.prod(self._node_of(syn, k).shape))
                          for k in syn.rule.taus}
            syn.eligible, syn.rows = {}, {}
        state = dict(state or {})
        with torch.no_grad():
            for t in range(steps):
                obs, state = execute(self.graph, x[t:t + 1], hooks, state)
                if before_rule is not None:
                    before_rule(t, obs, state)
                for name, o in obs.items():
                    value = o.spikes if o.spikes is not None else o.v
                    if o.spikes is not None:
                        counts[name] = counts[name] + value[0] if name in counts else value[0]
                    else:
                        counts[name] = (torch.maximum(counts[name], value[0]) if name in counts
                                        else value[0].clone())
                for name, syn in self.synapses.items():
                    r = None if third is None else third.get(name)
                    if r is not None and r.dim() == 3:
                        r = r[t]
                    self._update(syn, obs, r, scale)
                if on_step is not None:
                    on_step(t, obs)
        self.state = state
        return counts

    def _node_of(self, syn: _Synapses, trace: str) -> Node:
        return syn.pre if trace.startswith("x") else syn.post

    def _update(self, syn: _Synapses, obs: Mapping[str, Any], r: Tensor | None,
                scale: float) -> None:
        rule = syn.rule
        for k, d in syn.decay.items():
            syn.traces[k].mul_(d)
        pre_obs, post_obs = obs[syn.pre.name], obs[syn.post.name]
        w = syn.proj.params["weight"]
        batch = (pre_obs.spikes if pre_obs.spikes is not None else pre_obs.v).shape[1]
        values = {"x0": _flat(pre_obs.spikes[0]) if pre_obs.spikes is not None else None,
                  "y0": _flat(post_obs.spikes[0]) if post_obs.spikes is not None else None,
                  "v_pre": _flat(pre_obs.v[0]) if "v_pre" in rule.variables else None,
                  "v_post": _flat(post_obs.v[0]) if "v_post" in rule.variables else None,
                  "r": r, **syn.traces}
        ones_pre, ones_post = (batch, w.shape[1]), (batch, w.shape[0])  # a side without factors
        dw = None
        for k, term in enumerate(rule.terms):
            uses_r = "r" in term.names
            if uses_r and rule.apply == "step" and r is None:
                raise ConfigError(f"rule {rule.name!r} on {syn.proj.name!r} reads the third "
                                  f"factor r; pass third={{{syn.proj.name!r}: tensor}} to run")
            pre = _product(term.pre, values, ones_pre, w)
            if rule.apply == "end" and uses_r:  # r comes at the end: keep what it multiplies
                rest = tuple(u for u in term.post if _name(u) != "r")
                if rest:
                    _keep_rows(syn, k, _product(rest, values, ones_post, w), pre)
                else:
                    syn.eligible[k] = syn.eligible[k] + pre if k in syn.eligible else pre.clone()
                continue
            change = term.coef * (_product(term.post, values, ones_post, w).T @ pre)
            if term.weight is not None:
                change = change * term.weight(w)
            dw = change if dw is None else dw + change
        for k in syn.traces:  # after the rule: it reads the spikes of earlier steps
            syn.traces[k].add_(values["x0"] if k.startswith("x") else values["y0"])
        if dw is None:
            return
        if rule.apply == "step":
            _apply(w, dw, rule, scale)
        else:
            syn.eligible[-1] = syn.eligible[-1] + dw if -1 in syn.eligible else dw

    def replay(self, obs: Mapping[str, Any], third: Mapping[str, Tensor] | None = None,
               scale: float = 1.0) -> None:
        r"""Apply ``apply="end"`` rules from a whole recorded run instead of stepping it: ``obs``
        holds the observables ``[T, B, *shape]`` of every rule's pre- and postsynaptic node (as
        :func:`~spikeloop.backends.execute` returns them, so the run may take the fused kernel),
        ``third`` the factor ``r`` ``[B, N_post]`` per layer. A trace read at step :math:`t`
        holds the spikes of strictly earlier steps,

        .. math::
            x_k(t) = \sum_{t' < t} d_k^{\,t - t'}\, x(t'), \qquad d_k = e^{-dt/τ_k},

        one ``[T, T]`` matrix product per trace over the record; each term's products then
        fill the eligibility that :meth:`run` would have kept, and :meth:`finish`'s own step
        applies it, so the weights change as ``run`` followed by ``finish`` would change them,
        up to float rounding.

        Raises:
            ConfigError: a rule with ``apply="step"`` (its weights change during the run), a
                rule reading ``r`` without it in ``third``, or a node missing from ``obs`` or
                without the spikes or membrane a rule reads.
        """
        with torch.no_grad():
            for name, syn in self.synapses.items():
                rule = syn.rule
                if rule.apply != "end":
                    raise ConfigError(f"Plasticity.replay: rule {rule.name!r} on {name!r} "
                                      f"applies at every step; replay needs apply='end'")
                values = self._recorded(syn, obs)
                w = syn.proj.params["weight"]
                steps, batch = values["x0"].shape[:2]
                ones_pre, ones_post = (steps, batch, w.shape[1]), (steps, batch, w.shape[0])
                syn.eligible, syn.rows = {}, {}
                for k, term in enumerate(rule.terms):
                    pre = torch.broadcast_to(_product(term.pre, values, ones_pre, w), ones_pre)
                    rest = tuple(u for u in term.post if _name(u) != "r")
                    post = torch.broadcast_to(_product(rest, values, ones_post, w), ones_post)
                    if "r" not in term.names:  # as run() sums it, over the steps at once
                        change = term.coef * torch.zeros_like(w).index_copy_(
                            0, *_rows_product(post, pre))
                        if term.weight is not None:
                            change = change * term.weight(w)
                        dw = syn.eligible.get(-1)
                        syn.eligible[-1] = change if dw is None else dw + change
                    elif rest:  # the rows run() keeps, all steps as one entry
                        syn.rows[k] = [(post, pre)]
                    else:  # r alone: the summed presynaptic product
                        syn.eligible[k] = pre.sum(0)
                self._finish(name, syn, third, scale)

    def _recorded(self, syn: _Synapses, obs: Mapping[str, Any]) -> dict[str, Tensor]:
        """The variables of ``syn``'s rule over a whole recorded run, each ``[T, B, N]``."""
        out: dict[str, Tensor] = {}
        reads = syn.rule.variables
        for node, spike, membrane in ((syn.pre, "x", "v_pre"), (syn.post, "y", "v_post")):
            o = obs.get(node.name)
            if o is None:
                raise ConfigError(f"Plasticity.replay: the run holds no observables of "
                                  f"{node.name!r}")
            if o.spikes is None or (membrane in reads and o.v is None):
                raise ConfigError(f"Plasticity.replay: the run of {node.name!r} lacks the "
                                  f"{'membrane' if o.spikes is not None else 'spikes'} rule "
                                  f"{syn.rule.name!r} reads")
            s = o.spikes.reshape(*o.spikes.shape[:2], -1)
            out[f"{spike}0"] = s
            if membrane in reads:
                out[membrane] = o.v.reshape(*o.v.shape[:2], -1)
        steps = out["x0"].shape[0]
        for name, d in syn.decay.items():  # strictly earlier steps: t' < t
            s = out["x0" if name.startswith("x") else "y0"]
            out[name] = (_filter(steps, d, s) @ s.reshape(steps, -1)).reshape(s.shape)
        return out

    def finish(self, third: Mapping[str, Tensor] | None = None, scale: float = 1.0) -> None:
        """Apply the eligibility of ``apply="end"`` rules, with their third factor ``r``
        ``[B, N_post]`` per layer.

        Raises:
            ConfigError: a rule reads ``r`` and ``third`` does not give it.
        """
        with torch.no_grad():
            for name, syn in self.synapses.items():
                if syn.rule.apply == "end":
                    self._finish(name, syn, third, scale)

    def _finish(self, name: str, syn: _Synapses, third: Mapping[str, Tensor] | None,
                scale: float) -> None:
        rule, w = syn.rule, syn.proj.params["weight"]
        dw = syn.eligible.pop(-1, None)
        r = None if third is None else third.get(name)
        if (syn.eligible or syn.rows) and r is None:
            raise ConfigError(f"rule {rule.name!r} on {name!r} reads the third factor r; pass "
                              f"third={{{name!r}: tensor [B, N_post]}}")
        for k, e in sorted(syn.eligible.items()):
            term = rule.terms[k]
            change = term.coef * (r.T @ e if e.dim() == 2 else torch.einsum("bj,bji->ji", r, e))
            if term.weight is not None:
                change = change * term.weight(w)
            dw = change if dw is None else dw + change
        # kept rows: Σ_t (r ⊙ post_t)ᵀ pre_t as one product over steps and samples, one per
        # group of terms with the same postsynaptic factors (their presynaptic rows add up)
        groups: dict[Any, tuple[Tensor, Tensor]] = {}
        for k, rows in sorted(syn.rows.items()):
            term = rule.terms[k]
            key = (tuple(u for u in term.post if _name(u) != "r"), term.weight)
            pre = term.coef * torch.stack([q for _, q in rows])
            post = groups[key][0] if key in groups else torch.stack([p for p, _ in rows]) * r
            groups[key] = (post, groups[key][1] + pre if key in groups else pre)
        parts = []  # (rows, their change): only the postsynaptic neurons that change
        for (_, weight), (post, pre) in groups.items():
            part = _rows_product(post, pre)
            if weight is None:
                parts.append(part)
                continue
            change = torch.zeros_like(w).index_copy_(0, *part) * weight(w)
            dw = change if dw is None else dw + change
        syn.eligible, syn.rows = {}, {}
        if dw is None and rule.w_min is None and rule.w_max is None:
            for rows, change in parts:  # straight into the rows of w
                w.index_add_(0, rows, change, alpha=rule.lr * scale)
            return
        dw = torch.zeros_like(w) if dw is None else dw
        for rows, change in parts:
            dw.index_add_(0, rows, change)
        _apply(w, dw, rule, scale)


def _rows_product(post: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_{t,b} post_tbᵀ pre_tb`` for ``post [T, B, N_post]`` and ``pre [T, B, N_pre]``, as
    ``(rows, change [len(rows), N_pre])``: multiplied out only for the postsynaptic neurons
    with a non-zero factor (a desire or a spike: few, for a sparse layer); the other rows of
    the sum are 0."""
    post, pre = post.reshape(-1, post.shape[-1]), pre.reshape(-1, pre.shape[-1])
    rows = post.abs().sum(0).nonzero().squeeze(1)
    return rows, post[:, rows].T @ pre


def _filter(steps: int, d: float, like: Tensor) -> Tensor:
    """The ``[T, T]`` matrix of a trace read at each step: ``d^(t − t')`` for ``t' < t``."""
    k = torch.arange(steps, dtype=like.dtype, device=like.device)
    lag = k[:, None] - k[None, :]
    return torch.where(lag > 0, d ** lag.clamp(min=0), torch.zeros((), dtype=like.dtype,
                                                                   device=like.device))


def _keep_rows(syn: _Synapses, k: int, post: Tensor, pre: Tensor) -> None:
    """Keep one step's products ``post [B, N_post]`` and ``pre [B, N_pre]`` of term ``k`` (whose
    third factor comes at the end) as rows; once the rows would take more memory than the
    per-sample correlation ``[B, N_post, N_pre]``, fold them into it."""
    rows = syn.rows.setdefault(k, [])
    rows.append((post.clone(), pre.clone()))  # the variables are live buffers (traces)
    n_post, n_pre = post.shape[1], pre.shape[1]
    if len(rows) * (n_post + n_pre) >= n_post * n_pre:
        e = torch.einsum("tbj,tbi->bji", torch.stack([p for p, _ in rows]),
                         torch.stack([q for _, q in rows]))
        syn.eligible[k] = syn.eligible[k] + e if k in syn.eligible else e
        del syn.rows[k]


def _product(factors: tuple[str | Factor, ...], values: Mapping[str, Tensor | None],
             shape: tuple[int, int], like: Tensor) -> Tensor:
    """The product ``[B, N]`` of ``factors``; ones of ``shape`` (dtype and device of ``like``)
    for none, made only then."""
    out: Tensor | None = None
    for u in factors:
        v = values[_name(u)]
        if isinstance(u, Factor) and u.fn is not None:
            v = u.fn(v)
        out = v if out is None else out * v
    return like.new_ones(shape) if out is None else out


def _apply(w: Tensor, dw: Tensor, rule: Rule, scale: float) -> None:
    w.add_(dw, alpha=rule.lr * scale)
    if rule.w_min is not None or rule.w_max is not None:
        w.clamp_(rule.w_min, rule.w_max)

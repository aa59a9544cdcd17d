r"""EventProp on the time grid: the event backend's ``engine="grid"``.

Time-driven EventProp, as mlGeNN runs it: the network runs in steps of ``dt`` (the simulator's
forward pass, by its fused loops: spikes, membrane and current identical to ``backend="sim"``),
and the spiking populations' backward pass is EventProp's adjoint carried backwards step by
step, with EventProp's jump at each recorded spike, instead of a surrogate derivative at every
step (:mod:`spikeloop.kernels.eventprop` has the equations). Readouts and projections are
differentiated as on the simulator (a non-spiking layer's discrete adjoint is EventProp's on the
grid). As ``dt → 0`` the gradients approach the exact engine's (tested).

It runs the networks the exact engine runs (the same checks,
:func:`~spikeloop.backends.event.layers._layers_and_dt`) except refractory periods and
adaptive (AHP) neurons, and returns the simulator's observables (spikes, membrane and current
on the grid; losses on the membrane read the grid membrane), for spiking populations as
:class:`GridObservables`, which add the spikes' grid times as the exact engine's ``times``: the
losses that read spike times (first-spike times, spike counts, the rate regulariser) take them,
and their gradients enter the adjoint at the spikes. A readout's maximum stays at its step, as on
the simulator: where the maximum sits at the arrival of a spike that bends the
membrane down, the exact engine moves the maximum with that spike and differentiates its time
(:mod:`~spikeloop.backends.event.readout`); the grid does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.event.adjoint import _slope_floor
from spikeloop.backends.event.layers import _layers_and_dt, _neuron
from spikeloop.backends.event.records import SpikeEvents
from spikeloop.backends.executor import ModelHooks, execute
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Graph, Node
from spikeloop.kernels.eventprop import GridEventProp, jump_factors
from spikeloop.kernels.fused import per_neuron
from spikeloop.kernels.loop import Recurrent, coefficients
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables


def _jumps(layers: list, like: Tensor) -> dict[str, tuple]:
    """Per spiking population, what EventProp's jump reads beyond its loop, in ``like``'s dtype
    and device: ``(alpha, v_threshold, v_reset, subtract, GridEventProp)`` (``jump_factors``'
    arguments), from the exact engine's reading of the graph (with its slope floor) and the
    loop's coefficients; refuses what the grid cannot run."""
    out = {}
    for layer in layers:
        node, c = layer.pop, _neuron(layer.pop)
        if not c.spiking:
            continue
        if c.adaptive or c.t_refrac > 0:
            what = "adaptive (AHP) neurons" if c.adaptive else f"t_refrac = {c.t_refrac} s"
            raise ParameterError(
                f"event backend: population {node.name!r} has {what}; engine='grid' runs "
                "CUBA-LIF populations without a refractory period (engine='exact' runs both)")
        n, s = math.prod(node.shape), node.settings
        p = node.parameter_record()
        with torch.no_grad():
            alpha = coefficients(node.model, p, s["dt"], s["method"], node.cache).alpha
        ep = GridEventProp(*(per_neuron(v, n, like) for v in (c.v_leak, c.r, c.tau_mem,
                                                               c.tau_syn)),
                           float(s["dt"]), _slope_floor(c))
        out[node.name] = (*(per_neuron(v, n, like) for v in (alpha, c.v_threshold, c.v_reset)),
                          getattr(p, "reset", "value") == "subtract", ep)
    return out


def grid_times(spikes: Tensor, dt: float, dtype: torch.dtype) -> tuple[Tensor, tuple, Tensor]:
    """Spike times ``[B, N, K]`` of grid spikes ``[T, B, N]`` at the ends of their steps,
    ``(k+1)·dt``, ascending, ``+inf`` padding (``K ≥ 1``); with the spikes' positions
    ``(step, b, n)`` and each one's index among its neuron's spikes."""
    spiked = spikes.detach() > 0
    at = spiked.nonzero(as_tuple=True)
    rank = (spiked.cumsum(0) - 1)[at]
    k = int(rank.max()) + 1 if rank.numel() else 1
    times = torch.full((spikes.shape[1], spikes.shape[2], k), math.inf, dtype=dtype,
                       device=spikes.device)
    times[at[1], at[2], rank] = (at[0] + 1).to(dtype) * dt
    return times, at, rank


class _GridTimes(torch.autograd.Function):
    """A grid population's spike times (:func:`grid_times`) as a function of its recorded
    membrane: a loss's gradient ``g`` with respect to a spike's time enters EventProp's adjoint
    as the membrane gradient ``−g/V̇⁻`` at that spike (``c`` of
    :func:`~spikeloop.kernels.eventprop.jump_factors`), exactly where the exact engine's
    ``∂L/∂t_k`` enters its jump."""

    @staticmethod
    def forward(ctx: Any, v: Tensor, z: Tensor, i: Tensor, jump: tuple) -> Tensor:
        times, at, rank = grid_times(z, jump[-1].dt, v.dtype)
        ctx.save_for_backward(v, z, i)
        ctx.at, ctx.rank, ctx.jump = at, rank, jump
        return times

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple:
        v, z, i = ctx.saved_tensors
        at = ctx.at
        g_t = torch.zeros_like(v)
        g_t[at] = g[at[1], at[2], ctx.rank]
        _, _, c = jump_factors(z, v, i, *ctx.jump)
        return c * g_t, None, None, None


@dataclass
class GridObservables(Observables):
    """A spiking population's observables on the grid engine: the simulator's (spikes, membrane
    and current on the grid, differentiable by EventProp on the grid) and, as on the exact
    engine, ``times`` ``[B, N, K]`` (the spikes' grid times ``(k+1)·dt``, ``+inf`` padding;
    differentiable: their gradients enter the adjoint at the spikes) and ``duration``
    (``T·dt``), so the losses that read spike times (``first_spike_ce``, spike counts, the
    rate regulariser) treat them as on the exact engine. ``times`` is formed when first read."""

    duration: float = 0.0
    make_times: Callable[[], Tensor] | None = field(default=None, repr=False, compare=False)

    @property
    def times(self) -> Tensor | None:
        """The spike times ``[B, N, K]`` (see the class), formed on the first read and kept
        (outside the fields: :meth:`items` lists the recorded grid tensors only)."""
        kept = self.__dict__.get("_times")
        if kept is None and self.make_times is not None:
            kept = self.__dict__["_times"] = self.make_times()
        return kept


@dataclass
class _GridHooks(ModelHooks):
    """The simulator's hooks, with EventProp's backward pass for the spiking populations
    (``jumps``: :func:`_jumps`)."""

    jumps: dict[str, tuple] = field(default_factory=dict)

    def run(
        self, graph: Graph, node: Node, current: Tensor, state: Any, p: Any,
        recurrent: Recurrent | None = None, **options: Any,
    ) -> tuple[Observables, Any]:
        jump = self.jumps.get(node.name)
        if jump is None:
            return super().run(graph, node, current, state, p, recurrent, **options)
        ep = jump[-1]
        obs, after = super().run(graph, node, current, state, p, recurrent, eventprop=ep,
                                 **options)
        v, z, i = obs.v, obs.spikes, obs.i
        return GridObservables(spikes=z, v=v, i=i, duration=z.shape[0] * ep.dt,
                               make_times=lambda: _GridTimes.apply(v, z, i, jump)), after


def run_grid(graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None,
             membrane: bool) -> NetworkOutput:
    """``EventBackend(engine="grid").run``: ``x`` dense ``[T, B, C]`` or :class:`SpikeEvents`
    (put on the grid by :meth:`SpikeEvents.to_dense`)."""
    start = time.perf_counter()
    layers, dt = _layers_and_dt(graph, state)
    like = layers[0].proj.params["weight"]
    jumps = _jumps(layers, like)
    if isinstance(x, SpikeEvents):
        n_in = math.prod(graph.input.shape)
        x.check_channels(n_in)
        x = x.to_dense(dt, n_in).to(like.dtype)
    if len(graph.input.shape) != 1:
        raise ShapeError("event backend: the input must be 1-d channels [T, B, C]")
    # (the input's shape and finiteness: the executor's check, as on the simulator)
    populations, _ = execute(graph, x, _GridHooks(jumps=jumps), None)
    if not membrane:  # spiking populations' membranes are not returned (as on the exact engine)
        populations = {k: replace(o, v=None) if isinstance(o, GridObservables) else o
                       for k, o in populations.items()}
    report = ExecutionReport("event", wall={"run": time.perf_counter() - start},
                             resources={"window_s": x.shape[0] * dt, "engine": "grid"})
    return NetworkOutput(populations, graph.output.name, {}, report)
